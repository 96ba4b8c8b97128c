"""A new diagram registers in one place: its conf/model/<name>.yaml (cauvade_pyro.diagrams).

The test adds a diagram to the CLI the way a developer would, by writing that one file (its functions live in a
module of their own, here a temporary one), and checks that validation, sweeps and the run find it with nothing
else touched; then removes the file.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import open_dict

from cauvade_pyro import diagrams
from cauvade_pyro.config import ConfigError, validate_config

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "cauvade_pyro" / "conf" / "model"

TOY_MODULE = '''
import json
from cauvade_pyro.config import ConfigError

def check(cfg):
    if cfg.model.rate <= 0:
        raise ConfigError(f"model.rate must be > 0, got {cfg.model.rate}")

def run(cfg, out_dir, started):
    metrics = {"diagram": cfg.model.diagram, "rate": cfg.model.rate}
    (out_dir / "metrics.json").write_text(json.dumps(metrics))
    print("toy ran")
    return metrics

def fit(cfg, dataset, device, out_dir):
    raise NotImplementedError
'''


@pytest.fixture
def registered(tmp_path, monkeypatch):
    """toy_run (a diagram with its own data) and toy_sweeps (a dataset diagram with one sweep), for one test."""
    (tmp_path / "toy_diagram.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    files = {
        "toy_run": "diagram: toy_run\nrate: 1.0\ncli:\n  check: toy_diagram.check\n  run: toy_diagram.run\n",
        "toy_sweeps": textwrap.dedent("""\
            diagram: toy_sweeps
            rate: 1.0
            image: {net: conv, channels: 3, size: 28, eps_dim: 4, likelihood: bernoulli, kl_weight: 1.0}
            cli:
              check: toy_diagram.check
              sweeps:
                independent: toy_diagram.fit
            """),
    }
    paths = [MODEL_DIR / f"{name}.yaml" for name in files]
    for path in paths:  # left by a run that was killed inside this fixture: the names are this test's own
        path.unlink(missing_ok=True)
    try:
        for path, text in zip(paths, files.values()):
            path.write_text(text)
        yield tmp_path
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def composed(*overrides):
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_built_in_diagrams_are_the_files_of_the_model_group():
    assert {"confounded_attributes", "latent_response", "user"} <= set(diagrams.names())
    for name in diagrams.names():
        cfg = composed(f"model={name}", *(["model.target=a:b", "model.data=d.npz"] if name == "user" else []))
        validate_config(cfg)
        functions = [diagrams.run_function(cfg)] if name == "user" else [
            diagrams.sweep_function(composed(f"model={name}", f"inference.sweep={sweep}"))
            for sweep in diagrams.sweeps(cfg)]
        assert all(callable(f) for f in functions)


def test_one_file_registers_a_diagram(registered):
    assert {"toy_run", "toy_sweeps"} <= set(diagrams.names())
    cfg = composed("model=toy_sweeps")
    validate_config(cfg)
    assert diagrams.sweep_function(cfg).__module__ == "toy_diagram"
    with pytest.raises(ConfigError, match=r"^inference.sweep=family is not available for model=toy_sweeps "
                                          r"\(its sweeps: independent;"):
        validate_config(composed("model=toy_sweeps", "inference.sweep=family"))
    with pytest.raises(ConfigError, match=r"^model.rate must be > 0, got -1.0$"):  # the diagram's own check runs
        validate_config(composed("model=toy_run", "model.rate=-1.0"))


def test_the_cli_runs_a_diagram_registered_by_its_file_alone(registered, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{registered}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "cauvade_pyro.fit", "model=toy_run", "model.rate=2.5",
                             f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "toy ran" in result.stdout
    assert json.loads((run_dir / "metrics.json").read_text()) == {"diagram": "toy_run", "rate": 2.5}


def test_an_unregistered_or_broken_entry_is_one_line(registered):
    with pytest.raises(ValueError, match=r"^model.cli.check='nowhere.check' cannot be imported: ModuleNotFoundError"):
        validate_config(composed("model=toy_run", "model.cli.check=nowhere.check"))
    cfg = composed("model=toy_run")
    with open_dict(cfg):
        del cfg.model["cli"]
    with pytest.raises(ConfigError, match=r"^model.diagram='toy_run' is not registered: its config file needs a cli"):
        validate_config(cfg)


def test_the_diagram_key_must_name_the_chosen_file(tmp_path):
    """model.diagram labels metrics.json and checkpoints: it may not contradict the model= choice."""
    result = subprocess.run([sys.executable, "-m", "cauvade_pyro.fit", "model=confounded_attributes",
                             "model.diagram=latent_response", f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.diagram=latent_response does not name the chosen model=confounded_attributes" \
        in lines[0], result.stderr
