"""Neural networks for 28×28 images (1 or 3 channels): conditional encoders and decoders.

Decoders map a condition vector ``cond`` (one-hot attributes, e.g. ``[onehot(x), onehot(y)]``) and an
independent noise ``eps`` to image logits. A decoder which sees its conditions at the input only learns to read
what it can from ``eps`` and ignores them (measured here: y-flip followed in 0.49 of held-out codes,
``benchmarks/results/image_model_ablation_concat.json``), while FiLM conditioning of *every* layer,

    h ← (1 + γ_ℓ(cond)) ⊙ h + β_ℓ(cond),

made the conditions effective (x-flip and y-flip 1.00, ``image_model_ablation.json``; docs/design.md §7). Both
decoders here therefore condition every layer.

>>> import torch
>>> dec = ConvDecoder(cond_dim=9, eps_dim=4, channels=3)
>>> dec(torch.zeros(2, 9), torch.zeros(2, 4)).shape
torch.Size([2, 3, 28, 28])
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn

from .precision import autocast_forward

IMAGE_SIZE = 28
EPS_FILM = ("none", "last", "all")  # which FiLM layers of the conv decoder ε also drives (ConvDecoder)
# What the image model's ``eps_film`` option may be: the conv decoder's last FiLM layer driven by ε alone, or not
# (docs/images.md); "all" and the (cond, ε) embeddings stay ablation variants (CONV_VARIANTS)
IMAGE_EPS_FILM = ("none", "last")
EMBED_DIM = 64


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


class DiscretizedLogistic(dist.TorchDistribution):
    r"""Per-pixel logistic discretised to ``num_levels`` levels of [0, 1] (PixelCNN++'s likelihood, one component).

    With location μ (unconstrained), scale s and half a level h = 1 / (2 (L − 1)), a pixel value v on the grid has

    .. math::

        P(v) = \sigma\big(\tfrac{v + h - μ}{s}\big) - \sigma\big(\tfrac{v - h - μ}{s}\big),

    with the whole lower tail on v = 0 and the whole upper tail on v = 1. A probability, so log P ≤ 0: the
    scale cannot collapse to buy an unbounded likelihood on the black background, as a Gaussian density can.
    ``mean`` is the mean of the logistic clipped to [0, 1] (before rounding to the grid),
    1 − s [softplus((1 − μ)/s) − softplus(−μ/s)].

    >>> d = DiscretizedLogistic(torch.tensor([0.5, -3.0]), torch.tensor([0.01, 0.01]))
    >>> [round(float(p), 4) for p in d.log_prob(torch.tensor([0.5, 0.0])).exp()]
    [0.0977, 1.0]
    >>> [round(float(m), 4) for m in d.mean]
    [0.5, 0.0]
    """

    arg_constraints = {"loc": dist.constraints.real, "scale": dist.constraints.positive}
    support = dist.constraints.unit_interval
    has_rsample = False

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, num_levels: int = 256, validate_args=None):
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.num_levels = num_levels
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedLogistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc, new.scale = self.loc.expand(batch_shape), self.scale.expand(batch_shape)
        new.num_levels = self.num_levels
        super(DiscretizedLogistic, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        softplus = nn.functional.softplus
        return 1.0 - self.scale * (softplus((1.0 - self.loc) / self.scale) - softplus(-self.loc / self.scale))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        softplus = nn.functional.softplus
        half = 0.5 / (self.num_levels - 1)
        centred = (value - self.loc) / self.scale
        plus, minus = centred + half / self.scale, centred - half / self.scale
        log_cdf_plus = plus - softplus(plus)  # log σ(plus): the lower tail, for v = 0
        log_survival_minus = -softplus(minus)  # log(1 − σ(minus)): the upper tail, for v = 1
        delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        # far in a tail the difference of sigmoids underflows: the density at the centre times the level width
        log_density = centred - self.scale.log() - 2.0 * softplus(centred) + math.log(2.0 * half)
        interior = torch.where(delta > 1e-5, delta.clamp_min(1e-12).log(), log_density)
        return torch.where(value < half, log_cdf_plus, torch.where(value > 1.0 - half, log_survival_minus, interior))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(1e-6, 1.0 - 1e-6)
            draw = (self.loc + self.scale * (u.log() - (-u).log1p())).clamp(0.0, 1.0)
            levels = self.num_levels - 1
            return torch.round(draw * levels) / levels


def likelihood_params(kind: str) -> int:
    """Decoder output maps per image channel: 2 for the discretised logistic (location, scale), else 1."""
    return 2 if kind == "logistic" else 1


def image_likelihood(kind: str, logits: torch.Tensor):
    """The image distribution over (C, H, W) for decoder ``logits``: ``bernoulli`` (pixel intensities as
    probabilities), or ``logistic`` (``logits`` with 2C channels: locations, then scales) a
    :class:`DiscretizedLogistic` over the 256 levels of 8-bit pixels.

    The continuous Bernoulli and a Gaussian with mean sigmoid(logits) and a learned scale were options until
    they were measured (benchmarks/likelihood_ablation.py, docs/images.md): the continuous Bernoulli's mean
    images kept x-flip effectiveness at 0.79, and the Gaussian's decoder saturated to all-black images
    (effectiveness at chance).
    """
    if kind == "bernoulli":
        base = dist.Bernoulli(logits=logits, validate_args=False)
    elif kind == "logistic":
        loc, scale = logistic_params(logits)
        base = DiscretizedLogistic(loc, scale, validate_args=False)
    else:
        raise ValueError(f"model.image.likelihood must be bernoulli or logistic, got {kind!r}")
    return base.to_event(3)


def logistic_params(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(location, scale) of the discretised logistic from 2C decoder maps; the scale is at least 1e-3."""
    if logits.shape[-3] % 2:
        raise ValueError(f"logistic likelihood: the decoder must give 2C channels, got {logits.shape[-3]}")
    loc, raw_scale = logits.chunk(2, dim=-3)
    return loc, nn.functional.softplus(raw_scale - 3.0) + 1e-3


def image_mean(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """The mean image of the likelihood ``kind`` for decoder ``logits`` (what sample grids show).

    Bernoulli: sigmoid(logits); logistic: the clipped logistic's mean (not sigmoid of anything).

    >>> image_mean("bernoulli", torch.tensor([0.0])).tolist()
    [0.5]
    """
    if kind == "logistic":
        loc, scale = logistic_params(logits)
        return DiscretizedLogistic(loc, scale, validate_args=False).mean
    return torch.sigmoid(logits)


def _flatten_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Size]:
    """Collapse the shared leading batch dims of two vectors into one, for the networks."""
    batch_shape = a.shape[:-1]
    return (a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])), batch_shape


class ConvDecoder(nn.Module):
    """FiLM-conditioned transposed-conv decoder: (cond, eps) → image logits (C, 28, 28)."""

    def __init__(self, cond_dim: int, eps_dim: int, channels: int = 3, hidden: int = 64, film: bool = True,
                 eps_film: str = "none", colour_gain: bool = False, embed_cond: bool = True):
        super().__init__()
        if eps_film not in EPS_FILM:
            raise ValueError(f"eps_film must be one of {EPS_FILM}, got {eps_film!r}")
        self.channels, self.hidden, self.film, self.eps_film = channels, hidden, film, eps_film
        self.stem = nn.Linear(cond_dim + eps_dim, hidden * 7 * 7)
        # eps_film: FiLM layers also driven by an embedding of ε (embed_cond: of (cond, ε)), so ε can modulate the
        # features, e.g. the image's colour, per image; "none" builds exactly the plain decoder. Through the stem
        # alone ε can only add to the features, which cannot scale a colour channel against the grey level
        rich_dim = cond_dim
        self.embed_cond = embed_cond
        if eps_film != "none":
            self.embed = nn.Sequential(nn.Linear((cond_dim if embed_cond else 0) + eps_dim, EMBED_DIM), nn.SiLU())
            rich_dim = cond_dim + EMBED_DIM
        self.film0 = FiLM(rich_dim if eps_film == "all" else cond_dim, hidden)
        self.up1 = nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1)  # 7 → 14
        self.film1 = FiLM(rich_dim if eps_film == "all" else cond_dim, hidden // 2)
        self.up2 = nn.ConvTranspose2d(hidden // 2, hidden // 2, 4, stride=2, padding=1)  # 14 → 28
        self.film2 = FiLM(rich_dim, hidden // 2)
        # colour_gain: a per-image gain κ_c(cond, ε) ∈ (0, 1) per output channel multiplies the pixel probability,
        # p_c = σ(ℓ_c) κ_c: one direct path for a colour (or brightness) that varies from image to image
        self.colour_gain = colour_gain
        if colour_gain:
            self.gain = nn.Sequential(nn.Linear(cond_dim + eps_dim, EMBED_DIM), nn.SiLU(),
                                      nn.Linear(EMBED_DIM, channels))
            nn.init.zeros_(self.gain[2].weight)
            nn.init.constant_(self.gain[2].bias, 4.0)  # κ ≈ 0.98 at the start: the plain decoder
        self.out = nn.Conv2d(hidden // 2, channels, 3, padding=1)
        self.act = nn.SiLU()

    @autocast_forward
    def forward(self, cond: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        cond, eps = broadcast_vectors(cond, eps)
        (cond, eps), batch_shape = _flatten_pair(cond, eps)
        h = self.stem(torch.cat([cond, eps], -1)).view(-1, self.hidden, 7, 7)
        if self.eps_film == "none":
            rich = cond
        else:
            rich = torch.cat([cond, self.embed(torch.cat([cond, eps], -1) if self.embed_cond else eps)], -1)
        early = rich if self.eps_film == "all" else cond
        h = self.act(self._modulate(self.film0, h, early))
        h = self.act(self._modulate(self.film1, self.up1(h), early))
        h = self.act(self._modulate(self.film2, self.up2(h), rich))
        logits = self.out(h)
        if self.colour_gain:
            log_gain = nn.functional.logsigmoid(self.gain(torch.cat([cond, eps], -1)))[..., None, None]
            log_p = nn.functional.logsigmoid(logits.float()) + log_gain.float()
            logits = log_p - torch.log1p(-log_p.exp().clamp(max=1 - 1e-6))  # logit of σ(ℓ) κ
        return logits.reshape(batch_shape + logits.shape[1:])

    def _modulate(self, film: FiLM, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # film=False keeps the conditions at the input only: the ablation whose decoder ignored them (docs/design.md §7)
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
# Ablation variants of the conv decoder (benchmarks/image_model_ablation.py): conditions at the input only, or
# ε driving the last FiLM layer ("colour") or every FiLM layer ("epsfilm") through an embedding of (cond, ε).
CONV_VARIANTS = {"conv_concat": "none", "conv_colour": "last", "conv_epsfilm": "all", "conv_gain": "none"}


def make_encoder(kind: str, channels: int, out_dim: int = 256) -> nn.Module:
    kind = "conv" if kind in CONV_VARIANTS else kind
    if kind not in ENCODERS:
        raise ValueError(f"model.image.net must be one of {sorted(ENCODERS)}, got {kind!r}")
    return ENCODERS[kind](channels=channels, out_dim=out_dim)


def make_decoder(kind: str, cond_dim: int, eps_dim: int, channels: int, eps_film: str = "none") -> nn.Module:
    """``conv`` or ``mlp`` (both FiLM-conditioned), or ``conv_concat`` (conditions at the input only; an ablation).

    ``eps_film="last"`` (conv only): an embedding of ε alone also drives the last FiLM layer (the image model's
    ``eps_film`` option)."""
    if eps_film not in IMAGE_EPS_FILM:
        raise ValueError(f"eps_film must be one of {IMAGE_EPS_FILM}, got {eps_film!r}")
    if eps_film != "none":
        if kind != "conv":
            raise ValueError(f"eps_film={eps_film!r} needs the conv decoder, got {kind!r}")
        return ConvDecoder(cond_dim=cond_dim, eps_dim=eps_dim, channels=channels, eps_film=eps_film, embed_cond=False)
    if kind == "conv_concat":
        return ConvDecoder(cond_dim=cond_dim, eps_dim=eps_dim, channels=channels, film=False)
    if kind == "conv_gain":
        return ConvDecoder(cond_dim=cond_dim, eps_dim=eps_dim, channels=channels, colour_gain=True)
    if kind in CONV_VARIANTS:
        return ConvDecoder(cond_dim=cond_dim, eps_dim=eps_dim, channels=channels, eps_film=CONV_VARIANTS[kind])
    if kind not in DECODERS:
        raise ValueError(f"model.image.net must be one of {sorted(DECODERS)}, got {kind!r}")
    return DECODERS[kind](cond_dim=cond_dim, eps_dim=eps_dim, channels=channels)
