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

from collections.abc import Mapping

import pyro
import pyro.distributions as dist
import torch

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
