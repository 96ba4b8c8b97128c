"""Bad configuration at start-up: one line on stderr naming the key and its allowed range, exit 2, nothing built."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from cauvade_pyro.config import ConfigError, check_overrides, validate_config

REPO = Path(__file__).resolve().parents[2]


def run_fit(args, tmp_path, env=None, timeout=120):
    env = {**os.environ, "CAUVADE_CACHE": str(tmp_path / "cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "cauvade_pyro.fit", *args, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout)


def check_in_process(overrides):
    """What the CLI runs before Hydra starts the job: the override check, then composition and validation."""
    check_overrides(overrides)
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        validate_config(compose(config_name="config", overrides=[o for o in overrides if not o.startswith("-")]))


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["inference.gama=2"], "unknown config key 'inference.gama'; the keys of inference are: gamma,"),
        (["-m", "inference.gamma=1,2", "model.image.chanels=1"], "unknown config key 'model.image.chanels'"),
        (["model=latent_response", "model.y_given_xc=table"], "unknown config key 'model.y_given_xc'"),
        (["model.K=2.5"], "model.K must be an integer >= 1"),
        (["model.image.size=64"], "model.image.size must be 28 for dataset 'shapes'"),
        (["inference.image_lr=0"], "inference.image_lr must be a finite number > 0, got 0"),
        (["inference.clip_norm=nan"], "inference.clip_norm must be a finite number > 0"),
        (["inference.checkpoint_every=-5"], "inference.checkpoint_every must be an integer >= 0"),
        (["seed=1.5"], "seed must be an integer"),
        (["device=gpu"], "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        (["resume=/no/such/run"], "resume: no training state at '/no/such/run'"),
        (["model.image.net=resnet"], "model.image.net must be one of ('conv', 'mlp')"),
        (["model.image.eps_film=all"], "model.image.eps_film must be one of ('none', 'last'), got 'all'"),
        (["model.image.net=mlp", "model.image.eps_film=last"], "model.image.eps_film=last needs model.image.net=conv"),
        (["inference.attribute_objective=exact"], "inference.attribute_objective must be one of ('pyro', 'counts')"),
    (["dataset.name=cifar"], "dataset.name must be one of ('shapes', 'fashion_mnist', 'mnist')"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(overrides, expected):
    with pytest.raises(ConfigError) as error:
        check_in_process(overrides)
    assert len(str(error.value).splitlines()) == 1 and expected in str(error.value), error.value


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["foo=1"], "unknown config key 'foo'; the keys of the top level are: dataset, model"),
        (["model=nope"], "Could not find 'model/nope' Available options in 'model': confounded_attributes latent_response"),
        (["model.image.channels=1"], "model.image.channels must be 3 for dataset 'shapes' (its images are 3x28x28)"),
    ],
)
def test_bad_config_on_the_command_line_is_one_line_before_anything_is_built(tmp_path, overrides, expected):
    result = run_fit(overrides, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_one_line(monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as error:
        check_in_process([f"device={device}"])
    assert str(error.value) == (f"device={device} was requested but CUDA is not available here; "
                                "use device=auto or device=cpu")


def test_a_key_the_app_does_not_read_is_refused_even_when_added_on_purpose():
    """`+key=value` adds a key Hydra accepts, but nothing would read it: one line instead of silently ignoring it.
    A known key forced with `++` is still fine."""
    with pytest.raises(ConfigError, match="config key 'notes' is not used by cauvade_pyro.fit"):
        check_overrides(["+notes=hello", "hydra.run.dir=/tmp/x"])
    check_overrides(["++model.K=5", "hydra.run.dir=/tmp/x", "model=latent_response", "model.r_dim=3"])