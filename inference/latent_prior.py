r"""Ex-post refit of the latent-response mixture's tables to the encoder's aggregate posterior.

A trained mixture VAE samples r from its prior p(r | x) = Σ_c p(c | x) N(r; μ[c, x], σ[c, x]), but decodes well
only the codes its encoder uses, the aggregate posterior q(x, r) = 1/N Σ_n δ(x − x_n) q(r | image_n, x_n). Where
the two differ ("prior holes") its samples miss the data (Ghosh et al. 2020, "From variational to deterministic
autoencoders", ex-post density estimation). After training, with the networks fixed, this module draws codes
(x_n, r_ns) (s = 1 … S draws from q(r | image_n, x_n), or its mean when S = 0) and refits the tables
θ = (π, p(x | c), μ, σ) by maximum likelihood of the model's own prior with c summed out:

    ℓ(θ) = 1/(N S) Σ_{n,s} log Σ_c π_c p(x_n | c) N(r_ns; μ[c, x_n], diag σ[c, x_n]²).

EM is exact: with responsibilities w_nsc = p(c | x_n, r_ns) under the current θ (normalised over c),

    π_c = Σ w_nsc / (N S),   p(x | c) = Σ_{x_n = x} w_nsc / Σ w_nsc,
    μ[c, x] = Σ_{x_n = x} w_nsc r_ns / Σ_{x_n = x} w_nsc,   σ²[c, x] likewise (floored at ``min_scale``²),

and every step does not lower ℓ (started from the trained tables, the refit is at least as likely as them). A
cell (c, x) without weight keeps its μ, σ. ``tie_x=True`` holds p(x | c) at the codes' marginal p(x) for
every c (its M-step is exact too), so c ⟂ x and do(x) draws what conditioning on x draws. ``gamma ≠ 0`` then
takes ``steps`` full-batch Adam steps on −ℓ(θ) + γ · mean H[p(c | x, r)] from the EM solution (the γ-family's
objective on the tables only; γ < 0 rewards clusters that overlap in (x, r)).

>>> import torch
>>> from cauvade_pyro.models import LatentResponseModel
>>> _ = torch.manual_seed(0)
>>> m = LatentResponseModel(2, 2, (1, 28, 28), r_dim=2, eps_dim=2, net="mlp")
>>> data = {"x": torch.arange(16) % 2, "image": torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)}
>>> report = refit_latent_prior(m, data, samples=4, iterations=20, seed=0)
>>> report["loglik_after"] >= report["loglik_before"], round(float(m.pi_logits.softmax(-1).sum()), 4)
(True, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch

from cauvade_pyro.models import LatentResponseModel

from .train import to_float_images

__all__ = ["MixtureTables", "encode_codes", "fit_mixture_em", "mixture_loglik", "refit_latent_prior"]


class MixtureTables(NamedTuple):
    """The mixture's tables in log space: log π (K,), log p(x | c) (K, X), μ (K, X, D), log σ (K, X, D)."""

    log_pi: torch.Tensor
    log_px: torch.Tensor
    loc: torch.Tensor
    log_scale: torch.Tensor


def _log_joint(tables: MixtureTables, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """log π_c + log p(x_n | c) + log N(r_n; μ[c, x_n], σ[c, x_n]), shape (N, K)."""
    loc, log_scale = tables.loc[:, x], tables.log_scale[:, x]  # (K, N, D)
    log_normal = (-0.5 * ((r - loc) / log_scale.exp()) ** 2 - log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)
    return (tables.log_pi[:, None] + tables.log_px[:, x] + log_normal).T


def _posterior_entropy(log_joint: torch.Tensor) -> torch.Tensor:
    """mean over the codes of H[p(c | x, r)], from log p(c, x, r) of shape (N, K)."""
    log_post = log_joint - log_joint.logsumexp(-1, keepdim=True)
    return -(log_post.exp() * log_post).sum(-1).mean()


def mixture_loglik(tables: MixtureTables, x: torch.Tensor, r: torch.Tensor) -> float:
    """ℓ: mean over the codes of log p(x, r) with c summed out."""
    return float(_log_joint(tables, x, r).logsumexp(-1).mean())


def fit_mixture_em(tables: MixtureTables, x: torch.Tensor, r: torch.Tensor, *, iterations: int = 100,
                   tie_x: bool = False, min_scale: float = 1e-3, tol: float = 1e-7) -> MixtureTables:
    """EM for the tables on codes ``x`` (N,) long and ``r`` (N, D), started at ``tables``; stops after
    ``iterations`` or when ℓ rises by less than ``tol`` nats per code."""
    num_x = tables.log_px.shape[1]
    onehot = torch.nn.functional.one_hot(x, num_x).to(r.dtype)  # (N, X)
    log_marginal_x = (onehot.sum(0) / len(x)).log()
    previous = -math.inf
    for _ in range(iterations):
        log_joint = _log_joint(tables, x, r)
        current = float(log_joint.logsumexp(-1).mean())
        if current - previous < tol:
            break
        previous = current
        w = (log_joint - log_joint.logsumexp(-1, keepdim=True)).exp()  # p(c | x_n, r_n), (N, K)
        cell = w.T @ onehot  # (K, X): Σ_{x_n = x} w_nc
        total = cell.sum(1)  # (K,)
        log_pi = (total / len(x)).clamp_min(1e-30).log()
        if tie_x:
            log_px = log_marginal_x.expand_as(tables.log_px).clone()
        else:
            log_px = (cell / total[:, None].clamp_min(1e-30)).clamp_min(1e-30).log()
        weighted = torch.einsum("nc,nx,nd->cxd", w, onehot, r)
        weighted_sq = torch.einsum("nc,nx,nd->cxd", w, onehot, r * r)
        has = cell[..., None] > 1e-8
        denom = cell[..., None].clamp_min(1e-30)
        loc = torch.where(has, weighted / denom, tables.loc)
        var = (weighted_sq / denom - loc**2).clamp_min(min_scale**2)
        log_scale = torch.where(has, 0.5 * var.log(), tables.log_scale)
        tables = MixtureTables(log_pi, log_px, loc, log_scale)
    return tables


def _adam_gamma(tables: MixtureTables, x: torch.Tensor, r: torch.Tensor, *, gamma: float, steps: int, lr: float,
                tie_x: bool) -> MixtureTables:
    """Full-batch Adam on −ℓ + γ · mean H[p(c | x, r)] from ``tables`` (p(x | c) held fixed when ``tie_x``)."""
    params = [t.clone().requires_grad_(True) for t in tables]
    trainable = [p for i, p in enumerate(params) if not (tie_x and i == 1)]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        current = MixtureTables(params[0].log_softmax(-1), params[1].log_softmax(-1), params[2], params[3])
        log_joint = _log_joint(current, x, r)
        loss = -log_joint.logsumexp(-1).mean() + gamma * _posterior_entropy(log_joint)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return MixtureTables(params[0].log_softmax(-1), params[1].log_softmax(-1), params[2].detach(),
                             params[3].detach())


@torch.no_grad()
def encode_codes(model: LatentResponseModel, data: Mapping[str, torch.Tensor], *, samples: int = 8,
                 seed: int = 0, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (x, r) of the images in ``data`` (keys ``x``, ``image``): ``samples`` draws of r from
    q(r | image, x) per image (0: the guide's mean), returned flat (N·max(S, 1),) and (N·max(S, 1), r_dim)."""
    generator = torch.Generator().manual_seed(seed)
    xs, rs = [], []
    for start in range(0, len(data["x"]), batch_size):
        batch = to_float_images({k: data[k][start : start + batch_size] for k in ("x", "image")})
        loc, scale = model.encode(batch["image"], batch["x"])
        loc, scale = loc[:, : model.r_dim].cpu(), scale[:, : model.r_dim].cpu()
        if samples > 0:
            noise = torch.randn((samples, *loc.shape), generator=generator)
            rs.append((loc + scale * noise).reshape(-1, model.r_dim))
            xs.append(batch["x"].cpu().repeat(samples))
        else:
            rs.append(loc)
            xs.append(batch["x"].cpu())
    return torch.cat(xs), torch.cat(rs)


def refit_latent_prior(model: LatentResponseModel, data: Mapping[str, torch.Tensor], *, samples: int = 8,
                       iterations: int = 200, tie_x: bool = False, gamma: float = 0.0, steps: int = 300,
                       lr: float = 0.05, min_scale: float = 1e-3, seed: int = 0) -> dict:
    """Refit ``model``'s tables (π, p(x | c), μ, σ) in place to the codes of ``data``'s images: EM from the
    trained tables, then (``gamma ≠ 0``) ``steps`` Adam steps on −ℓ + γ · mean H[p(c | x, r)]. The networks are
    not touched. Returns ℓ before and after (nats per code, float64) and the number of codes."""
    was_training = model.training
    model.eval()
    x, r = encode_codes(model, data, samples=samples, seed=seed)
    r = r.double()
    device = model.pi_logits.device
    with torch.no_grad():
        before = MixtureTables(model.pi_logits.log_softmax(-1), model.x_logits.log_softmax(-1), model.r_loc,
                               model.r_log_scale)
        before = MixtureTables(*(t.detach().cpu().double() for t in before))
        tables = fit_mixture_em(before, x, r, iterations=iterations, tie_x=tie_x, min_scale=min_scale)
    if gamma != 0.0:
        tables = _adam_gamma(tables, x, r, gamma=gamma, steps=steps, lr=lr, tie_x=tie_x)
    with torch.no_grad():
        for name, value in zip(("pi_logits", "x_logits", "r_loc", "r_log_scale"), tables):
            getattr(model, name).copy_(value.to(device=device, dtype=getattr(model, name).dtype))
        entropy = float(_posterior_entropy(_log_joint(tables, x, r)))
    model.train(was_training)
    return {"loglik_before": round(mixture_loglik(before, x, r), 5), "loglik_after": round(mixture_loglik(tables, x, r), 5),
            "entropy_c_given_x_r_after": round(entropy, 5), "codes": len(x), "samples": samples, "tie_x": tie_x,
            "gamma": gamma}
