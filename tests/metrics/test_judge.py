"""The effectiveness judge reads class and hue of blurred real images; its disk cache round-trips."""

import pytest
import torch

from cauvade_pyro.datasets import ConfoundedShapes
from cauvade_pyro.metrics import AttributeJudge, judge_cache_key, train_judge
from cauvade_pyro.metrics.judge import random_blur

SETTINGS = {"seed": 0, "num_images": 4000, "epochs": 2}


@pytest.fixture(scope="module")
def data() -> ConfoundedShapes:
    return ConfoundedShapes(num_train=100, num_test=100)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("judge-cache")


@pytest.fixture(scope="module")
def judge(data, cache_dir) -> AttributeJudge:
    return train_judge(data, cache_dir=cache_dir, **SETTINGS)


@pytest.fixture(scope="module")
def fresh_blurred(data):
    # Fresh real images, independent of the judge's training images (another seed), blurred like VAE output.
    generator = torch.Generator().manual_seed(12345)
    x = torch.randint(data.num_classes, (1500,), generator=generator)
    y = torch.randint(data.num_hue_bins, (1500,), generator=generator)
    images = data.render(x, y, generator).float() / 255.0
    return random_blur(images, 1.0), x, y


def test_judge_reads_blurred_real_images(judge, fresh_blurred):
    images, x, y = fresh_blurred
    class_pred, hue_pred = judge.predict(images)
    assert class_pred.dtype == torch.long and class_pred.shape == x.shape
    assert (class_pred == x).float().mean() >= 0.95
    assert (hue_pred == y).float().mean() >= 0.95


def test_cache_round_trip(judge, data, cache_dir, fresh_blurred):
    key = judge_cache_key(data, **SETTINGS)
    assert (cache_dir / f"judge-{key}.pt").exists()
    assert not list(cache_dir.glob("*.tmp"))
    reloaded = train_judge(data, cache_dir=cache_dir, **SETTINGS)  # loads, does not retrain
    images = fresh_blurred[0][:300]
    for first, second in zip(judge.predict(images), reloaded.predict(images)):
        assert torch.equal(first, second)
    for name, tensor in judge.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name])


def test_cache_key_depends_on_settings_and_data(data):
    base = judge_cache_key(data, **SETTINGS)
    assert judge_cache_key(data, **{**SETTINGS, "seed": 1}) != base
    assert judge_cache_key(data, **{**SETTINGS, "epochs": 3}) != base
    other = ConfoundedShapes(num_train=10, num_test=10, num_hue_bins=8)
    assert judge_cache_key(other, **SETTINGS) != base
    # The number of stored training images does not change the generating process.
    assert judge_cache_key(ConfoundedShapes(num_train=20, num_test=10), **SETTINGS) == base


def test_predict_handles_empty_input(judge):
    class_pred, hue_pred = judge.predict(torch.zeros(0, 3, 28, 28))
    assert class_pred.shape == (0,) and hue_pred.shape == (0,)


def test_a_judge_trains_even_when_called_under_no_grad(tmp_path):
    """An evaluation runs under no_grad and may train a reader on demand (the sub-class reader on a cold cache)."""
    import torch

    from cauvade_pyro.datasets import ConfoundedShapes
    from cauvade_pyro.metrics import train_judge

    with torch.no_grad():
        judge = train_judge(ConfoundedShapes(num_train=8, num_test=8), num_images=256, epochs=1, cache_dir=tmp_path)
    assert any(p.abs().sum() > 0 for p in judge.parameters())
