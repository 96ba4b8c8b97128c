r"""How close can one member of the attribute-level family come to the true P(y | do(x))?

    python -m benchmarks.family_reach                                        # shapes
    python -m benchmarks.family_reach dataset=fashion_mnist dataset.x_form=classes dataset.seed=1 model.y_given_xc=table

The quality benchmark picks one member on validation images and scores it on test images; that member's FID can
be no better than the attribute level lets it be. This diagnostic fits the CLI's family of the attribute level
(``inference.sweep=family``: :func:`~cauvade_pyro.inference.fit_family` with the ``inference.family`` options, on
the training (x, y) of the data set, no image model) and reports, against the data set's truth,

- per x, the circular W1 of the observational answer P(y | x) and of the closest member;
- the member closest on average over x, the one whose worst x is closest, and the one whose worst *confounded*
  x is closest (one member for every x, as a selected member must be; confounded: P(y | do(x)) differs from
  P(y | x) by more than 0.001 in W1), per x;
- every member's W1 per x (``w1_per_member``), so that any other choice can be checked;
- coverage of the true cells by the family's range and its span of the sharp bounds (clipped per cell).

It is chosen knowing the truth, so it is an upper limit on what any selection can find, not a result of the family.
Writes ``benchmarks/results/family_reach_<dataset>[_classes]_seed<data seed>_<p(y | x, c)>.json`` (``--out`` to
change).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.provenance import git_sha

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_reach", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the fit config, e.g. dataset=fashion_mnist")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/family_reach_<name>.json)")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def reach(cfg) -> dict:
    """Fit the attribute-level family of ``cfg``'s data set and score its members against the truth."""
    from cauvade_pyro.diagrams.options import family_options
    from cauvade_pyro.evaluate import score_attribute_family
    from cauvade_pyro.fit import build_dataset
    from cauvade_pyro.inference import fit_family, seed_everything
    from cauvade_pyro.members import build_attributes
    from cauvade_pyro.metrics import circular_w1

    dataset = build_dataset(cfg)
    scm = dataset.scm
    truth, observational = scm.interventional_y().double(), scm.observational_y_given_x().double()
    positions = scm.bin_centres()
    attributes = build_attributes(cfg, dataset.num_classes, dataset.num_hue_bins)
    seed_everything(int(cfg.seed))
    train = {k: dataset.train[k] for k in ("x", "y")}
    family = fit_family(attributes.model, train, seed=int(cfg.seed), progress=False, **family_options(cfg))
    num_x = dataset.num_classes
    scored = score_attribute_family(family, scm)
    w1 = scored["w1"]
    observational_w1 = [circular_w1(observational[x], truth[x], positions) for x in range(num_x)]
    confounded = [x for x in range(num_x) if observational_w1[x] > 1e-3]
    closest, minimax = int(w1.mean(1).argmin()), int(w1.max(1).values.argmin())
    minimax_confounded = int(w1[:, confounded].max(1).values.argmin()) if confounded else minimax
    return {
        "members": len(family), "dropped": family.dropped, "kinds": [m.kind for m in family],
        "w1_observational_per_x": [round(v, 4) for v in observational_w1],
        "confounded_x": confounded,
        "w1_closest_member_per_x": [round(float(v), 4) for v in w1.min(0).values],
        "closest_on_average": {"kind": family[closest].kind, "w1_per_x": [round(float(v), 4) for v in w1[closest]],
                               "w1_mean": round(float(w1[closest].mean()), 4)},
        "closest_on_worst_x": {"kind": family[minimax].kind, "w1_per_x": [round(float(v), 4) for v in w1[minimax]],
                               "w1_max": round(float(w1[minimax].max()), 4)},
        "closest_on_worst_confounded_x": {
            "kind": family[minimax_confounded].kind,
            "w1_per_x": [round(float(v), 4) for v in w1[minimax_confounded]],
            "w1_max_confounded": round(float(w1[minimax_confounded, confounded].max()), 4) if confounded else None},
        "w1_per_member": [[round(float(v), 4) for v in row] for row in w1],
        "coverage": round(scored["coverage"], 4),
        "span": round(scored["span"], 4),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from cauvade_pyro.config import ConfigError, compose_config

    torch.set_num_threads(args.threads)
    try:
        cfg = compose_config(list(args.overrides))
    except ConfigError as error:
        print(f"benchmarks.family_reach: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result = {"command": "python -m benchmarks.family_reach " + " ".join(sys.argv[1:] if argv is None else argv),
              "git_sha": git_sha(), "overrides": list(args.overrides), "dataset": cfg.dataset.name,
              "x_form": cfg.dataset.get("x_form"), "y_given_xc": cfg.model.y_given_xc, "K": int(cfg.model.K),
              "tau": float(cfg.inference.family.tau), **reach(cfg)}
    result["wall_time_s"] = round(time.perf_counter() - started, 1)
    name = cfg.dataset.name + ("_classes" if cfg.dataset.get("x_form") == "classes" else "")
    out = args.out or RESULTS / f"family_reach_{name}_seed{cfg.dataset.seed}_{cfg.model.y_given_xc}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"benchmarks.family_reach: {result['members']} members; W1 to the truth per x, observational "
          f"{result['w1_observational_per_x']}, closest member {result['w1_closest_member_per_x']}, closest on "
          f"average {result['closest_on_average']['w1_per_x']}, closest on the worst x "
          f"{result['closest_on_worst_x']['w1_per_x']}, closest on the worst confounded x "
          f"{result['closest_on_worst_confounded_x']['w1_per_x']} → {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
