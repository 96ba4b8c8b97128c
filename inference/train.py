"""Training loops: SVI over minibatches (images) or full batches (attribute tables), with seeding and devices.

Each step takes one Adam step on the γ-entropy loss (see :mod:`cauvade_pyro.inference.elbo`),

    θ, φ ← θ, φ − lr · Adam(∇ [ −ELBO_batch + γ Σ_{n ∈ batch} H[p(c | o_n, z_n)] ]),

optionally with gradient-norm clipping. Image tensors may be stored as uint8 and are converted to [0, 1]
per batch, so the whole data set can sit on the device.

**Resume.** Given ``checkpoint_path``, :func:`fit_svi` writes a training state atomically every
``checkpoint_every`` steps and at the end: the step, the logged losses, the *unconstrained* values of every
Pyro param (plain tensors: Pyro's own ``get_state()`` carries constraint objects, which ``weights_only=True``
refuses), the optimizer state, the data order of the current epoch and every RNG state (torch, CUDA, Python,
NumPy, the data-order generator). ``resume_from`` continues from such a file; on CPU the resumed fit is
bit-for-bit the uninterrupted one (tested).

**No host-device sync per step.** A step is Pyro's ``SVI.step`` (trace the param sites, backward through
``elbo.differentiable_loss``, ``ClippedAdam`` on the unconstrained params, zero their grads in place) except
that the loss stays a device tensor. The losses of the steps since the last check are copied to the host together every
``log_every`` steps, before every checkpoint and at the end; Pyro's argument validation (which syncs on CUDA)
runs on those steps only.

**Non-finite loss.** Every step's loss is checked at the next such point, and the parameters before every
state is written, so a NaN never reaches a checkpoint: the fit stops with a :class:`FloatingPointError`
naming the first step whose loss was not finite, γ, a hint and the last good training state.

**Precision.** ``precision="bf16"`` runs the encoders and decoders under bf16 autocast
(:mod:`cauvade_pyro.models.precision`); the log-likelihoods and the sum over c stay float32.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro import poutine
from tqdm.auto import tqdm

from cauvade_pyro.models.precision import net_autocast, precision_dtype

from .checkpoint import check_config_matches, load_checkpoint, save_checkpoint
from .elbo import GammaEntropyELBO
from .guides import AmortizedGuide

TRAIN_STATE_KIND = "train_state"


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


def _to_cpu(tree):
    if torch.is_tensor(tree):
        return tree.detach().cpu().clone()
    if isinstance(tree, dict):
        return {key: _to_cpu(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(value) for value in tree)
    return tree


def rng_states(generator: torch.Generator | None) -> dict:
    """Every RNG state a fit draws from, as tensors and primitives (``weights_only``-loadable)."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "python": [version, list(keys), gauss],
        "numpy": [name, torch.from_numpy(np_keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "generator": generator.get_state() if generator is not None else None,
    }


def set_rng_states(states: dict, generator: torch.Generator | None) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    version, keys, gauss = states["python"]
    random.setstate((version, tuple(keys), gauss))
    name, np_keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if generator is not None and states["generator"] is not None:
        generator.set_state(states["generator"])


def _unconstrained_params() -> dict[str, torch.Tensor]:
    return pyro.get_param_store().get_state()["params"]


def save_training_state(path, *, step: int, total: int, losses: list[float], optim, order: torch.Tensor,
                        generator: torch.Generator | None, fingerprint: dict | None) -> Path:
    """Write the state :func:`fit_svi` needs to continue after ``step`` completed steps (atomically)."""
    return save_checkpoint(path, {
        "kind": TRAIN_STATE_KIND,
        "config": fingerprint or {},
        "step": int(step),
        "total": int(total),
        "losses": [float(v) for v in losses],
        "params": {name: value.detach().cpu().clone() for name, value in _unconstrained_params().items()},
        "optim": _to_cpu(optim.get_state()),
        "order": order.detach().cpu().clone(),
        "rng": rng_states(generator),
    })


def _restore_training_state(path, state: dict, create_params: Callable, optim, generator) -> None:
    """Create the params by one loss evaluation, then overwrite them in place (modules keep their tensors)."""
    create_params()
    params = _unconstrained_params()
    missing = sorted(set(state["params"]) - set(params))
    extra = sorted(set(params) - set(state["params"]))
    if missing or extra:
        raise ValueError(f"{path}: training state does not fit this model (params only in the state: {missing}, "
                         f"only in the model: {extra})")
    with torch.no_grad():
        for name, value in state["params"].items():
            if params[name].shape != value.shape:
                raise ValueError(f"{path}: param {name!r} has shape {tuple(value.shape)} in the training state, "
                                 f"{tuple(params[name].shape)} in this model")
            params[name].copy_(value)
    optim.set_state(state["optim"])
    set_rng_states(state["rng"], generator)


def training_step(model: Callable, guide: Callable, elbo, optim, batch: Mapping[str, torch.Tensor], *,
                  validate: bool = True, net_dtype: torch.dtype | None = None) -> torch.Tensor:
    """One step of ``pyro.infer.SVI.step`` that returns the loss as a detached device tensor (no host sync)."""
    with poutine.trace(param_only=True) as param_capture, pyro.validation_enabled(validate), net_autocast(net_dtype):
        loss = elbo.differentiable_loss(model, guide, batch)
        loss.backward()
    params = {site["value"].unconstrained() for site in param_capture.trace.nodes.values()}
    optim(params)
    for param in params:  # as pyro.infer.util.zero_grads, in place: no new zero tensor per param and step
        if param.grad is not None:
            param.grad.zero_()
    return loss.detach()


def _params_finite() -> bool:
    values = list(_unconstrained_params().values())
    return not values or bool(torch.stack([v.detach().isfinite().all() for v in values]).all())


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
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
    resume_from: str | Path | None = None,
    fingerprint: dict | None = None,
    hint: str = "try a lower learning rate or likelihood scale, or a smaller clip norm",
    precision: str = "fp32",
    table_lr: float | None = None,
    before_step: Callable[[int, int], None] | None = None,
) -> list[float]:
    """Fit ``model``/``guide`` to ``data`` (a dict of equal-length tensors) with SVI; return the logged losses.

    Give either ``steps`` (full-batch, or random minibatches of ``batch_size``) or ``epochs`` (shuffled passes).
    A loss is logged every ``log_every`` steps; the host reads the losses only then (no sync per step).
    ``precision="bf16"`` autocasts the networks (not the sum over c). ``table_lr`` gives plain ``pyro.param``
    sites (tables, logits) their own learning rate; the networks registered with ``pyro.module`` keep ``lr``.
    ``before_step(step, total)`` runs before every step (a schedule, e.g. a KL warm-up; after a resume it sees
    the same step numbers as the uninterrupted fit).
    With ``checkpoint_path`` a training state is written every
    ``checkpoint_every`` steps (0: only at the end); ``resume_from`` continues from one, after checking that
    its ``fingerprint`` (the config that determines the fit) equals this one's. A non-finite loss raises
    :class:`FloatingPointError` (one line: step, γ, ``hint``, the last good state).
    """
    num_data = len(next(iter(data.values())))
    batch_size = num_data if batch_size is None else min(int(batch_size), num_data)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    net_dtype = precision_dtype(precision)
    batches_per_epoch = max(1, num_data // batch_size)
    total = steps if steps is not None else (epochs or 1) * batches_per_epoch
    if table_lr is None:
        optim = pyro.optim.ClippedAdam({"lr": lr, "clip_norm": clip_norm})
    else:  # networks (registered through pyro.module: "name$$$param") at lr, plain pyro.param tables at table_lr
        if not table_lr > 0 or not math.isfinite(table_lr):
            raise ValueError(f"table_lr must be a finite number > 0, got {table_lr}")
        store = pyro.get_param_store()

        def optim_args(name: str) -> dict:  # Pyro passes the name normalised ("$$$" → "."): look the param up
            registered = next((key for key in store.keys() if key.replace("$$$", ".") == name), name)
            return {"lr": lr if "$$$" in registered else table_lr, "clip_norm": clip_norm}

        optim = pyro.optim.ClippedAdam(optim_args)
    device = next(iter(data.values())).device
    losses: list[float] = []
    order = torch.arange(num_data, device=device)
    start, last_good = 0, None
    if resume_from is not None:
        state = load_checkpoint(resume_from, kind=TRAIN_STATE_KIND)
        if fingerprint is not None:
            check_config_matches(resume_from, state["config"], fingerprint, what="training state")
        if state["total"] != total:
            raise ValueError(f"{resume_from}: training state is for {state['total']} steps, this fit has {total}")
        warmup_batch = to_float_images({k: v[:batch_size] for k, v in data.items()})
        _restore_training_state(resume_from, state, lambda: elbo.loss(model, guide, warmup_batch), optim, generator)
        start, losses, order = state["step"], list(state["losses"]), state["order"].to(device)
        last_good = f"{resume_from} (step {start})"

    def stop(step: int, what: str):
        kept = f"last good training state: {last_good}" if last_good else "no training state was written yet"
        where = desc if "γ" in desc else f"{desc}, γ={elbo.gamma:g}"
        return FloatingPointError(f"{what} at step {step} of {total} ({where}); {hint}; {kept}")

    pending: list[tuple[int, torch.Tensor]] = []  # (step, loss) not yet read by the host

    def is_logged(step: int) -> bool:
        return step % log_every == 0 or step == total - 1

    def check_pending() -> list[tuple[int, float]]:
        """Read the pending losses in one transfer; the first non-finite one stops the fit."""
        if not pending:
            return []
        values = torch.stack([loss for _, loss in pending]).tolist()
        read = [(pending_step, value / batch_size) for (pending_step, _), value in zip(pending, values)]
        pending.clear()
        for pending_step, per_item in read:
            if not math.isfinite(per_item):
                raise stop(pending_step, f"non-finite loss ({per_item})")
        return read

    bar = tqdm(range(start, total), desc=desc, disable=not progress, leave=False, dynamic_ncols=True,
               initial=start, total=total)
    for step in bar:
        if batch_size == num_data:
            batch = to_float_images(data)
        else:
            position = step % batches_per_epoch
            if position == 0:  # the data order comes from a CPU generator (resumable); pinned, it moves without a sync
                order = torch.randperm(num_data, generator=generator)
                order = order.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else order
            index = order[position * batch_size : (position + 1) * batch_size]
            batch = to_float_images({k: v[index] for k, v in data.items()})
        if before_step is not None:
            before_step(step, total)
        done = step + 1
        log_step = is_logged(step)
        checkpoint_step = checkpoint_path is not None and (
            done == total or (checkpoint_every and done % checkpoint_every == 0))
        try:
            pending.append((step, training_step(model, guide, elbo, optim, batch, net_dtype=net_dtype,
                                                validate=log_step or step == start)))
        except ValueError as error:  # torch's distribution checks refuse NaN arguments with a many-line message
            if "found invalid values" not in str(error) and _params_finite():
                raise
            check_pending()  # an earlier step's loss may already have been the first non-finite one
            raise stop(step, "non-finite values (a distribution refused its NaN or inf arguments)") from None
        if log_step or checkpoint_step:
            for logged_step, per_item in check_pending():
                if is_logged(logged_step):
                    losses.append(per_item)
            if losses:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if checkpoint_step:
            if not _params_finite():
                raise stop(step, "non-finite parameters")
            save_training_state(checkpoint_path, step=done, total=total, losses=losses, optim=optim, order=order,
                                generator=generator, fingerprint=fingerprint)
            last_good = f"{checkpoint_path} (step {done})"
    return losses


def fit_member(
    model: Callable,
    guide: Callable | None,
    data: Mapping[str, torch.Tensor],
    *,
    gamma: float = 0.0,
    seed: int,
    init: Callable[[torch.Generator], Callable | None] | None = None,
    module: torch.nn.Module | None = None,
    **options,
) -> list[float]:
    """The one fit wrapper: seed everything, let ``init`` set the starting values from the seeded generator
    (random initial parameters, a warm start; with ``guide=None`` it builds and returns the guide), empty Pyro's
    param store so the fit starts from
    the modules' values, and minimise −ELBO + γ·H with :func:`fit_svi` (``options``: steps or epochs,
    batch_size, lr, clip_norm, progress, desc, precision and the checkpoint/resume options). ``module`` is put in
    training mode for the fit and back in evaluation mode after it.

    >>> import pyro.distributions as dist
    >>> from cauvade_pyro.models import confounder
    >>> def model(data=None, num_samples=None):
    ...     with pyro.plate("data", 4):
    ...         c = confounder("c", pyro.param("pi", torch.zeros(2)))
    ...         pyro.sample("x", dist.Normal(pyro.param("loc", torch.zeros(2))[c], 1.0), obs=data["x"])
    >>> losses = fit_member(model, lambda data=None: None, {"x": torch.tensor([-2.0, -2.0, 2.0, 2.0])},
    ...                     seed=0, steps=20, lr=0.1, progress=False)
    >>> len(losses)  # logged every 10 steps and at the last
    3
    """
    generator = seed_everything(seed)
    made = init(generator) if init is not None else None
    guide = made if guide is None else guide
    if guide is None:
        raise ValueError("fit_member: give a guide, or an init that builds and returns one")
    pyro.clear_param_store()
    if module is not None:
        module.train()
    try:
        return fit_svi(model, guide, data, GammaEntropyELBO(gamma=gamma), generator=generator, **options)
    finally:
        if module is not None:
            module.eval()


def fit_diagram(
    model: Callable,
    data: Mapping[str, torch.Tensor],
    *,
    guide: Callable | None = None,
    gamma: float = 0.0,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = 256,
    lr: float = 1e-3,
    table_lr: float | None = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Callable, list[float]]:
    """Fit any diagram written with the CauVaDE conventions; builds an :class:`AmortizedGuide` when none is given.

    Returns ``(guide, losses)``. The param store is cleared first, so a fit starts from the modules' values.
    Networks (``pyro.module``, the guide) learn at ``lr``; plain ``pyro.param`` tables and logits at ``table_lr``
    (a rate that suits networks leaves tables nearly where they started; None: ``lr`` for everything).
    Give exactly one of ``steps`` and ``epochs``. The diagram and its data are checked first
    (:func:`~cauvade_pyro.models.primitives.check_diagram`, :func:`~cauvade_pyro.models.checks.check_data`):
    a missing key, a wrong dtype, length, image layout or range, no confounder site, or an image site that
    depends on the confounder, is a one-line ``ValueError`` before any training (unused keys: a warning).

    >>> fit_diagram(lambda data=None, num_samples=None: None, {"x": torch.zeros(2)})
    Traceback (most recent call last):
    ...
    ValueError: fit_diagram: give the length of the fit, steps=... (SVI steps) or epochs=... (passes over the data)

    A thin caller of :func:`fit_member` (the one fit wrapper): the guide is built after seeding.
    """
    from cauvade_pyro.models.primitives import check_diagram

    if steps is None and epochs is None:
        raise ValueError("fit_diagram: give the length of the fit, steps=... (SVI steps) or epochs=... (passes over the data)")
    if steps is not None and epochs is not None:
        raise ValueError(f"fit_diagram: give steps or epochs, not both (got steps={steps}, epochs={epochs})")
    pyro.clear_param_store()
    data = check_diagram(model, data)
    built = {}

    def build_guide(generator):
        example = to_float_images({k: v[:2] for k, v in data.items()})
        built["guide"] = guide or AmortizedGuide(model, example).to(next(iter(data.values())).device)
        return built["guide"]

    losses = fit_member(model, None, data, gamma=gamma, seed=seed, init=build_guide, steps=steps, epochs=epochs,
                        batch_size=batch_size, lr=lr, table_lr=table_lr, progress=progress)
    return built["guide"], losses
