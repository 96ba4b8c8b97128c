"""Training loops: SVI over minibatches (images) or full batches (attribute tables), with seeding and devices.

Each step takes one Adam step on the γ-entropy loss (see :mod:`cauvade_pyro.inference.elbo`),

    θ, φ ← θ, φ − lr · Adam(∇ [ −ELBO_batch + γ Σ_{n ∈ batch} H[p(c | o_n, z_n)] ]),

optionally with gradient-norm clipping. Image tensors may be stored as uint8 and are converted to [0, 1]
per batch, so the whole data set can sit on the device.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import numpy as np
import pyro
import torch
from pyro.infer import SVI
from tqdm.auto import tqdm

from .elbo import GammaEntropyELBO
from .guides import AmortizedGuide


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present; an explicit ``"cuda"`` without CUDA is a one-line error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use device=auto or device=cpu")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy, torch and Pyro, and return a torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    pyro.set_rng_seed(seed)
    return torch.Generator().manual_seed(seed)


def to_float_images(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """uint8 tensors (stored images) → float in [0, 1]; everything else passes through."""
    return {k: (v.float() / 255.0 if v.dtype == torch.uint8 else v) for k, v in batch.items()}


def fit_svi(
    model: Callable,
    guide: Callable,
    data: Mapping[str, torch.Tensor],
    elbo: GammaEntropyELBO,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float = 1e-3,
    clip_norm: float = 10.0,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "fit",
    log_every: int = 10,
) -> list[float]:
    """Fit ``model``/``guide`` to ``data`` (a dict of equal-length tensors) with SVI; return the logged losses.

    Give either ``steps`` (full-batch, or random minibatches of ``batch_size``) or ``epochs`` (shuffled passes).
    The loss is read back to the host only every ``log_every`` steps.
    """
    num_data = len(next(iter(data.values())))
    batch_size = num_data if batch_size is None else min(int(batch_size), num_data)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    batches_per_epoch = max(1, num_data // batch_size)
    total = steps if steps is not None else (epochs or 1) * batches_per_epoch
    optim = pyro.optim.ClippedAdam({"lr": lr, "clip_norm": clip_norm})
    svi = SVI(model, guide, optim, loss=elbo)
    device = next(iter(data.values())).device
    losses: list[float] = []
    order = torch.arange(num_data, device=device)
    bar = tqdm(range(total), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for step in bar:
        if batch_size == num_data:
            batch = to_float_images(data)
        else:
            position = step % batches_per_epoch
            if position == 0:
                order = torch.randperm(num_data, generator=generator).to(device)
            index = order[position * batch_size : (position + 1) * batch_size]
            batch = to_float_images({k: v[index] for k, v in data.items()})
        loss = svi.step(batch)
        if step % log_every == 0 or step == total - 1:
            per_item = loss / batch_size
            if not np.isfinite(per_item):
                raise FloatingPointError(
                    f"non-finite loss at step {step} (γ={elbo.gamma}); try a lower learning rate or likelihood scale"
                )
            losses.append(per_item)
            bar.set_postfix(loss=f"{per_item:.3f}")
    return losses


def fit(
    model: Callable,
    data: Mapping[str, torch.Tensor],
    *,
    guide: Callable | None = None,
    gamma: float = 0.0,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = 256,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Callable, list[float]]:
    """Fit any diagram written with the CauVaDE conventions; builds an :class:`AmortizedGuide` when none is given.

    Returns ``(guide, losses)``. The param store is cleared first, so a fit starts from the modules' values.
    """
    generator = seed_everything(seed)
    pyro.clear_param_store()
    if guide is None:
        example = to_float_images({k: v[:2] for k, v in data.items()})
        guide = AmortizedGuide(model, example).to(next(iter(data.values())).device)
    losses = fit_svi(
        model, guide, data, GammaEntropyELBO(gamma=gamma), steps=steps, epochs=epochs,
        batch_size=batch_size, lr=lr, generator=generator, progress=progress,
    )
    return guide, losses
