"""What makes the shared image model obey x and y, and keep the within-bin hue: decoder variants, measured.

    python -m benchmarks.image_model_ablation                 # writes benchmarks/results/image_model_ablation.json
    python -m benchmarks.image_model_ablation --threads 1 --only colour --out image_model_colour.json

Each variant trains p(image | x, y) on the default confounded shapes for the same budget (the default fit's:
12 000 images, 5 epochs, batch 256, lr 2e-3, seed 0), then

- held-out codes are decoded with x (or y) changed and a blur-robust judge, never used in any training loss,
  reads whether the shape (hue) follows; prior samples are judged too;
- the mean images decoded for the (x, y) of an unconfounded reference set (the quality benchmark's validation
  set) with ε from the prior (N(0, I), or with ``--eps-prior-components`` a mixture per cell (x, y) or per x
  fitted to the codes after training, one row per value on the same trained model) are scored against those
  reference images: FID in the domain features and the within-bin hue W1 read from the pixels
  (:mod:`cauvade_pyro.metrics.hue`; a point mass at the bin centre scores 0.125), as in
  ``benchmarks/likelihood_ablation.py``;
- ``eps_carries_hue``: held-out images encoded to the mean of q(ε | image, x, y) and decoded again; the
  correlation between the within-bin hue position of the image and of its reconstruction (1: ε carries it,
  0: the decoder paints one hue per bin whatever ε says), and the within-bin W1 of the reconstructions.

The JSON records ``git_sha`` and the command.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks.likelihood_ablation import _finite, decoded_quality, reference_sets
from benchmarks.provenance import git_sha
from cauvade_pyro.datasets import ConfoundedShapes
from cauvade_pyro.evaluate import effectiveness
from cauvade_pyro.inference import fit_eps_prior, fit_image_model, heldout_image_elbo
from cauvade_pyro.metrics import train_feature_net, train_judge
from cauvade_pyro.metrics.hue import within_bin_hue_w1, within_bin_positions
from cauvade_pyro.models import ConditionalImageModel

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "conv, conditions at the input only, eps 4": {"net": "conv_concat", "eps_dim": 4, "kl_weight": 1.0},
    "conv FiLM, eps 4 (default)": {"net": "conv", "eps_dim": 4, "kl_weight": 1.0},
    "conv FiLM, eps 16": {"net": "conv", "eps_dim": 16, "kl_weight": 1.0},
    "conv FiLM, eps 16, beta 4": {"net": "conv", "eps_dim": 16, "kl_weight": 4.0},
    "mlp FiLM, eps 4": {"net": "mlp", "eps_dim": 4, "kl_weight": 1.0},
    # ε also drives FiLM layers through an embedding of (x, y, ε): a path for a per-image colour
    "conv FiLM, eps drives the last FiLM (colour), eps 4": {"net": "conv_colour", "eps_dim": 4, "kl_weight": 1.0},
    "conv FiLM, eps drives every FiLM, eps 4": {"net": "conv_epsfilm", "eps_dim": 4, "kl_weight": 1.0},
    # the shapes vary in x and y position, size and brightness besides the hue: 4 dims leave none for the hue
    "conv FiLM, eps 6": {"net": "conv", "eps_dim": 6, "kl_weight": 1.0},
    # a per-image channel gain κ(x, y, ε) on the pixel probabilities: a direct path for colour and brightness
    "conv FiLM, channel gain from (x, y, eps), eps 4": {"net": "conv_gain", "eps_dim": 4, "kl_weight": 1.0},
    "conv FiLM, channel gain from (x, y, eps), eps 6": {"net": "conv_gain", "eps_dim": 6, "kl_weight": 1.0},
    # β on the KL ramped from 0 over the first epoch(s): ε is used before the KL can close it (a training change)
    "conv FiLM, eps 4, KL warm-up 1 epoch": {"net": "conv", "eps_dim": 4, "kl_weight": 1.0, "kl_warmup_epochs": 1},
    "conv FiLM, eps 4, KL warm-up 2 epochs": {"net": "conv", "eps_dim": 4, "kl_weight": 1.0, "kl_warmup_epochs": 2},
    "conv FiLM, eps 6, KL warm-up 2 epochs": {"net": "conv", "eps_dim": 6, "kl_weight": 1.0, "kl_warmup_epochs": 2},
}


@torch.no_grad()
def prior_sample_accuracy(image_model, judge, n: int = 1200) -> dict:
    x = torch.arange(n) % image_model.num_x
    y = torch.arange(n) % image_model.num_y
    shape, hue = judge.predict(image_model.decode(x, y, image_model.sample_eps(x, y)))
    return {"prior_shape": round(float((shape == x).float().mean()), 4),
            "prior_hue": round(float((hue == y).float().mean()), 4)}


@torch.no_grad()
def eps_carries_hue(image_model, test: dict, num_bins: int) -> dict:
    """Does ε carry the within-bin hue? Reconstructions from the posterior mean against the images."""
    images = test["image"].float() / 255
    loc, _ = image_model.encode(images, test["x"], test["y"])
    recon = image_model.decode(test["x"], test["y"], loc)
    _, t_image = within_bin_positions(images, num_bins)
    _, t_recon = within_bin_positions(recon, num_bins)
    ok = ~(t_image.isnan() | t_recon.isnan())
    corr = torch.corrcoef(torch.stack([t_image[ok], t_recon[ok]]))[0, 1]
    return {"recon_position_corr": _finite(float(corr)),
            "recon_within_bin_w1": _finite(within_bin_hue_w1(recon, images, num_bins)["w1"]),
            "recon_spread": _finite(float((t_recon[ok] - 0.5).abs().mean()))}


def hue_information(n: int = 500, seed: int = 0) -> dict:
    """What the within-bin hue is worth to a Bernoulli image model: the mean log-likelihood of a real shape image
    under its own pixels minus under the same shape recoloured with its bin's centre hue (nats per image)."""
    from cauvade_pyro.datasets import colourize
    from cauvade_pyro.datasets.shapes import SHAPE_NAMES, render_shape_masks

    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randint(3, (n,), generator=generator), torch.randint(6, (n,), generator=generator)
    masks = render_shape_masks(x, generator, 28, SHAPE_NAMES[:3])
    hue = (y + 0.25 + 0.5 * torch.rand(n, generator=generator)) / 6
    image = colourize(masks, hue).clamp(1e-4, 1 - 1e-4)
    centre = colourize(masks, (y + 0.5) / 6).clamp(1e-4, 1 - 1e-4)

    def log_lik(p, q):
        return (p * q.log() + (1 - p) * (1 - q).log()).sum((1, 2, 3))

    gain = log_lik(image, image) - log_lik(image, centre)
    return {"bernoulli_nats_per_image_exact_hue_vs_bin_centre": round(float(gain.mean()), 2), "images": n}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--num-train", type=int, default=12000)
    parser.add_argument("--num-samples", type=int, default=600, help="reference and generated images per x")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only the variants whose name contains one of these")
    parser.add_argument("--eps-dim", type=int, default=None, help="override every variant's ε size")
    parser.add_argument("--kl-weight", type=float, default=None, help="override every variant's β")
    parser.add_argument("--eps-prior-components", default="0",
                        help="comma-separated: one row per value, the same trained model with p(ε | ·) a mixture of "
                             "that many Gaussians per condition (--eps-prior-given) fitted to its codes (0: N(0, I))")
    parser.add_argument("--eps-prior-given", default="xy",
                        help="comma-separated: fit each mixture per value of x, or per cell (x, y) ('xy')")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image model's initialisation and data order")
    parser.add_argument("--out", default="image_model_ablation.json")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    components_list = [int(v) for v in args.eps_prior_components.split(",") if v]
    given_list = [v for v in args.eps_prior_given.split(",") if v]
    started_all = time.perf_counter()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dataset = ConfoundedShapes(num_train=args.num_train, num_test=2000)
    judge = train_judge(dataset, seed=0, cache_dir=args.cache_dir)
    feature_net = train_feature_net(dataset, cache_dir=args.cache_dir)
    reference, floor = reference_sets(dataset, feature_net, args.num_samples)
    rows = []
    for name, variant in VARIANTS.items():
        if args.only and not any(part in name for part in args.only):
            continue
        variant = dict(variant)
        if args.eps_dim is not None:
            variant["eps_dim"] = args.eps_dim
        if args.kl_weight is not None:
            variant["kl_weight"] = args.kl_weight
        torch.manual_seed(args.seed)
        warmup = variant.pop("kl_warmup_epochs", 0)
        trained = ConditionalImageModel(dataset.num_classes, dataset.num_hue_bins, dataset.image_shape, **variant)
        variant["kl_warmup_epochs"] = warmup
        started = time.perf_counter()
        fit_image_model(trained, dataset.train, epochs=args.epochs, batch_size=256, lr=2e-3, seed=args.seed,
                        progress=False, kl_warmup_epochs=warmup)
        train_s = round(time.perf_counter() - started, 1)
        priors = [(0, "x")] * (0 in components_list) + [(m, g) for m in components_list if m for g in given_list]
        for components, given in priors:
            model = copy.deepcopy(trained).eval()
            prior = {"eps_prior_components": components}
            if components:
                model.reset_eps_prior(components, given)
                prior["eps_prior_given"] = given
                prior["eps_prior"] = fit_eps_prior(model, dataset.train, seed=args.seed)
            row = {"variant": name, **variant, **prior, "epochs": args.epochs, "seed": args.seed, "train_s": train_s,
                   "heldout_elbo": round(heldout_image_elbo(model, dataset.test), 2),
                   **effectiveness(model, judge, dataset.test), **prior_sample_accuracy(model, judge),
                   **decoded_quality(model, dataset, feature_net, reference, floor, torch.device("cpu")),
                   "eps_carries_hue": eps_carries_hue(model, dataset.test, dataset.num_hue_bins)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / args.out
    out.write_text(json.dumps({
        "command": " ".join(["python -m benchmarks.image_model_ablation", *(sys.argv[1:] if argv is None else argv)]),
        "git_sha": git_sha(), "num_train": args.num_train, "num_samples_per_x": args.num_samples,
        "torch_threads": torch.get_num_threads(), "hue_information": hue_information(),
        "images": "means of the likelihood (decode), not draws; within-bin W1 in bin widths (point mass 0.125)",
        "wall_time_s": round(time.perf_counter() - started_all, 1), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
