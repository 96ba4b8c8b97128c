"""A KL weight per entry of the image noise ε: β_d · KL(q(ε_d) ‖ N(0, 1)) summed over d.

``poutine.scale`` weighs a whole sample site, so one β prices every entry of ε alike. The image model's
``colour_eps_dim`` option gives the entries that drive only the decoder's colour layer their own β_c (e.g. 1
while the shape entries keep β = 16): :class:`DimensionScaled` wraps the site's factorised Normal in model and
guide, so the ELBO's ε term becomes

    Σ_d β_d [log N(ε_d; 0, 1) − log q(ε_d | image, x, y)],    ε ~ q(ε | image, x, y),

which is Σ_d β_d KL_d in expectation (both sides factorise over d). Draws are the base distribution's, unchanged;
only log-densities are weighted. A non-factorised base (the fitted ε mixture) has no per-entry density: its
``log_prob`` raises, which a held-out ELBO never meets because it runs at β = 1, where no weighting is applied.

>>> import torch
>>> base = dist.Normal(torch.zeros(3), torch.ones(3)).to_event(1)
>>> weighted = DimensionScaled(base, torch.tensor([2.0, 2.0, 1.0]))
>>> value = torch.tensor([1.0, 0.0, 1.0])
>>> expected = (dist.Normal(0.0, 1.0).log_prob(value) * torch.tensor([2.0, 2.0, 1.0])).sum()
>>> bool(torch.isclose(weighted.log_prob(value), expected))
True
"""

from __future__ import annotations

import torch
from torch.distributions import constraints

import pyro.distributions as dist
from pyro.distributions.torch_distribution import TorchDistribution


class DimensionScaled(TorchDistribution):
    """A factorised ``Independent(Normal)`` over the last dimension whose log-density weighs entry d by ``weights[d]``."""

    arg_constraints: dict = {}

    def __init__(self, base: dist.Distribution, weights: torch.Tensor, validate_args=None):
        if base.event_shape[-1:] != weights.shape:
            raise ValueError(f"weights must have shape {tuple(base.event_shape[-1:])}, got {tuple(weights.shape)}")
        self.base, self.weights = base, weights
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def has_rsample(self) -> bool:  # the fitted ε mixture samples without a reparameterisation
        return self.base.has_rsample

    @property
    def support(self):
        return constraints.independent(constraints.real, 1)

    def expand(self, batch_shape, _instance=None):
        return DimensionScaled(self.base.expand(batch_shape), self.weights)

    def sample(self, sample_shape=torch.Size()):
        return self.base.sample(sample_shape)

    def rsample(self, sample_shape=torch.Size()):
        return self.base.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        normal = getattr(self.base, "base_dist", None)
        if not isinstance(normal, torch.distributions.Normal) or len(self.base.event_shape) != 1:
            raise ValueError("a KL weight per ε entry needs a factorised Normal ε law (N(0, I) or q(ε | ·)), got "
                             f"{type(self.base).__name__}; train before fitting the ε mixture")
        return (normal.log_prob(value) * self.weights).sum(-1)
