"""``python -m cauvade_pyro.fit model=user``: a user's own diagram from the command line, and its one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cauvade_pyro.inference import Family, intervene
from cauvade_pyro.models import TabularDiagram

REPO = Path(__file__).resolve().parents[1]
DIAGRAM = '''
from cauvade_pyro.models import TabularDiagram

def iv():
    return TabularDiagram({"z": 2, "x": 2, "y": 2}, {"x": ["z"], "y": ["x"]}, {"c": (3, ["x", "y"])})
'''
TINY = ["inference.family.steps=150", "inference.family.member_steps=150", "inference.family.restarts=1",
        "inference.family.entropy_targets=[1.0]", "inference.family.random_directions=1", "progress=false"]


def run_fit(args, tmp_path):
    env = {**os.environ, "CAUVADE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cauvade_pyro.fit", *args], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.fixture()
def user_files(tmp_path):
    (tmp_path / "my_diagrams.py").write_text(DIAGRAM)
    g = np.random.default_rng(0)
    n = 3000  # τ is checked on the 20 % held out: fewer rows make the held-out gap noisier than τ
    u, z = g.random(n) < 0.5, g.random(n) < 0.5
    x = g.random(n) < np.where(z, np.where(u, 0.9, 0.5), np.where(u, 0.6, 0.1))
    y = g.random(n) < np.where(x, np.where(u, 0.8, 0.4), np.where(u, 0.7, 0.2))
    np.savez(tmp_path / "iv.npz", z=z.astype(np.int64), x=x.astype(np.int64), y=y.astype(np.int64))
    return tmp_path


def test_a_user_diagram_runs_from_the_cli(user_files):
    run_dir = user_files / "run"
    result = run_fit(["model=user", "model.target=my_diagrams:iv", "model.data=iv.npz", *TINY,
                      f"hydra.run.dir={run_dir}"], user_files)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("family.pt", "metrics.json", "effect.png"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["diagram"] == "user" and metrics["members"] >= 2
    assert metrics["max_fit_gap_nats"] <= metrics["tau"]
    assert "P(y | do(x=0))" in result.stdout
    diagram = TabularDiagram({"z": 2, "x": 2, "y": 2}, {"x": ["z"], "y": ["x"]}, {"c": (3, ["x", "y"])})
    family = Family.load(run_dir / "family.pt", diagram.model)
    draws = intervene(family[0], {"x": 1}, 4000)
    assert draws["y"].float().mean().item() == pytest.approx(family[0].p_do[1, 1].item(), abs=0.03)


@pytest.mark.parametrize("args, message", [
    (["model=user", "model.data=iv.npz"], "model.target is required with model=user"),
    (["model=user", "model.target=my_diagrams:iv", "model.data=missing.npz"], "model.data='missing.npz': no such file"),
    (["model=user", "model.target=my_diagrams:nope", "model.data=iv.npz"], "has no attribute 'nope'"),
    (["+model._target_=my_diagrams.iv"], "config key 'model._target_' is not used by cauvade_pyro.fit"),
    (["model=user", "model.target=my_diagrams:iv", "model.data=iv.npz", "inference.family.tau=0"],
     "inference.family.tau must be a finite number"),
    (["model=user", "model.target=my_diagrams:iv", "model.data=iv.npz", "inference.family.gammas=[0.1,nan]"],
     "inference.family.gammas must be finite numbers"),
])
def test_user_mistakes_are_one_line(user_files, args, message):
    result = run_fit([*args, "progress=false", f"hydra.run.dir={user_files / 'err'}"], user_files)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and message in lines[0], result.stderr
