r"""Response atoms: quantise a trained latent-response model's codes, so that its family is a discrete one.

With the networks of a trained :class:`~cauvade_pyro.models.LatentResponseModel` fixed, every training image n
of class x_n has a code z_n = (r̂_n, ε̂_n), the mean of q(r, ε | image_n, x_n). :func:`fit_response_atoms` fits,
by EM (scikit-learn's ``GaussianMixture``, full covariances), M Gaussians to the pooled codes

    Σ_{a=1}^{M} w_a N(z; μ_a, Σ_a),   (w, μ, Σ) = argmax Σ_n log Σ_a w_a N(z_n; μ_a, Σ_a),

and assigns each image its most likely atom a_n = argmax_a w_a N(z_n; μ_a, Σ_a). Neither x nor any label
enters: the atoms are regions of the code space, shared by every x. The pairs (x_n, a_n) are then the data of a
discrete bow graph c → x, (x, c) → a, whose family :func:`~cauvade_pyro.inference.fit_family` fits
(:class:`~cauvade_pyro.models.AtomResponseModel` is its Pyro program); the atoms' Gaussians (the weights w are
the family's business, so they are not kept) become the law of z given the atom.

>>> import torch
>>> from cauvade_pyro.models import LatentResponseModel
>>> model = LatentResponseModel(2, 2, (1, 28, 28), r_dim=2, eps_dim=2, net="mlp")
>>> data = {"x": torch.arange(40) % 2, "image": torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)}
>>> atoms, assigned, info = fit_response_atoms(model, data, num_atoms=3, seed=0)
>>> atoms.num_conditions, assigned.shape, info["atoms"]
(3, torch.Size([40]), 3)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from cauvade_pyro.models import LatentResponseModel
from cauvade_pyro.models.noise import NoiseMixture

from .train import to_float_images

__all__ = ["encode_means", "fit_response_atoms"]


@torch.no_grad()
def encode_means(model: LatentResponseModel, data: Mapping[str, torch.Tensor], batch_size: int = 1024) -> torch.Tensor:
    """The guide's mean code (r̂, ε̂) of every image in ``data`` (``x``, ``image``), float64 on the CPU, (N, D)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    codes = []
    try:
        for start in range(0, len(data["x"]), batch_size):
            batch = to_float_images({k: data[k][start : start + batch_size].to(device) for k in ("x", "image")})
            codes.append(model.encode(batch["image"], batch["x"])[0].double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(codes)


def fit_response_atoms(
    model: LatentResponseModel,
    data: Mapping[str, torch.Tensor],
    *,
    num_atoms: int,
    seed: int = 0,
    reg_covar: float = 1e-4,
    batch_size: int = 1024,
) -> tuple[NoiseMixture, torch.Tensor, dict]:
    """Fit ``num_atoms`` Gaussian atoms to the codes of ``data`` (module docstring).

    Returns the atoms (a :class:`~cauvade_pyro.models.noise.NoiseMixture` with one Gaussian per atom, on the
    model's device), the atom of every row of ``data`` (a LongTensor on ``data["x"]``'s device) and a summary:
    the number of atoms and codes, whether EM converged, the mean log-density of the codes, and the share of
    rows per atom. ``seed`` seeds EM's initialisation; ``reg_covar`` is added to every covariance's diagonal.
    """
    from sklearn.mixture import GaussianMixture

    if num_atoms < 1:
        raise ValueError(f"num_atoms must be >= 1, got {num_atoms}")
    codes = encode_means(model, data, batch_size)
    if len(codes) < num_atoms:
        raise ValueError(f"{num_atoms} atoms need at least as many images, got {len(codes)}")
    mixture = GaussianMixture(num_atoms, covariance_type="full", reg_covar=reg_covar, random_state=seed)
    assigned = torch.as_tensor(mixture.fit_predict(codes.numpy()), dtype=torch.long)
    dim = codes.shape[-1]
    atoms = NoiseMixture(dim, components=1, num_conditions=num_atoms)
    atoms.set(torch.zeros(num_atoms, 1), torch.as_tensor(mixture.means_, dtype=torch.float32).view(num_atoms, 1, dim),
              torch.linalg.cholesky(torch.as_tensor(mixture.covariances_)).float().view(num_atoms, 1, dim, dim))
    share = torch.bincount(assigned, minlength=num_atoms).double() / len(assigned)
    info = {"atoms": num_atoms, "codes": len(codes), "converged": bool(mixture.converged_),
            "code_log_density": round(float(mixture.score(codes.numpy())), 4),
            "share_per_atom": [round(float(v), 5) for v in share]}
    return atoms.to(next(model.parameters()).device), assigned.to(data["x"].device), info
