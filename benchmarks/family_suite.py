"""The default family (``cauvade_pyro.inference.fit_family``) on a suite of generated ground-truth SCMs.

    python -m benchmarks.family_suite                 # every case, ~5 min on one CPU thread
    python -m benchmarks.family_suite --cases iv shapes --out /tmp/suite.json

Per case the data are drawn from a known SCM, the default family is fitted (no query named, no directed cell
members) and scored against the truth: ``coverage`` (share of (t, o) cells whose true P(o | do(t)) lies in the
family's range), ``span`` (family range / bound width per cell, clipped at 1, averaged), ``max_fit_gap_nats``
(the largest gap of a reported member to the best on fresh test rows of the same SCM, nats per datapoint; the
held-out rows that decided which members to keep are not reused for it), the members and the cost
against one member (one γ = 0 fit of the same diagram by the same code, ``restarts=1`` and nothing else).
Bounds: the bow graph's closed form on the true joint; the IV's Balke–Pearl LP (sharp); for two confounders the
LP treats both clusters' types as jointly distributed (valid outer bounds, wider than the sharp ones, so the
span there is a lower estimate). Also per case: what each part of the family contributes (restarts, dial,
vertices and random directions), the directed members for every cell (fitted side by side, each within τ),
and, where there is no confounding, the diffuse end's W1 to the truth against its sampling error (a parametric
bootstrap of the empirical P(o | t) at the same size). Writes ``benchmarks/results/family_suite.{json,png}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.provenance import git_sha
from benchmarks.speed import machine_info, write_results
from cauvade_pyro.bounds import DiscreteDiagram, p_do_bounds
from cauvade_pyro.datasets.scm import ConfoundedColourSCM
from cauvade_pyro.inference import fit_family, mean_loglik
from cauvade_pyro.metrics import bow_graph_bounds, circular_w1
from cauvade_pyro.metrics.family import coverage, family_range, span, span_within_bounds
from cauvade_pyro.models import AttributeMixture, TabularDiagram

RESULTS = Path(__file__).parent / "results"
TAU = 0.005


# ---- cases: (data, diagram factory, truth, bounds, W1 positions or None) -----------------------------------


def _bow_case(scm: ConfoundedColourSCM, n: int, seed: int, y_given_xc: str = "table", num_clusters: int = 4):
    data = scm.sample(n, torch.Generator().manual_seed(seed))
    lower, upper = bow_graph_bounds(scm.joint_xy())
    return {
        "data": {"x": data["x"], "y": data["y"]},
        "diagram": lambda: AttributeMixture(num_clusters, scm.num_classes, scm.num_hue_bins, y_given_xc=y_given_xc).model,
        "truth": scm.interventional_y().float(), "lower": lower.float(), "upper": upper.float(),
        "positions": scm.bin_centres(), "observational": scm.observational_y_given_x().float(), "scm": scm,
        "confounded": True,
    }


def _tables_scm(p_u, p_x_given_u, p_y_given_xu) -> ConfoundedColourSCM:
    return ConfoundedColourSCM(p_u.double(), p_x_given_u.double(), p_y_given_xu.double())


def interaction_scm(seed: int = 1) -> ConfoundedColourSCM:
    """P(y | x, u) a free random table per (x, u): the effect of x depends on u (not additive in the logits)."""
    base = ConfoundedColourSCM.make(3, 6, 3, 0.9)
    logits = 2.0 * torch.randn(3, 3, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return _tables_scm(base.p_u, base.p_x_given_u, logits.softmax(-1))


def null_effect_scm() -> ConfoundedColourSCM:
    """X has no effect on the hue: P(y | x, u) = P(y | u) (the benchmark's hue model with κ_X = 0)."""
    base = ConfoundedColourSCM.make(3, 6, 3, 0.9)
    p_y = base.p_y_given_xu.mean(0, keepdim=True)  # averaging over x keeps u's pull, removes x's
    return _tables_scm(base.p_u, base.p_x_given_u, p_y.expand(3, -1, -1).contiguous())


def iv_case(n: int, seed: int):
    """z → x → y, u → x, y (binary); the Balke–Pearl LP gives the sharp bounds."""
    g = torch.Generator().manual_seed(seed)
    p_x = torch.tensor([[0.1, 0.6], [0.5, 0.9]])      # P(x = 1 | z, u)
    p_y = torch.tensor([[0.2, 0.7], [0.4, 0.8]])      # P(y = 1 | x, u)
    u = (torch.rand(n, generator=g) < 0.5).long()
    z = (torch.rand(n, generator=g) < 0.5).long()
    x = (torch.rand(n, generator=g) < p_x[z, u]).long()
    y = (torch.rand(n, generator=g) < p_y[x, u]).long()
    truth1 = 0.5 * p_y[:, 0] + 0.5 * p_y[:, 1]
    truth = torch.stack([1 - truth1, truth1], 1)
    spec = DiscreteDiagram({"z": 2, "x": 2, "y": 2}, {"x": ["z"], "y": ["x"]}, [{"x", "y"}])
    joint = torch.zeros(2, 2, 2, dtype=torch.float64)   # true P(z, x, y)
    for zi in range(2):
        for ui in range(2):
            for xi in range(2):
                px = p_x[zi, ui] if xi else 1 - p_x[zi, ui]
                for yi in range(2):
                    py = p_y[xi, ui] if yi else 1 - p_y[xi, ui]
                    joint[zi, xi, yi] += 0.25 * px * py
    lower, upper = p_do_bounds(spec, joint.numpy(), "x", "y")
    return {"data": {"z": z, "x": x, "y": y},
            "diagram": lambda: TabularDiagram({"z": 2, "x": 2, "y": 2}, {"x": ["z"], "y": ["x"]},
                                              {"c": (4, ["x", "y"])}).model,
            "truth": truth, "lower": lower.float(), "upper": upper.float(), "positions": None,
            "observational": None, "confounded": True, "bounds": "Balke–Pearl LP (sharp)"}


def two_confounders_case(n: int, seed: int):
    """u1 → x, y and u2 → w, y; x → y, w → y (binary). Bounds: the LP over the joint types (valid, outer)."""
    g = torch.Generator().manual_seed(seed)
    p_x = torch.tensor([0.2, 0.8])                      # P(x = 1 | u1)
    p_w = torch.tensor([0.3, 0.7])                      # P(w = 1 | u2)
    p_y = torch.tensor([[[[0.1, 0.3], [0.4, 0.6]], [[0.3, 0.5], [0.6, 0.9]]],
                        [[[0.2, 0.4], [0.5, 0.7]], [[0.4, 0.6], [0.8, 0.95]]]])  # P(y = 1 | u1, u2, x, w)
    u1 = (torch.rand(n, generator=g) < 0.5).long()
    u2 = (torch.rand(n, generator=g) < 0.5).long()
    x = (torch.rand(n, generator=g) < p_x[u1]).long()
    w = (torch.rand(n, generator=g) < p_w[u2]).long()
    y = (torch.rand(n, generator=g) < p_y[u1, u2, x, w]).long()
    joint = torch.zeros(2, 2, 2, dtype=torch.float64)   # P(x, w, y)
    truth1 = torch.zeros(2, dtype=torch.float64)
    for a in range(2):
        for b in range(2):
            for xi in range(2):
                for wi in range(2):
                    pw = p_w[b] if wi else 1 - p_w[b]
                    px = p_x[a] if xi else 1 - p_x[a]
                    q = float(p_y[a, b, xi, wi])
                    joint[xi, wi, 1] += 0.25 * px * pw * q
                    joint[xi, wi, 0] += 0.25 * px * pw * (1 - q)
                    truth1[xi] += 0.25 * pw * q  # P(y=1 | do x) = Σ_{a,b,w} P(a) P(b) P(w | b) P(y=1 | a, b, x, w)
    truth = torch.stack([1 - truth1, truth1], 1).float()
    spec = DiscreteDiagram({"x": 2, "w": 2, "y": 2}, {"y": ["x", "w"]}, [{"x", "y"}, {"w", "y"}])
    lower, upper = p_do_bounds(spec, joint.numpy(), "x", "y")
    return {"data": {"x": x, "w": w, "y": y},
            "diagram": lambda: TabularDiagram({"x": 2, "w": 2, "y": 2}, {"y": ["x", "w"]},
                                              {"c1": (3, ["x", "y"]), "c2": (3, ["w", "y"])}).model,
            "truth": truth, "lower": lower.float(), "upper": upper.float(), "positions": None,
            "observational": None, "confounded": True, "bounds": "LP over joint types (valid, not sharp)"}


def cases(seed: int = 0, rows: int | None = None) -> dict:
    """The suite: name → a function building the case. ``rows`` overrides every case's number of rows (the
    suite draws its test rows this way: many fresh rows from the same SCM)."""
    n = rows or 12000
    return {
        "shapes": lambda: _bow_case(ConfoundedColourSCM.make(3, 6, 3, 0.9), n, seed),
        "fashion_binary": lambda: _bow_case(ConfoundedColourSCM.make(2, 6, 3, 0.9), n, seed),
        "fashion_classes": lambda: _bow_case(ConfoundedColourSCM.make(10, 6, 3, 0.9), rows or 60000, seed,
                                             num_clusters=12),
        "interaction": lambda: _bow_case(interaction_scm(), n, seed),
        "null_effect": lambda: _bow_case(null_effect_scm(), n, seed),
        "no_confounding": lambda: {**_bow_case(ConfoundedColourSCM.make(3, 6, 3, 0.0), n, seed), "confounded": False},
        "weak_12_bins": lambda: _bow_case(ConfoundedColourSCM.make(3, 12, 3, 0.3), n, seed),
        "iv": lambda: iv_case(rows or 4000, seed),
        "two_confounders": lambda: two_confounders_case(rows or 8000, seed),
        # not a target case: the additive p(y | x, c) of the CLI's default, to show what the assumption costs
        "shapes_additive": lambda: _bow_case(ConfoundedColourSCM.make(3, 6, 3, 0.9), n, seed, "additive"),
    }


TEST_ROWS = 200_000  # fresh rows per case for the fit gap: the test sample's own noise is then ~(d − 1)/(2·200k)


# ---- scoring ---------------------------------------------------------------------------------------------


def score(values: torch.Tensor, case: dict) -> dict:
    low, high = family_range(values)
    cov = coverage(case["truth"], low, high, atol=1e-6)
    spans = span(low, high, case["lower"], case["upper"], atol=1e-9)
    lower, upper = case["lower"].double(), case["upper"].double()
    overshoot = torch.maximum(lower - low, high - upper).clamp(min=0)
    return {"coverage": round(cov.share, 4), "span": round(spans.clipped_mean, 4),
            "span_unclipped": round(spans.mean, 4),
            # stricter than clipping: a reach beyond one bound cannot make up for falling short of the other
            "span_within_bounds": round(span_within_bounds(low, high, lower, upper, atol=1e-9).mean, 4),
            "max_outside_bounds": round(float(overshoot.max()), 4)}


def diffuse_end_w1(family, case: dict, n_train: int, rounds: int = 200) -> dict:
    """The entropy-1 (diffuse) members' W1 to the truth, against the W1 of the empirical P(o | t) at n_train."""
    scm = case["scm"]
    diffuse = [m for m in family if m.kind == "dial" and m.label.startswith("entropy 1.00")]
    positions = case["positions"]
    w1 = lambda p, q: circular_w1(p.double(), q.double(), positions)  # noqa: E731
    model = [max(w1(m.p_do[x], case["truth"][x]) for m in diffuse) for x in range(len(case["truth"]))]
    generator = torch.Generator().manual_seed(123)
    boot = []
    for _ in range(rounds):
        sample = scm.sample(n_train, generator)
        counts = torch.zeros(scm.num_classes, scm.num_hue_bins, dtype=torch.float64)
        counts.index_put_((sample["x"], sample["y"]), torch.ones(n_train, dtype=torch.float64), accumulate=True)
        empirical = counts / counts.sum(-1, keepdim=True)
        boot.append(np.mean([w1(empirical[x], case["truth"][x]) for x in range(scm.num_classes)]))
    return {"diffuse_members": len(diffuse), "w1_per_x": [round(v, 5) for v in model],
            "w1_mean": round(float(np.mean(model)), 5), "sampling_w1_mean": round(float(np.mean(boot)), 5),
            "sampling_w1_sd": round(float(np.std(boot)), 5),
            "within_sampling_error": bool(np.mean(model) <= np.mean(boot) + 2 * np.std(boot))}


def test_gaps(family, test: dict) -> list[float]:
    """Each member's mean NLL on fresh rows from the same SCM (never used to fit or to accept), minus the best."""
    scores = []
    for member in family:
        member.activate()
        scores.append(-mean_loglik(member.diagram, test))
    return [s - min(scores) for s in scores]


GAMMA_GRID = (-2.0, 0.0, 0.01, 0.05, 0.5, 2.0, 4.0)


def gamma_grid(case: dict, seeds=(0, 1, 2)) -> dict:
    """The old way, for comparison (bow-graph cases): one fixed-γ fit per (γ, seed) on the training cell counts,
    with the same mixture as the family. Mean posterior entropy per γ, and coverage/span of the whole grid."""
    from cauvade_pyro.inference.counts import cell_counts, cell_posterior_entropy, fit_attribute_counts

    data = case["data"]
    n_train = int(round(0.8 * len(data["x"])))
    order = torch.randperm(len(data["x"]), generator=torch.Generator().manual_seed(0))[:n_train]
    scm = case["scm"]
    counts = cell_counts(data["x"][order], data["y"][order], scm.num_classes, scm.num_hue_bins)
    values, entropy = [], {}
    for gamma in GAMMA_GRID:
        per_seed = []
        for seed in seeds:
            mixture = case["diagram"]().__self__
            fit_attribute_counts(mixture, counts, gamma=gamma, seed=seed, steps=600, progress=False)
            with torch.no_grad():
                values.append(mixture.interventional_y())
                per_seed.append(float((counts * cell_posterior_entropy(mixture)).sum() / counts.sum()))
        entropy[str(gamma)] = [round(v, 4) for v in per_seed]
    return {"gammas": list(GAMMA_GRID), "seeds": list(seeds), "posterior_entropy": entropy,
            **score(torch.stack(values), case)}


def run_case(name: str, case: dict, seed: int, test: dict, options: dict | None = None) -> dict:
    data = case["data"]
    options = options or {}
    n_train = int(round(0.8 * len(data["x"])))
    start = time.perf_counter()
    family = fit_family(case["diagram"](), data, tau=TAU, seed=seed, progress=False, **options)
    family_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fit_family(case["diagram"](), data, tau=TAU, seed=seed, progress=False,
               **{**options, "restarts": 1, "entropy_targets": (), "vertices": False, "random_directions": 0})
    one_seconds = time.perf_counter() - start
    start = time.perf_counter()
    directed = fit_family(case["diagram"](), data, tau=TAU, seed=seed, progress=False,
                          **{**options, "restarts": 1, "entropy_targets": (), "vertices": False,
                             "random_directions": 0, "cells": True})
    cells_seconds = time.perf_counter() - start
    values = family.p_do()
    kinds = [m.kind for m in family]
    subset = lambda wanted: values[[i for i, k in enumerate(kinds) if k in wanted]]  # noqa: E731
    result = {
        **score(values, case),
        # the held-out rows decide which members are kept (within τ of the best); the gap reported against τ is
        # measured on fresh test rows from the same SCM that took no part in fitting or in that selection
        "max_fit_gap_nats": round(max(test_gaps(family, test)), 6),
        "max_fit_gap_acceptance_rows": round(family.max_fit_gap(), 6),
        "members": len(family),
        "members_by_kind": family.summary()["by_kind"],
        "dropped": family.dropped,
        "family_seconds": round(family_seconds, 2),
        "one_member_seconds": round(one_seconds, 2),
        "cost_ratio": round(family_seconds / one_seconds, 2),
        "parts": {
            "restarts": score(subset({"restart"}), case),
            "restarts+dial": score(subset({"restart", "dial"}), case),
            "vertices+directions": score(subset({"vertex", "direction"}), case),
        },
        "directed_cells": {
            **score(directed.p_do(), case), "members": len(directed), "seconds": round(cells_seconds, 2),
            "cost_ratio": round(cells_seconds / one_seconds, 2), "max_fit_gap_nats": round(directed.max_fit_gap(), 6),
            "dropped": directed.dropped,
        },
        "gammas": {m.label: round(m.gamma, 4) for m in family if m.kind == "dial"},
        "entropies": {m.label: round(m.entropy, 4) for m in family if m.kind == "dial"},
        "bounds": case.get("bounds", "bow graph closed form (sharp)"),
        "rows": len(data["x"]),
    }
    if case.get("scm") is not None:
        result["gamma_grid"] = gamma_grid(case)
    if not case["confounded"] and case.get("scm") is not None:
        result["diffuse_end"] = diffuse_end_w1(family, case, n_train)
    print(f"{name:16s} coverage {result['coverage']:.3f} span {result['span']:.3f} "
          f"(inside bounds {result['span_within_bounds']:.3f}, beyond by {result['max_outside_bounds']:.3f}) gap {result['max_fit_gap_nats']:.4f}"
          f" members {result['members']:3d} family {family_seconds:6.1f} s = {result['cost_ratio']:.2f}x one member;"
          f" cells {result['directed_cells']['cost_ratio']:.2f}x", flush=True)
    return result


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["cases"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    x = np.arange(len(names))
    for offset, key, colour in ((-0.2, "coverage", "tab:blue"), (0.2, "span", "tab:orange")):
        axes[0].bar(x + offset, [results["cases"][n][key] for n in names], 0.4, label=key, color=colour)
    axes[0].axhline(0.95, color="tab:blue", ls="--", lw=1, label="coverage target 0.95")
    axes[0].axhline(0.80, color="tab:orange", ls="--", lw=1, label="span target 0.80")
    axes[0].set_title("default family: coverage and span (clipped)")
    parts = ["restarts", "restarts+dial", "vertices+directions"]
    for i, part in enumerate(parts):
        axes[1].bar(x + (i - 1) * 0.27, [results["cases"][n]["parts"][part]["span"] for n in names], 0.27, label=part)
    axes[1].set_title("span of each part of the family")
    axes[2].bar(x - 0.2, [results["cases"][n]["cost_ratio"] for n in names], 0.4, label="default family")
    axes[2].bar(x + 0.2, [results["cases"][n]["directed_cells"]["cost_ratio"] for n in names], 0.4,
                label="directed, every cell")
    axes[2].axhline(3.0, color="k", ls="--", lw=1, label="target 3x")
    axes[2].set_title("cost / one member (CPU)")
    for ax in axes:
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_table(results: dict) -> str:
    """The README's table of the suite (from the JSON, so the README shows what the committed JSON holds)."""
    lines = ["| case | coverage | span (clipped) | span inside the bounds | beyond the bounds by | fit gap (nats, fresh rows) "
             "| members | family / one member | every cell, directed / one member | γ grid × 3 seeds: coverage, span |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, case in results["cases"].items():
        grid = case.get("gamma_grid")
        grid_text = f"{grid['coverage']:.2f}, {grid['span']:.2f}" if grid else "—"
        lines.append(
            f"| {name} | {case['coverage']:.2f} | {case['span']:.2f} | {case['span_within_bounds']:.2f} | "
            f"{case['max_outside_bounds']:.3f} | {case['max_fit_gap_nats']:.4f} | {case['members']} | "
            f"{case['cost_ratio']:.2f}× ({case['family_seconds']:.1f} s) | {case['directed_cells']['cost_ratio']:.2f}× | "
            f"{grid_text} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="print the markdown table of a results JSON and stop")
    parser.add_argument("--cases", nargs="*", help="names of cases to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "family_suite.json")
    parser.add_argument("--quick", action="store_true", help="tiny fits and test sets: what the test suite runs")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    available = cases(args.seed)
    unknown = sorted(set(args.cases or ()) - set(available))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {sorted(available)}")
    results = {"git_sha": git_sha(), "machine": machine_info(torch.device("cpu")), "tau": TAU, "cases": {}}
    options = {"restarts": 2, "entropy_targets": (1.0, 0.0), "random_directions": 1, "steps": 150,
               "member_steps": 100} if args.quick else {}
    for name in args.cases or available:
        test = cases(args.seed + 1000, 20_000 if args.quick else TEST_ROWS)[name]()["data"]  # same SCM, fresh rows
        results["cases"][name] = run_case(name, available[name](), args.seed, test, options)
    targets = [n for n in results["cases"] if n != "shapes_additive"]
    results["targets_met"] = {
        "coverage>=0.95": all(results["cases"][n]["coverage"] >= 0.95 for n in targets),
        "span>=0.80": all(results["cases"][n]["span"] >= 0.80 for n in targets),
        "fit_gap<=tau": all(results["cases"][n]["max_fit_gap_nats"] <= TAU for n in targets),
        "family_cost<=3x": all(results["cases"][n]["cost_ratio"] <= 3.0 for n in targets),
        "cells_cost<=3x": all(results["cases"][n]["directed_cells"]["cost_ratio"] <= 3.0 for n in targets),
    }
    write_results(results, args.out, plot, started)


if __name__ == "__main__":
    main()
