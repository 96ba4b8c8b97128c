"""Where a benchmark result came from: the commit it ran on (one helper for every benchmark's JSON)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_sha() -> str | None:
    """HEAD's sha, with ``-dirty`` when tracked files other than ``benchmarks/results/`` differ from it; None
    outside a git checkout. Result files are left out because they are what runs write, not what runs: a run
    started after another rewrote its committed JSON still ran the committed code."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")
