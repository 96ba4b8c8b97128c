"""Amortized guides for the continuous latents of a user diagram.

For a diagram whose per-datapoint continuous latents are z_1..z_m (every unobserved sample site in the data
plate that is not a confounder), the guide is

    q_φ(z | o) = Π_j N(z_j; μ_j(h), diag σ_j(h)²),   h = features(o),

where o are the observed sites: images (event rank 3) go through a conv or MLP trunk, categorical sites are
one-hot encoded, other sites are flattened. Confounders are never in the guide: ``TraceEnum_ELBO`` sums them out.

>>> import torch, pyro, pyro.distributions as dist
>>> from cauvade_pyro.models import confounder
>>> def model(data=None, num_samples=None):
...     data = data or {}
...     with pyro.plate("data", num_samples or len(data["x"])):
...         c = confounder("c", torch.zeros(2))
...         z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
...         pyro.sample("x", dist.Normal(z.sum(-1) + c, 1.0), obs=data.get("x"))
>>> guide = AmortizedGuide(model, {"x": torch.randn(5)})
>>> sorted(guide.latent_shapes)
['z']
"""

from __future__ import annotations

from collections.abc import Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.nn.functional import one_hot

from cauvade_pyro.models.nets import GaussianHead, make_encoder
from cauvade_pyro.models.primitives import DATA_PLATE, data_size, is_confounder


def _in_data_plate(site: Mapping) -> bool:
    return any(frame.name == DATA_PLATE for frame in site["cond_indep_stack"])


def latent_sites(model, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Size]:
    """Event shapes of the continuous per-datapoint latents of ``model`` (what a guide must sample)."""
    trace = poutine.trace(model).get_trace(data)
    shapes = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or is_confounder(site):
            continue
        if site["infer"].get("_deterministic") or name == DATA_PLATE:
            continue
        if not _in_data_plate(site):
            raise ValueError(f"latent site {name!r} is outside the {DATA_PLATE!r} plate; the amortized guide only covers per-datapoint latents")
        support = site["fn"].support
        while isinstance(support, dist.constraints.independent):
            support = support.base_constraint
        if support is not dist.constraints.real:
            raise ValueError(f"latent site {name!r} has support {site['fn'].support}; the amortized guide handles real-valued latents only")
        shapes[name] = site["fn"].event_shape
    return shapes


class AmortizedGuide(nn.Module):
    """A mean-field Gaussian guide for every continuous latent of ``model``, amortized over the observed sites."""

    def __init__(self, model, example_data: Mapping[str, torch.Tensor], net: str = "conv", hidden: int = 256):
        super().__init__()
        self.latent_shapes = latent_sites(model, example_data)
        trace = poutine.trace(model).get_trace(example_data)
        self.observed: dict[str, tuple[str, int]] = {}
        self.image_encoders = nn.ModuleDict()
        in_dim = 0
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or not site["is_observed"] or name not in example_data:
                continue
            fn = site["fn"]
            if len(fn.event_shape) == 3:
                self.image_encoders[name] = make_encoder(net, fn.event_shape[0])
                self.observed[name] = ("image", self.image_encoders[name].out_dim)
            elif isinstance(fn, dist.Categorical):
                self.observed[name] = ("categorical", fn.logits.shape[-1])
            else:
                self.observed[name] = ("real", max(1, fn.event_shape.numel()))
            in_dim += self.observed[name][1]
        if self.latent_shapes and not self.observed:
            raise ValueError("the model observes nothing in example_data, so there is nothing to amortize over")
        self.sizes = {name: shape.numel() for name, shape in self.latent_shapes.items()}
        self.head = GaussianHead(in_dim, max(1, sum(self.sizes.values())), hidden=hidden)

    def features(self, data: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for name, (kind, size) in self.observed.items():
            value = data[name]
            if kind == "image":
                parts.append(self.image_encoders[name](value))
            elif kind == "categorical":
                parts.append(one_hot(value.long(), size).float())
            else:
                parts.append(value.reshape(len(value), -1).float())
        return torch.cat(parts, -1)

    def forward(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None) -> dict:
        data = data or {}
        if not self.latent_shapes or any(name not in data for name in self.observed):
            return {}  # sampling from the model: latents come from their priors
        pyro.module("amortized_guide", self)
        loc, scale = self.head(self.features(data))
        samples, start = {}, 0
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            for name, shape in self.latent_shapes.items():
                stop = start + self.sizes[name]
                q = dist.Normal(loc[:, start:stop].reshape((-1,) + shape), scale[:, start:stop].reshape((-1,) + shape))
                samples[name] = pyro.sample(name, q.to_event(len(shape)))
                start = stop
        return samples
