"""The γ-entropy ELBO of CauVaDE.

For a diagram with canonical confounder sites c (enumerated exactly) and continuous latents z drawn from a
guide q_φ(z | o), the loss of one datapoint with observations o is

    L(θ, φ) = −ELBO(θ, φ) + γ · Σ_c-sites H[ p_θ(c | o, z) ],
    ELBO    = E_q[ log Σ_c p_θ(o, z, c) − log q_φ(z | o) ],

where p_θ(c | o, z) is the exact enumeration posterior given the guide's sample of z (for several
confounders, each one's marginal). It is computed from the same enumerated log-factors as the ELBO, so it is
differentiable in θ and φ.

Sign of γ: **γ < 0 rewards diffuse cluster posteriors** — when all clusters are alike (H = log K) the model's
P(y | do(x)) equals the observational P(y | x). **γ > 0 rewards sharp clusters**, so the confounder explains
more of the association between X and its response, and do(x) extrapolates through the parameterization of
p(y | x, c). γ = 0 is the plain mixture ELBO.

>>> import torch, pyro, pyro.distributions as dist
>>> from cauvade_pyro.models import confounder
>>> def model(data=None, num_samples=None):
...     with pyro.plate("data", 4):
...         c = confounder("c", pyro.param("pi_logits", torch.zeros(2)))
...         pyro.sample("x", dist.Bernoulli(torch.tensor([0.2, 0.9])[c]), obs=torch.tensor([0., 1., 1., 0.]))
>>> loss = GammaEntropyELBO(gamma=1.0).differentiable_loss(model, lambda **kw: None)
>>> bool(torch.isfinite(loss))
True
"""

from __future__ import annotations

import math

import torch
from pyro.infer import TraceEnum_ELBO
from pyro.infer.traceenum_elbo import _compute_dice_elbo, _compute_marginals
from pyro.distributions.util import is_identically_one
from pyro.infer.util import is_identically_zero

from cauvade_pyro.models.primitives import is_confounder


class GammaEntropyELBO(TraceEnum_ELBO):
    """``TraceEnum_ELBO`` plus γ times the summed entropy of each confounder's enumeration posterior.

    Usable with :class:`pyro.infer.SVI`. ``gamma`` must be finite; see the module docstring for its sign.
    """

    def __init__(self, gamma: float = 0.0, max_plate_nesting: int = 1, **kwargs):
        if not math.isfinite(float(gamma)):
            raise ValueError(f"gamma must be finite, got {gamma}")
        kwargs.setdefault("strict_enumeration_warning", False)
        super().__init__(max_plate_nesting=max_plate_nesting, **kwargs)
        self.gamma = float(gamma)

    @staticmethod
    def confounder_posteriors(model_trace, guide_trace) -> dict:
        """Exact, differentiable posteriors p(c | observed, latents) of every confounder site of a trace pair."""
        names = [name for name, site in model_trace.nodes.items() if is_confounder(site)]
        if not names:
            raise ValueError(
                "the model has no confounder site: declare the enumerated cluster with "
                "cauvade_pyro.confounder(name, logits) inside the data plate"
            )
        marginals = _compute_marginals(model_trace, guide_trace)
        return {name: marginals[name] for name in names}

    def _particle_losses(self, model, guide, args, kwargs):
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = _one_plate_loss(model_trace, guide_trace, self.gamma)
            if loss is not None:
                yield loss
                continue
            elbo = _compute_dice_elbo(model_trace, guide_trace)
            loss = 0.0 if is_identically_zero(elbo) else -elbo
            if self.gamma != 0.0:
                posteriors = self.confounder_posteriors(model_trace, guide_trace)
                entropy = sum(p.entropy().sum() for p in posteriors.values())
                loss = loss + self.gamma * entropy
            yield loss

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss = sum(self._particle_losses(model, guide, args, kwargs)) / self.num_particles
        if not torch.is_tensor(loss) or not loss.requires_grad:
            raise ValueError(f"the γ-entropy loss cannot be differentiated: {loss}")
        return loss

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            total = sum(self._particle_losses(model, guide, args, kwargs)) / self.num_particles
        return float(total)

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return float(loss.detach())

    def posterior_entropy(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """Per-datapoint entropy Σ_c-sites H[p(c | o, z)] for one guide draw (no gradient)."""
        with torch.no_grad():
            model_trace, guide_trace = next(iter(self._get_traces(model, guide, args, kwargs)))
            posteriors = self.confounder_posteriors(model_trace, guide_trace)
            return sum(p.entropy() for p in posteriors.values())


def _one_plate_loss(model_trace, guide_trace, gamma: float):
    """The loss of one trace pair by a direct sum over the enumerated sites, or None where it does not apply.

    It applies to the shape every CauVaDE diagram has: all sample sites in one vectorized plate (or none),
    every enumerated site and every site whose log-prob depends on one in that plate with scale 1 and no
    mask (observed, like y, or drawn by the guide, like the latent response r), and a reparameterized guide
    (no score-function terms). Then the tensor contraction of
    ``TraceEnum_ELBO`` reduces, per datapoint n, to

        log Σ_c exp J_n(c),   J_n(c) = Σ_{sites depending on c} log p_n(site | c),

    the posterior p(c | o_n, z_n) is softmax J_n and each confounder's marginal sums the other enumerated sites
    out: the same ELBO and entropies as the general path (up to float summation order), without its per-step
    Python work (contraction planning, Dice factors, a second contraction for the marginals). Anything else:
    None, and the general path runs.
    """
    plate_frame = None
    for trace in (model_trace, guide_trace):
        for site in trace.nodes.values():
            if site["type"] != "sample":
                continue
            stack = site["cond_indep_stack"]
            if len(stack) > 1 or (stack and (not stack[0].vectorized or stack[0].dim != -1)):
                return None
            if stack:
                if plate_frame is None:
                    plate_frame = stack[0].name
                elif stack[0].name != plate_frame:
                    return None
            if site["infer"].get("enumerate") == "sequential":
                return None
    enum_names = [name for name, site in model_trace.nodes.items()
                  if site["type"] == "sample" and site["infer"].get("_enumerate_dim") is not None]
    if not enum_names:
        return None
    enum_dims = [model_trace.nodes[name]["infer"]["_enumerate_dim"] for name in enum_names]
    if any(dim >= -1 for dim in enum_dims):
        return None
    elbo, joint = 0.0, None
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        log_prob = site["log_prob"]
        if log_prob.dim() <= 1 and name not in enum_names:  # no enumeration dim: a plain ELBO term
            elbo = elbo + site["log_prob_sum"]
            continue
        if not site["cond_indep_stack"] or site["mask"] is not None:
            return None
        if not is_identically_one(site["scale"]):
            return None
        if any(log_prob.shape[d] != 1 and d not in enum_dims for d in range(-log_prob.dim(), -1)):
            return None  # a dim left of the plate that is no enumeration dim: leave it to the general path
        joint = log_prob if joint is None else joint + log_prob
    for site in guide_trace.nodes.values():
        if site["type"] != "sample":
            continue
        if site["infer"].get("enumerate") or not is_identically_zero(site["score_parts"].score_function):
            return None
        elbo = elbo - site["log_prob_sum"]
    # joint: enumeration dims (-2, -3, …) to the left of the plate dim -1
    if joint is None or any(-dim > joint.dim() for dim in enum_dims):
        return None
    confounder_dims = [dim for name, dim in zip(enum_names, enum_dims) if is_confounder(model_trace.nodes[name])]
    if gamma != 0.0 and not confounder_dims:
        return None  # the general path explains the missing confounder
    log_evidence = joint.logsumexp(enum_dims, keepdim=True)
    elbo = elbo + log_evidence.sum()
    loss = -elbo
    if gamma != 0.0:
        log_post = joint - log_evidence
        entropy = 0.0
        for dim in confounder_dims:
            others = [d for d in enum_dims if d != dim]
            log_marginal = log_post.logsumexp(others, keepdim=True) if others else log_post
            # as Categorical.entropy: clamped log-probs, so p = 0 gives 0 · finite
            clamped = log_marginal.clamp(min=torch.finfo(log_marginal.dtype).min)
            entropy = entropy - (clamped * log_marginal.exp()).sum()
        loss = loss + gamma * entropy
    return loss
