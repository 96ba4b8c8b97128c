"""Fréchet distance: known answers (closed form, a set with itself), monotone in a shift, uint8 = float;
the domain feature net is deterministic and cached; mean pairwise distance on known points."""

import itertools

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn

import cauvade_pyro.metrics.judge as judge_module
from cauvade_pyro.datasets import ConfoundedShapes
from cauvade_pyro.metrics import (
    FEATURE_NET_SEED,
    DomainFeatureNet,
    extract_features,
    feature_net_cache_key,
    frechet_distance,
    inception_feature_net,
    judge_cache_key,
    mean_pairwise_distance,
    train_feature_net,
)
from cauvade_pyro.metrics.judge import random_blur

SETTINGS = {"num_images": 256, "epochs": 1}  # a barely trained net: enough for the FID properties, fast


class FlattenFeatures(nn.Module):
    """Identity feature map on flattened inputs: FID becomes the plain Fréchet distance of the inputs."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(images.shape[0], -1).to(torch.float64)


def frechet_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * root))


@pytest.fixture(scope="module")
def data() -> ConfoundedShapes:
    return ConfoundedShapes(num_train=600, num_test=10)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def net(data, cache_dir) -> DomainFeatureNet:
    return train_feature_net(data, cache_dir=cache_dir, **SETTINGS)


@pytest.fixture(scope="module")
def halves(data):
    images = data.train["image"]
    return images[:300], images[300:]


def test_closed_form_gaussians():
    rng = np.random.default_rng(0)
    a = rng.multivariate_normal([0.0, 0.5, -1.0], [[1.0, 0.3, 0.0], [0.3, 2.0, 0.5], [0.0, 0.5, 0.5]], size=400)
    b = rng.multivariate_normal([1.0, 0.0, 0.0], [[0.5, 0.0, 0.1], [0.0, 1.0, -0.4], [0.1, -0.4, 3.0]], size=300)
    as_images = [torch.from_numpy(x).reshape(x.shape[0], 3, 1, 1) for x in (a, b)]
    expected = frechet_by_hand(a, b)
    assert expected > 1.0
    assert frechet_distance(FlattenFeatures(3), *as_images) == pytest.approx(expected, rel=1e-8)
    # Batching does not change the accumulated moments.
    assert frechet_distance(FlattenFeatures(3), *as_images, batch_size=7) == pytest.approx(expected, rel=1e-8)


def test_same_set_is_zero_and_independent_halves_are_small(net, halves):
    first, second = halves
    assert abs(frechet_distance(net, first, first)) < 1e-3
    darker = (second.float() / 255.0) * 0.8
    assert 0.0 < frechet_distance(net, first, second) < frechet_distance(net, first, darker)


def test_grows_monotonically_with_a_brightness_shift(net, halves):
    first, second = halves
    second = second.float() / 255.0
    distances = [frechet_distance(net, first, second * (1.0 - shift)) for shift in (0.0, 0.1, 0.2, 0.4, 0.6)]
    assert all(near < far for near, far in itertools.pairwise(distances)), distances


def test_sees_blur(net, halves):
    first, second = halves
    second = second.float() / 255.0
    baseline = frechet_distance(net, first, second)
    blurred = [frechet_distance(net, first, random_blur(second, sigma)) for sigma in (1.5, 3.0)]
    assert 2.0 * baseline < blurred[0] < blurred[1], (baseline, blurred)


def test_uint8_and_float_images_agree(net, halves):
    first, second = halves
    as_uint8 = frechet_distance(net, first, second, batch_size=128)
    as_float = frechet_distance(net, first.double() / 255.0, second.float() / 255.0)
    assert as_uint8 == pytest.approx(as_float, rel=1e-6)


def test_domain_feature_net(net, halves):
    images = halves[0][:5]
    features = net(images)
    assert net.num_features == 128 and features.shape == (5, 128) and features.dtype == torch.float64
    assert torch.equal(features, net(images.float() / 255.0))
    assert torch.allclose(extract_features(net, images, batch_size=2), features, rtol=1e-5, atol=1e-6)
    net.train()
    assert not net.training and not net.judge.training


def test_feature_net_cache_and_determinism(data, cache_dir, net, monkeypatch):
    key = feature_net_cache_key(data, FEATURE_NET_SEED, **SETTINGS)
    assert (cache_dir / f"features-{key}.pt").exists()
    assert not list(cache_dir.glob("judge-*")) and not list(cache_dir.glob("*.tmp"))
    # No blur, so never the judge's key; same key as the judge's recipe with max_blur_sigma = 0.
    assert key != judge_cache_key(data, FEATURE_NET_SEED, **SETTINGS)
    assert key == judge_cache_key(data, FEATURE_NET_SEED, max_blur_sigma=0.0, **SETTINGS)
    assert FEATURE_NET_SEED != 0  # the judge's default seed

    fresh = train_feature_net(data, **SETTINGS)  # no cache: retrains from the seed, bit for bit
    with monkeypatch.context() as patch:
        patch.setattr(judge_module, "_render_balanced", lambda *args: pytest.fail("retrained instead of loading"))
        reloaded = train_feature_net(data, cache_dir=cache_dir, **SETTINGS)
    other_seed = train_feature_net(data, seed=FEATURE_NET_SEED + 1, **SETTINGS)
    state = net.state_dict()
    for name, tensor in state.items():
        assert torch.equal(tensor, reloaded.state_dict()[name])
        assert torch.equal(tensor, fresh.state_dict()[name])
    assert not all(torch.equal(tensor, other_seed.state_dict()[name]) for name, tensor in state.items())


def test_input_checks(net):
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(net, torch.zeros(1, 3, 28, 28), torch.zeros(4, 3, 28, 28))
    with pytest.raises(TypeError, match="num_features"):
        frechet_distance(nn.Flatten(), torch.zeros(4, 3, 1, 1), torch.zeros(4, 3, 1, 1))


def test_inception_without_torch_fidelity_says_so():
    pytest.importorskip("torchmetrics")
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("torch-fidelity is installed: the error path is not reachable without removing the weights")
    with pytest.raises(RuntimeError, match="torch-fidelity") as error:
        inception_feature_net()
    assert "\n" not in str(error.value) and "train_feature_net" in str(error.value)


def test_mean_pairwise_distance():
    assert mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])) == pytest.approx(4.0)
    assert mean_pairwise_distance(torch.ones(5, 3)) == pytest.approx(0.0, abs=1e-12)
    many = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    subsampled = mean_pairwise_distance(many, max_rows=20)
    assert subsampled == mean_pairwise_distance(many, max_rows=20)  # deterministic
    assert subsampled == pytest.approx(mean_pairwise_distance(many), rel=0.2)
    with pytest.raises(ValueError, match="2 rows"):
        mean_pairwise_distance(torch.zeros(1, 3))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_feature_net_on_cuda_with_images_on_cpu(data, cache_dir, net, halves):
    on_cuda = train_feature_net(data, device="cuda", cache_dir=cache_dir, **SETTINGS)
    first, second = halves
    assert frechet_distance(on_cuda, first, second) == pytest.approx(frechet_distance(net, first, second), rel=1e-3)
