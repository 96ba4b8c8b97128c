"""Initialisation of the latent-response diagram: a VaDE-style autoencoder warm-up, then a GMM.

1. Warm-up: fit the model with r ~ N(0, I) and no confounder (a conditional VAE of the image given x).
2. Fit a K-component Gaussian mixture (scikit-learn) to the encoder means of r on the training images, and
   set μ[c, x] = m_c, σ[c, x] = sqrt(diag S_c), π = mixture weights, and p(x | c) from the responsibilities.

Random initial parameters instead leave the fit near the observational answer (docs/design.md §7).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
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
) -> list[float]:
    """Warm up ``model`` as an autoencoder on ``data`` (keys ``x``, ``image``), then GMM-initialise its clusters."""
    model.warmup = True
    try:
        losses = fit_member(model.model, model.guide, {"x": data["x"], "image": data["image"]}, gamma=0.0, seed=seed,
                            epochs=warmup_epochs, batch_size=batch_size, lr=lr, progress=progress, desc="warm-up")
    finally:
        model.warmup = False
    with torch.no_grad():
        codes = []
        for start in range(0, len(data["x"]), 1024):
            batch = to_float_images({k: data[k][start : start + 1024] for k in ("x", "image")})
            codes.append(model.encode(batch["image"], batch["x"])[0][:, : model.r_dim].cpu())
        codes = torch.cat(codes).double().numpy()
        gmm = GaussianMixture(model.num_clusters, covariance_type="diag", random_state=seed).fit(codes)
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
