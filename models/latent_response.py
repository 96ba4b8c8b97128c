"""The second diagram: an unlabelled response, as a VaDE-style latent embedding.

When the response to X has no label, it becomes a latent embedding r with a cluster-conditional Gaussian:

    c ~ Categorical(softmax(π)),   x ~ Categorical(softmax(A[c])),
    r ~ N(μ[c, x], diag σ[c, x]²),  ε ~ p(ε | x),   image ~ likelihood(decoder(x, r, ε)),

with an amortized guide q(r, ε | image, x). P(image | do(x)) draws c ~ π, r ~ N(μ[c, x], σ[c, x]), ε ~ p(ε | x).
p(ε | x) is N(0, I), or (``eps_prior_components`` > 0, after :func:`cauvade_pyro.inference.fit_eps_prior`) a
mixture per x fitted to the trained encoder's ε codes; never dependent on c or r (:mod:`.noise` says why).
The attribute-level objective no longer splits from the image term, so every member refits the whole model.

Known weaknesses (docs/design.md §7): the encoder decides what r means, and a generic decoder may read the
response (or even x) from ε instead of r; with random initial parameters the fit lands near the
observational answer, so it needs an autoencoder warm-up and a k-means/GMM initialisation of μ
(:func:`cauvade_pyro.inference.init_latent_response`); clusters with p(x | c) ≈ 0 leave μ[c, x]
unconstrained, so do(x) can put mass on off-support responses.

>>> import torch
>>> m = LatentResponseModel(num_clusters=2, num_x=2, image_shape=(1, 28, 28), r_dim=2, eps_dim=2, net="mlp")
>>> out = m.model(num_samples=3)
>>> out.shape
torch.Size([3, 1, 28, 28])
"""

from __future__ import annotations

from collections.abc import Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.nn.functional import one_hot

from .nets import GaussianHead, concat_vectors, image_likelihood, make_decoder, make_encoder
from .noise import NoiseMixture
from .primitives import DATA_PLATE, confounder, data_size, register_params


CLUSTER_PARAMS = ("pi_logits", "x_logits", "r_loc", "r_log_scale")  # the mixture's tables: π, p(x | c), μ, log σ


class LatentResponseModel(nn.Module):
    """VaDE-style diagram: c → x, (x, c) → r (latent response), (x, r, ε) → image."""

    def __init__(
        self,
        num_clusters: int,
        num_x: int,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        r_dim: int = 2,
        eps_dim: int = 4,
        net: str = "conv",
        likelihood: str = "bernoulli",
        kl_weight: float = 1.0,
        eps_prior_components: int = 0,
    ):
        super().__init__()
        if num_clusters < 1:
            raise ValueError(f"model.K must be >= 1, got {num_clusters}")
        if likelihood != "bernoulli":  # its decoder has one output per channel: no learned pixel scale
            raise ValueError(f"model.image.likelihood must be bernoulli for the latent-response diagram, got "
                             f"{likelihood!r}")
        self.num_clusters, self.num_x, self.r_dim, self.eps_dim = num_clusters, num_x, r_dim, eps_dim
        self.image_shape = tuple(image_shape)
        self.likelihood = likelihood
        self.kl_weight = float(kl_weight)
        self.warmup = False  # during the autoencoder warm-up r has a N(0, I) prior and c is absent
        self.pi_logits = nn.Parameter(torch.zeros(num_clusters))
        self.x_logits = nn.Parameter(torch.zeros(num_clusters, num_x))
        self.r_loc = nn.Parameter(torch.zeros(num_clusters, num_x, r_dim))
        self.r_log_scale = nn.Parameter(torch.zeros(num_clusters, num_x, r_dim))
        channels = image_shape[0]
        self.decoder = make_decoder(net, num_x + r_dim, eps_dim, channels)
        self.encoder = make_encoder(net, channels)
        self.head = GaussianHead(self.encoder.out_dim + num_x, r_dim + eps_dim)
        # p(ε | x): N(0, I), or a mixture per x fitted to the trained encoder's ε codes (cauvade_pyro.inference.fit_eps_prior)
        self.eps_noise = NoiseMixture(eps_dim, eps_prior_components, num_x)

    def _condition(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return concat_vectors(one_hot(x, self.num_x).to(r.dtype), r)

    def model(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        data = data or {}
        register_params("latent_response", self, ("decoder",))  # the guide registers encoder and head
        for name in CLUSTER_PARAMS:  # outside the module namespace: fit_svi(table_lr=...) gives them their own lr
            pyro.param(f"latent_response_{name}", getattr(self, name))
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            if self.warmup:
                x = data["x"]
                r_prior = dist.Normal(self.r_loc.new_zeros(self.r_dim), self.r_loc.new_ones(self.r_dim)).to_event(1)
            else:
                c = confounder("c", self.pi_logits)
                x = pyro.sample("x", dist.Categorical(logits=self.x_logits[c]), obs=data.get("x"))
                r_prior = dist.Normal(self.r_loc[c, x], self.r_log_scale[c, x].exp()).to_event(1)
            r = pyro.sample("r", r_prior)
            with poutine.scale(scale=self.kl_weight):
                eps = pyro.sample("eps", self.eps_noise.distribution(x))
            logits = self.decoder(self._condition(x, r), eps)
            if data.get("image") is None:
                pyro.deterministic("image_mean", torch.sigmoid(logits), event_dim=3)
            return pyro.sample("image", image_likelihood(self.likelihood, logits), obs=data.get("image"))

    def encode(self, image: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q([r, ε] | image, x)."""
        features = torch.cat([self.encoder(image), one_hot(x, self.num_x).to(image.dtype)], -1)
        return self.head(features)

    def guide(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        data = data or {}
        if data.get("image") is None:
            return
        register_params("latent_response", self, ("encoder", "head"))
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            loc, scale = self.encode(data["image"], data["x"])
            pyro.sample("r", dist.Normal(loc[..., : self.r_dim], scale[..., : self.r_dim]).to_event(1))
            with poutine.scale(scale=self.kl_weight):
                pyro.sample("eps", dist.Normal(loc[..., self.r_dim :], scale[..., self.r_dim :]).to_event(1))

    def eps_condition(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The index of p(ε | ·)'s mixture for each row: x (this diagram's ε never depends on r or c)."""
        return x

    def eps_posterior(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(ε | image, x) for a batch of float images (what an ε mixture is fitted to)."""
        loc, scale = self.encode(batch["image"], batch["x"])
        return loc[..., self.r_dim :], scale[..., self.r_dim :]

    def decode(self, x: torch.Tensor, r: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self._condition(x, r), eps))

    def log_joint_c(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """log p(c, x, r) of every cluster c, shape ``x.shape + (K,)`` (the prior part of the program, exact)."""
        log_pi = self.pi_logits.log_softmax(-1)
        log_px = self.x_logits.log_softmax(-1)[:, x]  # (K, *x.shape)
        log_pr = dist.Normal(self.r_loc[:, x], self.r_log_scale[:, x].exp()).log_prob(r).sum(-1)
        return (log_pi.view(-1, *([1] * x.dim())) + log_px + log_pr).movedim(0, -1)

    def posterior_c(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """p(c | x, r), shape ``x.shape + (K,)``: the posterior whose entropy the γ-term weighs."""
        return self.log_joint_c(x, r).softmax(-1)

    def posterior_c_given_code(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """p(c | x, r) for codes (r, ε) (ε does not depend on c), shape ``x.shape + (K,)``."""
        return self.posterior_c(x, code[..., : self.r_dim])

    def posterior_c_given_x(self, x: torch.Tensor) -> torch.Tensor:
        """p(c | x) ∝ π_c p(x | c): what conditioning on x weighs the clusters by (do(x) weighs them by π)."""
        return (self.pi_logits.log_softmax(-1) + self.x_logits.log_softmax(-1)[:, x].movedim(0, -1)).softmax(-1)

    @torch.no_grad()
    def sample_given_x(self, x: int, num_samples: int) -> dict[str, torch.Tensor]:
        """Observational draws given x, exactly: c ~ p(c | x), r ~ N(μ[c, x], σ[c, x]), ε ~ p(ε | x); returns c, r,
        eps and ``image_mean`` (what rejection sampling of the program given x draws, without the rejections)."""
        device = self.pi_logits.device
        xs = torch.full((num_samples,), int(x), dtype=torch.long, device=device)
        c = torch.multinomial(self.posterior_c_given_x(xs[:1])[0], num_samples, replacement=True)
        r = self.r_loc[c, xs] + self.r_log_scale[c, xs].exp() * torch.randn(num_samples, self.r_dim, device=device)
        eps = self.eps_noise.sample(xs)
        return {"c": c, "r": r, "eps": eps, "image_mean": self.decode(xs, r, eps)}

    def log_weight(self, image: torch.Tensor, x: torch.Tensor, r: torch.Tensor, eps: torch.Tensor,
                   loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """log p(x, r, ε, image) − log q(r, ε | image, x) at (r, ε), c summed out exactly, at β = 1.

        ``image`` float in [0, 1]; ``loc``, ``scale``: the guide's parameters (:meth:`encode`). Leading dims of
        ``r`` and ``eps`` left of ``x``'s are particles. Its mean over guide draws is the ELBO, its log-mean-exp
        over k draws the IWAE bound with k particles.
        """
        log_p = self.log_joint_c(x.expand(r.shape[:-1]), r).logsumexp(-1)
        log_p = log_p + self.eps_noise.log_prob(eps, x.expand(eps.shape[:-1]))
        log_p = log_p + self.image_log_prob(image, x, r, eps)
        z = torch.cat([r, eps], -1)
        return log_p - dist.Normal(loc, scale).log_prob(z).sum(-1)

    def image_log_prob(self, image: torch.Tensor, x: torch.Tensor, r: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """log p(image | x, r, ε), shape ``r.shape[:-1]`` (leading dims of ``r`` left of ``x``'s are particles)."""
        batch = r.shape[:-1]
        logits = self.decoder(self._condition(x.expand(batch).reshape(-1), r.reshape(-1, self.r_dim)),
                              eps.reshape(-1, self.eps_dim))
        target = image.expand(*batch, *image.shape[-3:]).reshape(-1, *image.shape[-3:])
        return image_likelihood(self.likelihood, logits).log_prob(target).reshape(batch)
