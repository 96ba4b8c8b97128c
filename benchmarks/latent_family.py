"""Latent-response γ-family: a shared γ = 0 base + fine-tuned members vs independent full fits (time and W1).

    OMP_NUM_THREADS=1 python -m benchmarks.latent_family --threads 1            # ≈ 5.5 min on one CPU thread
    OMP_NUM_THREADS=1 python -m benchmarks.latent_family --threads 1 --quick    # ≈ 1 min

(a) ``inference.sweep=shared``: one base (autoencoder warm-up + GMM init + ``image_epochs`` epochs at γ = 0)
and 8 members fine-tuned from it for ``member_epochs`` epochs each (:mod:`cauvade_pyro.inference.latent_family`);
(b) ``inference.sweep=independent``: warm-up + ``image_epochs`` epochs at γ, per member, for a few γ.
Times are wall seconds of the fits only (the judge and the evaluation are not timed). Quality: per member the
W1 on the hue circle between P(hue bin | do(x)) read from the do(x) images by the judge and the truth, as in
``metrics.json`` (:func:`cauvade_pyro.evaluate.evaluate_latent_response`), and the family's coverage of the
true P(y | do(x)) and span relative to the sharp bounds (:mod:`cauvade_pyro.metrics.family`), for the shared
members at every γ, the shared members at the independently fitted γ only, and the independent fits.
Writes ``benchmarks/results/latent_family_<device>.json`` and a PNG next to it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

from benchmarks.speed import machine_info, sync_device, write_results

RESULTS = Path(__file__).resolve().parent / "results"
GAMMAS = (-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0)


def _family_metrics(dataset, rows_by_gamma: dict[float, list[dict]]) -> dict:
    from cauvade_pyro.metrics import bow_graph_bounds, coverage, family_range, span

    values = torch.tensor([[row["p_do_from_images"] for row in rows] for rows in rows_by_gamma.values()])
    low, high = family_range(values)
    lower, upper = bow_graph_bounds(dataset.scm.joint_xy())
    return {
        "gammas": [float(g) for g in rows_by_gamma],
        "coverage": round(coverage(dataset.scm.interventional_y(), low, high).share, 4),
        "span": round(span(low, high, lower, upper).mean, 4),
    }


def bench_latent_family(device, num_train: int, warmup_epochs: int, image_epochs: int, member_epochs: int,
                        gammas=GAMMAS, seed: int = 0, independent: int = 3, num_test: int = 500,
                        num_samples: int = 400, judge_images: int = 4000, judge_epochs: int = 2,
                        batch_size: int = 256, lr: float = 2e-3, progress: bool = False) -> dict:
    """Time and score a shared latent-response family against ``independent`` full fits (≥ 2 for a median).

    Defaults follow ``conf/`` (model/latent_response.yaml, inference/default.yaml): K = 4, r_dim = 2, conv nets,
    eps_dim = 4, Bernoulli pixels, batch 256, lr 2e-3; the base's seed (``image_seed``) and every member's seed
    are ``seed``. Returns a JSON-ready dict.
    """
    from cauvade_pyro.datasets import ConfoundedShapes
    from cauvade_pyro.evaluate import evaluate_latent_response
    from cauvade_pyro.inference import (
        GammaEntropyELBO, base_state, fine_tune_member, fit_latent_base, fit_svi, init_latent_response,
        seed_everything,
    )
    from cauvade_pyro.metrics import train_judge
    from cauvade_pyro.models import LatentResponseModel

    device = torch.device(device)
    if independent < 2:
        raise ValueError(f"independent: need >= 2 independent fits for a median, got {independent}")
    dataset = ConfoundedShapes(num_train=num_train, num_test=num_test)
    train = {k: dataset.train[k].to(device) for k in ("x", "image")}
    judge = train_judge(dataset, seed=0, num_images=judge_images, epochs=judge_epochs, device=str(device))
    settings = {"batch_size": batch_size, "lr": lr, "clip_norm": 10.0, "progress": progress}

    def build() -> LatentResponseModel:
        seed_everything(seed)  # as cauvade_pyro.fit: the nets' initial values come from the member seed
        return LatentResponseModel(4, dataset.num_classes, dataset.image_shape, r_dim=2, eps_dim=4).to(device)

    def evaluate(model) -> list[dict]:
        seed_everything(seed)
        pyro.clear_param_store()
        metrics, _ = evaluate_latent_response(model.eval(), dataset, judge, num_samples, grid_samples=1)
        return metrics["per_x"]

    # (a) shared: base + one fine-tuned member per γ
    sync_device(device)
    start = time.perf_counter()
    base_model = build()
    fit_latent_base(base_model, train, warmup_epochs=warmup_epochs, epochs=image_epochs, seed=seed, **settings)
    base = base_state(base_model)
    sync_device(device)
    base_s = time.perf_counter() - start
    shared_rows, member_s = {}, []
    for gamma in gammas:
        model = build()
        started = time.perf_counter()
        fine_tune_member(model, base, train, gamma=gamma, epochs=member_epochs, seed=seed, **settings)
        sync_device(device)
        member_s.append(time.perf_counter() - started)
        shared_rows[gamma] = evaluate(model)
    shared_s = base_s + sum(member_s)
    base_rows = evaluate(base_model)
    print(f"[shared] base {base_s:.1f} s, {len(gammas)} members {sum(member_s):.1f} s", flush=True)

    # (b) independent full fits (the default path of cauvade_pyro.fit) at the extreme and middle γ
    picks = list(dict.fromkeys([gammas[0], gammas[-1], gammas[len(gammas) // 2], *gammas]))
    independent_rows, independent_s = {}, []
    for gamma in picks[:independent]:
        model = build()
        started = time.perf_counter()
        init_latent_response(model, train, warmup_epochs=warmup_epochs, batch_size=batch_size, lr=lr, seed=seed,
                             progress=progress)
        fit_svi(model.model, model.guide, train, GammaEntropyELBO(gamma=gamma), epochs=image_epochs,
                generator=torch.Generator().manual_seed(seed), desc=f"independent γ={gamma:g}", **settings)
        sync_device(device)
        independent_s.append(time.perf_counter() - started)
        independent_rows[gamma] = evaluate(model)
        print(f"[independent γ={gamma:g}] {independent_s[-1]:.1f} s", flush=True)
    one_fit = statistics.median(independent_s)

    def w1(rows_by_gamma):
        return {f"{g:g}": {"mean": round(sum(r["w1_images_to_truth"] for r in rows) / len(rows), 5),
                           "per_x": [r["w1_images_to_truth"] for r in rows]} for g, rows in rows_by_gamma.items()}

    out = {
        "sizes": {"num_train": num_train, "num_test": num_test, "warmup_epochs": warmup_epochs,
                  "image_epochs": image_epochs, "member_epochs": member_epochs, "members": len(gammas),
                  "batch_size": batch_size, "lr": lr, "K": 4, "r_dim": 2, "eps_dim": 4, "net": "conv",
                  "seed": seed, "eval_num_samples": num_samples, "judge_images": judge_images,
                  "judge_epochs": judge_epochs},
        "shared_base_s": round(base_s, 2),
        "shared_members_s": [round(s, 2) for s in member_s],
        "shared_family_s": round(shared_s, 2),
        "independent_fits_s": {f"{g:g}": round(s, 2) for g, s in zip(independent_rows, independent_s)},
        "one_independent_fit_s (median)": round(one_fit, 2),
        "ratio_family_to_one_fit": round(shared_s / one_fit, 3),
        "ratio_family_to_independent_family": round(shared_s / (len(gammas) * one_fit), 3),
        "target_ratio_family_to_one_fit": 2.5,
        "w1_images_to_truth": {
            "base_gamma0": w1({0.0: base_rows})["0"],
            "shared": w1(shared_rows),
            "independent": w1(independent_rows),
            "observational": round(sum(r["w1_observational_to_truth"] for r in base_rows) / len(base_rows), 5),
        },
        "family": {
            "shared_all": _family_metrics(dataset, shared_rows),
            "shared_at_independent_gammas": _family_metrics(dataset, {g: shared_rows[g] for g in independent_rows}),
            "independent": _family_metrics(dataset, independent_rows),
            "note": "coverage: share of (x, hue bin) cells whose true P(y | do(x)) lies in the family's "
                    "[min, max]; span: mean (max − min) / (sharp upper − lower bound); P read from do(x) "
                    "images by the judge",
        },
        "p_do_from_images": {
            "shared": {f"{g:g}": [r["p_do_from_images"] for r in rows] for g, rows in shared_rows.items()},
            "independent": {f"{g:g}": [r["p_do_from_images"] for r in rows] for g, rows in independent_rows.items()},
            "truth": [r["p_do_truth"] for r in base_rows],
        },
    }
    print(f"[latent family] shared {shared_s:.1f} s, one independent fit {one_fit:.1f} s, "
          f"ratio {out['ratio_family_to_one_fit']:.2f}", flush=True)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fam = results["latent_family"]
    w1 = fam["w1_images_to_truth"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [3, 1]})
    shared = {float(g): v["mean"] for g, v in w1["shared"].items()}
    independent = {float(g): v["mean"] for g, v in w1["independent"].items()}
    ax.plot(list(shared), list(shared.values()), "o-", label=f"shared base + {fam['sizes']['member_epochs']} "
                                                             "epoch(s) per member")
    ax.plot(sorted(independent), [independent[g] for g in sorted(independent)], "s--",
            label="independent full fit")
    ax.axhline(w1["observational"], color="r", ls=":", label="observational P(y | x)")
    ax.axhline(w1["base_gamma0"]["mean"], color="grey", lw=0.8, label="γ = 0 base")
    ax.set_xlabel("γ")
    ax.set_ylabel("mean W1 to true P(hue | do(x))")
    ax.legend(fontsize=7)
    ax.set_title("latent response: quality per member", fontsize=9)
    ratio = fam["ratio_family_to_one_fit"]
    bx.bar([0], [ratio], color="tab:green" if ratio <= fam["target_ratio_family_to_one_fit"] else "tab:red")
    bx.scatter([0], [fam["target_ratio_family_to_one_fit"]], marker="_", s=600, color="k", zorder=3, label="target")
    bx.axhline(1.0, color="grey", lw=0.8)
    bx.set_xticks([0], [f"{fam['sizes']['members']}-member\nfamily / 1 fit"], fontsize=8)
    bx.set_ylabel("time ratio")
    bx.legend(fontsize=7)
    fig.suptitle(f"cauvade-pyro latent-response family ({results['machine']['device']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (≈ 1 min on one CPU thread)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/latent_family_<device>.json)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but CUDA is not available")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    quick = args.quick
    results = {
        "command": "python -m benchmarks.latent_family " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(device),
        "quick": quick,
    }
    if quick:
        results["latent_family"] = bench_latent_family(device, num_train=600, warmup_epochs=1, image_epochs=2,
                                                       member_epochs=1, num_test=200, num_samples=100,
                                                       judge_images=1000, judge_epochs=1)
    else:
        results["latent_family"] = bench_latent_family(device, num_train=3000, warmup_epochs=2, image_epochs=5,
                                                       member_epochs=1)
    tag = "cuda" if device.type == "cuda" else "cpu"
    write_results(results, Path(args.out) if args.out else
                  RESULTS / f"latent_family_{tag}{'_quick' if quick else ''}.json", plot, started)
    return results


if __name__ == "__main__":
    main()
