"""Conventions that turn a Pyro program into a CauVaDE causal diagram.

A diagram is a callable ``model(data=None, num_samples=None)``: sites named in ``data`` are observed, the
others are sampled, and everything per-datapoint lives in one plate named ``"data"``. The canonical
confounder of a confounded component is a discrete site ``c ∈ {0..K-1}`` with learned prior logits π,

    c ~ Categorical(softmax(π)),

marked by :func:`confounder` so that it is enumerated exactly by ``TraceEnum_ELBO`` (never sampled by a
guide during training) and found by the γ-entropy ELBO, the guide builder and the samplers.

>>> import torch, pyro
>>> with pyro.plate("data", 5):
...     c = confounder("c", torch.zeros(3))
>>> c.shape
torch.Size([5])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro.params import param_with_module_name

CONFOUNDER_FLAG = "cauvade_confounder"
DATA_PLATE = "data"


def confounder(name: str, logits: torch.Tensor) -> torch.Tensor:
    """Sample (or, under ``TraceEnum_ELBO``, enumerate) a canonical confounder with prior logits ``logits``.

    ``logits`` has shape ``(K,)``; K = ``logits.shape[-1]`` is the size of the confounder's support.
    """
    if logits.dim() != 1:
        raise ValueError(f"confounder {name!r}: logits must have shape (K,), got {tuple(logits.shape)}")
    return pyro.sample(
        name,
        dist.Categorical(logits=logits),
        infer={"enumerate": "parallel", CONFOUNDER_FLAG: True},
    )


def register_params(name: str, module: torch.nn.Module, children: tuple[str, ...], own: bool = False) -> None:
    """``pyro.module(name, module)`` restricted to the parameters of some children (and, with ``own``, the
    module's direct parameters), under the same names (``name$$$child.param``) as ``pyro.module`` gives them.

    A program registers only the networks it runs — the model its decoder, the guide its encoder — instead of
    the whole module twice per step: same param sites, same param store, half the Pyro messages.
    """
    groups = [(child, getattr(module, child)) for child in children]
    if own:
        groups.append(("", module))
    for prefix, part in groups:
        for param_name, value in part.named_parameters(prefix=prefix, recurse=bool(prefix)):
            if value.requires_grad:
                pyro.param(param_with_module_name(name, param_name), value)
            elif part.training:
                warnings.warn(f"{param_name} was not registered in the param store because requires_grad=False. "
                              "You can silence this warning by calling my_module.train(False)")


def is_confounder(site: Mapping) -> bool:
    """Whether a trace site was declared with :func:`confounder`."""
    return site["type"] == "sample" and bool(site["infer"].get(CONFOUNDER_FLAG, False))


def data_size(data: Mapping[str, torch.Tensor] | None, num_samples: int | None) -> int:
    """The plate size of a diagram call: ``num_samples`` when sampling, else the length of the data."""
    if num_samples is not None:
        return int(num_samples)
    if not data:
        raise ValueError("a diagram needs either data or num_samples")
    return len(next(iter(data.values())))


def check_diagram(model, data: Mapping[str, torch.Tensor], max_plate_nesting: int = 1) -> dict[str, torch.Tensor]:
    """Check a user diagram and its data before fitting; each problem is an explanatory one-line ``ValueError``.

    The data are checked first (:func:`~cauvade_pyro.models.checks.check_data`: keys, dtypes, lengths, image
    layout and range, the ``"data"`` plate); the normalised data are returned. Then the model is traced on the
    first rows with its confounders enumerated (as ``TraceEnum_ELBO`` will):

    - it must declare at least one confounder with :func:`confounder`;
    - no image-like site (event rank >= 3) may depend on a confounder: the decoder never takes ``c``. An
      enumerated confounder carries its own batch dimension, so a decoder that receives ``c`` (directly or
      through anything computed from it) gives the image distribution that dimension.

    A failure of the enumerated trace is blamed on ``c`` only when the same trace without enumeration succeeds.

    >>> import torch, pyro.distributions as dist
    >>> def model(data=None, num_samples=None):
    ...     data = data or {}
    ...     with pyro.plate("data", num_samples or len(data["x"])):
    ...         pyro.sample("x", dist.Categorical(logits=torch.zeros(3)), obs=data.get("x"))
    >>> check_diagram(model, {"x": torch.tensor([0, 1])})
    Traceback (most recent call last):
    ...
    ValueError: the diagram has no confounder site (its sample sites are ['x']): declare the enumerated cluster with cauvade_pyro.confounder(name, logits) inside the 'data' plate
    """
    from pyro import poutine

    from .checks import check_data, isolated

    data = check_data(model, data, max_plate_nesting)
    example = {key: (value[:2].float() / 255.0 if value.dtype == torch.uint8 else value[:2]) for key, value in data.items()}
    device = next(iter(example.values())).device
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with isolated(devices):
            trace = poutine.trace(poutine.enum(model, first_available_dim=-1 - max_plate_nesting)).get_trace(example)
    except ValueError:
        raise
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        try:  # without enumeration: if this fails too, the confounder is not the cause
            with isolated(devices):
                poutine.trace(model).get_trace(example)
        except Exception:
            raise ValueError(
                f"the diagram fails on the first rows of the data ({type(error).__name__}: {first}), with or without "
                "enumerating its confounder, so c is not the cause: check how the model reads the data"
            ) from None
        raise ValueError(
            f"the diagram fails when its confounder is enumerated ({type(error).__name__}: {first}); a common cause "
            "is a network that receives the confounder c, which carries an extra enumeration dimension of size K: "
            "the image decoder must not take c"
        ) from None
    sites = {
        name: site for name, site in trace.nodes.items()
        if site["type"] == "sample" and isinstance(site["fn"], torch.distributions.Distribution)  # not plates
    }
    confounders = {name: site for name, site in sites.items() if is_confounder(site)}
    if not confounders:
        raise ValueError(
            f"the diagram has no confounder site (its sample sites are {sorted(sites)}): declare the enumerated "
            "cluster with cauvade_pyro.confounder(name, logits) inside the 'data' plate"
        )
    for name, site in sites.items():
        fn = site["fn"]
        if name in confounders or len(fn.event_shape) < 3:
            continue
        for c_name, c_site in confounders.items():
            dim = c_site["infer"].get("_enumerate_dim")
            if dim is not None and len(fn.batch_shape) >= -dim and fn.batch_shape[dim] > 1:
                raise ValueError(
                    f"site {name!r} (an image, event shape {tuple(fn.event_shape)}) depends on the confounder "
                    f"{c_name!r}: the decoder must not take {c_name!r} (the image depends on c only through the "
                    "attributes, so one image model serves the whole family); pass it x, y and the noise instead"
                )
    return data
