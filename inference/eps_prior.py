"""Ex-post prior of the image noise ε: a Gaussian mixture per condition fitted to the encoder's codes after training.

A VAE trained with ε ~ N(0, I) leaves its aggregate posterior q(ε) = (1/N) Σ_n q(ε | image_n, …) unequal to
N(0, I): prior draws fall in regions no real image is encoded to, and decode to images unlike any in the data.
Once a model is trained (the default diagram's image model, or the latent-response model), :func:`fit_eps_prior`
draws ``draws`` codes ε ~ q(ε | image_n, …) per training image and fits, by EM (scikit-learn's
``GaussianMixture``), for every value k of the model's condition (``model.eps_condition``: the cell (x, y) or the
value of x for the default diagram's image model, x for the latent-response model),

    p(ε | k) = Σ_{m=1}^{M} w_{k,m} N(ε; μ_{k,m}, Σ_{k,m}),     (w, μ, Σ)_k = argmax Σ_{n: k_n = k} Σ_j log p(ε_{n,j} | k),

which the model then uses for every prior draw and every held-out likelihood. The condition is a value of the
image's parents, never the confounder (nor the latent response r), so P(image | do(x)) keeps its meaning
(:mod:`cauvade_pyro.models.noise` gives the argument and the costs).

>>> import torch
>>> from cauvade_pyro.models import ConditionalImageModel
>>> model = ConditionalImageModel(2, 3, (3, 28, 28), net="mlp", eps_dim=2, eps_prior_components=2)
>>> data = {"x": torch.arange(40) % 2, "y": torch.arange(40) % 3, "image": torch.rand(40, 3, 28, 28)}
>>> info = fit_eps_prior(model, data, seed=0)
>>> model.eps_prior_fitted, info["components"], info["codes"]
(True, 2, 40)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .train import to_float_images


@torch.no_grad()
def fit_eps_prior(
    model,
    data: Mapping[str, torch.Tensor],
    *,
    draws: int = 1,
    batch_size: int = 1024,
    seed: int = 0,
    reg_covar: float = 1e-4,
) -> dict:
    """Fit ``model``'s ε mixture (``model.eps_noise``, its ``components``) to codes of ``data``.

    ``model`` has ``eps_noise`` and ``eps_posterior(batch)`` (the parameters of q(ε | …)); ``data`` holds ``image``
    (uint8 or float in [0, 1]), ``x`` and, for the default diagram, ``y``. ``draws`` codes per image are drawn
    from q(ε | …) with a generator seeded by ``seed`` (which also seeds EM's initialisation).
    ``reg_covar`` is added to every covariance's diagonal. Returns what was fitted: the number of components and
    codes, and the mean log-density of the codes under the mixture and under N(0, I) (nats per code).
    """
    from sklearn.mixture import GaussianMixture

    components = model.eps_noise.components
    if components < 1:
        raise ValueError("the image model was built with eps_prior_components=0: there is no mixture to fit")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    keys = [k for k in ("x", "y", "image") if k in data]
    codes, conditions = [], []
    try:
        for start in range(0, len(data["x"]), batch_size):
            batch = to_float_images({k: data[k][start : start + batch_size].to(device) for k in keys})
            loc, scale = model.eps_posterior(batch)
            noise = torch.randn((draws, *loc.shape), generator=generator).to(device, loc.dtype)
            codes.append((loc + scale * noise).reshape(-1, loc.shape[-1]).float().cpu())  # draw-major
            conditions.append(model.eps_condition(batch["x"], batch.get("y")).cpu().repeat(draws))
    finally:
        model.train(was_training)
    codes, conditions = torch.cat(codes).double(), torch.cat(conditions)
    tables, converged, log_density = [], True, 0.0
    dim = codes.shape[-1]
    for k in range(model.eps_noise.num_conditions):  # each x (or each cell (x, y))
        own = codes[conditions == k]
        # a condition with fewer codes than components gets as many components as it has codes (the rest weigh
        # nothing), one with fewer than 2 codes keeps N(0, I) (EM needs two): a tiny dataset still finishes its fit
        logits = torch.full((components,), -math.inf, dtype=torch.float64)
        loc = torch.zeros(components, dim, dtype=torch.float64)
        scale_tril = torch.eye(dim, dtype=torch.float64).expand(components, dim, dim).clone()
        used = min(components, len(own)) if len(own) >= 2 else 0
        if used == 0:
            logits[0] = 0.0
        else:
            mixture = GaussianMixture(used, covariance_type="full", reg_covar=reg_covar, random_state=seed)
            mixture.fit(own.numpy())
            logits[:used] = torch.as_tensor(mixture.weights_).log()
            loc[:used] = torch.as_tensor(mixture.means_)
            scale_tril[:used] = torch.linalg.cholesky(torch.as_tensor(mixture.covariances_))
            converged &= bool(mixture.converged_)
            log_density += float(mixture.score(own.numpy())) * len(own)
        tables.append((logits, loc, scale_tril))
    buffer = model.eps_noise.loc
    model.eps_noise.set(*(torch.stack(parts).to(buffer) for parts in zip(*tables)))
    standard = torch.distributions.Normal(0.0, 1.0).log_prob(codes).sum(-1).mean()
    return {"components": components, "codes": len(codes), "converged": converged,
            "code_log_density_mixture": round(log_density / len(codes), 4),
            "code_log_density_standard_normal": round(float(standard), 4)}
