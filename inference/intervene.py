"""Interventional and observational sampling from a diagram, built on ``pyro.poutine.do``.

``do(X = x)`` cuts X from its parents (its confounder included); running the intervened program with every
other site drawn from its prior samples

    P(image, attributes | do(x)) = Σ_c π_c p(attributes | do(x), c) ∫ p(image | …, ε) p(ε | parents of the image) dε.

Pyro's ``do`` leaves the natural draw of X in the trace and sends the intervened value downstream; the
functions here return the *intervened* values, and they check what ``do`` silently accepts (unknown site
names, values of the wrong shape, outside the site's support or not whole numbers for a discrete site, observed
or image sites, on which ``do`` would change nothing, the confounder, and params missing from the param store).

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

import pyro
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.poutine.messenger import Messenger

from cauvade_pyro.models.primitives import DATA_PLATE, is_confounder


def _sample_sites(trace) -> dict[str, torch.Tensor]:
    return {
        name: site["value"]
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and name != DATA_PLATE
    }


def _support_text(support) -> str:
    if isinstance(support, constraints.integer_interval):
        return f"the integers {support.lower_bound}..{support.upper_bound}"
    return str(support)


def _validated_value(name: str, site: Mapping, value, num_samples: int) -> torch.Tensor:
    natural = site["value"]
    support = site["fn"].support
    if isinstance(value, (str, bytes)):
        raise ValueError(f"intervene: value {value!r} for site {name!r} is a string; pass a number or a tensor in "
                         f"the site's support ({_support_text(support)})")
    try:
        raw = torch.as_tensor(value, device=natural.device)  # the caller's dtype, before any cast
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"intervene: value for site {name!r} is a {type(value).__name__}, not a number or tensor; "
                         f"pass one in the site's support ({_support_text(support)})") from None
    shown = value if isinstance(value, (int, float)) else raw.item() if raw.numel() == 1 else f"of shape {tuple(raw.shape)}"
    if raw.is_complex() or (raw.is_floating_point() and not bool(raw.isfinite().all())):
        raise ValueError(f"intervene: value {shown} for site {name!r} is not a finite real number; pass one in the "
                         f"site's support ({_support_text(support)})")
    if support.is_discrete:
        if raw.dtype == torch.bool and support is not constraints.boolean:
            raise ValueError(f"intervene: value {shown} for site {name!r} is a bool; pass the class index as an int "
                             f"({_support_text(support)})")
        if raw.is_floating_point() and not bool((raw == raw.round()).all()):
            raise ValueError(f"intervene: value {shown} for the discrete site {name!r} is not a whole number (it would "
                             f"be truncated); pass one of {_support_text(support)}")
    value = raw.to(natural.dtype)
    event_shape = site["fn"].event_shape
    if value.shape == event_shape:
        value = value.expand(natural.shape)
    elif value.shape != natural.shape:
        raise ValueError(
            f"intervene: value for site {name!r} has shape {tuple(value.shape)}; expected {tuple(event_shape)} "
            f"(one value for every sample) or {tuple(natural.shape)} (one per sample)"
        )
    if not bool(support.check(value).all()):
        raise ValueError(f"intervene: value for site {name!r} is outside the site's support ({support})")
    return value


class _FreshParams(Messenger):
    """Records the ``pyro.param`` sites that the param store does not hold yet (they would start from their
    initial values); parameters of registered modules (``nn.Parameter``) carry their own fitted values, and a
    value substituted by a handler inside the model (``poutine.substitute``) is not drawn from the store."""

    def __init__(self) -> None:
        super().__init__()
        self.fresh: list[str] = []

    def _pyro_param(self, msg) -> None:
        name = msg["name"]
        init = msg["args"][1] if len(msg["args"]) > 1 else None
        if msg["value"] is not None or init is None or isinstance(init, torch.nn.Parameter):
            return  # substituted by an inner handler, a look-up of an existing param, or a module's parameter
        if name not in pyro.get_param_store():
            self.fresh.append(name)


@torch.no_grad()
def intervene(
    model: Callable, interventions: Mapping[str, object], num_samples: int, **model_kwargs
) -> dict[str, torch.Tensor]:
    """Sample ``num_samples`` draws of every site under ``do(interventions)``; intervened sites hold their set values.

    ``model`` is any callable Pyro program. Refused with a one-line ``ValueError``: an unknown site, an observed,
    image or confounder site, a value of the wrong shape, outside the site's support, not a whole number for a
    discrete site (1.5 is not silently truncated to 1), a bool, string or non-finite value, and a model whose
    ``pyro.param`` sites are not in the param store (they would be drawn from their initial values).

    >>> import pyro.distributions as dist
    >>> def model(data=None, num_samples=None):
    ...     with pyro.plate("data", num_samples):
    ...         pyro.sample("x", dist.Categorical(logits=torch.zeros(3)))
    >>> intervene(model, {"x": 1.5}, num_samples=2)
    Traceback (most recent call last):
    ...
    ValueError: intervene: value 1.5 for the discrete site 'x' is not a whole number (it would be truncated); pass one of the integers 0..2
    """
    if num_samples < 1:
        raise ValueError(f"intervene: num_samples must be >= 1, got {num_samples}")
    fresh = _FreshParams()
    store = pyro.get_param_store()
    before = set(store.keys())
    with fresh:
        natural = poutine.trace(model).get_trace(num_samples=num_samples, **model_kwargs)
    try:
        sites = _sample_sites(natural)
        values = {}
        for name, value in interventions.items():
            if name not in sites:
                raise ValueError(f"intervene: the model has no sample site {name!r}; its sites are {sorted(sites)}")
            site = natural.nodes[name]
            if site["is_observed"] or len(site["fn"].event_shape) >= 3:
                kind = "observed" if site["is_observed"] else f"image (event shape {tuple(site['fn'].event_shape)})"
                raise ValueError(
                    f"intervene: site {name!r} is an {kind} site; do() on it changes none of the other sites (nothing "
                    "in the diagram depends on the image) - intervene on an attribute that causes it, such as 'x'"
                )
            if is_confounder(site):
                raise ValueError(
                    f"intervene: site {name!r} is the diagram's confounder, a learned cluster label with no meaning "
                    "outside the fit, so do() on it answers no question about the data; intervene on an attribute "
                    "such as 'x'"
                )
            values[name] = _validated_value(name, site, value, num_samples)
        if fresh.fresh:
            raise ValueError(
                f"intervene: the model's params {sorted(set(fresh.fresh))} are not in Pyro's param store, so they would "
                "be drawn from their initial values: fit the diagram first (fit_diagram) or load its params "
                "(pyro.get_param_store().load(path))"
            )
    except ValueError:
        for name in set(store.keys()) - before:  # leave the store as it was found
            del store[name]
        raise
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
