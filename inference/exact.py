r"""Exact per-datapoint quantities of a diagram by enumeration: log-likelihood, cluster posteriors, P(o | do(t)).

For a diagram whose latents are all discrete (its confounders c and any other unobserved categorical site),
every latent is enumerated in parallel, each sample site's log-probability broadcasts to a tensor of shape
(enumeration dims…, N), and per datapoint n

.. math::

    J_n(e) = \sum_{\text{sites } s} \log p(s_n \mid \mathrm{pa}_n(s), e), \qquad
    \log p(o_n) = \log \sum_e \exp J_n(e), \qquad
    p(e \mid o_n) = \exp\big(J_n(e) - \log p(o_n)\big),

with e the joint value of the enumerated sites. Each confounder's posterior is the marginal of p(e | o_n); the
γ-entropy term uses its entropy H[p(c | o_n)].

**Interventions by truncated factorisation.** For a treatment site t and an outcome site o,

.. math::

    \log P(o = j \mid do(t = i)) = \log \sum_e \exp \sum_{s \ne t} \log p(s \mid \mathrm{pa}(s), e)
    \Big|_{t = i,\, o = j},

the diagram run with t and o observed at (i, j), every other unobserved discrete site enumerated, and t's own
factor left out: what ``pyro.poutine.do`` does to the program (t is cut from its parents, its value flows
downstream). One call evaluates the whole |T| × |O| table as a plate of |T|·|O| rows.

**Repeated rows.** When every observed site is a scalar integer label, the data are compressed to their
distinct rows with counts w (:func:`compress`); a sum over datapoints becomes Σ_rows w · (…), so the cost does not
grow with N.

**The outcome enumerated too.** With an outcome o of |O| values, the rows can instead be the distinct values of
the *other* sites with a count matrix w[r, j] (:func:`compress_outcome`), and o enumerated like a latent
(:func:`enumerate_outcome`): one pass gives J for every (row, j) at once. The result is the same (tested);
the largest tensors shrink by up to |O| (p(o | ·) is normalised once per row, not once per (row, j)), which is
what a family of many members side by side pays for at every step. The interventional table is done the same
way (``interventional_table(..., enumerate_outcome=True)``: a plate of |T| rows instead of |T|·|O|).

Everything is differentiable in the diagram's parameters. Diagrams with continuous latents (a guide) are scored
by :func:`~cauvade_pyro.inference.loglik.iwae_loglik` instead; sites drawn from their prior here (continuous,
unobserved) are left out of J, which is exact when they are descendants of the outcome only.

>>> import torch, pyro, pyro.distributions as dist
>>> from cauvade_pyro.models import confounder
>>> def bow(data=None, num_samples=None):
...     data = data or {}
...     with pyro.plate("data", num_samples or len(data["x"])):
...         c = confounder("c", torch.tensor([0.0, 0.0]).log_softmax(-1))
...         x = pyro.sample("x", dist.Categorical(torch.tensor([[0.9, 0.1], [0.1, 0.9]])[c]), obs=data.get("x"))
...         pyro.sample("y", dist.Categorical(torch.tensor([[[0.8, 0.2], [0.5, 0.5]],
...                                                         [[0.5, 0.5], [0.2, 0.8]]])[c, x]), obs=data.get("y"))
>>> table = interventional_table(bow, "x", 2, "y", 2)   # Σ_c π_c p(y | x, c)
>>> [round(v, 3) for v in table[0].tolist()]
[0.65, 0.35]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.infer import config_enumerate

from cauvade_pyro.models.primitives import is_confounder

__all__ = [
    "Enumerated", "compress", "compress_outcome", "enumerate_data", "enumerate_outcome", "interventional_table",
    "mean_loglik",
]


@dataclass(frozen=True)
class Enumerated:
    """Per-datapoint results of one enumerated trace.

    ``loglik`` (N,): log p(o_n); ``entropy`` (N,): Σ over confounders of H[p(c | o_n)] (nats);
    ``confounders``: the names of the confounder sites found.
    """

    loglik: torch.Tensor
    entropy: torch.Tensor
    confounders: tuple[str, ...]


def compress(data: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
    """The distinct rows of integer-label data and their counts, or None when some site is not a label vector.

    >>> rows, counts = compress({"x": torch.tensor([0, 1, 0, 0]), "y": torch.tensor([1, 0, 1, 0])})
    >>> rows["x"].tolist(), rows["y"].tolist(), counts.tolist()
    ([0, 0, 1], [0, 1, 0], [1.0, 2.0, 1.0])
    """
    names = list(data)
    values = [torch.as_tensor(data[name]) for name in names]
    if not _label_vectors(values):
        return None
    stacked = torch.stack([v.long() for v in values], dim=1)
    unique, counts = torch.unique(stacked, dim=0, return_counts=True)
    rows = {name: unique[:, i].to(values[i].dtype) for i, name in enumerate(names)}
    return rows, counts.to(torch.get_default_dtype())


def _label_vectors(values) -> bool:
    """Whether every value is a 1-D integer label vector (what :func:`compress` can count)."""
    return bool(values) and all(v.dim() == 1 and not v.dtype.is_floating_point and v.dtype != torch.bool
                                for v in values)


def compress_outcome(
    data: Mapping[str, torch.Tensor], outcome: str, num_outcome: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
    """The distinct rows of every site but ``outcome``, and the count of each (row, outcome value): (R, |O|).

    None when some site is not a label vector (as :func:`compress`) or the outcome is not in ``data``.

    >>> rows, counts = compress_outcome({"x": torch.tensor([0, 1, 0, 0]), "y": torch.tensor([1, 0, 1, 0])}, "y", 2)
    >>> rows["x"].tolist(), counts.tolist()
    ([0, 1], [[1.0, 2.0], [1.0, 0.0]])
    """
    if outcome not in data or len(data) < 2 or not _label_vectors([torch.as_tensor(v) for v in data.values()]):
        return None
    others = {name: value for name, value in data.items() if name != outcome}
    stacked = torch.stack([torch.as_tensor(v).long() for v in others.values()], dim=1)
    unique, index = torch.unique(stacked, dim=0, return_inverse=True)
    labels = torch.as_tensor(data[outcome]).long()
    if bool((labels < 0).any()) or bool((labels >= num_outcome).any()):
        return None
    counts = torch.zeros(len(unique), num_outcome, dtype=torch.get_default_dtype(), device=unique.device)
    counts.index_put_((index, labels.to(unique.device)), torch.ones(len(labels), dtype=counts.dtype,
                                                                     device=unique.device), accumulate=True)
    rows = {name: unique[:, i].to(value.dtype) for i, (name, value) in enumerate(others.items())}
    return rows, counts


def _enumerated_trace(model: Callable, data: Mapping[str, torch.Tensor], max_plate_nesting: int):
    enumerated = poutine.enum(config_enumerate(model, default="parallel"), first_available_dim=-1 - max_plate_nesting)
    trace = poutine.trace(enumerated).get_trace(data=data)
    trace.compute_log_prob()
    return trace


def _joint(trace, exclude: Iterable[str], num_rows: int) -> tuple[torch.Tensor, dict[str, int]]:
    """J (enumeration dims…, N) summed over the sites not in ``exclude``; the enumeration dim of each site."""
    exclude = set(exclude)
    enum_dims: dict[str, int] = {}
    joint = None
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or name in exclude:
            continue
        dim = site["infer"].get("_enumerate_dim")
        if dim is not None:
            enum_dims[name] = dim
        elif not site["is_observed"]:
            continue  # drawn from its prior: left out of J (see the module docstring)
        stack = site["cond_indep_stack"]
        if len(stack) > 1:
            raise ValueError(
                f"site {name!r} sits in {len(stack)} plates; exact enumeration here handles one-plate diagrams "
                "(every per-datapoint site in the 'data' plate)")
        log_prob = site["log_prob"]
        joint = log_prob if joint is None else joint + log_prob
    if joint is None:
        raise ValueError("the diagram has no sample site to score")
    return joint.expand(torch.broadcast_shapes(joint.shape, (num_rows,))), enum_dims


def enumerate_data(model: Callable, data: Mapping[str, torch.Tensor], max_plate_nesting: int = 1) -> Enumerated:
    """Exact log p(o_n) and Σ_c H[p(c | o_n)] for every datapoint of ``data`` (differentiable).

    >>> import pyro.distributions as dist, pyro
    >>> from cauvade_pyro.models import confounder
    >>> def model(data=None, num_samples=None):
    ...     with pyro.plate("data", len(data["x"])):
    ...         c = confounder("c", torch.zeros(2))
    ...         pyro.sample("x", dist.Bernoulli(torch.tensor([0.2, 0.6])[c]), obs=data["x"])
    >>> out = enumerate_data(model, {"x": torch.tensor([1.0, 0.0])})
    >>> [round(v, 4) for v in out.loglik.exp().tolist()]   # 0.5·0.2 + 0.5·0.6 and its complement
    [0.4, 0.6]
    """
    num_rows = len(next(iter(data.values())))
    trace = _enumerated_trace(model, data, max_plate_nesting)
    joint, enum_dims = _joint(trace, (), num_rows)
    dims = sorted({d for d in enum_dims.values()})
    if not dims:
        loglik = joint.reshape(num_rows)
        return Enumerated(loglik, torch.zeros_like(loglik), ())
    joint = joint.expand(torch.broadcast_shapes(joint.shape, (1,) * (-min(dims) - 1) + (num_rows,)))
    log_evidence = joint.logsumexp(dims, keepdim=True)
    loglik = log_evidence.reshape(num_rows)
    confounders = tuple(name for name in enum_dims if is_confounder(trace.nodes[name]))
    log_post = joint - log_evidence
    entropy = torch.zeros(num_rows, dtype=joint.dtype, device=joint.device)
    for name in confounders:
        others = [d for d in dims if d != enum_dims[name]]
        log_marginal = log_post.logsumexp(others, keepdim=True) if others else log_post
        # as Categorical.entropy: clamped log-probs, so p = 0 gives 0 · finite
        clamped = log_marginal.clamp(min=torch.finfo(log_marginal.dtype).min)
        entropy = entropy - (clamped * log_marginal.exp()).sum(enum_dims[name]).reshape(num_rows)
    return Enumerated(loglik, entropy, confounders)


def _outcome_dim(trace, outcome: str) -> int:
    site = trace.nodes.get(outcome)
    dim = None if site is None or site["type"] != "sample" else site["infer"].get("_enumerate_dim")
    if dim is None:
        raise ValueError(f"the outcome {outcome!r} was not enumerated (it must be a discrete site the rows leave out)")
    return dim


def _by_outcome(trace, outcome: str, exclude: Iterable[str], num_rows: int):
    """J over the sites not in ``exclude``, expanded to every enumeration dim, and its log-sum over every enumerated
    site but ``outcome`` (dims kept): returns (J, that log-sum, the enumeration dim of each site, the outcome's)."""
    outcome_dim = _outcome_dim(trace, outcome)
    joint, enum_dims = _joint(trace, exclude, num_rows)
    dims = sorted({d for d in enum_dims.values()})
    joint = joint.expand(torch.broadcast_shapes(joint.shape, (1,) * (-min(dims) - 1) + (num_rows,)))
    others = [d for d in dims if d != outcome_dim]
    return joint, (joint.logsumexp(others, keepdim=True) if others else joint), enum_dims, outcome_dim


def _outcome_last(tensor: torch.Tensor, num_rows: int) -> torch.Tensor:
    """(…, |O| at the outcome's dim, …, rows) with every other dim of size 1 → (rows, |O|)."""
    return tensor.reshape(-1, num_rows).transpose(0, 1)


def enumerate_outcome(
    model: Callable, rows: Mapping[str, torch.Tensor], outcome: str, max_plate_nesting: int = 1
) -> Enumerated:
    """:func:`enumerate_data` for every value j of ``outcome`` at once (module docstring).

    ``rows`` holds every observed site but the outcome; the outcome is enumerated. ``loglik`` and ``entropy`` of
    the result have shape (R, |O|): entry (r, j) is log p(row r, outcome = j) and Σ_c H[p(c | row r, outcome = j)].

    >>> import pyro.distributions as dist, pyro
    >>> from cauvade_pyro.models import confounder
    >>> def model(data=None, num_samples=None):
    ...     with pyro.plate("data", len(data["z"])):
    ...         c = confounder("c", torch.zeros(2))
    ...         pyro.sample("z", dist.Categorical(torch.tensor([[0.5, 0.5], [0.5, 0.5]])[c]), obs=data["z"])
    ...         pyro.sample("x", dist.Bernoulli(torch.tensor([0.2, 0.6])[c]), obs=data.get("x"))
    >>> out = enumerate_outcome(model, {"z": torch.tensor([0])}, "x")
    >>> [round(v, 4) for v in out.loglik.exp()[0].tolist()]   # p(z=0) · (0.6, 0.4)
    [0.3, 0.2]
    """
    num_rows = len(next(iter(rows.values())))
    trace = _enumerated_trace(model, rows, max_plate_nesting)
    joint, log_evidence, enum_dims, outcome_dim = _by_outcome(trace, outcome, (), num_rows)
    confounders = tuple(name for name in enum_dims if is_confounder(trace.nodes[name]))
    log_post = joint - log_evidence
    entropy = torch.zeros_like(log_evidence)
    for name in confounders:
        rest = [d for d in set(enum_dims.values()) if d not in (enum_dims[name], outcome_dim)]
        log_marginal = log_post.logsumexp(rest, keepdim=True) if rest else log_post
        clamped = log_marginal.clamp(min=torch.finfo(log_marginal.dtype).min)
        entropy = entropy - (clamped * log_marginal.exp()).sum(enum_dims[name], keepdim=True)
    return Enumerated(_outcome_last(log_evidence, num_rows), _outcome_last(entropy.expand_as(log_evidence), num_rows),
                      confounders)


def mean_loglik(model: Callable, data: Mapping[str, torch.Tensor], max_plate_nesting: int = 1) -> float:
    """Exact mean log p(o_n) in nats per datapoint (repeated label rows are scored once, with their count)."""
    compressed = compress(data)
    with torch.no_grad():
        if compressed is None:
            return float(enumerate_data(model, data, max_plate_nesting).loglik.mean())
        rows, counts = compressed
        loglik = enumerate_data(model, rows, max_plate_nesting).loglik
        return float((counts.to(loglik) * loglik).sum() / counts.sum())


def interventional_table(
    model: Callable,
    treatment: str,
    num_treatment: int,
    outcome: str,
    num_outcome: int,
    *,
    evidence: Mapping[str, torch.Tensor] | None = None,
    max_plate_nesting: int = 1,
    enumerate_outcome: bool = False,
) -> torch.Tensor:
    """P(outcome = j | do(treatment = i)) as a differentiable (num_treatment, num_outcome) table.

    Truncated factorisation (module docstring): the program runs once on a plate of all (i, j) pairs with both
    sites observed, every other discrete latent enumerated, and the treatment's own factor dropped. Other
    observed sites of the diagram are marginalised like latents when they are discrete. ``enumerate_outcome``:
    a plate of the |T| treatment values with the outcome enumerated instead (the same table, smaller tensors;
    the diagram must then size its plate without reading the outcome from ``data``).
    """
    if enumerate_outcome:
        return _interventional_table_enumerated(model, treatment, num_treatment, outcome, num_outcome, evidence,
                                                max_plate_nesting)
    treat = torch.arange(num_treatment).repeat_interleave(num_outcome)
    out = torch.arange(num_outcome).repeat(num_treatment)
    data = {treatment: treat, outcome: out}
    if evidence:
        data.update(evidence)
    num_rows = len(treat)
    trace = _enumerated_trace(model, data, max_plate_nesting)
    for name in (treatment, outcome):
        if name not in trace.nodes or trace.nodes[name]["type"] != "sample":
            sites = sorted(n for n, s in trace.nodes.items() if s["type"] == "sample")
            raise ValueError(f"the diagram has no sample site {name!r}; its sites are {sites}")
    joint, enum_dims = _joint(trace, (treatment,), num_rows)
    dims = sorted({d for d in enum_dims.values()})
    if dims:
        joint = joint.expand(torch.broadcast_shapes(joint.shape, (1,) * (-min(dims) - 1) + (num_rows,)))
        joint = joint.logsumexp(dims)
    log_table = joint.reshape(num_treatment, num_outcome)
    return log_table.exp()


def _interventional_table_enumerated(model, treatment, num_treatment, outcome, num_outcome, evidence,
                                     max_plate_nesting) -> torch.Tensor:
    data = {treatment: torch.arange(num_treatment)}
    if evidence:
        data.update(evidence)
    trace = _enumerated_trace(model, data, max_plate_nesting)
    if treatment not in trace.nodes or trace.nodes[treatment]["type"] != "sample":
        sites = sorted(n for n, s in trace.nodes.items() if s["type"] == "sample")
        raise ValueError(f"the diagram has no sample site {treatment!r}; its sites are {sites}")
    _, log_table, _, _ = _by_outcome(trace, outcome, (treatment,), num_treatment)
    table = _outcome_last(log_table, num_treatment)
    if table.shape != (num_treatment, num_outcome):
        raise ValueError(f"the outcome {outcome!r} has {table.shape[1]} values, expected {num_outcome}")
    return table.exp()
