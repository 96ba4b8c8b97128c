"""Neural networks for 28×28 images (1 or 3 channels): conditional encoders and decoders.

Decoders map a condition vector ``cond`` (one-hot attributes, e.g. ``[onehot(x), onehot(y)]``) and an
independent noise ``eps`` to image logits. DESIGN.md §7 measured that a decoder which sees its conditions at
the input only learns to read shape and colour from ``eps`` and ignores them (flip-x 0.65–0.82), while FiLM
conditioning of *every* layer,

    h ← (1 + γ_ℓ(cond)) ⊙ h + β_ℓ(cond),

made the conditions effective (flip-x 0.91–1.00). Both decoders here therefore condition every layer.

>>> import torch
>>> dec = ConvDecoder(cond_dim=9, eps_dim=4, channels=3)
>>> dec(torch.zeros(2, 9), torch.zeros(2, 4)).shape
torch.Size([2, 3, 28, 28])
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from .precision import autocast_forward

IMAGE_SIZE = 28


class FiLM(nn.Module):
    """Feature-wise affine modulation of a (B, C, ...) tensor by a condition vector."""

    def __init__(self, cond_dim: int, num_features: int):
        super().__init__()
        self.affine = nn.Linear(cond_dim, 2 * num_features)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.affine(cond).chunk(2, dim=-1)
        view = scale.shape + (1,) * (h.dim() - scale.dim())
        return h * (1 + scale.view(view)) + shift.view(view)


def broadcast_vectors(*vectors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Broadcast the batch dims of vectors of different sizes (enumeration may add leading dims to some)."""
    batch_shape = torch.broadcast_shapes(*(v.shape[:-1] for v in vectors))
    return tuple(v.expand(batch_shape + v.shape[-1:]) for v in vectors)


def concat_vectors(*vectors: torch.Tensor) -> torch.Tensor:
    """Concatenate vectors along the last dim after broadcasting their batch dims."""
    return torch.cat(broadcast_vectors(*vectors), -1)


def image_likelihood(kind: str, logits: torch.Tensor, pixel_scale: torch.Tensor | float = 0.1):
    """The image distribution over (C, H, W) for decoder ``logits``: Bernoulli, continuous Bernoulli, or a
    Gaussian with mean sigmoid(logits) and standard deviation ``pixel_scale``."""
    if kind == "bernoulli":
        base = dist.Bernoulli(logits=logits, validate_args=False)
    elif kind == "continuous_bernoulli":
        base = dist.ContinuousBernoulli(logits=logits, validate_args=False)
    else:
        if not torch.is_tensor(pixel_scale):  # a Python number would be copied to the GPU: a host-device sync
            pixel_scale = logits.new_full((), pixel_scale)
        base = dist.Normal(torch.sigmoid(logits), pixel_scale, validate_args=False)
    return base.to_event(3)


def _flatten_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Size]:
    """Collapse the shared leading batch dims of two vectors into one, for the networks."""
    batch_shape = a.shape[:-1]
    return (a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])), batch_shape


class ConvDecoder(nn.Module):
    """FiLM-conditioned transposed-conv decoder: (cond, eps) → image logits (C, 28, 28)."""

    def __init__(self, cond_dim: int, eps_dim: int, channels: int = 3, hidden: int = 64, film: bool = True):
        super().__init__()
        self.channels, self.hidden, self.film = channels, hidden, film
        self.stem = nn.Linear(cond_dim + eps_dim, hidden * 7 * 7)
        self.film0 = FiLM(cond_dim, hidden)
        self.up1 = nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1)  # 7 → 14
        self.film1 = FiLM(cond_dim, hidden // 2)
        self.up2 = nn.ConvTranspose2d(hidden // 2, hidden // 2, 4, stride=2, padding=1)  # 14 → 28
        self.film2 = FiLM(cond_dim, hidden // 2)
        self.out = nn.Conv2d(hidden // 2, channels, 3, padding=1)
        self.act = nn.SiLU()

    @autocast_forward
    def forward(self, cond: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        cond, eps = broadcast_vectors(cond, eps)
        (cond, eps), batch_shape = _flatten_pair(cond, eps)
        h = self.stem(torch.cat([cond, eps], -1)).view(-1, self.hidden, 7, 7)
        h = self.act(self._modulate(self.film0, h, cond))
        h = self.act(self._modulate(self.film1, self.up1(h), cond))
        h = self.act(self._modulate(self.film2, self.up2(h), cond))
        logits = self.out(h)
        return logits.reshape(batch_shape + logits.shape[1:])

    def _modulate(self, film: FiLM, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # film=False keeps the conditions at the input only: the ablation that DESIGN.md §7 found ignored
        return film(h, cond) if self.film else h


class MLPDecoder(nn.Module):
    """FiLM-conditioned MLP decoder: (cond, eps) → image logits (C, 28, 28)."""

    def __init__(self, cond_dim: int, eps_dim: int, channels: int = 3, hidden: int = 512):
        super().__init__()
        self.channels = channels
        self.fc1 = nn.Linear(cond_dim + eps_dim, hidden)
        self.film1 = FiLM(cond_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.film2 = FiLM(cond_dim, hidden)
        self.out = nn.Linear(hidden, channels * IMAGE_SIZE * IMAGE_SIZE)
        self.act = nn.SiLU()

    @autocast_forward
    def forward(self, cond: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        cond, eps = broadcast_vectors(cond, eps)
        (cond, eps), batch_shape = _flatten_pair(cond, eps)
        h = self.act(self.film1(self.fc1(torch.cat([cond, eps], -1)), cond))
        h = self.act(self.film2(self.fc2(h), cond))
        logits = self.out(h).view(-1, self.channels, IMAGE_SIZE, IMAGE_SIZE)
        return logits.reshape(batch_shape + logits.shape[1:])


class _ImageTrunk(nn.Module):
    """Applies ``self.net`` to (…, C, 28, 28) images, keeping any leading batch dims."""

    net: nn.Module
    out_dim: int

    @autocast_forward
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch_shape = image.shape[:-3]
        features = self.net(image.reshape((-1,) + image.shape[-3:]))
        return features.reshape(batch_shape + (self.out_dim,))


class ConvEncoder(_ImageTrunk):
    """Conv trunk for (…, C, 28, 28) images → a feature vector of size ``out_dim``."""

    def __init__(self, channels: int = 3, out_dim: int = 256, hidden: int = 32):
        super().__init__()
        self.channels, self.out_dim = channels, out_dim
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 4, stride=2, padding=1),  # 28 → 14
            nn.SiLU(),
            nn.Conv2d(hidden, 2 * hidden, 4, stride=2, padding=1),  # 14 → 7
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * hidden * 7 * 7, out_dim),
            nn.SiLU(),
        )


class MLPEncoder(_ImageTrunk):
    """MLP trunk for (…, C, 28, 28) images → a feature vector of size ``out_dim``."""

    def __init__(self, channels: int = 3, out_dim: int = 256, hidden: int = 512):
        super().__init__()
        self.channels, self.out_dim = channels, out_dim
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * IMAGE_SIZE * IMAGE_SIZE, hidden),
            nn.SiLU(),
            nn.Linear(hidden, out_dim),
            nn.SiLU(),
        )


class GaussianHead(nn.Module):
    """Features (+ optional condition vector) → (loc, scale) of a diagonal Gaussian."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, 2 * out_dim))

    @autocast_forward
    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.net(features).chunk(2, dim=-1)
        return loc, nn.functional.softplus(raw_scale) + 1e-4


ENCODERS = {"conv": ConvEncoder, "mlp": MLPEncoder}
DECODERS = {"conv": ConvDecoder, "mlp": MLPDecoder}


def make_encoder(kind: str, channels: int, out_dim: int = 256) -> nn.Module:
    kind = "conv" if kind == "conv_concat" else kind
    if kind not in ENCODERS:
        raise ValueError(f"model.image.net must be one of {sorted(ENCODERS)}, got {kind!r}")
    return ENCODERS[kind](channels=channels, out_dim=out_dim)


def make_decoder(kind: str, cond_dim: int, eps_dim: int, channels: int) -> nn.Module:
    """``conv`` or ``mlp`` (both FiLM-conditioned), or ``conv_concat`` (conditions at the input only; an ablation)."""
    if kind == "conv_concat":
        return ConvDecoder(cond_dim=cond_dim, eps_dim=eps_dim, channels=channels, film=False)
    if kind not in DECODERS:
        raise ValueError(f"model.image.net must be one of {sorted(DECODERS)}, got {kind!r}")
    return DECODERS[kind](cond_dim=cond_dim, eps_dim=eps_dim, channels=channels)
