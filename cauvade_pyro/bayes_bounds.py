r"""Bayesian bounds on P(y | do(x)) from MCMC on the canonical SCM (Zhang, Tian & Bareinboim 2022).

The canonical SCM of the bow graph X → Y, X ↔ Y over (x, hue bin y) with K latent states c: in canonical form
every endogenous variable is a deterministic function of its parents and the latent state, so c sets x (here
x(c) = c mod |X|, so K ≥ |X|) and carries a distribution over y for *every* x — its potential outcomes:

.. math::

    \pi \sim \mathrm{Dir}(a_\pi 1_K), \qquad
    p(\cdot \mid x, c) \sim \mathrm{Dir}(a_y 1_Y) \ \text{for all } (c, x), \qquad
    \log p(\text{data}) = \sum_{x, y} n_{xy} \log \sum_{c:\, x(c) = x} \pi_c\, p(y \mid x, c).

c is summed out by hand and the data enter as cell counts :math:`n_{xy}` through one ``pyro.factor``, so NUTS
sees only continuous (simplex) sites and its cost does not grow with the number of observations. Each draw gives

.. math::

    P(y \mid do(x)) = \sum_c \pi_c\, p(y \mid x, c)
      = \underbrace{P(x, y)}_{\text{identified}} + \sum_{c:\, x(c) \ne x} \pi_c\, p(y \mid x, c),

whose second term (what states that chose another x would have done under x) the data never see: only its total
mass 1 - P(x) is identified. Every draw therefore lies inside the sharp bounds
:math:`P(x, y) \le P(y \mid do(x)) \le P(x, y) + 1 - P(x)` up to the sampling error of the frequencies, the
spread of the draws inside them is the prior's (small ``alpha_y`` puts more mass near the extreme SCMs that attain
the bounds), and the range of the draws approaches the sharp bounds as draws and data grow. Credible intervals
(quantiles) stay narrower than the bounds: they are a statement about the prior on the unseen part.

Why x(c) is fixed rather than p(x | c) ~ Dirichlet: the two describe the same class of SCMs, but with p(x | c)
free the posterior is a thin curved ridge that NUTS does not cross. Measured on the shapes counts (12 000 pairs,
K = 4, Dirichlet(0.2) on p(x | c), 200 + 200 iterations): 144 s, n_eff ≈ 11, and the draws spanned 6 % of the
sharp bounds, sitting on the observational answer.

>>> counts = torch.tensor([[30.0, 10.0], [5.0, 55.0]])
>>> fit = fit_bayes_bounds(counts, num_states=2, num_samples=20, warmup_steps=20, seed=0)
>>> fit.p_do.shape
torch.Size([20, 2, 2])

**Any discrete diagram** (:func:`fit_posterior`): the user's own Pyro program ``model(data=None,
num_samples=None)`` with Dirichlet priors on its tables as global sample sites (outside the ``"data"`` plate) and
its confounders marked with :func:`cauvade_pyro.models.confounder` inside the plate. The rows of the data are
collapsed to distinct cells with counts :math:`n_u`; every per-datapoint site is traced with the confounders (and
any other discrete latent) enumerated, and the likelihood enters as one factor

.. math::

    \log p(\text{data} \mid \theta) = \sum_u n_u \log \sum_{c} p(c \mid \theta)\, p(v_u \mid c, \theta),

so NUTS samples only the tables θ and its cost does not grow with the number of rows. Any interventional query is
a callable evaluated on each draw of θ; :func:`exact_p_do` computes P(outcome | do(·)) of a draw exactly by
enumerating the program under the truncated factorisation (the intervened site's own factor is dropped).
Identified queries (front-door) concentrate as the data grow; non-identified ones (IV) spread over the sharp
bounds as far as the prior on the unseen part reaches (compare with :func:`cauvade_pyro.bounds.lp_bounds`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

__all__ = [
    "BayesBounds", "canonical_scm_model", "state_to_x", "cell_counts", "fit_bayes_bounds", "pointwise_loglik", "summary_rows",
    "DiagramPosterior", "fit_posterior", "exact_p_do", "exact_log_lik",
]


def cell_counts(x: torch.Tensor, y: torch.Tensor, num_x: int, num_y: int) -> torch.Tensor:
    """Counts n[x, y] (float64, shape (num_x, num_y)) of paired labels.

    >>> cell_counts(torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), 2, 2).tolist()
    [[0.0, 2.0], [1.0, 0.0]]
    """
    x, y = torch.as_tensor(x, dtype=torch.long), torch.as_tensor(y, dtype=torch.long)
    flat = torch.bincount(x * num_y + y, minlength=num_x * num_y)
    return flat.reshape(num_x, num_y).to(torch.float64)


def state_to_x(num_states: int, num_x: int) -> torch.Tensor:
    """x(c) = c mod |X|: the value of X that latent state c sets (each x gets ⌈K/|X|⌉ or ⌊K/|X|⌋ states)."""
    if num_states < num_x:
        raise ValueError(f"num_states: need at least one latent state per value of x ({num_x}), got {num_states}")
    return torch.arange(num_states) % num_x


def canonical_scm_model(counts: torch.Tensor, num_states: int, alpha_pi: float = 1.0, alpha_y: float = 0.5) -> None:
    """Pyro model of the canonical SCM: Dirichlet priors on π and p(y | x, c); x = x(c); c summed out by hand.

    The data enter as cell counts through one ``pyro.factor`` (the multinomial coefficient is a constant).
    """
    num_x, num_y = counts.shape
    ones = counts.new_ones(())
    pi = pyro.sample("pi", dist.Dirichlet(alpha_pi * ones.expand(num_states)))
    p_y = pyro.sample(
        "p_y_given_xc", dist.Dirichlet(alpha_y * ones.expand(num_states, num_x, num_y)).to_event(2)
    )  # (K, X, Y): for every state c, the response y would have under each x (its potential outcomes)
    own = torch.nn.functional.one_hot(state_to_x(num_states, num_x), num_x).to(counts)  # p(x | c), (K, X)
    joint = torch.einsum("c,cx,cxy->xy", pi, own, p_y)
    pyro.factor("counts", (counts * joint.clamp_min(1e-300).log()).sum())
    pyro.deterministic("p_do", torch.einsum("c,cxy->xy", pi, p_y))


@dataclass
class BayesBounds:
    """Posterior draws of one MCMC run: ``samples`` (site → (draws, ...)), ``p_do`` (draws, X, Y)."""

    samples: dict[str, torch.Tensor]
    samples_by_chain: dict[str, torch.Tensor]
    num_states: int
    counts: torch.Tensor
    diagnostics: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def p_do(self) -> torch.Tensor:
        return self.samples["p_do"]

    def credible_bounds(self, prob: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
        """Equal-tailed credible interval of P(y | do(x)) per cell, each (X, Y)."""
        if not 0.0 < prob <= 1.0:
            raise ValueError(f"prob: must lie in (0, 1], got {prob!r}")
        tail = (1.0 - prob) / 2.0
        q = torch.tensor([tail, 1.0 - tail], dtype=self.p_do.dtype)
        lower, upper = torch.quantile(self.p_do, q, dim=0)
        return lower, upper

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Min and max of P(y | do(x)) over the posterior draws, each (X, Y)."""
        return self.p_do.min(0).values, self.p_do.max(0).values

    def to_inference_data(self, heldout: tuple[torch.Tensor, torch.Tensor] | None = None):
        """ArviZ object (posterior group; ``log_likelihood`` of held-out (x, y) pairs if given), any ArviZ version."""
        from cauvade_pyro.comparison import _from_log_likelihood

        posterior = {name: value.numpy() for name, value in self.samples_by_chain.items()}
        log_lik = {}
        if heldout is not None:
            chains, draws = next(iter(self.samples_by_chain.values())).shape[:2]
            values = pointwise_loglik(self.samples, *heldout)
            log_lik["xy"] = values.reshape(chains, draws, -1).numpy()
        return _from_log_likelihood(log_lik, posterior)


def pointwise_loglik(samples: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(x_n, y_n | draw) for every posterior draw, shape (draws, N), float64."""
    num_states, num_x = samples["p_y_given_xc"].shape[1:3]
    own = torch.nn.functional.one_hot(state_to_x(num_states, num_x), num_x).to(samples["pi"])
    joint = torch.einsum("sc,cx,scxy->sxy", samples["pi"], own, samples["p_y_given_xc"])
    x, y = torch.as_tensor(x, dtype=torch.long), torch.as_tensor(y, dtype=torch.long)
    return joint.clamp_min(1e-300).log()[:, x, y]


def fit_bayes_bounds(
    counts: torch.Tensor,
    num_states: int = 4,
    *,
    num_samples: int = 500,
    warmup_steps: int = 300,
    num_chains: int = 1,
    alpha_pi: float = 1.0,
    alpha_y: float = 0.5,
    seed: int = 0,
    max_tree_depth: int = 6,
    jit_compile: bool = True,
    progress: bool = False,
) -> BayesBounds:
    """Sample the canonical SCM's posterior given cell ``counts`` (X, Y) with NUTS; float64 throughout.

    ``num_states`` = K ≥ |X|; with K = |X| the posterior is the identified part plus the prior on the unseen part
    and NUTS mixes well (n_eff ≈ 260–680 of 400 draws measured on a 2 × 3 table); K > |X| adds non-identified
    splits within each x that slow mixing without widening the range of P(y | do(x)). ``jit_compile`` (default on)
    made a run about 3× faster here.

    Several chains run in worker processes (Pyro's default); one chain is the cheap default on a shared CPU. Returns :class:`BayesBounds`.
    """
    import time

    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.dim() != 2 or (counts < 0).any():
        raise ValueError(f"counts: expected a non-negative (X, Y) table, got shape {tuple(counts.shape)}")
    if not isinstance(num_states, int) or num_states < counts.shape[0]:
        raise ValueError(f"num_states: must be an int >= |X| = {counts.shape[0]}, got {num_states!r}")
    pyro.set_rng_seed(seed)
    kernel = NUTS(
        canonical_scm_model, max_tree_depth=max_tree_depth, jit_compile=jit_compile, ignore_jit_warnings=True
    )
    mcmc = MCMC(
        kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=num_chains,
        disable_progbar=not progress, mp_context=None,
    )
    start = time.perf_counter()
    mcmc.run(counts, num_states, alpha_pi, alpha_y)
    wall = time.perf_counter() - start
    by_chain = {name: value.detach() for name, value in mcmc.get_samples(group_by_chain=True).items()}
    flat = {name: value.reshape((-1,) + value.shape[2:]) for name, value in by_chain.items()}
    diagnostics = mcmc.diagnostics()
    if "p_do" not in flat:  # older Pyro: deterministic sites are not recorded by MCMC
        flat["p_do"] = torch.einsum("sc,scxy->sxy", flat["pi"], flat["p_y_given_xc"])
        by_chain["p_do"] = flat["p_do"].reshape(by_chain["pi"].shape[:2] + flat["p_do"].shape[1:])
    return BayesBounds(
        samples=flat, samples_by_chain=by_chain, num_states=num_states, counts=counts,
        diagnostics=diagnostics, wall_time_s=wall,
    )


def summary_rows(fit: BayesBounds, truth: torch.Tensor | None = None, prob: float = 0.95) -> list[dict[str, Any]]:
    """One row per (x, y) cell: sharp bounds from the counts, credible interval, draw range, truth if given."""
    from cauvade_pyro.metrics import bow_graph_bounds

    joint = fit.counts / fit.counts.sum()
    sharp_lo, sharp_hi = bow_graph_bounds(joint)
    cred_lo, cred_hi = fit.credible_bounds(prob)
    min_, max_ = fit.range()
    rows = []
    for x in range(joint.shape[0]):
        for y in range(joint.shape[1]):
            row = {
                "x": x, "y": y,
                "sharp_lower": float(sharp_lo[x, y]), "sharp_upper": float(sharp_hi[x, y]),
                "credible_lower": float(cred_lo[x, y]), "credible_upper": float(cred_hi[x, y]),
                "draw_min": float(min_[x, y]), "draw_max": float(max_[x, y]),
                "posterior_mean": float(fit.p_do[:, x, y].mean()),
            }
            if truth is not None:
                row["truth"] = float(truth[x, y])
            rows.append(row)
    return rows



def _in_data_plate(msg: dict) -> bool:
    from cauvade_pyro.models.primitives import DATA_PLATE

    return msg["type"] == "sample" and any(frame.name == DATA_PLATE for frame in msg["cond_indep_stack"])


def _per_row_log_lik(trace, num_rows: int, skip: tuple[str, ...] = ()) -> torch.Tensor:
    """Sum the per-datapoint log-factors of an enumerated trace, then sum out every enumerated dim: (rows,)."""
    return _per_row_terms(trace, num_rows, skip)[0]


def _per_row_terms(trace, num_rows: int, skip: tuple[str, ...] = (), entropy: bool = False):
    """(log p(row), Σ_confounders H[p(c | row)] or None) per row of an enumerated trace, each (rows,)."""
    from cauvade_pyro.models.primitives import is_confounder

    total = None
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or name in skip or not _in_data_plate(site):
            continue
        if not site["is_observed"] and site["infer"].get("_enumerate_dim") is None:
            raise ValueError(
                f"site {name!r} is a per-datapoint latent that cannot be enumerated ({type(site['fn']).__name__}); "
                "fit_posterior and exact_p_do handle discrete diagrams whose latents are discrete (confounder(...))"
            )
        log_prob = site["fn"].log_prob(site["value"])
        total = log_prob if total is None else total + log_prob
    if total is None:
        raise ValueError("the model has no sample site inside the 'data' plate")
    total = total + torch.zeros(num_rows, dtype=total.dtype)
    log_lik = total.reshape(-1, num_rows).logsumexp(0)
    if not entropy:
        return log_lik, None
    ent = torch.zeros_like(log_lik)
    for site in trace.nodes.values():
        dim = site["infer"].get("_enumerate_dim") if site["type"] == "sample" else None
        if dim is None or not is_confounder(site):
            continue
        others = [d for d in range(total.dim() - 1) if d != total.dim() + dim]
        log_post = (total.logsumexp(dim=others, keepdim=True) if others else total) - log_lik
        ent = ent - (log_post.exp() * log_post).reshape(-1, num_rows).sum(0)
    return log_lik, ent


def _enumerated_trace(model, *args, **kwargs):
    from pyro import poutine
    from pyro.infer import config_enumerate

    tracer = poutine.trace(poutine.enum(config_enumerate(model, default="parallel"), first_available_dim=-2))
    return tracer.get_trace(*args, **kwargs)


def _collapse_rows(data: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Distinct rows of discrete data and their counts (float64)."""
    names = list(data)
    columns = [torch.as_tensor(data[name]) for name in names]
    if len({len(col) for col in columns}) != 1 or any(col.dim() != 1 for col in columns):
        raise ValueError("data: fit_posterior needs one 1-d column of equal length per observed discrete site")
    if any(col.is_floating_point() and not torch.equal(col, col.round()) for col in columns):
        raise ValueError("data: fit_posterior handles discrete data only (integer-valued columns)")
    rows, counts = torch.unique(torch.stack([col.long() for col in columns], 1), dim=0, return_counts=True)
    collapsed = {name: rows[:, k].to(col.dtype) for k, (name, col) in enumerate(zip(names, columns))}
    return collapsed, counts.to(torch.float64)


def _weighted_model(model, data: dict[str, torch.Tensor], weights: torch.Tensor, gamma: float = 0.0):
    from pyro import poutine

    def weighted(*_args, **_kwargs) -> None:
        with poutine.block(hide_fn=_in_data_plate):
            trace = _enumerated_trace(model, data)
        log_lik, ent = _per_row_terms(trace, len(weights), entropy=gamma != 0.0)
        if ent is not None:
            log_lik = log_lik - gamma * ent
        pyro.factor("log_lik", (weights.to(log_lik.dtype) * log_lik).sum())

    return weighted


@dataclass
class DiagramPosterior:
    """NUTS draws of a diagram's global (table) sites: ``samples`` (site → (draws, ...)), by chain, diagnostics."""

    samples: dict[str, torch.Tensor]
    samples_by_chain: dict[str, torch.Tensor]
    model: Any
    diagnostics: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def num_draws(self) -> int:
        return len(next(iter(self.samples.values())))

    def draw(self, index: int) -> dict[str, torch.Tensor]:
        """The global sites of one draw."""
        return {name: value[index] for name, value in self.samples.items()}

    def evaluate(self, query) -> torch.Tensor:
        """``query(draw)`` for every draw, stacked: a (draws, ...) tensor of posterior draws of the query."""
        return torch.stack([torch.as_tensor(query(self.draw(s))) for s in range(self.num_draws)])

    def pointwise_log_lik(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """log p(row | draw) of every row of ``data`` (held-out rows for PSIS-LOO), exact: (draws, rows), float64."""
        return torch.stack([exact_log_lik(self.model, data, self.draw(s)) for s in range(self.num_draws)])

    def to_inference_data(self, heldout: dict[str, torch.Tensor] | None = None, var_name: str = "obs"):
        """ArviZ object of the draws (by chain), with the ``log_likelihood`` of ``heldout`` rows if given."""
        from cauvade_pyro.comparison import _from_log_likelihood

        posterior = {name: value.numpy() for name, value in self.samples_by_chain.items()}
        log_lik = {}
        if heldout is not None:
            chains, draws = next(iter(self.samples_by_chain.values())).shape[:2]
            log_lik[var_name] = self.pointwise_log_lik(heldout).reshape(chains, draws, -1).numpy()
        return _from_log_likelihood(log_lik, posterior)

    def p_do(self, treatment: str, outcome: str, num_values: int) -> torch.Tensor:
        """Draws of P(outcome | do(treatment = i)) for i < num_values, by enumeration: (draws, num_values, |Y|)."""
        return self.evaluate(
            lambda draw: torch.stack([exact_p_do(self.model, {treatment: i}, outcome, draw) for i in range(num_values)])
        )


def exact_log_lik(model, data: dict[str, torch.Tensor], params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """log p(row) of every row of ``data`` with the confounders summed out exactly (float64, (rows,)); the global
    sites are fixed to ``params`` (a posterior draw) or, left out, the program's ``pyro.param`` tables are used.

    >>> import pyro.distributions as dist
    >>> from cauvade_pyro.models import confounder
    >>> def mix(data=None, num_samples=None):
    ...     with pyro.plate("data", num_samples or len(data["x"])):
    ...         c = confounder("c", torch.tensor([0.5, 0.5]).log())
    ...         pyro.sample("x", dist.Categorical(torch.tensor([[0.9, 0.1], [0.3, 0.7]])[c]), obs=data.get("x"))
    >>> [round(p, 6) for p in exact_log_lik(mix, {"x": torch.tensor([0, 1])}).exp().tolist()]  # 0.5 (0.9 + 0.3), ...
    [0.6, 0.4]
    """
    from pyro import poutine

    data = {name: torch.as_tensor(value) for name, value in data.items()}
    num_rows = len(next(iter(data.values())))
    with torch.no_grad():
        trace = _enumerated_trace(poutine.condition(model, data=dict(params or {})), data)
        return _per_row_log_lik(trace, num_rows).to(torch.float64)


def exact_p_do(model, interventions: dict[str, int], outcome: str, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """P(outcome | do(interventions)) of a discrete diagram, exactly, by enumeration (float64, (|outcome|,)).

    The program runs once with one datapoint, its global sites fixed to ``params`` (a posterior draw; leave out for
    a program whose tables are ``pyro.param``), the intervened sites fixed to their values and every other discrete
    site enumerated; the intervened sites' own factors are dropped (truncated factorisation) and the rest is summed
    out to the outcome's values.

    >>> import pyro.distributions as dist
    >>> from cauvade_pyro.models import confounder
    >>> def bow(data=None, num_samples=None):
    ...     data = data or {}
    ...     with pyro.plate("data", num_samples or len(data["x"])):
    ...         c = confounder("c", torch.tensor([0.5, 0.5]).log())
    ...         x = pyro.sample("x", dist.Categorical(torch.tensor([[0.9, 0.1], [0.1, 0.9]])[c]), obs=data.get("x"))
    ...         pyro.sample("y", dist.Categorical(torch.tensor([[0.8, 0.2], [0.2, 0.8]])[c]), obs=data.get("y"))
    >>> exact_p_do(bow, {"x": 1}, "y").tolist()  # x has no effect: P(y | do x) = P(y)
    [0.5, 0.5]
    """
    from pyro import poutine

    fixed = {name: torch.as_tensor(value).reshape(1) for name, value in interventions.items()}
    conditioned = poutine.condition(model, data={**(params or {}), **fixed})
    with torch.no_grad():
        trace = _enumerated_trace(conditioned, None, 1)
    if outcome not in trace.nodes or trace.nodes[outcome]["type"] != "sample":
        raise ValueError(f"exact_p_do: the model has no sample site {outcome!r}")
    total = None
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or name in fixed or not _in_data_plate(site):
            continue
        if not site["is_observed"] and site["infer"].get("_enumerate_dim") is None:
            raise ValueError(f"exact_p_do: site {name!r} cannot be enumerated ({type(site['fn']).__name__}); "
                             "the model must be discrete")
        log_prob = site["fn"].log_prob(site["value"]).to(torch.float64)
        total = log_prob if total is None else total + log_prob
    site = trace.nodes[outcome]
    values = site["value"]
    total = total + torch.zeros_like(values, dtype=torch.float64)
    values = values.expand(total.shape).long()
    size = int(site["fn"].enumerate_support(expand=False).numel()) if site["fn"].has_enumerate_support else int(values.max()) + 1
    probs = torch.zeros(size, dtype=torch.float64).index_add_(0, values.reshape(-1), total.exp().reshape(-1))
    return probs / probs.sum()


def fit_posterior(
    model,
    data: dict[str, torch.Tensor],
    *,
    num_samples: int = 500,
    warmup_steps: int = 300,
    num_chains: int = 1,
    seed: int = 0,
    gamma: float = 0.0,
    max_tree_depth: int = 6,
    full_mass: bool = False,
    jit_compile: bool = False,
    progress: bool = False,
) -> DiagramPosterior:
    r"""Posterior draws of a discrete diagram's Dirichlet tables by NUTS, confounders enumerated (module docstring).

    ``model(data=None, num_samples=None)`` follows the project's diagram convention; its global sites (outside
    the ``"data"`` plate) are what NUTS samples, and every site inside the plate must be observed in ``data`` or
    be discrete (enumerated). Query the draws with :meth:`DiagramPosterior.evaluate` or
    :meth:`DiagramPosterior.p_do`.

    ``gamma`` ≠ 0 makes the draws a γ-member as a posterior: the member's γ-entropy term enters as a log-prior
    factor, :math:`\log p(\theta) + \sum_u n_u (\log p(v_u \mid \theta) - \gamma\, H[p(c \mid v_u, \theta)])`
    (summed over the confounders' marginals, as in :class:`~cauvade_pyro.inference.GammaEntropyELBO`); the factor
    depends on the data, so this is a γ-tempered pseudo-posterior, the plain posterior at γ = 0. Its draws give
    genuine pointwise log-likelihoods (:meth:`DiagramPosterior.to_inference_data`) for ``az.loo`` / ``az.compare``.
    ``full_mass`` adapts a dense mass matrix: it helps when the data pin down combinations of many table entries
    (the canonical IV program at large n).

    >>> import pyro.distributions as dist
    >>> from cauvade_pyro.models import confounder
    >>> def bow(data=None, num_samples=None):
    ...     data = data or {}
    ...     pi = pyro.sample("pi", dist.Dirichlet(torch.ones(2)))
    ...     p_x = pyro.sample("p_x", dist.Dirichlet(torch.ones(2, 2)).to_event(1))
    ...     p_y = pyro.sample("p_y", dist.Dirichlet(torch.ones(2, 2, 2)).to_event(2))
    ...     with pyro.plate("data", num_samples or len(data["x"])):
    ...         c = confounder("c", pi.log())
    ...         x = pyro.sample("x", dist.Categorical(p_x[c]), obs=data.get("x"))
    ...         pyro.sample("y", dist.Categorical(p_y[c, x]), obs=data.get("y"))
    >>> post = fit_posterior(bow, {"x": torch.tensor([0, 1, 1]), "y": torch.tensor([1, 0, 1])},
    ...                      num_samples=5, warmup_steps=5)
    >>> post.p_do("x", "y", 2).shape
    torch.Size([5, 2, 2])
    """
    import time

    from pyro import poutine
    from pyro.poutine.subsample_messenger import _Subsample

    data = {name: torch.as_tensor(value) for name, value in data.items()}
    if not data:
        raise ValueError("data: fit_posterior needs the observed columns of the diagram")
    rows, weights = _collapse_rows(data)
    with poutine.block(), torch.no_grad():  # check the program once: an explanatory error before NUTS starts
        trace = _enumerated_trace(model, rows)
        _per_row_log_lik(trace, len(weights))
    if not any(site["type"] == "sample" and not _in_data_plate(site) and not site["is_observed"]
               and not isinstance(site["fn"], _Subsample) for site in trace.nodes.values()):  # not the plate
        raise ValueError("the model has no global sample site (Dirichlet prior on a table) for NUTS to sample; "
                         "declare its tables with pyro.sample outside the 'data' plate")
    pyro.set_rng_seed(seed)
    if not math.isfinite(float(gamma)):
        raise ValueError(f"gamma must be finite, got {gamma}")
    kernel = NUTS(_weighted_model(model, rows, weights, float(gamma)), max_tree_depth=max_tree_depth,
                  full_mass=full_mass, jit_compile=jit_compile, ignore_jit_warnings=True)
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, num_chains=num_chains,
                disable_progbar=not progress, mp_context=None)
    start = time.perf_counter()
    mcmc.run()
    wall = time.perf_counter() - start
    by_chain = {name: value.detach() for name, value in mcmc.get_samples(group_by_chain=True).items()}
    flat = {name: value.reshape((-1,) + value.shape[2:]) for name, value in by_chain.items()}
    return DiagramPosterior(samples=flat, samples_by_chain=by_chain, model=model, diagnostics=mcmc.diagnostics(),
                            wall_time_s=wall)
