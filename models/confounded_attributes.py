"""The default diagram: confounded attributes with a shared image model.

Canonical augmented SCM, with X and Y labelled and the decoder never taking c:

    c ~ Categorical(softmax(π))                      canonical confounder, K values
    x ~ Categorical(softmax(A[c]))                   c → x
    y ~ Categorical(softmax(f(x, c)))                (x, c) → y
    ε ~ N(0, I)                                      independent of everything
    image ~ likelihood(decoder(x, y, ε))             (x, y, ε) → image

so that log p(x, y, image) = log Σ_c π_c p(x | c) p(y | x, c) + log p(image | x, y): the objective splits
exactly, the causal family lives in :class:`AttributeMixture` and one :class:`ConditionalImageModel` serves
every member. Interventions: P(y | do(x)) = Σ_c π_c p(y | x, c), against P(y | x) ∝ Σ_c π_c p(x | c) p(y | x, c).

The parameterization of f(x, c) = logits of p(y | x, c) decides what do(x) extrapolates to for (c, x) pairs
the data rarely show, so it is a visible config choice (``y_given_xc``):

- ``"additive"``: f = a[x] + b[c] — the confounder shifts the response the same way for every x;
- ``"interaction"``: f = MLP(onehot x, onehot c) — a neural conditional that may let c and x interact;
- ``"table"``: f = T[c, x] free — anything goes; unseen (c, x) cells keep their initial values.

>>> import torch
>>> mixture = AttributeMixture(num_clusters=2, num_x=2, num_y=3)
>>> p_do = mixture.interventional_y()
>>> p_do.shape, bool(torch.allclose(p_do.sum(-1), torch.ones(2)))
(torch.Size([2, 3]), True)
"""

from __future__ import annotations

from collections.abc import Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.nn.functional import one_hot

from .nets import (
    GaussianHead,
    concat_vectors,
    image_likelihood,
    image_mean,
    likelihood_params,
    make_decoder,
    make_encoder,
)
from .noise import NoiseMixture
from .primitives import DATA_PLATE, confounder, data_size, register_params

Y_PARAMETERIZATIONS = ("additive", "interaction", "table")
# continuous_bernoulli and gaussian were removed: measured, they missed the effectiveness target (docs/images.md).
# The discretised logistic needs two decoder maps per channel: the image model has them, the latent-response
# diagram's decoder not.
LIKELIHOODS = ("bernoulli", "logistic")
# what the ex-post mixture of ε is fitted per: each x, or each cell (x, y) (both parents of the image)
EPS_PRIOR_GIVEN = ("x", "xy")
IMAGE_LIKELIHOODS = LIKELIHOODS


class AttributeMixture(nn.Module):
    """The attribute level c → x, (x, c) → y of the canonical SCM, with x and y categorical."""

    def __init__(
        self,
        num_clusters: int,
        num_x: int,
        num_y: int,
        y_given_xc: str = "additive",
        hidden: int = 32,
        outcome: str = "y",
    ):
        super().__init__()
        if num_clusters < 1:
            raise ValueError(f"model.K must be >= 1, got {num_clusters}")
        if y_given_xc not in Y_PARAMETERIZATIONS:
            raise ValueError(f"model.y_given_xc must be one of {Y_PARAMETERIZATIONS}, got {y_given_xc!r}")
        self.num_clusters, self.num_x, self.num_y = num_clusters, num_x, num_y
        self.y_given_xc = y_given_xc
        self.outcome = outcome  # the name of the outcome's sample site (the data key it reads)
        self.pi_logits = nn.Parameter(torch.zeros(num_clusters))
        self.x_logits = nn.Parameter(torch.zeros(num_clusters, num_x))
        if y_given_xc == "additive":
            self.y_x = nn.Parameter(torch.zeros(num_x, num_y))
            self.y_c = nn.Parameter(torch.zeros(num_clusters, num_y))
        elif y_given_xc == "table":
            self.y_table = nn.Parameter(torch.zeros(num_clusters, num_x, num_y))
        else:
            self.y_net = nn.Sequential(
                nn.Linear(num_x + num_clusters, hidden), nn.Tanh(), nn.Linear(hidden, num_y)
            )

    def reset_parameters(self, generator: torch.Generator, scale: float = 1.0) -> None:
        """Random initial parameters (one draw per seed): the family is indexed by γ *and* this init."""
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(scale * torch.randn(param.shape, generator=generator))

    def y_logits(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Logits of p(y | x, c); x and c broadcast (c may carry an enumeration dim)."""
        if self.y_given_xc == "additive":
            return self.y_x[x] + self.y_c[c]
        if self.y_given_xc == "table":
            return self.y_table[c, x]
        return self.y_net(concat_vectors(one_hot(x, self.num_x), one_hot(c, self.num_clusters)).to(self.pi_logits.dtype))

    def sample_attributes(self, data: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The sites c, x, y; call inside the data plate."""
        pyro.module("attributes", self)
        c = confounder("c", self.pi_logits)
        x = pyro.sample("x", dist.Categorical(logits=self.x_logits[c]), obs=data.get("x"))
        y = pyro.sample(self.outcome, dist.Categorical(logits=self.y_logits(x, c)), obs=data.get(self.outcome))
        return x, y

    def model(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        """The attribute-level Pyro program (what a γ-family refits per member)."""
        data = data or {}
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            return self.sample_attributes(data)

    def guide(self, data=None, num_samples=None) -> None:
        """Nothing is latent at the attribute level except c, which is enumerated."""

    # ---- exact tables (K, |X| and |Y| are small) -------------------------------------------------------

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log π (K,), log p(x | c) (K, X), log p(y | x, c) (K, X, Y)."""
        c = torch.arange(self.num_clusters, device=self.pi_logits.device).view(-1, 1)
        x = torch.arange(self.num_x, device=self.pi_logits.device).view(1, -1)
        log_pi = self.pi_logits.log_softmax(-1)
        log_px = self.x_logits.log_softmax(-1)
        log_py = self.y_logits(x, c).log_softmax(-1)
        return log_pi, log_px, log_py

    def log_joint_table(self) -> torch.Tensor:
        """log p(c, x, y) as a (K, X, Y) tensor."""
        log_pi, log_px, log_py = self._tables()
        return log_pi[:, None, None] + log_px[:, :, None] + log_py

    def joint_xy(self) -> torch.Tensor:
        """p(x, y) = Σ_c π_c p(x | c) p(y | x, c), shape (X, Y)."""
        return self.log_joint_table().logsumexp(0).exp()

    def observational_y(self) -> torch.Tensor:
        """P(y | x), shape (X, Y)."""
        joint = self.joint_xy()
        return joint / joint.sum(-1, keepdim=True)

    def interventional_y(self) -> torch.Tensor:
        """P(y | do(x)) = Σ_c π_c p(y | x, c), shape (X, Y)."""
        log_pi, _, log_py = self._tables()
        return (log_pi[:, None, None] + log_py).logsumexp(0).exp()

    def log_prob_xy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Exact log p(x, y) per datapoint."""
        return self.joint_xy().log()[x, y]

    def posterior_c(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """p(c | x, y) per datapoint, shape (N, K)."""
        log_joint = self.log_joint_table()[:, x, y].T
        return log_joint.softmax(-1)


class ConditionalImageModel(nn.Module):
    """p(image | x, y) = ∫ likelihood(image | decoder(x, y, ε)) N(ε; 0, I) dε with an amortized guide q(ε | image, x, y).

    ``kl_weight`` (β) scales the ε sites in model and guide, i.e. β · KL(q(ε) ‖ N(0, I)); with a
    larger ε, β > 1 keeps ε from carrying shape and makes prior samples cleaner (docs/design.md §7). Held-out ELBOs use β = 1.

    ``eps_film="last"`` lets an embedding of ε also drive the decoder's last FiLM layer, the one next to the
    pixels (conv decoder only): ε can then scale a colour channel against the grey level per image, which an ε that
    enters at the stem only cannot do, and the encoder learns to carry the within-bin hue (docs/images.md).

    ``eps_prior_components`` = M > 0 keeps room for an ex-post prior of ε: after training,
    :func:`cauvade_pyro.inference.fit_eps_prior` replaces N(0, I) by a mixture of M full-covariance Gaussians
    fitted to draws of q(ε | image, x, y) over the training images of each x, or (``eps_prior_given="xy"``) of
    each cell (x, y) (:class:`~.noise.NoiseMixture`): p(ε | ·) depends on the image's parents only, never on c,
    so the interventional statements keep their meaning (the module says why); prior draws land where the encoder
    puts real images. Training always uses N(0, I); until the mixture is fitted the model is exactly the N(0, I) one.

    >>> import torch
    >>> m = ConditionalImageModel(2, 3, (3, 28, 28), net="mlp", eps_dim=2, eps_prior_components=4)
    >>> x, y = torch.tensor([0, 1, 1]), torch.tensor([2, 0, 1])
    >>> m.eps_prior(x, y).event_shape, m.sample_eps(x, y).shape
    (torch.Size([2]), torch.Size([3, 2]))
    """

    def __init__(
        self,
        num_x: int,
        num_y: int,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        net: str = "conv",
        eps_dim: int = 8,
        likelihood: str = "bernoulli",
        kl_weight: float = 1.0,
        eps_prior_components: int = 0,
        eps_prior_given: str = "x",
        eps_film: str = "none",
    ):
        super().__init__()
        if likelihood not in IMAGE_LIKELIHOODS:
            raise ValueError(f"model.image.likelihood must be one of {IMAGE_LIKELIHOODS}, got {likelihood!r}")
        if tuple(image_shape[1:]) != (28, 28):
            raise ValueError(f"image size must be 28x28, got {tuple(image_shape[1:])}")
        self.num_x, self.num_y, self.eps_dim = num_x, num_y, eps_dim
        self.image_shape = tuple(image_shape)
        self.likelihood = likelihood
        self.kl_weight = float(kl_weight)
        channels = image_shape[0]
        self.decoder = make_decoder(net, num_x + num_y, eps_dim, channels * likelihood_params(likelihood), eps_film)
        self.encoder = make_encoder(net, channels)
        self.head = GaussianHead(self.encoder.out_dim + num_x + num_y, eps_dim)
        self.reset_eps_prior(eps_prior_components, eps_prior_given)

    @property
    def eps_prior_components(self) -> int:
        return self.eps_noise.components

    @property
    def eps_prior_fitted(self) -> bool:
        return self.eps_noise.fitted

    def eps_condition(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The index of p(ε | ·)'s mixture for each row: x, or the cell (x, y) with ``eps_prior_given="xy"``."""
        return x if self.eps_prior_given == "x" else x * self.num_y + y

    def eps_prior(self, x: torch.Tensor, y: torch.Tensor) -> dist.Distribution:
        """p(ε | x) (or p(ε | x, y)), event shape (eps_dim,): N(0, I), or the fitted mixture."""
        return self.eps_noise.distribution(self.eps_condition(x, y))

    def eps_posterior(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(ε | image, x, y) for a batch of float images (what an ε mixture is fitted to)."""
        return self.encode(batch["image"], batch["x"], batch["y"])

    def sample_eps(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One draw of p(ε | x) (or p(ε | x, y)) per row outside a Pyro program (the global RNG), shape
        (len(x), eps_dim)."""
        return self.eps_noise.sample(self.eps_condition(x, y))

    def reset_eps_prior(self, components: int, given: str = "x") -> None:
        """Replace p(ε | ·) by an unfitted one with ``components`` per value of x (``given="x"``) or of (x, y)
        (``"xy"``): to compare priors on one trained model."""
        if given not in EPS_PRIOR_GIVEN:
            raise ValueError(f"eps_prior_given must be one of {EPS_PRIOR_GIVEN}, got {given!r}")
        device = self.head.net[0].weight.device
        self.eps_prior_given = given
        self.eps_noise = NoiseMixture(self.eps_dim, components,
                                      self.num_x * (self.num_y if given == "xy" else 1)).to(device)

    def condition(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The decoder's condition vector [onehot(x), onehot(y)] (x and y broadcast)."""
        dtype = self.head.net[0].weight.dtype
        return concat_vectors(one_hot(x, self.num_x).to(dtype), one_hot(y, self.num_y).to(dtype))

    def image_dist(self, logits: torch.Tensor) -> dist.Distribution:
        return image_likelihood(self.likelihood, logits)

    def image_mean(self, logits: torch.Tensor) -> torch.Tensor:
        """The image shown for a decoded code: the mean of the likelihood (sample grids show means, not draws)."""
        return image_mean(self.likelihood, logits)

    def sample_image(self, x: torch.Tensor, y: torch.Tensor, image: torch.Tensor | None) -> torch.Tensor:
        """The sites ε and image; call inside the data plate."""
        register_params("image_model", self, ("decoder",), own=True)  # the guide registers encoder and head
        with poutine.scale(scale=self.kl_weight):
            eps = pyro.sample("eps", self.eps_prior(x, y))
        logits = self.decoder(self.condition(x, y), eps)
        if image is None:
            pyro.deterministic("image_mean", self.image_mean(logits), event_dim=3)
        return pyro.sample("image", self.image_dist(logits), obs=image)

    def encode(self, image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(ε | image, x, y)."""
        return self.head(torch.cat([self.encoder(image), self.condition(x, y)], -1))

    def guide_image(self, x: torch.Tensor, y: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        register_params("image_model", self, ("encoder", "head"))
        loc, scale = self.encode(image, x, y)
        with poutine.scale(scale=self.kl_weight):
            return pyro.sample("eps", dist.Normal(loc, scale).to_event(1))

    def model(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        """The image-level Pyro program p(ε) p(image | x, y, ε), with x and y given."""
        data = data or {}
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            return self.sample_image(data["x"], data["y"], data.get("image"))

    def guide(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        data = data or {}
        if data.get("image") is None:
            return None
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            return self.guide_image(data["x"], data["y"], data["image"])

    def decode(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Mean image for given conditions and noise (used to flip x or y on held-out codes)."""
        return self.image_mean(self.decoder(self.condition(x, y), eps))


class ConfoundedAttributesModel(nn.Module):
    """The full default diagram: :class:`AttributeMixture` and :class:`ConditionalImageModel` in one plate."""

    def __init__(self, attributes: AttributeMixture, image_model: ConditionalImageModel):
        super().__init__()
        self.attributes = attributes
        self.image_model = image_model

    def attribute_level(self):
        """The part of the objective a family refits, and the data keys it reads: log p(x, y) splits off exactly
        from log p(image | x, y), which one shared image model serves for every member."""
        return self.attributes.model, ("x", "y")

    def model(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        data = data or {}
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            x, y = self.attributes.sample_attributes(data)
            return self.image_model.sample_image(x, y, data.get("image"))

    def guide(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        data = data or {}
        if data.get("image") is None:
            return None
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            return self.image_model.guide_image(data["x"], data["y"], data["image"])

    def forward(self, data=None, num_samples=None):
        return self.model(data, num_samples)
