r"""Bounds on interventional queries for discrete diagrams, by linear programming over response functions.

Balke & Pearl (1997): every SCM over discrete variables is equivalent to one in which each variable v is a
deterministic *response function* of its parents, :math:`v = f_v(\mathrm{pa}(v))`, chosen at random by the
exogenous state. A variable with :math:`d_v` values and parent configurations :math:`\mathrm{PA}_v` has
:math:`d_v^{|\mathrm{PA}_v|}` response functions. Let C be the diagram's confounded component (the variables
joined by bidirected edges), R = C ∪ descendants(C) and L the other variables. L is upstream of R and shares no
latent with it, so R's response types :math:`t = (f_v)_{v \in R}` are independent of L and, writing
:math:`a` for the values of the L-parents of R and :math:`q_t` for the distribution of the types,

.. math::

    P(r \mid a) = \sum_t q_t\, [\,R(t, a) = r\,], \qquad
    P(y = j \mid do(x = i)) = \sum_a P(a) \sum_t q_t\, [\,y(t, a; x := i) = j\,] \quad (x \in R),

both linear in q (P(a) is observed: L is not downstream of x). Any query that is a linear combination of such
terms (P(y | do x), the ACE, contrasts) is bounded by the two linear programs

.. math::

    \min_q / \max_q \ c^\top q \quad \text{s.t.}\quad q \ge 0,\ \ \textstyle\sum_t q_t = 1,\ \
    \sum_t q_t [R(t, a) = r] = P(r \mid a)\ \ \forall a: P(a) > 0,\ \forall r,

solved with HiGHS (``scipy.optimize.linprog``). When one latent is shared by all of R (a single confounded
set equal to R: the bow graph, the instrumental variable) every q is attained by an SCM of the diagram and the
bounds are **sharp** (Balke & Pearl 1997; Sachs et al. 2022). When R is joined by several bidirected edges
(x ↔ y and w ↔ y) or holds unconfounded descendants of C (the mediator of a front-door diagram), the LP
treats R's types as jointly distributed: the independences it ignores only shrink the true set, so the bounds
are **valid but possibly not sharp** (``DiscreteDiagram.sharp`` says which; e.g. the front-door effect is
point-identified while the LP gives an interval). Two confounded components, a treatment outside R, or a
non-linear query are outside the LP: use the Bayesian bounds (:func:`cauvade_pyro.bayes_bounds.fit_posterior`).

>>> iv = DiscreteDiagram(cards={"z": 2, "x": 2, "y": 2}, parents={"x": ["z"], "y": ["x"]}, confounded=[{"x", "y"}])
>>> counts = np.zeros((2, 2, 2)); counts[0, 0] = [74, 11514]; counts[1, 0] = [34, 2385]; counts[1, 1] = [12, 9663]
>>> [round(v, 4) for v in lp_bounds(iv, counts / counts.sum(), ace("y", "x"))]  # Balke & Pearl (1997)
[-0.1946, 0.0054]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

__all__ = [
    "DiscreteDiagram", "Query", "p_do", "ace", "linear_query", "lp_bounds", "p_do_bounds", "observed_counts",
    "MAX_RESPONSE_TYPES",
]

MAX_RESPONSE_TYPES = 500_000
_BAYES = "use the Bayesian bounds (cauvade_pyro.bayes_bounds.fit_posterior)"


@dataclass
class DiscreteDiagram:
    """A causal diagram over discrete observed variables: ``cards`` (name → number of values, in the axis order
    of ``p_obs``), directed edges as ``parents`` (name → parent names) and bidirected edges as ``confounded``
    (sets of variables that share a latent; a set of k variables stands for all its pairs).

    Derived attributes: ``component`` (the confounded component C), ``response`` (R = C ∪ descendants(C), in
    topological order), ``context`` (the other variables) and ``sharp`` (whether the LP bounds are sharp: one
    latent shared by all of R).

    >>> bow = DiscreteDiagram(cards={"x": 2, "y": 3}, parents={"y": ["x"]}, confounded=[{"x", "y"}])
    >>> bow.response, bow.context, bow.sharp
    (('x', 'y'), (), True)
    >>> fd = DiscreteDiagram({"x": 2, "m": 2, "y": 2}, {"m": ["x"], "y": ["m"]}, [{"x", "y"}])
    >>> fd.response, fd.sharp
    (('x', 'm', 'y'), False)
    """

    cards: Mapping[str, int]
    parents: Mapping[str, Sequence[str]] = field(default_factory=dict)
    confounded: Sequence[Iterable[str]] = ()

    def __post_init__(self) -> None:
        self.cards = {str(k): v for k, v in dict(self.cards).items()}
        if not self.cards:
            raise ValueError("DiscreteDiagram: cards is empty; give each observed variable its number of values")
        for name, card in self.cards.items():
            if not isinstance(card, (int, np.integer)) or isinstance(card, bool) or card < 1:
                raise ValueError(f"DiscreteDiagram: cards[{name!r}] must be an int >= 1, got {card!r}")
        self.parents = {str(k): tuple(v) for k, v in dict(self.parents).items()}
        for child, pas in self.parents.items():
            for name in (child, *pas):
                if name not in self.cards:
                    raise ValueError(f"DiscreteDiagram: parents names {name!r}, which has no entry in cards {list(self.cards)}")
            if child in pas or len(set(pas)) != len(pas):
                raise ValueError(f"DiscreteDiagram: parents[{child!r}] = {list(pas)} lists itself or a parent twice")
        self.confounded = [frozenset(group) for group in self.confounded]
        for group in self.confounded:
            unknown = sorted(set(group) - set(self.cards))
            if unknown or len(group) < 2:
                raise ValueError(f"DiscreteDiagram: confounded set {sorted(group)} must name >= 2 variables of cards"
                                 f"{' (unknown: ' + ', '.join(unknown) + ')' if unknown else ''}")
        self.variables: tuple[str, ...] = tuple(self.cards)
        self.order = self._topological_order()
        components = self._components()
        if len(components) > 1:
            raise ValueError(
                f"the diagram has {len(components)} confounded components ({', '.join(str(sorted(c)) for c in components)}); "
                f"the LP handles one; {_BAYES}"
            )
        self.component: frozenset[str] = components[0] if components else frozenset()
        descendants = set(self.component)
        for name in self.order:
            if any(p in descendants for p in self.parents.get(name, ())):
                descendants.add(name)
        self.response: tuple[str, ...] = tuple(v for v in self.order if v in descendants)
        self.context: tuple[str, ...] = tuple(v for v in self.variables if v not in descendants)
        self.sharp: bool = any(set(group) == set(self.response) for group in self.confounded)

    def _topological_order(self) -> tuple[str, ...]:
        order: list[str] = []
        remaining = list(self.variables)
        while remaining:
            ready = [v for v in remaining if all(p in order for p in self.parents.get(v, ()))]
            if not ready:
                raise ValueError(f"DiscreteDiagram: the directed edges among {remaining} form a cycle")
            order.extend(ready)
            remaining = [v for v in remaining if v not in ready]
        return tuple(order)

    def _components(self) -> list[frozenset[str]]:
        components: list[set[str]] = []
        for group in self.confounded:
            merged = set(group)
            for comp in [c for c in components if c & merged]:
                merged |= comp
                components.remove(comp)
            components.append(merged)
        return sorted((frozenset(c) for c in components), key=lambda c: min(self.variables.index(v) for v in c))

    def pa(self, name: str) -> tuple[str, ...]:
        """The parents of ``name`` (empty for a root)."""
        return self.parents.get(name, ())


@dataclass(frozen=True)
class Query:
    """A linear query: ``constant + Σ coef · P(outcome = value | do(interventions))``.

    Build it with :func:`p_do`, :func:`ace` or :func:`linear_query` and combine with ``+``, ``-`` and scalars.

    >>> q = 2 * p_do("y", 1, "x", 1) - p_do("y", 1, "x", 0) + 0.5
    >>> len(q.terms), q.constant
    (2, 0.5)
    """

    terms: tuple[tuple[tuple[tuple[str, int], ...], str, int, float], ...] = ()
    constant: float = 0.0

    def __add__(self, other: Query | float) -> Query:
        if isinstance(other, Query):
            return Query(self.terms + other.terms, self.constant + other.constant)
        if isinstance(other, (int, float)):
            return Query(self.terms, self.constant + float(other))
        return NotImplemented

    __radd__ = __add__

    def __mul__(self, scale: float) -> Query:
        if not isinstance(scale, (int, float)):
            return NotImplemented
        return Query(tuple((i, o, v, c * float(scale)) for i, o, v, c in self.terms), self.constant * float(scale))

    __rmul__ = __mul__

    def __neg__(self) -> Query:
        return self * -1.0

    def __sub__(self, other: Query | float) -> Query:
        return self + (-other)

    def __rsub__(self, other: float) -> Query:
        return (-self) + other


def p_do(outcome: str, outcome_value: int, treatment: str | Mapping[str, int], treatment_value: int | None = None) -> Query:
    """The query P(outcome = outcome_value | do(treatment = treatment_value)); ``treatment`` may also be a mapping
    {name: value} for a joint intervention (then leave ``treatment_value`` out).

    >>> p_do("y", 1, "x", 0).terms
    (((('x', 0),), 'y', 1, 1.0),)
    """
    if isinstance(treatment, Mapping):
        if treatment_value is not None:
            raise ValueError("p_do: give the treatment values in the mapping, not also as treatment_value")
        interventions = tuple(sorted((str(k), int(v)) for k, v in treatment.items()))
    else:
        if treatment_value is None:
            raise ValueError(f"p_do: treatment_value is missing for treatment {treatment!r}")
        interventions = ((str(treatment), int(treatment_value)),)
    return Query(((interventions, str(outcome), int(outcome_value), 1.0),))


def ace(outcome: str, treatment: str, outcome_value: int = 1, treated: int = 1, control: int = 0) -> Query:
    """Average causal effect P(y = outcome_value | do(x = treated)) - P(y = outcome_value | do(x = control)).

    >>> [t[0] for t in ace("y", "x").terms]
    [(('x', 1),), (('x', 0),)]
    """
    return p_do(outcome, outcome_value, treatment, treated) - p_do(outcome, outcome_value, treatment, control)


def linear_query(weights: ArrayLike, treatment: str, outcome: str) -> Query:
    """Σ_ij weights[i, j] · P(outcome = j | do(treatment = i)) for a (|X|, |Y|) array of weights.

    >>> len(linear_query([[0.0, 1.0], [0.0, -1.0]], "x", "y").terms)
    2
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"linear_query: weights must be a (|X|, |Y|) array, got shape {w.shape}")
    query = Query()
    for (i, j), value in np.ndenumerate(w):
        if value != 0.0:
            query = query + float(value) * p_do(outcome, j, treatment, i)
    return query


def observed_counts(diagram: DiscreteDiagram, data: Mapping[str, ArrayLike]) -> torch.Tensor:
    """Counts of integer data per cell, float64 of shape ``diagram.cards`` (axes in the spec's order);
    ``p_obs = counts / counts.sum()``.

    >>> d = DiscreteDiagram({"x": 2, "y": 2}, {"y": ["x"]}, [{"x", "y"}])
    >>> observed_counts(d, {"x": [0, 1, 1], "y": [1, 0, 0]}).tolist()
    [[0.0, 1.0], [2.0, 0.0]]
    """
    missing = [v for v in diagram.variables if v not in data]
    if missing:
        raise ValueError(f"observed_counts: data lacks the variables {missing} of the diagram")
    columns = [torch.as_tensor(np.asarray(data[v]), dtype=torch.long).reshape(-1) for v in diagram.variables]
    if len({len(c) for c in columns}) != 1:
        raise ValueError("observed_counts: the data columns have different lengths")
    for name, col in zip(diagram.variables, columns):
        if len(col) and (col.min() < 0 or col.max() >= diagram.cards[name]):
            raise ValueError(f"observed_counts: {name!r} takes values outside 0..{diagram.cards[name] - 1}")
    shape = tuple(diagram.cards.values())
    flat = torch.zeros(len(columns[0]), dtype=torch.long)
    for col, card in zip(columns, shape):
        flat = flat * card + col
    return torch.bincount(flat, minlength=int(np.prod(shape))).reshape(shape).to(torch.float64)


class _ResponseLP:
    """The constraint set of one (diagram, p_obs): response types, their values, the equality constraints."""

    def __init__(self, diagram: DiscreteDiagram, p_obs: ArrayLike):
        if not diagram.component:
            raise ValueError(
                "the diagram has no confounded component: every P(y | do x) is identified by the truncated "
                "factorisation, no bounds are needed"
            )
        p = np.asarray(p_obs.detach().cpu().numpy() if isinstance(p_obs, torch.Tensor) else p_obs, dtype=float)
        shape = tuple(diagram.cards.values())
        if p.shape != shape:
            raise ValueError(f"p_obs: expected shape {shape} (axes {list(diagram.variables)}), got {p.shape}")
        if (p < -1e-12).any() or abs(p.sum() - 1.0) > 1e-6:
            raise ValueError(f"p_obs: must be a probability table (non-negative, sum 1; sum = {p.sum():.6g}); "
                             "divide counts by their total")
        self.diagram, self.p = diagram, np.clip(p, 0.0, None)
        R = diagram.response
        in_r = set(R)
        self.ctx = tuple(v for v in diagram.variables if v not in in_r and any(v in diagram.pa(r) for r in R))
        # response functions of each variable of R: table (functions, parent configurations) -> value
        self.functions = {}
        num_types = 1
        for v in R:
            configs = int(np.prod([diagram.cards[p] for p in diagram.pa(v)], dtype=np.int64))
            num_types *= diagram.cards[v] ** configs
            if num_types > MAX_RESPONSE_TYPES:
                raise ValueError(f"the LP would have more than {MAX_RESPONSE_TYPES} response types; "
                                 f"the diagram is too large for it: {_BAYES}")
            self.functions[v] = np.array(list(itertools.product(range(diagram.cards[v]), repeat=configs)),
                                         dtype=np.int64).reshape(-1, configs)
        sizes = [len(self.functions[v]) for v in R]
        grids = np.indices(sizes).reshape(len(R), -1)
        self.type_index = {v: grids[k] for k, v in enumerate(R)}
        self.num_types = grids.shape[1]
        self.ctx_cards = tuple(diagram.cards[v] for v in self.ctx)
        self.ctx_configs = list(itertools.product(*(range(c) for c in self.ctx_cards)))
        # P(a, r): marginal over (ctx, R), axes in that order
        axes = [diagram.variables.index(v) for v in (*self.ctx, *R)]
        others = tuple(k for k in range(len(shape)) if k not in axes)
        marginal = self.p.sum(axis=others) if others else self.p
        kept = [k for k in range(len(shape)) if k not in others]
        marginal = np.transpose(marginal, [kept.index(a) for a in axes])
        self.r_cards = tuple(diagram.cards[v] for v in R)
        p_ar = marginal.reshape(len(self.ctx_configs), -1)
        self.p_a = p_ar.sum(axis=1)
        rows, cols, b = [], [], []
        for k, a in enumerate(self.ctx_configs):
            if self.p_a[k] <= 0.0:
                continue
            values = self.values(dict(zip(self.ctx, a)), {})
            r_flat = np.ravel_multi_index([values[v] for v in R], self.r_cards)
            base = len(b)
            rows.append(base + r_flat)
            cols.append(np.arange(self.num_types))
            b.extend(p_ar[k] / self.p_a[k])
        from scipy.sparse import coo_matrix

        rows.append(np.full(self.num_types, len(b)))
        cols.append(np.arange(self.num_types))
        b.append(1.0)
        self.A_eq = coo_matrix(
            (np.ones(sum(len(c) for c in cols)), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(b), self.num_types),
        ).tocsr()
        self.b_eq = np.asarray(b)

    def values(self, context: Mapping[str, int], interventions: Mapping[str, int]) -> dict[str, np.ndarray]:
        """Value of every R variable under every response type (arrays of length num_types)."""
        d = self.diagram
        out: dict[str, np.ndarray] = {}
        for v in d.response:
            if v in interventions:
                out[v] = np.full(self.num_types, interventions[v], dtype=np.int64)
                continue
            pas = d.pa(v)
            if pas:
                pa_values = [out[p] if p in out else np.full(self.num_types, context[p]) for p in pas]
                config = np.ravel_multi_index(pa_values, [d.cards[p] for p in pas])
            else:
                config = np.zeros(self.num_types, dtype=np.int64)
            out[v] = self.functions[v][self.type_index[v], config]
        return out

    def objective(self, query: Query) -> tuple[np.ndarray, float]:
        d = self.diagram
        c, constant = np.zeros(self.num_types), float(query.constant)
        for interventions, outcome, value, coef in query.terms:
            for name, val in (*interventions, (outcome, value)):
                if name not in d.cards:
                    raise ValueError(f"query: {name!r} is not a variable of the diagram {list(d.variables)}")
                if not 0 <= val < d.cards[name]:
                    raise ValueError(f"query: value {val} of {name!r} is outside 0..{d.cards[name] - 1}")
            outside = [name for name, _ in interventions if name not in d.response]
            if outside:
                raise ValueError(
                    f"query: treatment {outside[0]!r} lies outside the confounded component {sorted(d.component)} "
                    f"and its descendants, which the LP does not model; its effect is identified: {_BAYES}"
                )
            if outcome not in d.response:  # upstream of every treatment: P(y | do x) = P(y)
                axis = d.variables.index(outcome)
                marginal = self.p.sum(axis=tuple(k for k in range(self.p.ndim) if k != axis))
                constant += coef * float(marginal[value])
                continue
            fixed = dict(interventions)
            for k, a in enumerate(self.ctx_configs):
                if self.p_a[k] > 0.0:
                    c += coef * self.p_a[k] * (self.values(dict(zip(self.ctx, a)), fixed)[outcome] == value)
        return c, constant

    def solve(self, query: Query) -> tuple[float, float]:
        from scipy.optimize import linprog

        c, constant = self.objective(query)
        ends = []
        for sign in (1.0, -1.0):
            res = linprog(sign * c, A_eq=self.A_eq, b_eq=self.b_eq, bounds=(0, None), method="highs")
            if res.status == 2:
                raise ValueError(
                    "p_obs is incompatible with the diagram: no distribution of response functions reproduces it "
                    "(the LP is infeasible; with sampled data, e.g. the instrumental inequalities can fail by "
                    f"sampling error); check the diagram, or {_BAYES}, which allow for sampling error"
                )
            if res.status != 0:
                raise RuntimeError(f"linprog (HiGHS) failed: {res.message}")
            ends.append(sign * res.fun + constant)
        return ends[0], ends[1]


def _check_query(query: object) -> Query:
    if not isinstance(query, Query):
        raise ValueError(
            f"query: the LP needs a linear Query (p_do, ace, linear_query), got {type(query).__name__}; a non-linear "
            f"query (a ratio, a callable) is outside it: {_BAYES}"
        )
    if not query.terms:
        raise ValueError("query: it has no P(y | do x) term; build it with p_do, ace or linear_query")
    return query


def lp_bounds(diagram: DiscreteDiagram, p_obs: ArrayLike, query: Query) -> tuple[float, float]:
    """Lower and upper bound of a linear ``query`` over every SCM of ``diagram`` that reproduces ``p_obs``.

    ``p_obs`` is the observed joint probability table, axes in the order of ``diagram.cards``. Variables outside
    the confounded component and its descendants (an instrument z) may have any distribution: only
    P(R | their values) constrains the LP. Sharp when ``diagram.sharp``, valid outer bounds otherwise.

    >>> bow = DiscreteDiagram({"x": 2, "y": 2}, {"y": ["x"]}, [{"x", "y"}])
    >>> joint = np.array([[0.3, 0.2], [0.1, 0.4]])
    >>> [round(v, 6) for v in lp_bounds(bow, joint, p_do("y", 1, "x", 0))]  # [P(x, y), P(x, y) + 1 - P(x)]
    [0.2, 0.7]
    """
    return _ResponseLP(diagram, p_obs).solve(_check_query(query))


def p_do_bounds(diagram: DiscreteDiagram, p_obs: ArrayLike, treatment: str, outcome: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds on every cell P(outcome = j | do(treatment = i)): ``(lower, upper)``, each float64 (|X|, |Y|).

    >>> bow = DiscreteDiagram({"x": 2, "y": 2}, {"y": ["x"]}, [{"x", "y"}])
    >>> lower, upper = p_do_bounds(bow, np.array([[0.3, 0.2], [0.1, 0.4]]), "x", "y")
    >>> lower.tolist(), [[round(v, 6) for v in row] for row in upper.tolist()]
    ([[0.3, 0.2], [0.1, 0.4]], [[0.8, 0.7], [0.6, 0.9]])
    """
    for name in (treatment, outcome):
        if name not in diagram.cards:
            raise ValueError(f"p_do_bounds: {name!r} is not a variable of the diagram {list(diagram.variables)}")
    lp = _ResponseLP(diagram, p_obs)
    nx, ny = diagram.cards[treatment], diagram.cards[outcome]
    lower, upper = torch.zeros(nx, ny, dtype=torch.float64), torch.zeros(nx, ny, dtype=torch.float64)
    for i in range(nx):
        for j in range(ny):
            lower[i, j], upper[i, j] = lp.solve(p_do(outcome, j, treatment, i))
    return lower, upper
