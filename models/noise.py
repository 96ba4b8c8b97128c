"""The prior of an independent noise site ε: N(0, I), or a Gaussian mixture fitted after training.

    p(ε) = N(ε; 0, I)                            until a mixture is set (and always during training)
    p(ε) = Σ_m w_m N(ε; μ_m, L_m L_mᵀ)          once :meth:`NoiseMixture.set` (or, fitted to an encoder's
                                                 codes, :func:`cauvade_pyro.inference.fit_eps_prior`) gives one

A VAE trained with ε ~ N(0, I) leaves its aggregate posterior q(ε) = (1/N) Σ_n q(ε | image_n, …) unequal to
N(0, I): prior draws then fall where no real image is encoded and decode to images unlike the data. A mixture
fitted to the codes after training puts them back where the data are (the two-stage / ex-post density
estimation idea: Dai & Wipf 2019; Ghosh et al. 2020). One mixture serves every condition, so ε stays
independent of everything else in the diagram and every causal statement is unchanged.

>>> import torch
>>> noise = NoiseMixture(dim=2, components=3)
>>> noise.fitted, noise.distribution(torch.zeros(1)).event_shape
(False, torch.Size([2]))
>>> noise.set(torch.zeros(3), torch.ones(3, 2), torch.eye(2).expand(3, 2, 2))
>>> noise.fitted, noise.sample(4).shape
(True, torch.Size([4, 2]))
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn


class NoiseMixture(nn.Module):
    """p(ε) of dimension ``dim``: N(0, I), with room for a mixture of ``components`` Gaussians (0: none).

    With ``components`` = 0 the module holds no buffers, so state dicts of models built before the option load
    unchanged.
    """

    def __init__(self, dim: int, components: int = 0):
        super().__init__()
        if int(components) < 0:
            raise ValueError(f"eps_prior_components must be >= 0, got {components}")
        self.dim, self.components = int(dim), int(components)
        # A Python flag, not a tensor: choosing the prior inside a training step must not read the GPU.
        self.fitted = False
        if self.components:
            m = self.components
            self.register_buffer("logits", torch.zeros(m))
            self.register_buffer("loc", torch.zeros(m, self.dim))
            self.register_buffer("scale_tril", torch.eye(self.dim).expand(m, self.dim, self.dim).clone())
            self.register_buffer("is_fitted", torch.zeros((), dtype=torch.bool))
            self.register_load_state_dict_post_hook(_read_fitted_flag)

    def set(self, logits: torch.Tensor, loc: torch.Tensor, scale_tril: torch.Tensor) -> None:
        """Make p(ε) the mixture Σ_m softmax(logits)_m N(loc_m, scale_tril_m scale_tril_mᵀ)."""
        if not self.components:
            raise ValueError("this model was built with eps_prior_components=0: it has no mixture prior")
        self.logits.copy_(logits)
        self.loc.copy_(loc)
        self.scale_tril.copy_(scale_tril)
        self.is_fitted.fill_(True)
        self.fitted = True

    def distribution(self, like: torch.Tensor) -> dist.Distribution:
        """p(ε) with event shape (dim,); ``like`` gives the device of N(0, I)."""
        if self.fitted:
            # validate_args=False: checking the tables' constraints would read them back from the GPU
            weights = dist.Categorical(logits=self.logits, validate_args=False)
            components = dist.MultivariateNormal(self.loc, scale_tril=self.scale_tril, validate_args=False)
            return dist.MixtureSameFamily(weights, components, validate_args=False)
        zero = like.new_zeros((), dtype=torch.get_default_dtype())
        # zero + 1.0, not a Python 1.0: that would be copied to the GPU, a host-device sync
        return dist.Normal(zero, zero + 1.0).expand([self.dim]).to_event(1)

    def log_prob(self, eps: torch.Tensor) -> torch.Tensor:
        """log p(ε), summed over ε's last dimension."""
        return self.distribution(eps).log_prob(eps)

    def sample(self, num_samples: int, device: torch.device | str | None = None) -> torch.Tensor:
        """``num_samples`` draws outside a Pyro program (global RNG); unfitted, exactly ``torch.randn``'s."""
        if not self.fitted:
            return torch.randn(num_samples, self.dim, device=device)
        return self.distribution(self.loc).sample((num_samples,)).to(device if device is not None else self.loc.device)


def _read_fitted_flag(module: NoiseMixture, incompatible_keys) -> None:
    """After a state dict is loaded: whether it held a fitted mixture (read once, at load time)."""
    module.fitted = bool(module.is_fitted)
