r"""``python -m cauvade_pyro.collect MULTIRUN_DIR``: one family summary from the members of a multirun.

Whatever launcher ran the sweep (the basic one, joblib, submitit, Ray), every member leaves a folder with its
``metrics.json``; this gathers them, whatever their folder names or depth, into one family:

    python -m cauvade_pyro.fit -m inference.gamma=-2,0,2,4 seed=0,1,2 hydra.sweep.dir=multirun/family
    python -m cauvade_pyro.collect multirun/family            # writes multirun/family/family.{json,png}

Members :math:`m = 1..M` each give :math:`P_m(y \mid do(x))`: the attribute-level answer ``p_do_model`` when
every member has one (the confounded-attributes diagram), else ``p_do_from_images``, the hue of generated
do(x) images read by the judge (``source`` in the summary says which). With the truth
:math:`p^\star_{xy}` and the sharp bounds :math:`[L_{xy}, U_{xy}]` every member records,
:mod:`cauvade_pyro.metrics.family` gives the range :math:`\ell_{xy} = \min_m P_m`, :math:`u_{xy} = \max_m P_m`,
the **coverage** (share of cells with :math:`\ell_{xy} \le p^\star_{xy} \le u_{xy}`) and the **span**
:math:`s_{xy} = (u_{xy} - \ell_{xy}) / (U_{xy} - L_{xy})` over cells with non-zero bound width, reported both
clipped, :math:`\operatorname{mean}_{xy} \min(s_{xy}, 1)` (``span``), and unclipped (``span_unclipped``; above
1 only when members leave the bounds). Where members record the held-out :math:`\log p(x, y)`, the **fit gap**
is :math:`\max_m \big(\max_{m'} \log p_{m'} - \log p_m\big)` nats per row.

Writes ``<out>/<name>.json`` (the summary and one row per member) and ``<out>/<name>.png`` (per x and hue bin:
each member's P(y | do(x)) against γ, with the truth, the observational answer and the bounds band).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from cauvade_pyro.metrics.family import coverage, family_range, span

__all__ = ["collect", "family_summary", "load_members", "member_rows", "plot_family"]

_ATOL = 1e-6  # metrics.json rounds probabilities to 5 decimals


def load_members(multirun_dir: str | Path) -> list[dict]:
    """Every member's ``metrics.json`` under ``multirun_dir`` (any depth, hidden folders skipped), by (γ, seed).

    Each dict gets ``"run_dir"``: its folder relative to ``multirun_dir``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for name, gamma in [("b", 2.0), ("a", -1.0)]:
    ...         (Path(folder) / name).mkdir()
    ...         _ = (Path(folder) / name / "metrics.json").write_text(json.dumps({"gamma": gamma, "seed": 0}))
    ...     [(m["run_dir"], m["gamma"]) for m in load_members(folder)]
    [('a', -1.0), ('b', 2.0)]
    """
    root = Path(multirun_dir)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder; pass the multirun folder (hydra.sweep.dir) of a sweep")
    members = []
    for path in sorted(root.rglob("metrics.json")):
        relative = path.parent.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        members.append({**json.loads(path.read_text()), "run_dir": relative.as_posix() or "."})
    if not members:
        raise ValueError(f"{root}: no metrics.json below it; has the sweep finished?")
    return sorted(members, key=lambda m: (m["gamma"], m["seed"], m["run_dir"]))


def _unfinished(root: Path) -> list[str]:
    """Member folders Hydra created (``.hydra/config.yaml``) that have no ``metrics.json``: failed or running."""
    return sorted(
        path.parent.parent.relative_to(root).as_posix()
        for path in root.rglob(".hydra/config.yaml")
        if not (path.parent.parent / "metrics.json").is_file()
    )


def member_rows(members: list[dict]) -> list[dict]:
    """One flat row per member: γ, seed, K, W1 to the truth per x, entropy, held-out fit, effectiveness, time.

    Keys a member's diagram does not record are left out of its row.

    >>> member_rows([{"gamma": 1.0, "seed": 0, "K": 4, "run_dir": "a", "per_x": [{"w1_images_to_truth": 0.5}]}])
    [{'run_dir': 'a', 'gamma': 1.0, 'seed': 0, 'K': 4, 'w1_images_to_truth_per_x': [0.5]}]
    """
    rows = []
    for member in members:
        row = {key: member[key] for key in ("run_dir", "gamma", "seed", "K", "diagram", "sweep") if key in member}
        for name in ("w1_model_to_truth", "w1_sampled_to_truth", "w1_images_to_truth", "w1_observational_to_truth"):
            if all(name in r for r in member["per_x"]):
                row[f"{name}_per_x"] = [r[name] for r in member["per_x"]]
        if "posterior_entropy" in member:
            row["posterior_entropy"] = member["posterior_entropy"]
        for name in ("log_p_xy", "elbo"):
            if name in member.get("heldout", {}):
                row[f"heldout_{name}"] = member["heldout"][name]
        for name in ("effectiveness", "wall_time_s", "image_model", "base"):
            if name in member:
                row[name] = member[name]
        rows.append(row)
    return rows


def _table(members: list[dict], key: str) -> torch.Tensor:
    """(members, X, Y) float64 tensor of ``per_x[x][key]``."""
    return torch.tensor([[row[key] for row in m["per_x"]] for m in members], dtype=torch.float64)


def _same_for_all(members: list[dict], key: str) -> torch.Tensor | None:
    """The (X, Y) table ``key`` shared by every member (e.g. the truth), None if some member lacks it."""
    if not all(key in row for m in members for row in m["per_x"]):
        return None
    tables = _table(members, key)
    differs = (tables - tables[0]).abs().amax(dim=(1, 2)) > _ATOL
    if differs.any():
        other = members[int(differs.nonzero()[0])]["run_dir"]
        raise ValueError(f"{members[0]['run_dir']} and {other} disagree on {key}: members of one family must come "
                         "from one dataset; collect each dataset's sweep separately")
    return tables[0]


def _rounded(tensor: torch.Tensor) -> list:
    return [[None if math.isnan(v) else round(v, 5) for v in row] for row in tensor.tolist()]


def family_summary(members: list[dict]) -> dict:
    """Range, coverage, span (clipped at 1 per cell, and not) and fit gap of a family's P(y | do(x)).

    >>> row = {"p_do_truth": [0.5, 0.5], "bounds_lower": [0.2, 0.3], "bounds_upper": [0.7, 0.8],
    ...        "p_observational": [0.6, 0.4]}
    >>> members = [{"gamma": g, "seed": 0, "run_dir": str(g), "per_x": [{**row, "p_do_model": p}]}
    ...            for g, p in [(-1.0, [0.6, 0.4]), (2.0, [0.4, 0.6])]]
    >>> summary = family_summary(members)
    >>> summary["source"], summary["coverage"], summary["span"], summary["span_unclipped"]
    ('p_do_model', 1.0, 0.4, 0.4)
    """
    if not members:
        raise ValueError("members: empty; a family needs at least one member")
    num_x = {len(m["per_x"]) for m in members}
    if len(num_x) != 1:
        raise ValueError(f"members: different numbers of x values {sorted(num_x)}; collect one dataset at a time")
    source = "p_do_model" if all("p_do_model" in r for m in members for r in m["per_x"]) else "p_do_from_images"
    values = _table(members, source)
    low, high = family_range(values)
    summary: dict = {
        "num_members": len(members),
        "source": source,
        "gammas": sorted({m["gamma"] for m in members}),
        "seeds": sorted({m["seed"] for m in members}),
        "family_min": _rounded(low),
        "family_max": _rounded(high),
    }
    for key in ("p_do_truth", "p_observational", "bounds_lower", "bounds_upper"):
        table = _same_for_all(members, key)
        if table is not None:
            summary[key] = _rounded(table)
    if "p_do_truth" in summary:
        covered = coverage(torch.tensor(summary["p_do_truth"]), low, high, atol=_ATOL)
        summary["coverage"] = round(covered.share, 5)
        summary["covered_per_cell"] = covered.per_cell.tolist()
    if "bounds_lower" in summary and "bounds_upper" in summary:
        spans = span(low, high, torch.tensor(summary["bounds_lower"]), torch.tensor(summary["bounds_upper"]),
                      atol=_ATOL)
        has_width = not math.isnan(spans.mean)
        summary["span"] = round(spans.clipped_mean, 5) if has_width else None
        summary["span_unclipped"] = round(spans.mean, 5) if has_width else None
        summary["span_per_cell"] = _rounded(spans.per_cell)
    fits = [m["heldout"]["log_p_xy"] for m in members if "log_p_xy" in m.get("heldout", {})]
    if len(fits) == len(members):
        summary["fit_gap_nats"] = round(max(fits) - min(fits), 5)
    image_models = sorted({m["image_model"] for m in members if "image_model" in m})
    if image_models:
        summary["image_models"] = image_models
    return summary


def plot_family(members: list[dict], summary: dict, path: str | Path) -> Path:
    """Per x (rows) and hue bin (columns): every member's P(y | do(x)) against γ, marker by seed, with the truth,
    the observational answer and the sharp-bounds band (where the members record them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = _table(members, summary["source"])
    _, num_x, num_y = values.shape
    fig, axes = plt.subplots(num_x, num_y, figsize=(2.2 * num_y, 2.0 * num_x), sharex=True, sharey=True,
                             squeeze=False)
    gammas = torch.tensor([m["gamma"] for m in members], dtype=torch.float64)
    left, right = float(gammas.min()) - 0.5, float(gammas.max()) + 0.5
    seeds = summary["seeds"]
    markers = "osD^v<>Ph*"
    for x in range(num_x):
        for y in range(num_y):
            ax = axes[x, y]
            if "bounds_lower" in summary:
                ax.axhspan(summary["bounds_lower"][x][y], summary["bounds_upper"][x][y], color="0.9",
                           label="sharp bounds")
            if "p_do_truth" in summary:
                ax.hlines(summary["p_do_truth"][x][y], left, right, colors="k", label="truth")
            if "p_observational" in summary:
                ax.hlines(summary["p_observational"][x][y], left, right, colors="r", linestyles="--",
                          label="observational")
            for index, seed in enumerate(seeds):
                chosen = [i for i, m in enumerate(members) if m["seed"] == seed]
                ax.scatter(gammas[chosen], values[chosen, x, y], s=14, marker=markers[index % len(markers)],
                           c="tab:blue", zorder=3, label=f"seed {seed}")
            if x == 0:
                ax.set_title(f"hue bin {y}", fontsize=8)
            if y == 0:
                name = members[0]["per_x"][x].get("class_name", "")
                ax.set_ylabel(f"x={x} {f'({name})' if name else ''}", fontsize=8)
            if x == num_x - 1:
                ax.set_xlabel("γ", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
    scores = [f"{summary['num_members']} members"]
    if "coverage" in summary:
        scores.append(f"coverage {summary['coverage']:.0%}")
    if summary.get("span") is not None:
        scores.append(f"span {summary['span']:.0%} (unclipped {summary['span_unclipped']:.0%})")
    fig.suptitle(f"P(hue bin | do(x)) across the family ({summary['source']}): {', '.join(scores)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def collect(multirun_dir: str | Path, out: str | Path | None = None, name: str = "family") -> dict:
    """Summarise the members under ``multirun_dir`` into ``<out>/<name>.json`` and ``<out>/<name>.png``.

    ``out`` defaults to ``multirun_dir``. Returns what the JSON holds: the :func:`family_summary`, the member
    rows (:func:`member_rows`) and ``unfinished``, the member folders without a ``metrics.json``.
    """
    root = Path(multirun_dir)
    members = load_members(root)
    result = {**family_summary(members), "unfinished": _unfinished(root), "members": member_rows(members)}
    out_dir = Path(out) if out is not None else root
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2))
    plot_family(members, result, out_dir / f"{name}.png")
    return result


def report(result: dict) -> str:
    """A few lines for the terminal: one per member, then the family's coverage, span and fit gap."""
    lines = [f"{'γ':>6} {'seed':>4}  {'mean W1 to truth':>16}  run"]
    for row in result["members"]:
        w1 = row.get("w1_model_to_truth_per_x", row.get("w1_images_to_truth_per_x", []))
        mean = f"{sum(w1) / len(w1):.3f}" if w1 else "-"
        lines.append(f"{row['gamma']:>6g} {row['seed']:>4}  {mean:>16}  {row['run_dir']}")
    parts = [f"{result['num_members']} members ({result['source']})"]
    if "coverage" in result:
        parts.append(f"coverage {result['coverage']:.1%}")
    if result.get("span") is not None:
        parts.append(f"span {result['span']:.1%} of the sharp bounds (unclipped {result['span_unclipped']:.1%})")
    if "fit_gap_nats" in result:
        parts.append(f"held-out log p(x, y) gap {result['fit_gap_nats']:.4f} nats")
    lines.append("family: " + ", ".join(parts))
    if result["unfinished"]:
        lines.append(f"unfinished (no metrics.json): {', '.join(result['unfinished'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cauvade_pyro.collect",
                                     description="Collect a multirun's members into one family summary.")
    parser.add_argument("multirun_dir", type=Path, help="the sweep folder (hydra.sweep.dir)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the multirun folder)")
    parser.add_argument("--name", default="family", help="file names <name>.json and <name>.png")
    args = parser.parse_args(argv)
    try:
        result = collect(args.multirun_dir, args.out, args.name)
    except ValueError as error:
        print(f"cauvade_pyro.collect: error: {error}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else args.multirun_dir
    print(report(result))
    print(f"wrote {out / f'{args.name}.json'} and {out / f'{args.name}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
