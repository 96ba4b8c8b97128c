r"""A γ-family of the latent-response diagram by warm starts from one shared γ = 0 base.

In the latent-response diagram the entropy term couples every parameter (the response r is a latent of the
image), so the objective does not split and each member (γ, s) would refit the whole model. With
``inference.sweep=shared`` the family is traced from one base instead:

    θ₀ = argmin_θ −ELBO(θ)                                  (warm-up + GMM init, then ``image_epochs`` epochs
                                                              at γ = 0; data order / ε from ``image_seed``)
    θ_{γ,s} = argmin_θ −ELBO(θ) + γ Σ_n H[p(c | x_n, r_n)]   started at θ = θ₀, ``member_epochs`` epochs,
                                                              a fresh Adam, data order / ε from seed s

so a member costs ``member_epochs`` epochs instead of warm-up + ``image_epochs``. The members are local
optima of their objectives near θ₀ rather than independent refits: with few ``member_epochs`` they stay
closer to the γ = 0 answer than independent fits do (benchmarks/latent_family.py measures both).

>>> import torch
>>> from cauvade_pyro.models import LatentResponseModel
>>> make = lambda: LatentResponseModel(2, 2, (1, 28, 28), r_dim=2, eps_dim=2, net="mlp")
>>> data = {"x": torch.arange(8) % 2, "image": torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)}
>>> base = make()
>>> _ = fit_latent_base(base, data, warmup_epochs=1, epochs=1, batch_size=4, lr=1e-3, seed=0, progress=False)
>>> member = make()
>>> losses = fine_tune_member(member, base_state(base), data, gamma=2.0, epochs=1, batch_size=4, lr=1e-3,
...                           seed=1, progress=False)
>>> len(losses), bool(torch.equal(member.r_loc, base.r_loc))
(2, False)
"""

from __future__ import annotations

from collections.abc import Mapping

import pyro
import torch

from cauvade_pyro.models import LatentResponseModel

from .elbo import GammaEntropyELBO
from .init import init_latent_response
from .train import fit_member, fit_svi

__all__ = ["base_state", "fine_tune_member", "fit_latent_base", "warm_start"]


def base_state(model: LatentResponseModel) -> dict[str, torch.Tensor]:
    """The model's parameters as detached CPU tensors (what the base cache file stores)."""
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


def warm_start(model: LatentResponseModel, state: Mapping[str, torch.Tensor]) -> None:
    """Set ``model`` to ``state`` exactly and empty Pyro's param store, so the next fit starts from ``state``."""
    model.load_state_dict(dict(state))
    pyro.clear_param_store()


def fit_latent_base(
    model: LatentResponseModel,
    data: Mapping[str, torch.Tensor],
    *,
    warmup_epochs: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    gamma: float = 0.0,
    clip_norm: float = 10.0,
    cluster_lr: float | None = None,
    progress: bool = True,
    **resume,
) -> list[float]:
    """Train the shared base θ₀ in place: :func:`init_latent_response` then ``epochs`` epochs at γ = 0 (another
    ``gamma``: an independently fitted member, the CLI's ``inference.sweep=independent``).

    ``cluster_lr``: the learning rate of the mixture's tables (π, p(x | c), μ, log σ); None: ``lr``, like the
    networks. At lr = 2e-3 Adam moves a table entry by at most ≈ 2e-3 per step, while the GMM initialisation
    puts the clusters' log p(x | c) nats apart: measured on 3000 shapes (77 steps), H[c | x] stayed at 0.96 nats (of
    log 4 = 1.39) at γ = −2 and at γ = −20, and rose to 1.22 with ``cluster_lr=0.05`` at γ = −20
    (benchmarks/latent_response.py).

    ``resume`` passes ``checkpoint_path``, ``checkpoint_every``, ``resume_from``, ``fingerprint`` and ``hint`` on
    to :func:`~cauvade_pyro.inference.train.fit_svi`. A training state to resume from already holds every
    parameter (the warm-up's result included) and every RNG state, so the warm-up is skipped then.
    """
    data = {k: data[k] for k in ("x", "image")}
    if resume.get("resume_from") is None:
        init_latent_response(model, data, warmup_epochs=warmup_epochs, batch_size=batch_size, lr=lr, seed=seed,
                             progress=progress)
    else:
        pyro.clear_param_store()
    model.train()
    # the warm-up's random state carries on here (no reseeding), so this is fit_svi, not fit_member
    losses = fit_svi(model.model, model.guide, data, GammaEntropyELBO(gamma=float(gamma)), epochs=epochs,
                     batch_size=batch_size, lr=lr, clip_norm=clip_norm, table_lr=cluster_lr,
                     generator=torch.Generator().manual_seed(seed), progress=progress,
                     desc="latent-response base" if gamma == 0 else "latent response", **resume)
    model.eval()
    return losses


def fine_tune_member(
    model: LatentResponseModel,
    base: Mapping[str, torch.Tensor],
    data: Mapping[str, torch.Tensor],
    *,
    gamma: float,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    clip_norm: float = 10.0,
    cluster_lr: float | None = None,
    progress: bool = True,
    **resume,
) -> list[float]:
    """Member (γ, ``seed``): start ``model`` at ``base`` and fit −ELBO + γ Σ H[p(c | x, r)] for ``epochs`` epochs.

    Data order and the ε / r draws come from ``seed``; the optimizer starts fresh. ``cluster_lr`` and ``resume`` as in
    :func:`fit_latent_base` (a resumed member continues from its own training state, which overrides ``base``).
    """
    return fit_member(model.model, model.guide, {k: data[k] for k in ("x", "image")}, gamma=float(gamma), seed=seed,
                      init=lambda generator: warm_start(model, base), module=model, epochs=epochs,
                      batch_size=batch_size, lr=lr, clip_norm=clip_norm, table_lr=cluster_lr, progress=progress,
                      desc=f"member γ={float(gamma):g}", **resume)
