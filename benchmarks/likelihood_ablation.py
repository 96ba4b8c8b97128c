r"""Likelihood ablation of the shared image model p(image | x, y): does each documented option work?

    python -m benchmarks.likelihood_ablation --threads 1                  # shapes, the default fit's budget
    python -m benchmarks.likelihood_ablation --likelihoods bernoulli,logistic inference.image_epochs=2

For every ``model.image.likelihood`` the image model is trained exactly as ``python -m cauvade_pyro.fit``
trains it (same config, same cache), then measured on its own, with the true attribute level (no causal part):

- **effectiveness**: held-out images encoded to ε and decoded with x (y) changed; the share the judge reads as
  following the change (:func:`cauvade_pyro.evaluate.effectiveness`, judge never in a loss); target ≥ 0.9;
- **held-out log-likelihood**: the ELBO per image at β = 1 in the likelihood's own units, and where the
  likelihood is a distribution over 8-bit pixels, a comparable figure in nats per image: the discretised
  logistic is one already; a density on [0, 1] (continuous Bernoulli, Gaussian) gives ELBO − D log 256 (the
  probability of a pixel's 1/256-wide bin, to first order); the Bernoulli is no distribution over 8-bit
  values, so it has none;
- **FID vs reference**: per x, the mean images decoded for the (x, y) of an unconfounded reference set with
  ε ~ N(0, I), against those reference images (domain features, :func:`~cauvade_pyro.metrics.train_feature_net`),
  mean over x; and the reference-vs-reference floor;
- **within-bin hue W1** of the same images against the reference, read from the pixels
  (:mod:`cauvade_pyro.metrics.hue`; a point mass at the bin centre scores 0.125);
- the mean pixel value of the decoded images against the reference's (0 for an all-black grid).

Writes ``benchmarks/results/likelihood_ablation.json`` (with ``git_sha`` and cold-cache timings when the
cache folder is new).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from benchmarks.provenance import git_sha
from benchmarks.quality import EFFECTIVENESS_TARGET, FEATURE_NET_BUDGET

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.likelihood_ablation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the fit config")
    parser.add_argument("--likelihoods", default="bernoulli,logistic",
                        help="comma-separated; continuous_bernoulli and gaussian were measured with the code that "
                        "still had them (docs/images.md) and then removed")
    parser.add_argument("--num-samples", type=int, default=600, help="reference and generated images per x")
    parser.add_argument("--out", type=Path, default=RESULTS / "likelihood_ablation.json")
    parser.add_argument("--threads", type=int, default=0)
    return parser.parse_args(argv)


def measure(cfg, dataset, judge, feature_net, reference: dict, floor: list[float], device) -> dict:
    from cauvade_pyro.evaluate import effectiveness
    from cauvade_pyro.inference import seed_everything
    from cauvade_pyro.inference.family import heldout_image_elbo
    from cauvade_pyro.members import shared_image_model

    started = time.perf_counter()
    model, path, trained = shared_image_model(cfg, dataset, device, progress=False)
    train_s = time.perf_counter() - started
    test = {k: v.to(device) for k, v in dataset.test.items()}
    seed_everything(0)
    effect = effectiveness(model, judge, test)
    elbo = heldout_image_elbo(model, test)
    pixels = math.prod(dataset.image_shape)
    kind = str(cfg.model.image.likelihood)
    comparable = {"logistic": elbo, "continuous_bernoulli": elbo - pixels * math.log(256),
                  "gaussian": elbo - pixels * math.log(256)}.get(kind)
    reaches = effect["x_flip_follows"] >= EFFECTIVENESS_TARGET and effect["y_flip_follows"] >= EFFECTIVENESS_TARGET
    return {
        "likelihood": kind,
        "effectiveness": effect,
        "reaches_effectiveness_target": reaches,
        "heldout_elbo_own_units": round(elbo, 2),
        "heldout_log_lik_8bit_nats": None if comparable is None else round(comparable, 2),
        **decoded_quality(model, dataset, feature_net, reference, floor, device),
        "image_model": Path(path).name,
        "trained_here": bool(trained),
        "train_or_load_s": round(train_s, 1),
    }


def decoded_quality(model, dataset, feature_net, reference: dict, floor: list[float], device) -> dict:
    """FID, within-bin hue W1 and mean pixel of the mean images decoded for the reference's (x, y), ε from the model's prior."""
    import torch

    from cauvade_pyro.inference import seed_everything
    from cauvade_pyro.metrics import ReferenceFID
    from cauvade_pyro.metrics.hue import within_bin_hue_w1

    fids, brightness = [], []
    generated_all, reference_all = [], []
    seed_everything(1)
    for x, ref in reference.items():
        xs = ref["x"].to(device)
        with torch.no_grad():
            eps = model.sample_eps(xs, ref["y"].to(device))
            images = model.decode(xs, ref["y"].to(device), eps).clamp(0, 1).cpu()
        ref_images = ref["image"].float().div(255)
        fids.append(ReferenceFID(feature_net, ref_images).distance(images))
        generated_all.append(images)
        reference_all.append(ref_images)
        brightness.append(float(images.mean()))
    hue = within_bin_hue_w1(torch.cat(generated_all), torch.cat(reference_all), dataset.num_hue_bins)
    return {
        "fid_vs_reference_mean": round(sum(fids) / len(fids), 3),
        "fid_vs_reference_per_x": [round(f, 3) for f in fids],
        "fid_reference_floor_mean": round(sum(floor) / len(floor), 3),
        "within_bin_hue": {k: _finite(v) for k, v in hue.items()},
        "mean_pixel_generated": round(sum(brightness) / len(brightness), 4),
        "mean_pixel_reference": round(float(torch.cat(reference_all).mean()), 4),
    }


def reference_sets(dataset, feature_net, num_samples: int) -> tuple[dict, list[float]]:
    """Per x an unconfounded reference set and the FID floor against a second one (seeds 20000 + x).

    The reference is the quality benchmark's *validation* set (seeds 30000 + x): the ablations choose defaults,
    so they never see its test set (10000 + x), on which ``benchmarks/quality.py`` scores."""
    import torch

    from cauvade_pyro.metrics import ReferenceFID

    reference, floor = {}, []
    for x in range(dataset.num_classes):
        reference[x] = dataset.sample_reference(x, num_samples, torch.Generator().manual_seed(30_000 + x))
        second = dataset.sample_reference(x, num_samples, torch.Generator().manual_seed(20_000 + x))
        floor.append(ReferenceFID(feature_net, reference[x]["image"].float().div(255)).distance(
            second["image"].float().div(255)))
    return reference, floor


def _finite(value):
    """Rounded float, or None for NaN (JSON has no NaN); ints pass through."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    import torch
    from cauvade_pyro.config import compose_config
    from cauvade_pyro.fit import build_dataset
    from cauvade_pyro.inference import resolve_device
    from cauvade_pyro.metrics import train_feature_net, train_judge

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    kinds = args.likelihoods.split(",")
    configs = {kind: compose_config([*args.overrides, f"model.image.likelihood={kind}"]) for kind in kinds}
    cfg = configs[kinds[0]]
    device = resolve_device(str(cfg.device))
    dataset = build_dataset(cfg)
    where = {"device": str(device), "cache_dir": cfg.cache_dir}
    judge = train_judge(dataset, seed=int(cfg.eval.judge_seed), num_images=int(cfg.eval.judge_images),
                        epochs=int(cfg.eval.judge_epochs), **where)
    feature_net = train_feature_net(dataset, **FEATURE_NET_BUDGET, **where)  # the quality benchmark's FID features
    reference, floor = reference_sets(dataset, feature_net, args.num_samples)
    rows = []
    for kind in kinds:
        rows.append(measure(configs[kind], dataset, judge, feature_net, reference, floor, device))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "command": " ".join(["python -m benchmarks.likelihood_ablation", *(sys.argv[1:])]),
        "git_sha": git_sha(),
        "dataset": dataset.generating_params,
        "overrides": list(args.overrides),
        "image_epochs": int(cfg.inference.image_epochs),
        "judge_budget": {"num_images": int(cfg.eval.judge_images), "epochs": int(cfg.eval.judge_epochs)},
        "feature_net_budget": FEATURE_NET_BUDGET,
        "num_train": len(dataset.train["x"]),
        "num_samples_per_x": args.num_samples,
        "torch_threads": torch.get_num_threads(),
        "effectiveness_target": EFFECTIVENESS_TARGET,
        "images": "means of the likelihood (decode), not draws",
        "rows": rows,
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (ValueError, RuntimeError) as error:
        print(f"benchmarks.likelihood_ablation: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
