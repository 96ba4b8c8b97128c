"""Mixed precision for the neural networks only.

Inside :func:`net_autocast` the encoders and decoders run under ``torch.autocast`` (bf16 matrix products and
convolutions) and hand float32 tensors back, so everything Pyro does with their outputs stays in float32: the
log-likelihoods, the exact sum over the confounder c (log p(o) = logsumexp_c [log π_c + log p(o | c)]) and the
entropy of p(c | o). A bf16 sum over c would carry a relative error of about 2⁻⁸, i.e. ~0.004 nats per datapoint,
as large as the fit differences between γ-family members.

>>> import torch
>>> from torch import nn
>>> class Net(nn.Linear):
...     @autocast_forward
...     def forward(self, x):
...         return super().forward(x)
>>> net = Net(3, 2)
>>> with net_autocast(torch.bfloat16):
...     out = net(torch.ones(1, 3))
>>> out.dtype
torch.float32
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
_NET_DTYPE: ContextVar[torch.dtype | None] = ContextVar("cauvade_net_dtype", default=None)


def precision_dtype(precision: str) -> torch.dtype | None:
    """``"fp32"`` → None (no autocast), ``"bf16"`` → ``torch.bfloat16``; anything else is a one-line error."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


@contextmanager
def net_autocast(dtype: torch.dtype | None) -> Iterator[None]:
    """Run the networks decorated with :func:`autocast_forward` in ``dtype`` (None: float32) inside the block."""
    token = _NET_DTYPE.set(dtype)
    try:
        yield
    finally:
        _NET_DTYPE.reset(token)


def _to_float32(tree):
    if torch.is_tensor(tree):
        return tree.float() if tree.is_floating_point() else tree
    if isinstance(tree, tuple):
        return tuple(_to_float32(value) for value in tree)
    return tree


def autocast_forward(forward: Callable) -> Callable:
    """Decorate a network's ``forward``: autocast inside :func:`net_autocast`, float32 outputs always."""

    @functools.wraps(forward)
    def wrapped(self, first: torch.Tensor, *args, **kwargs):
        dtype = _NET_DTYPE.get()
        if dtype is None:
            return forward(self, first, *args, **kwargs)
        with torch.autocast(first.device.type, dtype=dtype):
            return _to_float32(forward(self, first, *args, **kwargs))

    return wrapped
