"""The prior of the image noise ε: N(0, I), or a Gaussian mixture per condition fitted after training.

    p(ε | k) = N(ε; 0, I)                              until a mixture is set (and always during training)
    p(ε | k) = Σ_m w_{k,m} N(ε; μ_{k,m}, L_{k,m} L_{k,m}ᵀ)   once :meth:`NoiseMixture.set` gives one (fitted to an
                                                        encoder's codes by :func:`cauvade_pyro.inference.fit_eps_prior`)

where the condition k is a value of the image's parents the model chooses: x, or the cell (x, y) of the default
diagram's image model (``eps_prior_given``); never the confounder c.

A VAE trained with ε ~ N(0, I) leaves its aggregate posterior q(ε) = (1/N) Σ_n q(ε | image_n, …) unequal to
N(0, I): prior draws then fall where no real image is encoded and decode to images unlike the data. A mixture
fitted to the codes after training puts them back where the data are (the two-stage / ex-post density
estimation idea: Dai & Wipf 2019; Ghosh et al. 2020). The codes of different x differ (the encoder may lay out
size and position differently for each shape), and so, less, do those of different y.

**What it keeps and what it costs.** ε's law may depend on the image's parents, never on the confounder c:
image = f(x, y, ε) with ε ~ p(ε | x, y) is the mechanism image = f(x, y, T_{x,y}(ε̃)) with ε̃ ~ N(0, I)
independent of everything, T_{x,y} the map that turns N(0, I) into p(· | x, y). So the model stays a causal model
in which P(image | do(x)) = Σ_y P(y | do(x)) p(image | x, y), with p(image | x, y) the model's own conditional law;
the interventional statements keep their meaning. Costs: (1) per x only, the codes are pooled over y with the
data's weights P(y | x), so an (x, y) cell the data rarely show is decoded mostly from codes of other y — the
per-cell mixture avoids that, at the price of fewer codes per mixture (a cell with fewer than two codes keeps
N(0, I)); (2) a flip that holds ε fixed while changing x or y (the effectiveness checks) no longer holds the
underlying noise ε̃ fixed, so those checks say whether the decoder obeys its inputs, not what a counterfactual
would be.

>>> import torch
>>> noise = NoiseMixture(dim=2, components=3, num_conditions=2)
>>> noise.fitted, noise.distribution(torch.tensor([0, 1])).event_shape
(False, torch.Size([2]))
>>> noise.set(torch.zeros(2, 3), torch.ones(2, 3, 2), torch.eye(2).expand(2, 3, 2, 2))
>>> noise.fitted, noise.distribution(torch.tensor([0, 1, 1])).batch_shape, noise.sample(torch.tensor([0, 1, 1])).shape
(True, torch.Size([3]), torch.Size([3, 2]))
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn


class NoiseMixture(nn.Module):
    """p(ε | k) of dimension ``dim``: N(0, I), with room for ``components`` Gaussians per value k of the condition
    (``num_conditions`` values: those of x, or of (x, y) for a model that conditions on both; 0 components: none).

    With ``components`` = 0 the module holds no buffers, so state dicts of models built before the option load
    unchanged.
    """

    def __init__(self, dim: int, components: int = 0, num_conditions: int = 1):
        super().__init__()
        if int(components) < 0:
            raise ValueError(f"eps_prior_components must be >= 0, got {components}")
        self.dim, self.components, self.num_conditions = int(dim), int(components), int(num_conditions)
        # A Python flag, not a tensor: choosing the prior inside a training step must not read the GPU.
        self.fitted = False
        if self.components:
            shape = (self.num_conditions, self.components)
            self.register_buffer("logits", torch.zeros(shape))
            self.register_buffer("loc", torch.zeros(*shape, self.dim))
            self.register_buffer("scale_tril", torch.eye(self.dim).expand(*shape, self.dim, self.dim).clone())
            self.register_buffer("is_fitted", torch.zeros((), dtype=torch.bool))
            self.register_load_state_dict_post_hook(_read_fitted_flag)

    def set(self, logits: torch.Tensor, loc: torch.Tensor, scale_tril: torch.Tensor) -> None:
        """Make p(ε | k) the mixture Σ_m softmax(logits[k])_m N(loc[k, m], scale_tril[k, m] scale_tril[k, m]ᵀ);
        shapes (num_conditions, M), (num_conditions, M, dim), (num_conditions, M, dim, dim)."""
        if not self.components:
            raise ValueError("this model was built with eps_prior_components=0: it has no mixture prior")
        self.logits.copy_(logits)
        self.loc.copy_(loc)
        self.scale_tril.copy_(scale_tril)
        self.is_fitted.fill_(True)
        self.fitted = True

    def distribution(self, x: torch.Tensor) -> dist.Distribution:
        """p(ε | k) for the condition indices ``x`` (batch shape ``x.shape`` when fitted; N(0, I) broadcasts),
        event shape (dim,)."""
        if self.fitted:
            # validate_args=False: checking the tables' constraints would read them back from the GPU
            weights = dist.Categorical(logits=self.logits[x], validate_args=False)
            components = dist.MultivariateNormal(self.loc[x], scale_tril=self.scale_tril[x], validate_args=False)
            return dist.MixtureSameFamily(weights, components, validate_args=False)
        zero = x.new_zeros((), dtype=torch.get_default_dtype())
        # zero + 1.0, not a Python 1.0: that would be copied to the GPU, a host-device sync
        return dist.Normal(zero, zero + 1.0).expand([self.dim]).to_event(1)

    def log_prob(self, eps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(ε | k), summed over ε's last dimension (the indices ``x`` broadcast against ε's leading ones)."""
        return self.distribution(x).log_prob(eps)

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of ε per entry of the 1-D ``x`` outside a Pyro program (global RNG), shape (len(x), dim);
        unfitted, exactly ``torch.randn``'s draws."""
        if not self.fitted:
            return torch.randn(len(x), self.dim, device=x.device)
        return self.distribution(x.to(self.loc.device)).sample().to(x.device)


def _read_fitted_flag(module: NoiseMixture, incompatible_keys) -> None:
    """After a state dict is loaded: whether it held a fitted mixture (read once, at load time)."""
    module.fitted = bool(module.is_fitted)
