r"""Fréchet distance between image sets in a feature space (docs/design.md §6), and feature-space diversity.

**Fréchet distance.** With features :math:`f(\cdot)` of the real and the generated images summarised by their
means :math:`\mu_r, \mu_g` and covariances :math:`\Sigma_r, \Sigma_g` (unbiased, :math:`n - 1`),

.. math::

    \mathrm{FD} = \lVert \mu_r - \mu_g \rVert_2^2
    + \operatorname{Tr}\!\big(\Sigma_r + \Sigma_g - 2 (\Sigma_r \Sigma_g)^{1/2}\big),

the squared 2-Wasserstein distance between the two Gaussians with those moments, computed by torchmetrics'
:class:`~torchmetrics.image.fid.FrechetInceptionDistance` with a custom feature module.

**Feature network.** Inception-v3 features are the usual choice (FID proper, :func:`inception_feature_net`), but
they need torch-fidelity and downloaded weights, and Inception was trained on natural photographs, not 28×28
shapes. The default is a *domain* feature net (:class:`DomainFeatureNet`): the 128-d penultimate (trunk)
activations of an :class:`~cauvade_pyro.metrics.judge.AttributeJudge` trained on the real coloured images to
predict class and hue bin, with the judge's recipe (:func:`~cauvade_pyro.metrics.judge.train_judge`) except:

* **no blur** (:math:`\sigma = 0`): the judge is trained to *ignore* blur, FID must *see* it;
* its own seed, :data:`FEATURE_NET_SEED` = 1 by default (the judge's default is 0), so the feature net and the
  judge share neither initialisation nor training images;
* cached as ``cache_dir/features-<key>.pt``, keyed by the dataset's generating parameters, the seed and the
  settings (:func:`feature_net_cache_key`); as for the judge, processes asking at once for it agree through a
  file lock on ``features-<key>.pt.lock``: one trains, the others wait and load it (:mod:`cauvade_pyro.cache`).

It is deterministic given its seed; values are comparable only between runs with the same feature net.

**Mean pairwise distance** of features :math:`f_1, \dots, f_n` (a diversity measure; 0 when collapsed):
:math:`\binom{n}{2}^{-1} \sum_{i < j} \lVert f_i - f_j \rVert_2`.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from cauvade_pyro.metrics.judge import (
    AttributeJudge,
    JudgeableDataset,
    judge_cache_key,
    train_judge,
)

__all__ = [
    "FEATURE_NET_SEED",
    "DomainFeatureNet",
    "extract_features",
    "feature_net_cache_key",
    "frechet_distance",
    "inception_feature_net",
    "mean_pairwise_distance",
    "train_feature_net",
]

FEATURE_NET_SEED = 1  # differs from the judge's default seed (0) on purpose
FEATURE_NET_PREFIX = "features"
_MAX_PAIRWISE_ROWS = 2000


def _module_device(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; floating images (assumed in [0, 1]) are left as they are."""
    images = torch.as_tensor(images)
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    if not images.is_floating_point():
        raise TypeError(f"images: expected uint8 or floating point, got {images.dtype}")
    return images


class DomainFeatureNet(nn.Module):
    """128-d trunk activations (float64) of a trained :class:`AttributeJudge`, for images (n, 3, 28, 28).

    Takes float images in [0, 1] or uint8 images in [0, 255], on any device; never leaves eval mode.
    ``num_features`` is what torchmetrics reads to size its state for a custom feature module.

    >>> net = DomainFeatureNet(AttributeJudge(num_classes=3, num_hue_bins=6))
    >>> out = net(torch.zeros(2, 3, 28, 28))
    >>> net.num_features, tuple(out.shape), out.dtype
    (128, (2, 128), torch.float64)
    """

    def __init__(self, judge: AttributeJudge) -> None:
        super().__init__()
        self.judge = judge
        self.num_features: int = int(judge.trunk[0].out_features)
        self.train(False)

    def train(self, mode: bool = True) -> DomainFeatureNet:
        """Always eval mode (like torchmetrics' ``NoTrainInceptionV3``), whatever ``mode`` says."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        parameter = next(self.judge.parameters())
        images = _as_float_images(images).to(device=parameter.device, dtype=parameter.dtype)
        return self.judge.trunk(self.judge.features(images)).to(torch.float64)


def feature_net_cache_key(
    dataset: JudgeableDataset, seed: int = FEATURE_NET_SEED, num_images: int = 8000, epochs: int = 3
) -> str:
    """Cache key of :func:`train_feature_net` (the judge's key with no blur); file ``features-<key>.pt``.

    >>> from cauvade_pyro.datasets import ConfoundedShapes
    >>> data = ConfoundedShapes(num_train=2, num_test=2)
    >>> feature_net_cache_key(data, seed=0) != judge_cache_key(data, seed=0)
    True
    """
    return judge_cache_key(dataset, seed, num_images, epochs, max_blur_sigma=0.0)


def train_feature_net(
    dataset: JudgeableDataset,
    seed: int = FEATURE_NET_SEED,
    num_images: int = 8000,
    epochs: int = 3,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
) -> DomainFeatureNet:
    """Train (or load from ``cache_dir``) the domain FID feature net: the judge's recipe without blur.

    Deterministic given ``seed``; with ``cache_dir`` the weights live in ``cache_dir/features-<key>.pt``
    (:func:`feature_net_cache_key`), next to the judge's ``judge-<key>.pt`` files without clashing.
    """
    judge = train_judge(
        dataset,
        seed=seed,
        num_images=num_images,
        epochs=epochs,
        device=device,
        cache_dir=cache_dir,
        max_blur_sigma=0.0,
        prefix=FEATURE_NET_PREFIX,
    )
    return DomainFeatureNet(judge)


@torch.no_grad()
def extract_features(feature_net: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Features (float64, on the CPU, shape (n, num_features)) of ``images`` (uint8 or float in [0, 1]), batched.

    >>> net = DomainFeatureNet(AttributeJudge(num_classes=3, num_hue_bins=6))
    >>> tuple(extract_features(net, torch.zeros(3, 3, 28, 28, dtype=torch.uint8), batch_size=2).shape)
    (3, 128)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size!r}")
    device = _module_device(feature_net)
    chunks = [
        feature_net(_as_float_images(images[start : start + batch_size]).to(device)).to("cpu", torch.float64)
        for start in range(0, images.shape[0], batch_size)
    ]
    if not chunks:
        return torch.empty(0, int(getattr(feature_net, "num_features", 0)), dtype=torch.float64)
    return torch.cat(chunks).reshape(images.shape[0], -1)


class ReferenceFID:
    """FID of any number of generated sets against one fixed reference set, whose features are computed once.

    ``distance(fake_images)`` gives what ``frechet_distance(feature_net, real_images, fake_images)`` gives; a
    benchmark comparing many models with one reference keeps one of these instead of re-reading the reference
    for every model (torchmetrics' ``reset_real_features=False``).

    >>> net = DomainFeatureNet(AttributeJudge(num_classes=3, num_hue_bins=6))
    >>> images = torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    >>> abs(ReferenceFID(net, images).distance(images)) < 1e-6
    True
    """

    def __init__(self, feature_net: nn.Module, real_images: torch.Tensor, batch_size: int = 500) -> None:
        # Imported here: torchmetrics adds about 1 s to `import cauvade_pyro.metrics`, which the CLI imports.
        from torchmetrics.image.fid import FrechetInceptionDistance

        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size!r}")
        _check_set("real_images", real_images)
        num_features = getattr(feature_net, "num_features", None)
        if not isinstance(num_features, int):
            raise TypeError("feature_net: needs an int attribute num_features (the feature dimension)")
        self.batch_size = batch_size
        self.device = _module_device(feature_net)
        # A custom module gets the images exactly as passed to update(): normalize=True only documents that they
        # are floats in [0, 1] (with the Inception net it would rescale them to uint8). The metric is moved to the
        # net's device: Module.to moves the net in place, a no-op here since it is already there.
        self.metric = FrechetInceptionDistance(
            feature=feature_net, normalize=True, reset_real_features=False
        ).to(self.device)
        self._update(real_images, real=True)

    def _update(self, images: torch.Tensor, real: bool) -> None:
        for start in range(0, images.shape[0], self.batch_size):
            batch = _as_float_images(images[start : start + self.batch_size]).to(self.device)
            self.metric.update(batch, real=real)

    @torch.no_grad()
    def distance(self, fake_images: torch.Tensor) -> float:
        """Fréchet distance between the reference and ``fake_images`` (uint8 or float in [0, 1])."""
        _check_set("fake_images", fake_images)
        self.metric.reset()  # clears the generated set only
        self._update(fake_images, real=False)
        return float(self.metric.compute())


def _check_set(name: str, images: torch.Tensor) -> None:
    if images.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 images, got {images.shape[0]}")


@torch.no_grad()
def frechet_distance(
    feature_net: nn.Module,
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    batch_size: int = 500,
) -> float:
    """Fréchet distance between ``real_images`` and ``fake_images`` in the features of ``feature_net``.

    Images are uint8 in [0, 255] (converted to float / 255) or float in [0, 1], on any device; the features are
    computed batch by batch on ``feature_net``'s device. ``feature_net`` must have an int ``num_features`` and
    map a batch to features (batch, num_features); return float64 features to get a float64 distance
    (torchmetrics accumulates in float64 but casts the result back to the features' dtype). Each set needs at
    least 2 images.

    >>> net = DomainFeatureNet(AttributeJudge(num_classes=3, num_hue_bins=6))
    >>> images = torch.rand(8, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    >>> abs(frechet_distance(net, images, images)) < 1e-6
    True
    """
    _check_set("fake_images", fake_images)  # before the reference's features are computed
    return ReferenceFID(feature_net, real_images, batch_size).distance(fake_images)


class _InceptionFeatures(nn.Module):
    """torchmetrics' Inception-v3 pool features (2048-d, float64) for float images in [0, 1] or uint8."""

    def __init__(self, inception: nn.Module) -> None:
        super().__init__()
        self.inception = inception
        self.num_features = 2048

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:  # the Inception net wants uint8 and resizes to 299×299 itself
            images = (images * 255.0).round().clamp(0, 255).to(torch.uint8)
        return self.inception(images).to(torch.float64)


def inception_feature_net(
    weights_path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """Inception-v3 (torch-fidelity's FID network, 2048-d pool features) as a feature net for
    :func:`frechet_distance`, giving FID proper.

    Needs ``torch-fidelity`` (not a dependency of this package) and its weights, downloaded on first use or read
    from ``weights_path``. Raises a one-line :class:`RuntimeError` when either is unavailable; the default
    feature net is the domain one, :func:`train_feature_net`.
    """
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if not _TORCH_FIDELITY_AVAILABLE:
        raise RuntimeError(
            "Inception FID needs torch-fidelity (pip install torch-fidelity), which is not installed; "
            "the default FID feature net is the domain one (train_feature_net)"
        )
    from torchmetrics.image.fid import NoTrainInceptionV3

    try:
        inception = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=None if weights_path is None else os.fspath(weights_path),
        )
    except Exception as error:  # no network, bad path, corrupt file: all mean "no weights"
        detail = " ".join(str(error).split()) or type(error).__name__
        raise RuntimeError(
            f"Inception FID weights are unavailable ({type(error).__name__}: {detail}); "
            "the default FID feature net is the domain one (train_feature_net)"
        ) from error
    return _InceptionFeatures(inception).to(device)


def mean_pairwise_distance(
    features: torch.Tensor, max_rows: int = _MAX_PAIRWISE_ROWS, seed: int = 0
) -> float:
    """Mean Euclidean distance over distinct pairs of rows of ``features`` (n, d).

    Above ``max_rows`` rows, a subsample of ``max_rows`` rows drawn with ``seed`` (deterministic) is used.

    >>> mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]))  # sides 3, 4, 5
    4.0
    """
    features = torch.as_tensor(features)
    if features.dim() < 1 or features.shape[0] < 2:
        raise ValueError(f"features: need at least 2 rows, got shape {tuple(features.shape)}")
    if max_rows < 2:
        raise ValueError(f"max_rows: must be >= 2, got {max_rows!r}")
    features = features.detach().reshape(features.shape[0], -1).to(torch.float64)
    if features.shape[0] > max_rows:
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(features.shape[0], generator=generator)[:max_rows]
        features = features[index.to(features.device)]
    n = features.shape[0]
    distances = torch.cdist(features[None], features[None])[0]
    upper = torch.triu_indices(n, n, offset=1, device=features.device)
    return float(distances[upper[0], upper[1]].mean())
