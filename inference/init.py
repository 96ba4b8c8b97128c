"""Initialisation of the latent-response diagram: a VaDE-style autoencoder warm-up, then a GMM.

1. Warm-up: fit the model with r ~ N(0, I) and no confounder (a conditional VAE of the image given x).
   ``warmup_kl_weight`` < 1 scales r's KL term during the warm-up only (towards a deterministic autoencoder,
   as VaDE's pre-training); 1 (the default) is the plain VAE.
2. Fit a K-component Gaussian mixture (scikit-learn) to the encoder means of r on the training images, and
   set μ[c, x] = m_c, σ[c, x] = sqrt(diag S_c), π = mixture weights, and p(x | c) from the responsibilities.
   ``gmm_restarts`` > 1 runs the GMM from that many k-means starts and keeps the one of highest likelihood
   (scikit-learn's ``n_init``: unsupervised); 1 (the default) is one start.

Random initial parameters instead leave the fit near the observational answer (docs/design.md §7).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pyro.poutine.messenger import Messenger
from sklearn.mixture import GaussianMixture

from cauvade_pyro.models import LatentResponseModel

from .train import fit_member, to_float_images


def init_latent_response(
    model: LatentResponseModel,
    data: Mapping[str, torch.Tensor],
    *,
    warmup_epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool = True,
    warmup_kl_weight: float = 1.0,
    gmm_restarts: int = 1,
) -> list[float]:
    """Warm up ``model`` as an autoencoder on ``data`` (keys ``x``, ``image``), then GMM-initialise its clusters.

    ``warmup_kl_weight``: the weight of r's KL term during the warm-up (1: a VAE; small: nearly an autoencoder);
    ``gmm_restarts``: the GMM's number of starts, the best by its own likelihood kept."""
    if not warmup_kl_weight > 0:
        raise ValueError(f"warmup_kl_weight must be > 0, got {warmup_kl_weight}")
    if gmm_restarts < 1:
        raise ValueError(f"gmm_restarts must be >= 1, got {gmm_restarts}")
    fit_model, fit_guide = model.model, model.guide
    if warmup_kl_weight != 1.0:  # scale log p(r) in the model and log q(r) in the guide: their difference is the KL
        fit_model = _scale_site(model.model, "r", warmup_kl_weight)
        fit_guide = _scale_site(model.guide, "r", warmup_kl_weight)
    model.warmup = True
    try:
        losses = fit_member(fit_model, fit_guide, {"x": data["x"], "image": data["image"]}, gamma=0.0, seed=seed,
                            epochs=warmup_epochs, batch_size=batch_size, lr=lr, progress=progress, desc="warm-up")
    finally:
        model.warmup = False
    with torch.no_grad():
        codes = []
        for start in range(0, len(data["x"]), 1024):
            batch = to_float_images({k: data[k][start : start + 1024] for k in ("x", "image")})
            codes.append(model.encode(batch["image"], batch["x"])[0][:, : model.r_dim].cpu())
        codes = torch.cat(codes).double().numpy()
        gmm = GaussianMixture(model.num_clusters, covariance_type="diag", n_init=gmm_restarts,
                              random_state=seed).fit(codes)
        responsibilities = torch.as_tensor(gmm.predict_proba(codes))
        x_counts = responsibilities.T @ torch.nn.functional.one_hot(data["x"].cpu(), model.num_x).double()
        device = model.pi_logits.device
        model.pi_logits.copy_(torch.as_tensor(gmm.weights_).log().to(device))
        model.x_logits.copy_((x_counts + 1.0).log().to(device))
        model.r_loc.copy_(torch.as_tensor(gmm.means_)[:, None, :].expand_as(model.r_loc).to(device))
        model.r_log_scale.copy_(
            (0.5 * torch.as_tensor(gmm.covariances_).log())[:, None, :].expand_as(model.r_log_scale).to(device)
        )
    return losses


class _SiteScale(Messenger):
    """Multiply the log-density scale of one named sample site (and no other)."""

    def __init__(self, name: str, scale: float):
        super().__init__()
        self.name, self.scale = name, float(scale)

    def _process_message(self, msg):
        if msg["name"] == self.name:
            msg["scale"] = msg["scale"] * self.scale


def _scale_site(fn, name: str, scale: float):
    def scaled(*args, **kwargs):
        with _SiteScale(name, scale):
            return fn(*args, **kwargs)

    return scaled
