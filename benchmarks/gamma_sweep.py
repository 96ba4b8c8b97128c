"""Summarise a γ × seed sweep of ``python -m cauvade_pyro.fit`` into one JSON and one plot.

    python -m cauvade_pyro.fit -m inference.gamma=-2,0,2,4 seed=0,1,2 hydra.sweep.dir=multirun/gamma_sweep
    python -m benchmarks.gamma_sweep multirun/gamma_sweep --name shapes_gamma_sweep

Writes ``benchmarks/results/<name>.json`` (one row per member: γ, seed, per-x W1 to the truth, posterior
entropy, held-out fit, effectiveness) and ``<name>.png``: the model's P(hue bin | do(x)) per member against γ,
with the truth, the observational answer and the sharp-bounds band, for each x and hue bin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def collect(sweep_dir: Path) -> list[dict]:
    members = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]
    if not members:
        raise SystemExit(f"no */metrics.json under {sweep_dir}")
    return sorted(members, key=lambda m: (m["gamma"], m["seed"]))


def summary_rows(members: list[dict]) -> list[dict]:
    return [
        {
            "gamma": m["gamma"],
            "seed": m["seed"],
            "K": m["K"],
            "w1_model_to_truth_per_x": [r["w1_model_to_truth"] for r in m["per_x"]],
            "w1_images_to_truth_per_x": [r["w1_images_to_truth"] for r in m["per_x"]],
            "w1_observational_to_truth_per_x": [r["w1_observational_to_truth"] for r in m["per_x"]],
            "posterior_entropy": m["posterior_entropy"],
            "heldout_log_p_xy": m["heldout"]["log_p_xy"],
            "heldout_elbo": m["heldout"]["elbo"],
            "effectiveness": m["effectiveness"],
            "wall_time_s": m["wall_time_s"],
        }
        for m in members
    ]


def plot(members: list[dict], path: Path) -> None:
    num_x, num_y = len(members[0]["per_x"]), len(members[0]["per_x"][0]["p_do_truth"])
    fig, axes = plt.subplots(num_x, num_y, figsize=(2.2 * num_y, 2.0 * num_x), sharex=True, sharey=True, squeeze=False)
    gammas = np.array([m["gamma"] for m in members])
    span = (gammas.min() - 0.5, gammas.max() + 0.5)
    for x in range(num_x):
        reference = members[0]["per_x"][x]
        for y in range(num_y):
            ax = axes[x, y]
            ax.axhspan(reference["bounds_lower"][y], reference["bounds_upper"][y], color="0.9", label="sharp bounds")
            ax.hlines(reference["p_do_truth"][y], *span, colors="k", label="truth")
            ax.hlines(reference["p_observational"][y], *span, colors="r", linestyles="--", label="observational")
            values = [m["per_x"][x]["p_do_model"][y] for m in members]
            ax.scatter(gammas, values, s=14, c="tab:blue", zorder=3, label="members (γ, seed)")
            if x == 0:
                ax.set_title(f"hue bin {y}", fontsize=8)
            if y == 0:
                ax.set_ylabel(f"x={x} ({reference['class_name']})", fontsize=8)
            if x == num_x - 1:
                ax.set_xlabel("γ", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("P(hue bin | do(x)) across the γ-family", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--name", default="shapes_gamma_sweep")
    args = parser.parse_args(argv)
    members = collect(args.sweep_dir)
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(members)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"members": rows}, indent=2))
    plot(members, RESULTS / f"{args.name}.png")
    print(f"{'γ':>5} {'seed':>4} {'H':>6} {'log p(x,y)':>10}  W1 model→truth per x   (observational)")
    for r in rows:
        w1 = " ".join(f"{v:.3f}" for v in r["w1_model_to_truth_per_x"])
        obs = " ".join(f"{v:.3f}" for v in r["w1_observational_to_truth_per_x"])
        print(f"{r['gamma']:>5g} {r['seed']:>4} {r['posterior_entropy']:>6.3f} {r['heldout_log_p_xy']:>10.4f}  {w1}   ({obs})")


if __name__ == "__main__":
    main()
