"""The CLI end to end: the same seed gives the same metrics.json, and a fit killed with SIGKILL resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cauvade_pyro.inference import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "dataset.num_train=600", "dataset.num_test=150", "inference.image_epochs=1", "inference.attribute_steps=600",
    "inference.checkpoint_every=50", "eval.num_samples=30", "eval.grid_samples=4", "eval.judge_images=300",
    "eval.judge_epochs=1", "progress=false", "torch_threads=1", "seed=2", "inference.gamma=1.0",
]
# Wall time varies by nature; the image model's path names the cache folder, which differs between the runs.
NOT_COMPARED = ("wall_time_s", "image_model")


def _command(run_dir, *extra):
    return [sys.executable, "-m", "cauvade_pyro.fit", *TINY, *extra, f"hydra.run.dir={run_dir}"]


def _env(cache):
    return {**os.environ, "CAUVADE_CACHE": str(cache)}


def _fit(run_dir, cache, *extra):
    result = subprocess.run(_command(run_dir, *extra), cwd=REPO, capture_output=True, text=True, env=_env(cache),
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _metrics(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in NOT_COMPARED}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    _fit(root / "run", root / "cache")
    return root


def test_killed_and_resumed_fit_on_a_fresh_cache_gives_identical_metrics_json(reference, tmp_path):
    """Two claims in one pair of runs (each CLI run costs ~10 s of fixed start-up):

    - determinism: this run has its own fresh cache, so the judge and the image model are trained again from the
      same seeds, and metrics.json still equals the reference's (all but wall time and the cache path);
    - resume: the member fit is killed with SIGKILL after its first training state, and re-running the same
      command continues from it and ends with bit-identical parameters.
    """
    run_dir, state, cache = tmp_path / "run", tmp_path / "run" / "train_state.pt", tmp_path / "cache"
    process = subprocess.Popen(_command(run_dir), cwd=REPO, env=_env(cache),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not state.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists(), "the fit finished before it could be killed"
    killed_at = load_checkpoint(state, kind="train_state")["step"]
    assert 0 < killed_at < 600

    result = _fit(run_dir, cache)  # the same command again
    assert "resuming the confounded_attributes fit from" in result.stdout + result.stderr
    assert _metrics(run_dir) == _metrics(reference / "run")
    ours = load_checkpoint(run_dir / "checkpoint.pt", kind="member")["attributes"]
    theirs = load_checkpoint(reference / "run" / "checkpoint.pt", kind="member")["attributes"]
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert not state.exists(), "a finished fit removes its training state"


def test_a_state_from_another_config_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    member_state = {"kind": "train_state", "config": {"model": {"K": 8}}, "step": 1, "total": 600}
    from cauvade_pyro.inference import save_checkpoint

    save_checkpoint(run_dir / "train_state.pt", member_state)
    result = subprocess.run(_command(run_dir), cwd=REPO, capture_output=True, text=True,
                            env=_env(tmp_path / "cache"), timeout=600)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "training state was written for a different configuration" in lines[0]
    assert "model.K: 8 → 4" in lines[0] and "pass resume=false to start over" in lines[0]
    assert not (tmp_path / "cache").exists(), "refused before any data, judge or image model"
