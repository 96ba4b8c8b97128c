"""Fitting a γ-family of the default diagram around one shared image model.

For the confounded-attributes diagram the objective splits exactly (docs/design.md §2):

    −ELBO + γ Σ_n H[p(c | x_n, y_n)]
      = [ −Σ_n log Σ_c π_c p(x_n | c) p(y_n | x_n, c) + γ Σ_n H[p(c | x_n, y_n)] ]   (attribute level, per member)
      + [ −Σ_n ELBO_n(image | x_n, y_n) ]                                               (image level, shared)

since the image term contains no c. One :class:`ConditionalImageModel` is therefore trained once and every
member (γ, seed) refits only the attribute-level mixture, full-batch, from its own random initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pyro.infer import Trace_ELBO

from cauvade_pyro.models import AttributeMixture, ConditionalImageModel

from .counts import cell_counts, fit_attribute_counts
from .train import fit_member, seed_everything, to_float_images


def fit_image_model(
    image_model: ConditionalImageModel,
    data: Mapping[str, torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    clip_norm: float = 10.0,
    progress: bool = True,
    kl_warmup_epochs: float = 0.0,
    **resume,
) -> list[float]:
    """Train the shared p(image | x, y) on ``data`` (keys ``x``, ``y``, ``image``).

    ``kl_warmup_epochs`` > 0 ramps β on KL(q(ε) ‖ N(0, I)) linearly from 0 to the model's ``kl_weight`` over
    that many epochs (then holds it): with the KL free at first, the encoder puts what the conditions do not
    fix (position, size, the hue inside its bin) into ε before the KL can close ε down.
    ``resume`` passes ``checkpoint_path``, ``checkpoint_every``, ``resume_from``, ``fingerprint`` and ``hint``
    on to :func:`~cauvade_pyro.inference.train.fit_svi`.
    """
    if not kl_warmup_epochs >= 0:
        raise ValueError(f"kl_warmup_epochs must be >= 0, got {kl_warmup_epochs}")
    kl_weight = image_model.kl_weight

    def schedule(step: int, total: int) -> None:
        warmup_steps = kl_warmup_epochs * total / (epochs or 1)  # fit_svi's total is epochs × batches per epoch
        image_model.kl_weight = kl_weight * min(1.0, (step + 1) / warmup_steps) if warmup_steps else kl_weight

    try:
        return fit_member(
            image_model.model, image_model.guide, {k: data[k] for k in ("x", "y", "image")}, gamma=0.0, seed=seed,
            module=image_model, epochs=epochs, batch_size=batch_size, lr=lr, clip_norm=clip_norm,
            progress=progress, desc="image model", before_step=schedule, **resume,
        )
    finally:
        image_model.kl_weight = kl_weight


def fit_attribute_member(
    mixture: AttributeMixture,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    gamma: float,
    seed: int,
    steps: int = 600,
    lr: float = 0.05,
    init_scale: float = 1.0,
    clip_norm: float = 10.0,
    progress: bool = True,
    objective: str = "pyro",
    **resume,
) -> list[float]:
    """Fit one family member's attribute-level mixture from random initial parameters drawn with ``seed``.

    ``objective="pyro"`` runs SVI on the γ-entropy ELBO over every datapoint; ``"counts"`` minimises the same
    loss written on the |X|·|Y| cell counts (:mod:`cauvade_pyro.inference.counts`; same optimizer, tested
    equal), which costs no more for a million datapoints than for ten. ``resume`` passes the checkpoint and
    resume options on to :func:`~cauvade_pyro.inference.train.fit_svi` (the counts path takes well under a
    second and is not checkpointed).
    """
    if objective == "counts":
        seed_everything(seed)
        counts = cell_counts(x, y, mixture.num_x, mixture.num_y)
        return fit_attribute_counts(mixture, counts, gamma=gamma, seed=seed, steps=steps, lr=lr,
                                    init_scale=init_scale, clip_norm=clip_norm, progress=progress)
    if objective != "pyro":
        raise ValueError(f"objective: must be 'pyro' or 'counts', got {objective!r}")
    return fit_member(
        mixture.model, mixture.guide, {"x": x, "y": y}, gamma=gamma, seed=seed,
        init=lambda generator: mixture.reset_parameters(generator, scale=init_scale),
        steps=steps, lr=lr, clip_norm=clip_norm, progress=progress, desc=f"attributes γ={gamma:g}", **resume,
    )


@torch.no_grad()
def heldout_image_elbo(
    image_model: ConditionalImageModel, data: Mapping[str, torch.Tensor], batch_size: int = 512
) -> float:
    """Mean held-out ELBO of log p(image | x, y) per image, at β = 1 (one ε draw per image)."""
    kl_weight, image_model.kl_weight = image_model.kl_weight, 1.0
    try:
        total, count = 0.0, len(data["x"])
        for start in range(0, count, batch_size):
            batch = to_float_images({k: data[k][start : start + batch_size] for k in ("x", "y", "image")})
            total -= Trace_ELBO().loss(image_model.model, image_model.guide, batch)
        return total / count
    finally:
        image_model.kl_weight = kl_weight
