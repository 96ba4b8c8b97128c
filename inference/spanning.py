r"""fit_family: members of any discrete diagram that span the feasible region within a fit tolerance τ.

A *member* is one setting θ of the diagram's parameters (one saved state of Pyro's param store). A *family* is
the set of members that fit the data about equally well and differ in P(o | do(t)). Every quantity below is
exact (:mod:`cauvade_pyro.inference.exact`): the mean negative log-likelihood per datapoint
:math:`\bar\ell(θ)`, the mean cluster-posterior entropy :math:`\bar H(θ) = \frac1N \sum_n \sum_c H[p_θ(c \mid o_n)]`
and the interventional table :math:`Q_θ = P_θ(o \mid do(t))`.

**Tolerance τ** (nats per datapoint, default 0.005): every member the family reports fits *held-out* data
within τ of the best member, :math:`\bar\ell_{\text{held-out}}(θ) \le \min_m \bar\ell_{\text{held-out}}(θ_m) + τ`.
During training the constraint is :math:`\bar\ell(θ) \le \bar\ell^\star + τ_{\text{train}}` on the training
rows. A fit to N rows over d distinct cells is itself off the population optimum by about κ = (d − 1)/(2N) nats
(the χ² approximation of the maximum-likelihood KL), and a member δ nats off the training optimum can be up to
:math:`(\sqrt δ + \sqrt κ)^2` off the population one; so :math:`τ_{\text{train}} = (\sqrt τ − \sqrt κ)^2`
(at least τ/10, with a warning that τ is near the sampling resolution of the data). A member
that breaks τ on held-out data is repaired (descent on the fit alone to τ_train / 4) and checked again, or
dropped; the family counts both.

**How the members are made** (each part's contribution is measured by ``benchmarks/family_suite.py``):

1. *Restarts*: ``restarts`` plain maximum-likelihood fits (γ = 0) from random initial values
   (θ₀ + ``init_scale`` · N(0, I) per seed); the best training fit gives :math:`\bar\ell^\star`.
2. *The entropy dial*: for each target level :math:`h = f \cdot \sum_c \log K_c`,
   f ∈ ``entropy_targets`` (1 = every cluster alike: the observational answer; 0 = sharp clusters), starting
   from every restart, minimise

   .. math::

       \bar\ell(θ) + \tfrac{μ}{2} (\bar H - h)^2 + ρ\, \mathrm{relu}(\bar\ell - \bar\ell^\star - τ_{\text{train}})^2

   (μ = 1, ρ raised geometrically). The member reports the γ of the paper's loss ℓ̄ + γ H̄ that is stationary at
   its θ: the least-squares solution of :math:`∇\bar\ell + γ ∇\bar H = 0`. Where the likelihood is flat
   along the entropy (a free table reaches every entropy at the same fit) that γ is ≈ 0: which is why a fixed γ
   switches between the two ends at tiny values instead of dialling, while a target entropy moves continuously.
3. *Directions*: maximise :math:`\langle w, Q_θ \rangle` within τ_train for directions w on the
   |T| × |O| table: the *vertices* w = ±(e_j summed over t) (all the free mass of every do(t) to outcome j, or
   none of it) and ``random_directions`` Gaussian w. In the bow graph the feasible set of P(· | do(t)) is
   :math:`\{P(t, ·) + (1 − P(t))\, q\}` over the simplex of q, so the vertices reach both sharp bounds of every
   cell at once.

4. *Fixed γ, on request* (``gammas``): from every restart, minimise the paper's loss ℓ̄ + γ H̄ with no
   tolerance in training (what a γ-member of the paper is); the acceptance below then keeps only those within τ,
   so a γ that buys sharp clusters with a worse fit is dropped and counted (never repaired, never silently kept).

Duplicates (a Q table within ``duplicate_atol`` of an accepted member's) are dropped and replaced by a fresh
random direction, up to ``refills`` times. The band [best, best + τ] is set by the members trained against τ
(restarts, dial, directions); a refill or a fixed-γ member joins only inside it: one that would fit the held-out
rows better than all of them is not added (it would move the band and push out the extreme members accepted
against it); ``dropped["better_than_band"]`` counts those.

>>> import torch, pyro, pyro.distributions as dist
>>> from cauvade_pyro.models import confounder
>>> def bow(data=None, num_samples=None):
...     data = data or {}
...     pi = pyro.param("pi", torch.zeros(2))
...     px = pyro.param("px", torch.zeros(2, 2))
...     py = pyro.param("py", torch.zeros(2, 2, 2))
...     with pyro.plate("data", num_samples or len(data["x"])):
...         c = confounder("c", pi)
...         x = pyro.sample("x", dist.Categorical(logits=px[c]), obs=data.get("x"))
...         pyro.sample("y", dist.Categorical(logits=py[c, x]), obs=data.get("y"))
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randint(0, 2, (2000,), generator=g); y = (x + (torch.rand(2000, generator=g) < 0.3)) % 2
>>> family = fit_family(bow, {"x": x, "y": y}, restarts=1, entropy_targets=(1.0,), random_directions=0,
...                     steps=150, member_steps=150, progress=False)
>>> len(family) >= 2, family.p_do().shape[1:]
(True, torch.Size([2, 2]))
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyro
import torch
from pyro import poutine
from tqdm.auto import tqdm

from cauvade_pyro.models.checks import check_data

from .checkpoint import load_checkpoint, save_checkpoint
from .exact import compress, compress_outcome, enumerate_data, enumerate_outcome, interventional_table

__all__ = ["Family", "Member", "fit_family"]

FAMILY_KIND = "family"


def _owner_module(diagram) -> torch.nn.Module | None:
    """The module whose parameters a diagram uses: the diagram itself, or the module it is a method of."""
    owner = getattr(diagram, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        return owner
    return diagram if isinstance(diagram, torch.nn.Module) else None


def _store_params() -> dict[str, torch.Tensor]:
    """The unconstrained tensors of Pyro's param store (the optimised leaves)."""
    return dict(pyro.get_param_store()._params)


def _snapshot() -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in _store_params().items()}


@dataclass
class Member:
    """One fitted member: a saved state of the diagram's parameters and what it was fitted for.

    A member is callable like the diagram itself (``member(data=..., num_samples=...)``): it first loads its own
    parameters into Pyro's param store, in place, so ``intervene(member, {"x": 1}, 100)`` samples from this
    member and no other.
    """

    kind: str
    label: str
    gamma: float
    seed: int
    state: dict[str, torch.Tensor]
    train_nll: float = math.nan
    heldout_nll: float = math.nan
    entropy: float = math.nan
    p_do: torch.Tensor | None = None
    repaired: bool = False
    module_paths: dict[str, str] = field(default_factory=dict)
    diagram: Callable | None = field(default=None, repr=False, compare=False)
    example: dict | None = field(default=None, repr=False, compare=False)

    def activate(self) -> None:
        """Load this member's parameters into the diagram and Pyro's param store.

        Parameters of the module the diagram is a method of are written into that module and re-registered in
        the store under their names (another fit may have left other tensors there under the same names); plain
        ``pyro.param`` sites are created by one blocked trace where absent and overwritten in place.
        """
        if self.diagram is None:
            raise ValueError("this member has no diagram attached; load it with Family.load(path, diagram)")
        store = pyro.get_param_store()
        module = _owner_module(self.diagram)
        own = dict(module.named_parameters()) if module is not None else {}
        plain = [name for name in self.state if name not in self.module_paths]
        if any(name not in store._params for name in plain):
            with poutine.block():
                poutine.trace(self.diagram).get_trace(data=self.example)
        with torch.no_grad():
            for name, value in self.state.items():
                path = self.module_paths.get(name)
                target = own.get(path) if path is not None else store._params.get(name)
                if target is None:
                    raise ValueError(f"the diagram has no parameter {path or name!r} of the member: is it the diagram "
                                     "the family was fitted with?")
                if target.shape != value.shape:
                    raise ValueError(f"parameter {name!r} has shape {tuple(value.shape)} in the member, "
                                     f"{tuple(target.shape)} in the diagram")
                target.copy_(value)
                if path is not None:  # the store must hold this module's tensor, not one a later fit left there
                    old = store._params.get(name)
                    if old is not None and old is not target:
                        store._param_to_name.pop(old, None)
                    store._params[name] = target
                    store._param_to_name[target] = name
                    store._constraints[name] = torch.distributions.constraints.real

    def __call__(self, *args, **kwargs):
        self.activate()
        return self.diagram(*args, **kwargs)

    def summary(self) -> dict:
        return {"kind": self.kind, "label": self.label, "gamma": round(self.gamma, 6), "seed": self.seed,
                "train_nll": round(self.train_nll, 6), "heldout_nll": round(self.heldout_nll, 6),
                "entropy": round(self.entropy, 6), "repaired": self.repaired,
                "p_do": None if self.p_do is None else [[round(v, 6) for v in row] for row in self.p_do.tolist()]}


@dataclass
class Family:
    """The members of a fitted family (every one within ``tau`` of the best held-out fit) and what was dropped."""

    members: list[Member]
    treatment: str
    outcome: str
    num_treatment: int
    num_outcome: int
    tau: float
    best_heldout_nll: float
    dropped: dict[str, int]
    seconds: float = math.nan

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> Member:
        return self.members[index]

    def __iter__(self):
        return iter(self.members)

    def best_restart(self) -> Member:
        """The γ = 0 restart with the best training fit (the family's reference member); if every restart was
        dropped, the member with the best training fit (its ``kind`` and ``label`` say which)."""
        restarts = [member for member in self.members if member.kind == "restart"] or self.members
        return min(restarts, key=lambda member: member.train_nll)

    def p_do(self) -> torch.Tensor:
        """P(outcome | do(treatment)) of every member, shape (members, |T|, |O|)."""
        return torch.stack([member.p_do for member in self.members])

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell (min, max) of P(outcome | do(treatment)) over the members."""
        values = self.p_do()
        return values.amin(0), values.amax(0)

    def max_fit_gap(self) -> float:
        """The largest held-out gap to the best member, in nats per datapoint (≤ tau by construction of the
        acceptance step, which measures it on held-out rows never used in training)."""
        return max(member.heldout_nll for member in self.members) - self.best_heldout_nll

    def summary(self) -> dict:
        return {"treatment": self.treatment, "outcome": self.outcome, "tau": self.tau,
                "members": len(self.members), "dropped": dict(self.dropped),
                "best_heldout_nll": round(self.best_heldout_nll, 6),
                "max_fit_gap_nats": round(self.max_fit_gap(), 6), "seconds": round(self.seconds, 2),
                "by_kind": {kind: sum(m.kind == kind for m in self.members)
                            for kind in dict.fromkeys(m.kind for m in self.members)},
                "member_list": [member.summary() for member in self.members]}

    def save(self, path: str | Path) -> Path:
        """Write the family (tensors and primitives only: loads with ``weights_only=True``)."""
        example = self.members[0].example if self.members else None
        return save_checkpoint(path, {
            "kind": FAMILY_KIND, "treatment": self.treatment, "outcome": self.outcome,
            "num_treatment": self.num_treatment, "num_outcome": self.num_outcome, "tau": self.tau,
            "best_heldout_nll": self.best_heldout_nll, "dropped": dict(self.dropped), "seconds": self.seconds,
            "example": {k: v.cpu() for k, v in (example or {}).items()},
            "members": [{"kind": m.kind, "label": m.label, "gamma": m.gamma, "seed": m.seed, "state": m.state,
                         "train_nll": m.train_nll, "heldout_nll": m.heldout_nll, "entropy": m.entropy,
                         "p_do": m.p_do, "repaired": m.repaired, "module_paths": m.module_paths}
                        for m in self.members],
        })

    @classmethod
    def load(cls, path: str | Path, diagram: Callable) -> Family:
        """Read a family written by :meth:`save`; ``diagram`` is the Pyro program it was fitted with."""
        payload = load_checkpoint(path, kind=FAMILY_KIND)
        example = payload["example"]
        members = [Member(diagram=diagram, example=example, **fields) for fields in payload["members"]]
        return cls(members, payload["treatment"], payload["outcome"], payload["num_treatment"],
                   payload["num_outcome"], payload["tau"], payload["best_heldout_nll"], payload["dropped"],
                   payload["seconds"])


class _Engine:
    """Evaluates the diagram's exact fit, entropy and interventional table for a *stack* of parameter settings.

    The parameters are those of Pyro's param store: plain ``pyro.param`` sites (substituted by their constrained
    value) and the parameters of the :class:`torch.nn.Module` the diagram is a method of (swapped in with
    ``torch.func.functional_call``'s reparametrisation). ``torch.func.vmap`` then evaluates M members in one pass
    of the program, so a family costs about what one member does.
    """

    def __init__(self, diagram, train, heldout, treatment, outcome, cards, max_plate_nesting):
        self.diagram, self.treatment, self.outcome, self.cards = diagram, treatment, outcome, cards
        self.max_plate_nesting = max_plate_nesting
        self.train, self.heldout = self._weighted(train), self._weighted(heldout)
        # The same numbers with the outcome enumerated (exact.enumerate_outcome: tensors up to |O| times smaller),
        # used only where the diagram allows it and agrees with the row-by-row path (choose_path).
        by_outcome = [compress_outcome(part, outcome, cards[1]) for part in (train, heldout)]
        self.by_outcome = None if None in by_outcome else dict(zip(("train", "heldout"), by_outcome))
        self.use_by_outcome = False
        store = pyro.get_param_store()
        self.module = _owner_module(diagram)
        paths = {id(value): path for path, value in self.module.named_parameters()} if self.module else {}
        self.module_paths: dict[str, str] = {}
        self.constraints: dict[str, object] = {}
        for name, value in _store_params().items():
            if id(value) in paths:
                self.module_paths[name] = paths[id(value)]
            elif isinstance(value, torch.nn.Parameter):
                raise ValueError(
                    f"parameter {name!r} belongs to an nn.Module the diagram is not a method of: fit_family evaluates "
                    "members side by side with torch.func, so write the diagram as a method of the module that holds "
                    "its networks (as AttributeMixture.model) or use pyro.param")
            else:
                self.constraints[name] = store._constraints[name]

    @staticmethod
    def _weighted(data):
        compressed = compress(data)
        if compressed is None:
            return data, torch.ones(len(next(iter(data.values()))))
        return compressed

    def _bound(self, values: Mapping[str, torch.Tensor]):
        from contextlib import ExitStack

        from torch.distributions import transform_to
        from torch.nn.utils.stateless import _reparametrize_module

        stack = ExitStack()
        if self.module_paths:
            stack.enter_context(_reparametrize_module(
                self.module, {path: values[name] for name, path in self.module_paths.items()}))
        stack.enter_context(poutine.substitute(
            data={name: transform_to(constraint)(values[name]) for name, constraint in self.constraints.items()}))
        return stack

    def one(self, values: Mapping[str, torch.Tensor], which: str = "train", by_outcome: bool | None = None):
        """(mean NLL, mean posterior entropy, P(o | do(t))) of one parameter setting."""
        by_outcome = self.use_by_outcome if by_outcome is None else by_outcome
        rows, weights = (self.by_outcome if by_outcome else {"train": self.train, "heldout": self.heldout})[which]
        with self._bound(values), warnings.catch_warnings():
            # pyro.module warns about the swapped-in tensors, which carry no requires_grad flag of their own
            warnings.filterwarnings("ignore", message=".*was not registered in the param store")
            if by_outcome:
                out = enumerate_outcome(self.diagram, rows, self.outcome, self.max_plate_nesting)
            else:
                out = enumerate_data(self.diagram, rows, self.max_plate_nesting)
            table = interventional_table(self.diagram, self.treatment, self.cards[0], self.outcome, self.cards[1],
                                         max_plate_nesting=self.max_plate_nesting, enumerate_outcome=by_outcome)
        weights = weights.to(out.loglik)
        empty = weights == 0  # (row, outcome) pairs the data never show: masked before the product (no 0 · −inf)
        total = weights.sum()
        loglik, entropy = out.loglik.masked_fill(empty, 0.0), out.entropy.masked_fill(empty, 0.0)
        return -(weights * loglik).sum() / total, (weights * entropy).sum() / total, table

    def choose_path(self, values: Mapping[str, torch.Tensor], rtol: float = 1e-4) -> bool:
        """Use the outcome-enumerated path if the diagram runs with the outcome left out of its data and gives the
        row-by-row path's fit, entropy and table at ``values`` (else keep the row-by-row path). Returns the choice."""
        self.use_by_outcome = False
        if self.by_outcome is None:
            return False
        with torch.no_grad():
            try:
                for which in ("train", "heldout"):
                    rows_path, outcome_path = self.one(values, which, False), self.one(values, which, True)
                    if not all(torch.allclose(a, b, rtol=rtol, atol=1e-6) for a, b in zip(rows_path, outcome_path)):
                        return False
            except Exception:  # noqa: BLE001 - e.g. a diagram that reads data["y"]: the row-by-row path serves it
                return False
        self.use_by_outcome = True
        return True

    def stack(self, values: Mapping[str, torch.Tensor], which: str = "train"):
        """``one`` for every member of a stack (leading dim M of every tensor in ``values``)."""
        with pyro.validation_enabled(False):  # validation reads values back (data-dependent), which vmap refuses
            return torch.func.vmap(lambda v: self.one(v, which))(dict(values))


def _site_cardinality(trace, name: str) -> int:
    if name not in trace.nodes or trace.nodes[name]["type"] != "sample":
        sites = sorted(n for n, s in trace.nodes.items() if s["type"] == "sample")
        raise ValueError(f"the diagram has no sample site {name!r}; its sites are {sites}")
    fn = trace.nodes[name]["fn"]
    if not fn.has_enumerate_support or fn.event_shape:
        raise ValueError(f"site {name!r} is not a discrete scalar site ({type(fn).__name__}); the family's "
                         "interventional table needs categorical treatment and outcome sites")
    return len(fn.enumerate_support(expand=False))


def _train_tolerance(tau: float, engine: _Engine) -> float:
    """τ_train = (√τ − √κ)², κ = (d − 1) / (2 N): the training fit a member may give up so that, on fresh data, it
    stays within τ of the population optimum (module docstring). d is the number of distinct observed rows."""
    rows, weights = engine.train
    num_rows = float(weights.sum())
    distinct = len(next(iter(rows.values())))
    if distinct == num_rows:  # not compressible (continuous observations): no cell count to go by
        return 0.3 * tau
    kappa = (distinct - 1) / (2 * num_rows)
    tolerance = (math.sqrt(tau) - math.sqrt(kappa)) ** 2 if kappa < tau else 0.0
    if tolerance < 0.1 * tau:
        warnings.warn(f"tau={tau:g} nats is close to the sampling resolution of {int(num_rows)} training rows over "
                      f"{distinct} cells ((d - 1) / 2N = {kappa:.2g} nats): members are held to 0.1 tau on the "
                      "training rows; more data or a larger tau gives a wider family", UserWarning, stacklevel=3)
        tolerance = 0.1 * tau
    return tolerance


def _schedule(share: float, low: float, high: float) -> float:
    return low * (high / low) ** share


def _optimise(engine: _Engine, start: Mapping[str, torch.Tensor], *, steps: int, lr: float,
              nll_weight: torch.Tensor, entropy_target: torch.Tensor, entropy_weight: torch.Tensor,
              directions: torch.Tensor, best: float | None, tolerance: float, entropy_linear: torch.Tensor | None = None,
              penalty: tuple[float, float] = (1e2, 1e6), mu: float = 1.0, bar=None) -> dict[str, torch.Tensor]:
    """Minimise, for every member m of the stack at once (each depends on its own θ_m only),

        w_m ℓ̄ + γ_m H̄ + a_m (μ/2)(H̄ − h_m)² − ⟨d_m, Q⟩ + ρ relu(ℓ̄ − ℓ̄* − tol)²

    with ρ raised geometrically from ``penalty[0]`` to ``penalty[1]`` and Adam's rate decayed 100-fold (no
    penalty when ``best`` is None: then the rate drops tenfold for the last quarter); then descend on ℓ̄ alone
    for the members still outside the tolerance. Returns the fitted stack.
    """
    params = {name: value.detach().clone().requires_grad_() for name, value in start.items()}
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    for step in range(steps):
        share = step / max(steps - 1, 1)
        for group in optimizer.param_groups:  # Adam's step does not shrink with the gradient: decay it to settle
            group["lr"] = lr * (0.01**share if best is not None else (0.1 if share >= 0.75 else 1.0))
        nll, entropy, table = engine.stack(params)
        loss = nll_weight * nll + entropy_weight * 0.5 * mu * (entropy - entropy_target) ** 2
        if entropy_linear is not None:
            loss = loss + entropy_linear * entropy
        loss = loss - (directions * table).sum((-2, -1))
        if best is not None:
            loss = loss + _schedule(share, *penalty) * torch.relu(nll - best - tolerance) ** 2
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        if bar is not None:
            bar.update()
    if best is not None:
        _restore(engine, params, best, tolerance, 0.1 * lr, max(steps // 2, 1))
    return {name: value.detach() for name, value in params.items()}


def _restore(engine: _Engine, params: dict, best: float, tolerance: float, lr: float, steps: int) -> None:
    """Descend on the training fit alone, member by member, until each is within ``tolerance`` of ``best``."""
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    for _ in range(steps):
        nll, _, _ = engine.stack(params)
        outside = (nll.detach() - best) > tolerance
        if not bool(outside.any()):
            return
        before = {name: value.detach().clone() for name, value in params.items()}
        optimizer.zero_grad(set_to_none=True)
        (nll * outside).sum().backward()
        optimizer.step()
        with torch.no_grad():  # members already inside do not move (Adam's momentum would carry them on)
            for name, value in params.items():
                keep = ~outside.view((-1,) + (1,) * (value.dim() - 1))
                value.copy_(torch.where(keep, before[name], value))


def _gammas(engine: _Engine, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """γ_m = −⟨∇ℓ̄, ∇H̄⟩ / ‖∇H̄‖² per member: the γ whose γ-entropy loss ℓ̄ + γ H̄ is stationary at θ_m
    (least squares on ∇ℓ̄ + γ ∇H̄ = 0)."""
    leaves = {name: value.detach().clone().requires_grad_() for name, value in params.items()}
    nll, entropy, _ = engine.stack(leaves)
    grad_nll = torch.autograd.grad(nll.sum(), list(leaves.values()), retain_graph=True)
    grad_h = torch.autograd.grad(entropy.sum(), list(leaves.values()))
    flat = lambda grads: torch.cat([g.reshape(g.shape[0], -1) for g in grads], 1)  # noqa: E731
    g_nll, g_h = flat(grad_nll), flat(grad_h)
    return -(g_nll * g_h).sum(1) / (g_h * g_h).sum(1).clamp_min(1e-12)


def _split(data: Mapping[str, torch.Tensor], share: float, seed: int):
    count = len(next(iter(data.values())))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    cut = int(round(count * share))
    if cut < 1 or cut >= count:
        raise ValueError(f"heldout_share={share} leaves no rows for training or for held-out scoring ({count} rows)")
    return {k: v[order[cut:]] for k, v in data.items()}, {k: v[order[:cut]] for k, v in data.items()}


def fit_family(
    diagram: Callable,
    data: Mapping[str, torch.Tensor],
    *,
    treatment: str = "x",
    outcome: str = "y",
    tau: float = 0.005,
    heldout: Mapping[str, torch.Tensor] | None = None,
    heldout_share: float = 0.2,
    restarts: int = 3,
    entropy_targets: Sequence[float] = (1.0, 0.75, 0.5, 0.25, 0.0),
    vertices: bool = True,
    random_directions: int = 4,
    cells: bool = False,
    functionals: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    gammas: Sequence[float] = (),
    steps: int = 600,
    member_steps: int = 300,
    lr: float = 0.1,
    init_scale: float = 1.0,
    train_tolerance: float | None = None,
    duplicate_atol: float = 1e-3,
    refills: int = 4,
    seed: int = 0,
    max_plate_nesting: int = 1,
    progress: bool = True,
) -> Family:
    """Fit a family of ``diagram`` on ``data`` (module docstring): restarts, the entropy dial and directions.

    ``diagram(data=None, num_samples=None)`` is a Pyro program with one or more
    :func:`~cauvade_pyro.models.confounder` sites whose other latents are discrete (they are enumerated);
    ``treatment`` and ``outcome`` name its categorical sites of the interventional table P(outcome | do(treatment)).
    ``heldout`` (else a ``heldout_share`` split of ``data``, drawn with ``seed``) scores the fit tolerance ``tau``.

    Directed members on top of the default family: ``cells=True`` adds, for every cell (t, o), the member that
    maximises and the one that minimises P(o | do(t)); ``functionals`` maps a name to any differentiable
    f(Q) of the (|T|, |O|) table (an average causal effect, an expectation) and adds its max and min member.
    All members of a phase are fitted side by side (``torch.func.vmap``), not one after another. ``gammas`` adds,
    from every restart, the member minimising the paper's ℓ̄ + γ H̄ at each γ (kind ``"gamma"``), kept only
    within τ like every other member.

    The diagram's parameters live in Pyro's param store; the store is cleared first, and each member keeps its
    own copy (members never overwrite one another). Returns a :class:`Family`.
    """
    import time

    started = time.perf_counter()
    if not tau > 0 or not math.isfinite(tau):
        raise ValueError(f"tau: must be a finite number of nats per datapoint > 0, got {tau!r}")
    if restarts < 1:
        raise ValueError(f"restarts: must be >= 1, got {restarts}")
    if any(not 0.0 <= f <= 1.0 for f in entropy_targets):
        raise ValueError(f"entropy_targets: fractions of the maximum entropy in [0, 1], got {list(entropy_targets)}")
    if any(not math.isfinite(float(g)) for g in gammas):
        raise ValueError(f"gammas: must be finite numbers, got {list(gammas)}")
    if steps < 1 or member_steps < 1:
        raise ValueError(f"steps and member_steps: must be >= 1, got {steps} and {member_steps}")
    # A diagram whose objective splits (the built-in one: log p(x, y) + log p(image | x, y), one image model for
    # every member) names its attribute level: the family is fitted there, exactly; members sample the whole diagram.
    program, prefix = diagram, ""
    owner = _owner_module(diagram)
    if owner is not None and hasattr(owner, "attribute_level"):
        program, keys = owner.attribute_level()
        level = _owner_module(program)
        prefix = next(name for name, sub in owner.named_modules() if sub is level) + "."
        data = {k: v for k, v in data.items() if k in keys}
        heldout = None if heldout is None else {k: v for k, v in heldout.items() if k in keys}
    data = check_data(program, data, max_plate_nesting)  # keys, dtypes, lengths, supports: one line each
    train, held = (data, check_data(program, heldout, max_plate_nesting)) if heldout is not None \
        else _split(data, heldout_share, seed)
    example = {k: v[:2] for k, v in train.items()}

    pyro.clear_param_store()
    trace = poutine.trace(program).get_trace(data=example)
    confounders = [s for s in trace.nodes.values() if s["type"] == "sample" and s["infer"].get("cauvade_confounder")]
    if not confounders:
        raise ValueError("the diagram has no confounder site: declare the enumerated cluster with "
                         "cauvade_pyro.confounder(name, logits) inside the 'data' plate")
    continuous = sorted(name for name, site in trace.nodes.items()
                        if site["type"] == "sample" and isinstance(site["fn"], torch.distributions.Distribution)
                        and not site["is_observed"] and not site["fn"].has_enumerate_support
                        and not site["infer"].get("_deterministic"))
    if continuous:
        raise ValueError(
            f"fit_family scores every member exactly, so every latent must be discrete; the diagram samples "
            f"{continuous} given the data: fit such a diagram member by member with fit_diagram, or give its module "
            "an attribute_level() that returns the discrete part (as ConfoundedAttributesModel does)")
    max_entropy = sum(math.log(len(s["fn"].enumerate_support(expand=False))) for s in confounders)
    cards = (_site_cardinality(trace, treatment), _site_cardinality(trace, outcome))
    if not _store_params():
        raise ValueError("the diagram has no parameters (pyro.param or pyro.module): nothing to fit")
    initial = _snapshot()
    engine = _Engine(program, train, held, treatment, outcome, cards, max_plate_nesting)
    with torch.no_grad():
        try:
            engine.one(initial)  # one validated, unbatched pass: a diagram that fails says so here, not inside vmap
        except KeyError as error:
            raise ValueError(
                f"the diagram reads data[{error.args[0]!r}] while P({outcome} | do({treatment})) is computed with only "
                f"{treatment!r} and {outcome!r} given: read every other site with data.get(...) so that it can be "
                "summed out") from None
    # checked at a random point, not at the initial values alone (often symmetric, where a mix-up could hide)
    probe = torch.Generator().manual_seed(7_919 + seed)
    engine.choose_path({name: value + torch.randn(value.shape, generator=probe) for name, value in initial.items()})
    tol = _train_tolerance(tau, engine) if train_tolerance is None else float(train_tolerance)
    bar = tqdm(total=steps + member_steps * (2 if gammas else 1), desc="family", unit="step", disable=not progress,
               leave=False)

    def stacked(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {name: torch.stack([state[name] for state in states]) for name in initial}

    def unstack(params: Mapping[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
        return {name: value[index].detach().cpu().clone() for name, value in params.items()}

    def run(specs: list[dict], starts: list[dict], best: float | None, run_steps: int, tolerance: float):
        if not specs:
            return {}
        field_of = lambda key, default: torch.tensor([float(spec.get(key, default)) for spec in specs])  # noqa: E731
        directions = torch.stack([spec.get("direction", torch.zeros(cards)) for spec in specs])
        return _optimise(engine, stacked(starts), steps=run_steps, lr=lr, nll_weight=field_of("nll_weight", 0.0),
                         entropy_target=field_of("entropy_target", 0.0), entropy_weight=field_of("entropy_weight", 0.0),
                         entropy_linear=field_of("gamma", 0.0), directions=directions, best=best, tolerance=tolerance,
                         bar=bar)

    # 1. restarts: plain maximum likelihood (γ = 0) from random initial values
    generator = torch.Generator()
    starts = []
    for index in range(restarts):
        generator.manual_seed(seed + index)
        starts.append({name: value + init_scale * torch.randn(value.shape, generator=generator)
                       for name, value in initial.items()})
    restart_specs = [{"kind": "restart", "label": f"γ=0 restart {i}", "seed": seed + i, "nll_weight": 1.0}
                     for i in range(restarts)]
    bar.set_postfix(phase=f"{restarts} restarts")
    fitted = run(restart_specs, starts, None, steps, tol)
    with torch.no_grad():
        restart_nll = engine.stack(fitted)[0]
    best_train = float(restart_nll.min())
    base_index = int(restart_nll.argmin())
    restart_states = [unstack(fitted, i) for i in range(restarts)]

    # 2. the dial and the directions, all members side by side
    specs, member_starts = [], []
    for i, state in enumerate(restart_states):
        for fraction in entropy_targets:
            specs.append({"kind": "dial", "label": f"entropy {fraction:.2f} of max, from restart {i}", "seed": seed + i,
                          "nll_weight": 1.0, "entropy_weight": 1.0, "entropy_target": fraction * max_entropy})
            member_starts.append(state)
    direction_generator = torch.Generator().manual_seed(10_000 + seed)

    def direction_spec(weights: torch.Tensor, kind: str, label: str) -> None:
        specs.append({"kind": kind, "label": label, "seed": seed + base_index, "direction": weights})
        member_starts.append(restart_states[base_index])

    if vertices:
        for j in range(cards[1] if cards[1] > 2 else 1):  # with two outcomes, max of one is min of the other
            for sign, word in ((1.0, "max"), (-1.0, "min")):
                weights = torch.zeros(cards)
                weights[:, j] = sign
                direction_spec(weights, "vertex", f"{word} Σ_t P({outcome}={j} | do({treatment}=t))")
    for index in range(random_directions):
        direction_spec(torch.randn(cards, generator=direction_generator), "direction", f"random direction {index}")
    if cells:
        for t in range(cards[0]):
            for o in range(cards[1]):
                for sign, word in ((1.0, "max"), (-1.0, "min")):
                    weights = torch.zeros(cards)
                    weights[t, o] = sign
                    direction_spec(weights, "cell", f"{word} P({outcome}={o} | do({treatment}={t}))")
    bar.set_postfix(phase=f"{len(specs)} members")
    members_params = run(specs, member_starts, best_train, member_steps, tol)
    # the paper's fixed-γ members: its loss alone, no tolerance in training (the acceptance below applies τ)
    gamma_specs = [{"kind": "gamma", "label": f"γ={float(g):g} from restart {i}", "seed": seed + i,
                    "nll_weight": 1.0, "gamma": float(g)} for i in range(restarts) for g in gammas]
    gamma_params = run(gamma_specs, [restart_states[i] for i in range(restarts) for _ in gammas], None,
                       member_steps, tol)
    gamma_members = [(spec, unstack(gamma_params, i)) for i, spec in enumerate(gamma_specs)]
    functional_members = []
    for name, functional in (functionals or {}).items():
        for sign, word in ((1.0, "max"), (-1.0, "min")):
            params = {key: value.unsqueeze(0) for key, value in restart_states[base_index].items()}
            params = {key: value.clone().requires_grad_() for key, value in params.items()}
            _push(engine, params, lambda table, f=functional, s=sign: s * f(table[0]), best_train, tol,
                  member_steps, lr)
            functional_members.append(({"kind": "functional", "label": f"{word} {name}", "seed": seed + base_index},
                                       unstack(params, 0)))

    # 3. acceptance on held-out rows: within tau of the best candidate; one repair, else dropped; duplicates
    # fixed-γ members come right after the restarts: where one lands on a dial member's answer (γ < 0 and the
    # observational end), the γ member is kept and the dial member is the duplicate
    candidates = ([(spec, restart_states[i]) for i, spec in enumerate(restart_specs)] + gamma_members
                  + [(spec, unstack(members_params, i)) for i, spec in enumerate(specs)] + functional_members)
    all_params = stacked([state for _, state in candidates])
    gammas = _gammas(engine, all_params)
    with torch.no_grad():
        train_nll, entropy, tables = engine.stack(all_params)
        held_nll = engine.stack(all_params, "heldout")[0]
    # The reference is the best of the members trained against τ. A fixed-γ member (trained on its own loss, which
    # for γ < 0 regularises) is neither the reference nor repaired: it joins only inside the band, like a refill.
    trained = torch.tensor([spec["kind"] != "gamma" for spec, _ in candidates])
    best_held = float(held_nll[trained].min())
    outside = [i for i in range(len(candidates)) if float(held_nll[i]) > best_held + tau and bool(trained[i])]
    repaired = set()
    if outside:
        sub = {name: value[outside].clone().requires_grad_() for name, value in all_params.items()}
        _restore(engine, sub, best_train, tol / 4, 0.1 * lr, member_steps)
        with torch.no_grad():
            sub_train, sub_entropy, sub_tables = engine.stack(sub)
            sub_held = engine.stack(sub, "heldout")[0]
            for k, i in enumerate(outside):
                for name in all_params:
                    all_params[name][i] = sub[name][k].detach()
                train_nll[i], entropy[i], tables[i], held_nll[i] = sub_train[k], sub_entropy[k], sub_tables[k], sub_held[k]
        repaired = set(outside)
        best_held = float(held_nll[trained].min())  # a repaired member may now fit the held-out rows best
    dropped = {"fit": 0, "duplicate": 0, "better_than_band": 0}
    accepted: list[Member] = []
    paths = {name: prefix + path for name, path in engine.module_paths.items()}

    def consider(spec, state, train_value, held_value, entropy_value, table, gamma, was_repaired,
                 inside_band_only: bool = False) -> bool:
        if inside_band_only and held_value < best_held:
            # a refill or a fixed-γ member joins inside the band [best, best + τ] the others were accepted in; one
            # that would fit better would move the band and push out members accepted against it (the extreme ones)
            dropped["better_than_band"] += 1
            return False
        if held_value > best_held + tau:
            dropped["fit"] += 1
            return False
        if any(bool((table - other.p_do).abs().max() < duplicate_atol) for other in accepted):
            dropped["duplicate"] += 1
            return False
        reported = 0.0 if spec["kind"] == "restart" else spec.get("gamma", gamma)  # a fixed-γ member reports its own
        accepted.append(Member(spec["kind"], spec["label"], reported, spec["seed"], state, train_value, held_value,
                               entropy_value, table.detach().cpu().clone(), was_repaired, paths, diagram=diagram,
                               example=example))
        return True

    for i, (spec, _) in enumerate(candidates):
        consider(spec, unstack(all_params, i), float(train_nll[i]), float(held_nll[i]), float(entropy[i]), tables[i],
                 float(gammas[i]), i in repaired, inside_band_only=not bool(trained[i]))
    # duplicates are replaced by fresh random directions, started from the restarts in turn (one round)
    refill = min(dropped["duplicate"], refills)
    if refill:
        refill_specs = [{"kind": "direction", "label": f"refill direction {i}", "seed": seed + i % restarts,
                         "direction": torch.randn(cards, generator=direction_generator)} for i in range(refill)]
        fresh = run(refill_specs, [restart_states[i % restarts] for i in range(refill)], best_train, member_steps, tol)
        fresh_gammas = _gammas(engine, fresh)
        with torch.no_grad():
            f_train, f_entropy, f_tables = engine.stack(fresh)
            f_held = engine.stack(fresh, "heldout")[0]
        for i, spec in enumerate(refill_specs):
            consider(spec, unstack(fresh, i), float(f_train[i]), float(f_held[i]), float(f_entropy[i]), f_tables[i],
                     float(fresh_gammas[i]), False, inside_band_only=True)
    bar.close()
    family = Family(accepted, treatment, outcome, cards[0], cards[1], tau, best_held, dropped)
    family.seconds = time.perf_counter() - started
    if accepted:
        family.best_restart().activate()
    return family


def _push(engine: _Engine, params: dict, objective: Callable, best: float, tolerance: float, steps: int, lr: float,
          penalty: tuple[float, float] = (1e2, 1e6)) -> None:
    """Maximise ``objective(Q)`` (Q stacked, shape (1, |T|, |O|)) within the fit tolerance, in place."""
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    for step in range(steps):
        share = step / max(steps - 1, 1)
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.01**share
        nll, _, table = engine.stack(params)
        loss = -objective(table) + _schedule(share, *penalty) * torch.relu(nll - best - tolerance).sum() ** 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _restore(engine, params, best, tolerance, 0.1 * lr, max(steps // 2, 1))
