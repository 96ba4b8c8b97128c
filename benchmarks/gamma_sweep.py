"""Summarise a γ × seed sweep of ``python -m cauvade_pyro.fit`` into ``benchmarks/results/<name>.{json,png}``.

    python -m cauvade_pyro.fit -m inference.gamma=-2,0,2,4 seed=0,1,2 hydra.sweep.dir=multirun/gamma_sweep
    python -m benchmarks.gamma_sweep multirun/gamma_sweep --name shapes_gamma_sweep

A thin caller of :func:`cauvade_pyro.collect.collect` (``python -m cauvade_pyro.collect`` is the documented
command; this one only writes into ``benchmarks/results/`` and records the command and ``git_sha``): the JSON
holds the family's coverage and span of the true P(hue bin | do(x)) and one row per member (γ, seed, per-x W1 to
the truth, posterior entropy, held-out fit, effectiveness); the plot shows each member's P(hue bin | do(x)) against γ with the truth, the
observational answer and the sharp-bounds band, for each x and hue bin.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.provenance import git_sha
from cauvade_pyro.collect import collect, report

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--name", default="shapes_gamma_sweep")
    args = parser.parse_args(argv)
    result = collect(args.sweep_dir, RESULTS, args.name)
    # The members' metrics.json do not say which commit trained them; the sweep is run from the same checkout.
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps({
        "command": "python -m benchmarks.gamma_sweep " + " ".join(argv if argv is not None else sys.argv[1:]),
        "git_sha": git_sha(), **result}, indent=2))
    print(report(result))


if __name__ == "__main__":
    main()
