"""Ex-post prior of the image noise ε: a Gaussian mixture fitted to the encoder's codes after training.

A VAE trained with ε ~ N(0, I) leaves its aggregate posterior q(ε) = (1/N) Σ_n q(ε | image_n, …) unequal to
N(0, I): prior draws fall in regions no real image is encoded to, and decode to images unlike any in the data.
Once a model is trained (the default diagram's image model, or the latent-response model), :func:`fit_eps_prior`
draws ``draws`` codes ε ~ q(ε | image_n, …) per training image and fits, by EM (scikit-learn's
``GaussianMixture``),

    p(ε) = Σ_{m=1}^{M} w_m N(ε; μ_m, Σ_m),     (w, μ, Σ) = argmax Σ_{n,k} log p(ε_{n,k}),

which the model then uses for every prior draw and every held-out likelihood. The mixture is pooled over all
conditions: p(ε) stays independent of x, y (or r) and the confounder, so P(image | do(x)) keeps its meaning; only
the decoder's inputs come from where the data put them (:class:`cauvade_pyro.models.noise.NoiseMixture`).

>>> import torch
>>> from cauvade_pyro.models import ConditionalImageModel
>>> model = ConditionalImageModel(2, 3, (3, 28, 28), net="mlp", eps_dim=2, eps_prior_components=2)
>>> data = {"x": torch.arange(40) % 2, "y": torch.arange(40) % 3, "image": torch.rand(40, 3, 28, 28)}
>>> info = fit_eps_prior(model, data, seed=0)
>>> model.eps_prior_fitted, info["components"], info["codes"]
(True, 2, 40)
"""

from __future__ import annotations

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
    codes = []
    try:
        for start in range(0, len(data["x"]), batch_size):
            batch = to_float_images({k: data[k][start : start + batch_size].to(device) for k in keys})
            loc, scale = model.eps_posterior(batch)
            noise = torch.randn((draws, *loc.shape), generator=generator).to(device, loc.dtype)
            codes.append((loc + scale * noise).reshape(-1, loc.shape[-1]).float().cpu())
    finally:
        model.train(was_training)
    codes = torch.cat(codes).double()
    if len(codes) < components:
        raise ValueError(f"{len(codes)} codes cannot fit {components} mixture components")
    mixture = GaussianMixture(components, covariance_type="full", reg_covar=reg_covar, random_state=seed)
    mixture.fit(codes.numpy())
    weights = torch.as_tensor(mixture.weights_)
    loc = torch.as_tensor(mixture.means_)
    scale_tril = torch.linalg.cholesky(torch.as_tensor(mixture.covariances_))
    buffer = model.eps_noise.loc
    model.eps_noise.set(weights.log().to(buffer), loc.to(buffer), scale_tril.to(buffer))
    standard = torch.distributions.Normal(0.0, 1.0).log_prob(codes).sum(-1).mean()
    return {"components": components, "codes": len(codes), "converged": bool(mixture.converged_),
            "code_log_density_mixture": round(float(mixture.score(codes.numpy())), 4),
            "code_log_density_standard_normal": round(float(standard), 4)}
