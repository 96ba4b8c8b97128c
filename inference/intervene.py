"""Interventional and observational sampling from a diagram, built on ``pyro.poutine.do``.

``do(X = x)`` cuts X from its parents (its confounder included); running the intervened program with every
other site drawn from its prior samples

    P(image, attributes | do(x)) = Σ_c π_c p(attributes | do(x), c) ∫ p(image | …, ε) p(ε) dε.

Pyro's ``do`` leaves the natural draw of X in the trace and sends the intervened value downstream; the
functions here return the *intervened* values, and they check what ``do`` silently accepts (unknown site
names, values of the wrong shape or outside the site's support, and observed or image sites, on which ``do``
would change nothing).

>>> import torch, pyro, pyro.distributions as dist
>>> def model(data=None, num_samples=None):
...     with pyro.plate("data", num_samples):
...         x = pyro.sample("x", dist.Bernoulli(0.5))
...         pyro.sample("y", dist.Normal(3.0 * x, 0.1))
>>> out = intervene(model, {"x": 1.0}, num_samples=4)
>>> out["x"].tolist(), bool((out["y"] > 2).all())
([1.0, 1.0, 1.0, 1.0], True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from pyro import poutine

from cauvade_pyro.models.primitives import DATA_PLATE


def _sample_sites(trace) -> dict[str, torch.Tensor]:
    return {
        name: site["value"]
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and name != DATA_PLATE
    }


def _validated_value(name: str, site: Mapping, value, num_samples: int) -> torch.Tensor:
    natural = site["value"]
    value = torch.as_tensor(value, dtype=natural.dtype, device=natural.device)
    event_shape = site["fn"].event_shape
    if value.shape == event_shape:
        value = value.expand(natural.shape)
    elif value.shape != natural.shape:
        raise ValueError(
            f"intervene: value for site {name!r} has shape {tuple(value.shape)}; expected {tuple(event_shape)} "
            f"(one value for every sample) or {tuple(natural.shape)} (one per sample)"
        )
    if not bool(site["fn"].support.check(value).all()):
        raise ValueError(f"intervene: value for site {name!r} is outside the site's support ({site['fn'].support})")
    return value


@torch.no_grad()
def intervene(
    model: Callable, interventions: Mapping[str, object], num_samples: int, **model_kwargs
) -> dict[str, torch.Tensor]:
    """Sample ``num_samples`` draws of every site under ``do(interventions)``; intervened sites hold their set values."""
    if num_samples < 1:
        raise ValueError(f"intervene: num_samples must be >= 1, got {num_samples}")
    natural = poutine.trace(model).get_trace(num_samples=num_samples, **model_kwargs)
    sites = _sample_sites(natural)
    values = {}
    for name, value in interventions.items():
        if name not in sites:
            raise ValueError(f"intervene: the model has no sample site {name!r}; its sites are {sorted(sites)}")
        site = natural.nodes[name]
        if site["is_observed"] or len(site["fn"].event_shape) >= 3:
            kind = "observed" if site["is_observed"] else f"image (event shape {tuple(site['fn'].event_shape)})"
            raise ValueError(
                f"intervene: site {name!r} is an {kind} site; do() on it changes none of the other sites (nothing in "
                "the diagram depends on the image) - intervene on an attribute that causes it, such as 'x'"
            )
        values[name] = _validated_value(name, natural.nodes[name], value, num_samples)
    trace = poutine.trace(poutine.do(model, data=values)).get_trace(num_samples=num_samples, **model_kwargs)
    samples = _sample_sites(trace)
    samples.update(values)
    return samples


@torch.no_grad()
def sample_observational(model: Callable, num_samples: int, **model_kwargs) -> dict[str, torch.Tensor]:
    """Sample ``num_samples`` draws of every site of the unintervened program."""
    return _sample_sites(poutine.trace(model).get_trace(num_samples=num_samples, **model_kwargs))


@torch.no_grad()
def sample_conditional(
    model: Callable, evidence: Mapping[str, object], num_samples: int, max_rounds: int = 50, **model_kwargs
) -> dict[str, torch.Tensor]:
    """Observational draws given discrete ``evidence`` (P(· | x), not P(· | do(x))), by rejection."""
    kept: dict[str, list[torch.Tensor]] = {}
    found = 0
    for _ in range(max_rounds):
        draws = sample_observational(model, 4 * num_samples, **model_kwargs)
        for name in evidence:
            if name not in draws:
                raise ValueError(f"sample_conditional: the model has no sample site {name!r}; its sites are {sorted(draws)}")
        mask = torch.ones(4 * num_samples, dtype=torch.bool, device=next(iter(draws.values())).device)
        for name, value in evidence.items():
            mask &= draws[name] == torch.as_tensor(value, device=mask.device)
        for name, value in draws.items():
            kept.setdefault(name, []).append(value[mask])
        found += int(mask.sum())
        if found >= num_samples:
            return {name: torch.cat(parts)[:num_samples] for name, parts in kept.items()}
    raise ValueError(f"sample_conditional: evidence {dict(evidence)} is too rare to sample by rejection")
