"""γ × seed sweeps through Hydra's joblib and submitit launchers (the ``cluster`` extra), collected into a family.

The joblib sweep starts its two members together on a fresh cache (so it also checks, through a real launcher,
that the shared judge and image model are trained once); the submitit_local sweep (submitit's code path for
SLURM, without a scheduler) reuses that cache and must give the same member results.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cauvade_pyro.collect import main as collect_main

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "dataset.num_train=600", "dataset.num_test=150", "inference.image_epochs=1", "inference.attribute_steps=10",
    "eval.num_samples=30", "eval.grid_samples=4", "eval.judge_images=300", "eval.judge_epochs=1",
    "progress=false", "torch_threads=1",
]
SWEEP = ["inference.gamma=-1,2", "seed=0"]
NOT_COMPARED = ("wall_time_s",)  # wall time varies by nature


def _multirun(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAUVADE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "cauvade_pyro.fit", "-m", *TINY, *SWEEP, *args], cwd=REPO,
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


def _members(sweep_dir: Path) -> dict[float, dict]:
    members = [json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")]
    return {m["gamma"]: {k: v for k, v in m.items() if k not in NOT_COMPARED} for m in members}


def _logs(sweep_dir: Path) -> str:
    return "".join(p.read_text() for p in sweep_dir.glob("*/fit.log"))


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("joblib")
    result = _multirun(root / "cache", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                       f"hydra.sweep.dir={root / 'sweep'}")
    return root, result


def test_joblib_sweep_runs_both_members_at_once_and_trains_each_shared_model_once(joblib_sweep):
    root, result = joblib_sweep
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    members = _members(root / "sweep")
    assert sorted(members) == [-1.0, 2.0] and {m["seed"] for m in members.values()} == {0}
    logs = _logs(root / "sweep")
    assert logs.count("judge trained and cached") == 1, logs
    assert logs.count("(trained)") == 1 and logs.count("(loaded from cache)") == 1, logs
    image_models = list((root / "cache" / "image_models").glob("*.pt"))
    assert len(image_models) == 1 and {m["image_model"] for m in members.values()} == {str(image_models[0])}


def test_submitit_local_sweep_gives_the_same_members_as_joblib(joblib_sweep, tmp_path):
    root, _ = joblib_sweep
    sweep_dir = tmp_path / "sweep"
    _multirun(root / "cache", "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep_dir}",
              "hydra.sweep.subdir=${hydra.job.num}")
    assert len(list((sweep_dir / ".submitit").glob("*/*_result.pkl"))) == 2  # two jobs went through submitit
    assert _logs(sweep_dir).count("(loaded from cache)") == 2  # the warm cache: nothing trained again
    assert _members(sweep_dir) == _members(root / "sweep")  # same seeds, same cache: the same members


def test_collect_summarises_the_multirun_against_hand_sums(joblib_sweep, tmp_path, capsys):
    root, _ = joblib_sweep
    assert collect_main([str(root / "sweep"), "--out", str(tmp_path)]) == 0
    assert "family: 2 members (p_do_model), coverage" in capsys.readouterr().out
    summary = json.loads((tmp_path / "family.json").read_text())
    assert (tmp_path / "family.png").stat().st_size > 0
    members = [json.loads(p.read_text()) for p in (root / "sweep").glob("*/metrics.json")]
    covered, spans = [], []
    for x, row in enumerate(members[0]["per_x"]):
        for y, truth in enumerate(row["p_do_truth"]):
            values = [m["per_x"][x]["p_do_model"][y] for m in members]
            low, high = min(values), max(values)
            covered.append(low - 1e-6 <= truth <= high + 1e-6)
            spans.append((high - low) / (row["bounds_upper"][y] - row["bounds_lower"][y]))
    assert summary["num_members"] == 2 and summary["unfinished"] == []
    assert summary["coverage"] == pytest.approx(sum(covered) / len(covered), abs=1e-5)
    assert summary["span"] == pytest.approx(sum(min(s, 1.0) for s in spans) / len(spans), abs=1e-5)
    assert summary["span_unclipped"] == pytest.approx(sum(spans) / len(spans), abs=1e-5)
    assert [row["gamma"] for row in summary["members"]] == [-1.0, 2.0]
