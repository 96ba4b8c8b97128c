r"""The latent-response diagram with its response quantised into atoms: a family over a discrete response.

A trained :class:`~cauvade_pyro.models.LatentResponseModel` encodes each image of class x into a code
z = (r, ε). Its mixture prior of r cannot be moved by γ without refitting the networks, and the response may
sit in ε, which the confounder cannot reach (docs/latent_response.md measures both). Here the response is the
code itself, quantised: M *atoms* are Gaussians N(μ_a, Σ_a) over z fitted to the pooled codes of the training
images (no label, no x: :func:`cauvade_pyro.inference.fit_response_atoms`), and the diagram is

    c ~ Categorical(π),   x ~ p(x | c),   a ~ p(a | x, c)   (the response atom: an :class:`AttributeMixture`
    z ~ N(μ_a, Σ_a),   image ~ Bernoulli(decoder(x, z))     whose outcome site is named "atom"),

with the decoder of the trained model. The objective splits like the default diagram's:
log p(x, image) ≈ log P(x, a) + log p(image | x, a) once each training image is assigned its most likely atom,
so the whole γ-family lives in the discrete tables (π, p(x | c), p(a | x, c)) and
:func:`~cauvade_pyro.inference.fit_family` fits it on the (x, atom) pairs (:meth:`attribute_level`). Every
member shares the decoder and the atoms, and

    P(image | do(x)) = Σ_a P(a | do(x)) ∫ N(z; μ_a, Σ_a) p(image | x, z) dz,   P(a | do(x)) = Σ_c π_c p(a | x, c).

Whether a member moves the *response* (the hue) and not only the atoms is an empirical question the judge
answers from the images: an atom's hue, decoded with each x, depends on how the encoder laid out the codes.

>>> import torch
>>> from cauvade_pyro.models import AttributeMixture, LatentResponseModel
>>> from cauvade_pyro.models.noise import NoiseMixture
>>> image = LatentResponseModel(2, 2, (1, 28, 28), r_dim=2, eps_dim=2, net="mlp")
>>> atoms = NoiseMixture(dim=4, components=1, num_conditions=3)   # 3 atoms of the 4-dim code, one Gaussian each:
>>> atoms.set(torch.zeros(3, 1), torch.randn(3, 1, 4), torch.eye(4).expand(3, 1, 4, 4))   # (fit_response_atoms)
>>> model = AtomResponseModel(AttributeMixture(2, 2, 3, y_given_xc="table", outcome="atom"), image, atoms)
>>> model.model(num_samples=5).shape
torch.Size([5, 1, 28, 28])
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pyro
import torch
from torch import nn

from .confounded_attributes import AttributeMixture
from .latent_response import LatentResponseModel
from .nets import image_likelihood
from .noise import NoiseMixture
from .primitives import DATA_PLATE, data_size

ATOM = "atom"  # the sample site (and data key) of the response atom


class AtomResponseModel(nn.Module):
    """c → x, (x, c) → atom, atom → z, (x, z) → image: one member of the quantised latent-response family."""

    def __init__(self, attributes: AttributeMixture, image: LatentResponseModel, atoms: NoiseMixture):
        super().__init__()
        if attributes.outcome != ATOM:
            raise ValueError(f"the attribute mixture's outcome site must be named {ATOM!r}, got {attributes.outcome!r}")
        if atoms.components != 1 or atoms.num_conditions != attributes.num_y:
            raise ValueError(f"atoms: one Gaussian per atom and {attributes.num_y} atoms expected, got "
                             f"{atoms.components} per atom and {atoms.num_conditions} atoms")
        if not atoms.fitted:
            raise ValueError("atoms: no Gaussians set (fit them with cauvade_pyro.inference.fit_response_atoms)")
        if atoms.dim != image.r_dim + image.eps_dim:
            raise ValueError(f"atoms: the code has {image.r_dim + image.eps_dim} dimensions (r and ε), the atoms "
                             f"{atoms.dim}")
        self.attributes, self.image, self.atoms = attributes, image, atoms
        self.num_x, self.r_dim, self.eps_dim = image.num_x, image.r_dim, image.eps_dim
        self.num_clusters, self.num_atoms = attributes.num_clusters, attributes.num_y

    def attribute_level(self):
        """The part a family refits and the data keys it reads: the discrete tables of (x, atom)."""
        return self.attributes.model, ("x", ATOM)

    def model(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        data = data or {}
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            x, atom = self.attributes.sample_attributes(data)
            z = pyro.sample("z", self.atoms.distribution(atom))
            logits = self.image.decoder(self.image._condition(x, z[..., : self.r_dim]), z[..., self.r_dim :])
            if data.get("image") is None:
                pyro.deterministic("image_mean", torch.sigmoid(logits), event_dim=3)
            return pyro.sample("image", image_likelihood(self.image.likelihood, logits), obs=data.get("image"))

    # ---- exact posteriors of the confounder (the atom summed out) ----------------------------------------------

    def _log_joint_c(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """log Σ_a p(c, x, a) N(code; μ_a, Σ_a) for every c, shape ``x.shape + (K,)``."""
        log_cxa = self.attributes.log_joint_table()  # (K, X, A)
        atoms = torch.arange(self.num_atoms, device=code.device)
        log_z = self.atoms.log_prob(code.unsqueeze(-2), atoms)  # (..., A)
        return (log_cxa[:, x].movedim(0, -2) + log_z.unsqueeze(-2)).logsumexp(-1)

    def posterior_c_given_code(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """p(c | x, z) for codes z = (r, ε), shape ``x.shape + (K,)``: the posterior whose entropy the γ-term weighs."""
        return self._log_joint_c(x, code).softmax(-1)

    def posterior_c_given_x(self, x: torch.Tensor) -> torch.Tensor:
        """p(c | x) ∝ π_c p(x | c): what conditioning on x weighs the clusters by (do(x) weighs them by π)."""
        return self.attributes.log_joint_table().logsumexp(-1)[:, x].movedim(0, -1).softmax(-1)

    @torch.no_grad()
    def sample_given_x(self, x: int, num_samples: int) -> dict[str, torch.Tensor]:
        """Observational draws given x, exactly: atom ~ P(atom | x), z ~ N(μ_atom, Σ_atom); returns atom, z and
        ``image_mean`` (c is summed out: the image depends on c only through the atom)."""
        device = self.attributes.pi_logits.device
        xs = torch.full((num_samples,), int(x), dtype=torch.long, device=device)
        atom = torch.multinomial(self.attributes.joint_xy()[int(x)], num_samples, replacement=True)
        z = self.atoms.sample(atom)
        return {"atom": atom, "z": z, "image_mean": self.decode(xs, z[:, : self.r_dim], z[:, self.r_dim :])}

    # ---- what the latent-response evaluation reads (held-out bound, effectiveness), through the image model --

    def encode(self, image: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image.encode(image, x)

    def decode(self, x: torch.Tensor, r: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.image.decode(x, r, eps)

    def log_weight(self, image: torch.Tensor, x: torch.Tensor, r: torch.Tensor, eps: torch.Tensor,
                   loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """log p(x, z, image) − log q(z | image, x) at z = (r, ε), the atom and c summed out exactly:
        p(x, z) = Σ_a P(x, a) N(z; μ_a, Σ_a) with P(x, a) this member's table. Leading dims of ``r`` left of
        ``x``'s are particles (as :meth:`LatentResponseModel.log_weight`)."""
        z = torch.cat([r, eps], -1)
        log_p = self.log_prob_x_code(x, z) + self.image.image_log_prob(image, x, r, eps)
        return log_p - torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)

    @torch.no_grad()
    def log_prob_image_given_atoms(self, image: torch.Tensor, x: torch.Tensor, particles: int = 4,
                                   generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Importance-sampled log p(image | x, a) for every atom a, shape ``x.shape + (A,)`` (1-D ``x``).

        Per atom, ⌈k/2⌉ draws come from the product of the atom's Gaussian and the encoder's q(z | image, x) =
        N(m, diag(s²)), normalised (a Gaussian g_a with precision Σ_a⁻¹ + diag(s⁻²) and mean
        S_a (Σ_a⁻¹ μ_a + diag(s⁻²) m)), and the other ⌊k/2⌋ from the atom's Gaussian itself; with q_a the
        mixture of the two in those shares (multiple importance sampling, balance heuristic),

            p̂_a = (1/k) Σ_j N(z_j; μ_a, Σ_a) p(image | x, z_j) / q_a(z_j)

        is unbiased for p(image | x, a) = ∫ N(z; μ_a, Σ_a) p(image | x, z) dz. g_a puts the draws where the image
        is likely, inside the atom; the atom's own share keeps every weight below k / ⌊k/2⌋ (g_a alone is
        narrower than the atom wherever the image says little about z, and its weights then have no finite
        variance: measured on a flat likelihood, 0.2 nats short at 2000 draws). Why not the encoder's q for
        all atoms: it puts few draws where a narrow atom has its mass, and how many it misses differs with the
        weight a member's table gives that atom (docs/latent_response.md measures it). Any table P(x, a) then gets
        log Σ_a P(x, a) p̂_a, a stochastic lower bound of log p(x, image), from draws shared by every table.
        """
        if particles < 1:
            raise ValueError(f"particles must be >= 1, got {particles}")
        loc, scale = (t.double() for t in self.encode(image, x))  # (n, D)
        mu = self.atoms.loc[:, 0].double()  # (A, D)
        tril = self.atoms.scale_tril[:, 0].double()  # (A, D, D)
        prior = torch.distributions.MultivariateNormal(mu, scale_tril=tril, validate_args=False)
        precision = torch.cholesky_inverse(tril)  # Σ_a⁻¹, (A, D, D)
        q_precision = torch.diag_embed(scale.pow(-2))  # (n, D, D)
        cov = torch.linalg.inv(precision + q_precision[:, None])  # (n, A, D, D)
        mean = (cov @ ((precision @ mu[..., None])[None] + (q_precision @ loc[..., None])[:, None])).squeeze(-1)
        product = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov, validate_args=False)
        from_product = (particles + 1) // 2
        noise = torch.randn((particles, *mean.shape), generator=generator, device=mean.device, dtype=mean.dtype)
        z = torch.cat([mean + (product.scale_tril @ noise[:from_product, ..., None]).squeeze(-1),
                       mu + (tril @ noise[from_product:, ..., None]).squeeze(-1)])  # (k, n, A, D)
        log_prior = prior.log_prob(z)  # (k, n, A)
        share = torch.tensor([from_product, particles - from_product], dtype=z.dtype) / particles
        log_q = torch.stack([product.log_prob(z), log_prior], -1) + share.clamp_min(1e-300).log().to(z.device)
        log_w = log_prior - log_q.logsumexp(-1)
        code = z.to(next(self.image.parameters()).dtype)  # the networks run in their own precision
        log_image = torch.stack([self.image.image_log_prob(image, x, code[:, :, a, : self.r_dim],
                                                           code[:, :, a, self.r_dim :])
                                 for a in range(self.num_atoms)], -1)  # (k, n, A)
        return (log_w + log_image.double()).logsumexp(0) - math.log(particles)

    def log_prob_x_code(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log Σ_a P(x, a) N(z; μ_a, Σ_a), this member's table P(x, a); leading dims of ``code`` left
        of ``x``'s broadcast (particles)."""
        log_xa = self.attributes.joint_xy().clamp_min(1e-30).log()  # (X, A)
        atoms = torch.arange(self.num_atoms, device=code.device)
        return (log_xa[x] + self.atoms.log_prob(code.unsqueeze(-2), atoms)).logsumexp(-1)
