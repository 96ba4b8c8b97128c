"""Pointwise held-out log-likelihoods, shaped ``(draws, observations)`` for ArviZ (docs/design.md §6, "fit").

For the default diagram the log-likelihood splits exactly (docs/design.md §2):

    log p(x, y, image) = log Σ_c π_c p(x | c) p(y | x, c)  +  log p(image | x, y)

- :func:`attribute_loglik` gives the first term **exactly** (c is summed out; K, |X|, |Y| are small).
- :func:`iwae_image_loglik` estimates the second with importance weighting over ε (IWAE, S samples):

      log p(image | x, y) ≈ log (1/S) Σ_s p(image | x, y, ε_s) N(ε_s; 0, I) / q(ε_s | image, x, y),
      ε_s ~ q(ε | image, x, y).

  Its expectation is a lower bound that increases with S (Burda et al. 2016); S = 1 is the ELBO.
- :func:`table_loglik` scores any (X, Y) probability table, e.g. the non-causal attribute baseline
  p(x) p(y | x) fitted by counts.

Every member of a γ-family shares one image model, so the image term is the *same* array for all of them: it
cancels from every difference between members, and the comparison rests on the attribute term.

Fitted members are point estimates. ``draws`` repeats the estimate (exact terms) or draws independent IWAE
estimates (image term), so the arrays have the ``(draws, observations)`` layout ArviZ expects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from cauvade_pyro.models import AttributeMixture, ConditionalImageModel

from .train import to_float_images

__all__ = ["attribute_loglik", "iwae_image_loglik", "table_loglik"]


def _check_draws(draws: int) -> int:
    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws: must be a positive int, got {draws!r}")
    return draws


def _log_joint_xy(mixture: AttributeMixture) -> torch.Tensor:
    """log p(x, y) as an (X, Y) table, normalised in float64 (the parameters may be float32)."""
    device = mixture.pi_logits.device
    c = torch.arange(mixture.num_clusters, device=device).view(-1, 1)
    x = torch.arange(mixture.num_x, device=device).view(1, -1)
    log_pi = mixture.pi_logits.double().log_softmax(-1)
    log_px = mixture.x_logits.double().log_softmax(-1)
    log_py = mixture.y_logits(x, c).double().log_softmax(-1)
    return (log_pi[:, None, None] + log_px[:, :, None] + log_py).logsumexp(0)


@torch.no_grad()
def attribute_loglik(mixture: AttributeMixture, x: torch.Tensor, y: torch.Tensor, draws: int = 1) -> torch.Tensor:
    """Exact log p(x_n, y_n) = log Σ_c π_c p(x_n | c) p(y_n | x_n, c), float64, shape (draws, N)."""
    draws = _check_draws(draws)
    x, y = torch.as_tensor(x, dtype=torch.long), torch.as_tensor(y, dtype=torch.long)
    log_joint = _log_joint_xy(mixture)  # (X, Y)
    values = log_joint[x.to(log_joint.device), y.to(log_joint.device)].cpu()
    return values.expand(draws, -1).clone()


def table_loglik(joint_xy: torch.Tensor, x: torch.Tensor, y: torch.Tensor, draws: int = 1) -> torch.Tensor:
    """log P(x_n, y_n) from a probability table ``joint_xy`` (X, Y), float64, shape (draws, N).

    >>> table = torch.tensor([[0.5, 0.25], [0.125, 0.125]])
    >>> table_loglik(table, torch.tensor([0, 1]), torch.tensor([1, 0])).exp().round(decimals=6).tolist()
    [[0.25, 0.125]]
    """
    draws = _check_draws(draws)
    joint = torch.as_tensor(joint_xy, dtype=torch.float64)
    if joint.dim() != 2 or (joint < 0).any() or abs(float(joint.sum()) - 1.0) > 1e-6:
        raise ValueError("joint_xy: expected an (X, Y) table of probabilities summing to 1")
    values = joint.log()[torch.as_tensor(x, dtype=torch.long), torch.as_tensor(y, dtype=torch.long)]
    return values.expand(draws, -1).clone()


@torch.no_grad()
def iwae_image_loglik(
    image_model: ConditionalImageModel,
    data: Mapping[str, torch.Tensor],
    num_samples: int = 64,
    *,
    draws: int = 1,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """IWAE estimate of log p(image_n | x_n, y_n) with ``num_samples`` (S) importance samples, shape (draws, N).

    ``data`` holds ``x``, ``y`` and ``image`` (uint8 or float in [0, 1]). Evaluated at β = 1 whatever the
    model's ``kl_weight``. Each of the ``draws`` rows is an independent estimate (fresh ε draws); ``generator``
    makes them reproducible. S = 1 gives the one-sample ELBO per image.
    """
    draws = _check_draws(draws)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples: must be a positive int, got {num_samples!r}")
    was_training = image_model.training
    image_model.eval()
    device = next(image_model.parameters()).device
    count = len(data["x"])
    out = torch.empty(draws, count, dtype=torch.float64)
    try:
        for start in range(0, count, batch_size):
            batch = to_float_images({k: data[k][start : start + batch_size] for k in ("x", "y", "image")})
            x, y, image = (batch[k].to(device) for k in ("x", "y", "image"))
            loc, scale = image_model.encode(image, x, y)  # (B, D)
            cond = image_model.condition(x, y)
            for d in range(draws):
                noise = torch.randn((num_samples,) + loc.shape, generator=generator).to(device, loc.dtype)
                eps = loc + scale * noise  # (S, B, D)
                log_q = torch.distributions.Normal(loc, scale).log_prob(eps).sum(-1)
                log_prior = image_model.eps_prior(x, y).log_prob(eps)  # N(0, I) or the fitted mixture
                logits = image_model.decoder(
                    cond.expand((num_samples,) + cond.shape).reshape(-1, cond.shape[-1]),
                    eps.reshape(-1, eps.shape[-1]),
                )
                logits = logits.reshape((num_samples, loc.shape[0]) + logits.shape[1:])
                log_lik = image_model.image_dist(logits).log_prob(image)  # (S, B)
                log_w = (log_lik + log_prior - log_q).double()
                out[d, start : start + loc.shape[0]] = (log_w.logsumexp(0) - math.log(num_samples)).cpu()
    finally:
        image_model.train(was_training)
    return out
