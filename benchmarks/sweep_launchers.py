"""One 8-member γ × seed sweep through every launcher: wall time, shared-model trainings, same members.

    OMP_NUM_THREADS=1 python -m benchmarks.sweep_launchers                 # ≈ 5 min on 2 cores
    OMP_NUM_THREADS=1 python -m benchmarks.sweep_launchers --launchers basic,joblib

The same sweep (γ ∈ {−2, 0, 2, 4} × seed ∈ {0, 1}, small shapes, one torch thread per member) runs, each on
its own **fresh cache**, through

- ``basic``: Hydra's default launcher, the members one after another in one process;
- ``joblib``: ``hydra/launcher=joblib hydra.launcher.n_jobs=2`` (two worker processes);
- ``submitit_local``: ``hydra/launcher=submitit_local`` (one process per member, all at once; the code path of
  ``submitit_slurm`` without a scheduler);
- ``ray``: a local Ray cluster (``ray start --head --num-cpus 2``, stopped afterwards) running one Ray task
  (``num_cpus=1``) per member, each a plain ``python -m cauvade_pyro.fit`` run; Ray's own API, because
  hydra-ray-launcher 1.2.2 needs cloudpickle < 3 and joblib 1.6 (hydra-joblib-launcher) cloudpickle >= 3.

Seconds are the wall time of the whole sweep command (start-up, the judge and the shared image model trained
once, 8 members); Ray's excludes starting the cluster (recorded as ``ray_start_s``). Every launcher must give
the same members as ``basic`` (each ``metrics.json`` equal but for wall time and the cache path) and train the
shared image model once (``fit.log``: one "(trained)"). Writes ``benchmarks/results/sweep_launchers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.provenance import git_sha
from cauvade_pyro.collect import collect

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
GAMMAS = (-2.0, 0.0, 2.0, 4.0)
SEEDS = (0, 1)
SIZE = [
    "dataset.num_train=2000", "dataset.num_test=500", "inference.image_epochs=1", "inference.attribute_steps=300",
    "eval.num_samples=200", "eval.grid_samples=4", "eval.judge_images=1000", "eval.judge_epochs=1",
    "progress=false", "torch_threads=1",
]
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
}
NOT_COMPARED = ("wall_time_s", "image_model")  # wall time varies; each launcher has its own cache folder


def _env(cache: Path) -> dict:
    return {**os.environ, "CAUVADE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


def run_hydra(launcher: str, work: Path) -> float:
    """The sweep as one Hydra multirun through ``launcher``; returns its wall seconds."""
    sweep = ["inference.gamma=" + ",".join(f"{g:g}" for g in GAMMAS), "seed=" + ",".join(map(str, SEEDS))]
    command = [sys.executable, "-m", "cauvade_pyro.fit", "-m", *LAUNCHERS[launcher], *SIZE, *sweep,
               f"hydra.sweep.dir={work / 'sweep'}", "hydra.sweep.subdir=${hydra.job.num}"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=_env(work / "cache"), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{launcher} sweep failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return seconds


def run_ray(work: Path) -> float:
    """The sweep as one Ray task per member on the running Ray cluster; returns its wall seconds."""
    import ray

    started = time.perf_counter()
    ray.init(address="auto", log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        @ray.remote(num_cpus=1)
        def member(index: int, overrides: list[str]) -> tuple[int, str]:
            command = [sys.executable, "-m", "cauvade_pyro.fit", *SIZE, *overrides,
                       f"hydra.run.dir={work / 'sweep' / str(index)}"]
            result = subprocess.run(command, cwd=REPO, env=_env(work / "cache"), capture_output=True, text=True)
            return result.returncode, (result.stdout + result.stderr)[-3000:]

        grid = [[f"inference.gamma={g:g}", f"seed={s}"] for g in GAMMAS for s in SEEDS]  # Hydra's order
        outcomes = ray.get([member.remote(i, overrides) for i, overrides in enumerate(grid)])
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - started
    for code, output in outcomes:
        if code != 0:
            raise RuntimeError(f"a Ray member failed:\n{output}")
    return seconds


def start_ray() -> tuple[bool, float]:
    """``ray start --head`` unless a Ray cluster already runs here; returns (started by us, seconds)."""
    if subprocess.run(["ray", "status"], capture_output=True).returncode == 0:
        return False, 0.0
    started = time.perf_counter()
    subprocess.run(["ray", "start", "--head", "--num-cpus", "2", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True)
    return True, time.perf_counter() - started


def members(sweep_dir: Path) -> dict[str, dict]:
    """``"γ=…,seed=…"`` → the member's metrics.json without the keys that may differ between launchers."""
    found = {}
    for path in sweep_dir.glob("*/metrics.json"):
        metrics = json.loads(path.read_text())
        found[f"gamma={metrics['gamma']:g},seed={metrics['seed']}"] = {
            k: v for k, v in metrics.items() if k not in NOT_COMPARED}
    return found


def differences(reference: dict, other: dict) -> list[str]:
    """Members missing on one side, or whose metrics differ (naming the top-level keys that differ)."""
    out = [f"{name}: missing" for name in sorted(set(reference) ^ set(other))]
    for name in sorted(set(reference) & set(other)):
        keys = sorted(k for k in set(reference[name]) | set(other[name]) if reference[name].get(k) != other[name].get(k))
        if keys:
            out.append(f"{name}: {', '.join(keys)}")
    return out


def count_in_logs(sweep_dir: Path, text: str) -> int:
    return sum(p.read_text().count(text) for p in sweep_dir.glob("*/fit.log"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launchers", default="basic,joblib,submitit_local,ray",
                        help="comma-separated, basic first (the reference)")
    parser.add_argument("--out", type=Path, default=RESULTS / "sweep_launchers.json")
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweeps and caches in this folder")
    args = parser.parse_args(argv)
    launchers = args.launchers.split(",")
    if launchers[0] != "basic" or set(launchers) - {*LAUNCHERS, "ray"}:
        raise SystemExit(f"--launchers: basic first, then any of joblib, submitit_local, ray; got {args.launchers}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="sweep_launchers-"))
    started = time.perf_counter()
    results: dict = {
        "git_sha": git_sha(), "members": len(GAMMAS) * len(SEEDS), "gammas": list(GAMMAS), "seeds": list(SEEDS),
        "config": SIZE, "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "seconds": {}, "image_model_trainings_per_launcher": {}, "judge_trainings_per_launcher": {},
        "same_members_as_basic": {}, "differences_from_basic": {},
    }
    try:
        for launcher in launchers:
            work = root / launcher
            if launcher == "ray":
                ours, results["ray_start_s"] = start_ray()
                try:
                    seconds = run_ray(work)
                finally:
                    if ours:
                        subprocess.run(["ray", "stop"], capture_output=True)
            else:
                seconds = run_hydra(launcher, work)
            results["seconds"][launcher] = round(seconds, 1)
            sweep_dir = work / "sweep"
            results["image_model_trainings_per_launcher"][launcher] = count_in_logs(sweep_dir, "(trained)")
            results["judge_trainings_per_launcher"][launcher] = count_in_logs(sweep_dir, "judge trained and cached")
            found = members(sweep_dir)
            if launcher == "basic":
                reference = found
                family = collect(sweep_dir, work, "family")
                results["family"] = {k: family[k] for k in ("source", "coverage", "span", "span_unclipped",
                                                             "fit_gap_nats")}
            diff = differences(reference, found)
            results["same_members_as_basic"][launcher] = not diff and len(found) == results["members"]
            results["differences_from_basic"][launcher] = diff
            print(f"{launcher:>15}: {seconds:6.1f} s, {len(found)} members, image model trained "
                  f"{results['image_model_trainings_per_launcher'][launcher]}×, same as basic: {not diff}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    results["image_model_trainings"] = max(results["image_model_trainings_per_launcher"].values())
    results["total_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"wrote {args.out} in {results['total_s']} s")
    return results


if __name__ == "__main__":
    main()
