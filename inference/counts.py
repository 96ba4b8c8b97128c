r"""The attribute-level γ-entropy objective on cell counts, and directed members of a family.

**Counts.** At the attribute level of the default diagram nothing is latent but c, and x, y are categorical,
so the per-datapoint loss depends on the datapoint only through its cell (x, y). With N_xy the number of
datapoints in cell (x, y), the γ-entropy loss of :class:`~cauvade_pyro.inference.GammaEntropyELBO` is exactly

.. math::

    L(θ) = \sum_{x,y} N_{xy} \Big( -\log \sum_c π_c\, p(x \mid c)\, p(y \mid x, c)
            + γ\, H\big[p(c \mid x, y)\big] \Big),

a sum over |X|·|Y| cells instead of N datapoints (tested equal to the Pyro loss). A member's cost then no
longer grows with the data set nor, beyond the K × |X| × |Y| table, with K. (Pyro's ``TraceEnum_ELBO`` refuses
the per-cell weights as a non-scalar ``poutine.scale`` under enumeration, hence this exact closed form.)

**Directed members** (docs/design.md §2, the NCM bounding idea). For a query cell (x*, y*), maximise (s = +1) or
minimise (s = −1) the interventional probability under a tolerance τ (nats per datapoint) on the fit:

.. math::

    \max_θ\; s \cdot P_θ(y^* \mid do(x^*)) \quad \text{s.t.} \quad
    \bar\ell(θ) \le \bar\ell_{\text{best}} + τ, \qquad
    \bar\ell(θ) = -\frac{1}{N} \sum_{x,y} N_{xy} \log p_θ(x, y),

solved with the quadratic penalty :math:`-s P + μ\,\mathrm{relu}(\bar\ell - \bar\ell_{\text{best}} - τ)^2`
with μ raised geometrically and Adam's rate decayed (then, if needed, steps on the fit alone until
it is within τ again).

The interventional probability is :math:`P_θ(y \mid do(x)) = \sum_c π_c\, p(y \mid x, c)` (back-door through
c). With ``y_given_xc="table"`` and K ≥ 2 the canonical mixture can reach the sharp bow-graph bounds
P(x*, y*) ≤ P(y* | do(x*)) ≤ P(x*, y*) + 1 − P(x*) up to τ and the optimisation.

**Oracle** (the benchmark's upper reference): the same mixture with the confounder observed, c = u. Its
maximum-likelihood table fit is closed-form, π_u ∝ N_u, p(x | u) ∝ N_ux, p(y | x, u) ∝ N_uxy (plus a pseudo-count
α per cell so that empty cells stay defined), and P(y | do(x)) = Σ_u π_u p(y | x, u).

>>> import torch
>>> from cauvade_pyro.models import AttributeMixture
>>> counts = torch.tensor([[30., 10.], [10., 50.]])
>>> mixture = AttributeMixture(num_clusters=2, num_x=2, num_y=2, y_given_xc="table")
>>> losses = fit_attribute_counts(mixture, counts, gamma=0.0, seed=0, steps=300, progress=False)
>>> round(mean_nll(mixture, counts).item(), 3)  # the empirical entropy of the cells: a perfect fit
1.168
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pyro.optim.clipped_adam import ClippedAdam
from tqdm.auto import tqdm

from cauvade_pyro.models import AttributeMixture

__all__ = [
    "cell_counts",
    "cell_posterior_entropy",
    "count_objective",
    "fit_attribute_counts",
    "fit_attribute_family_counts",
    "fit_directed_member",
    "mean_nll",
    "oracle_mixture",
    "table_mixture",
]


def cell_counts(x: torch.Tensor, y: torch.Tensor, num_x: int, num_y: int) -> torch.Tensor:
    """N_xy as a float (num_x, num_y) tensor on the device of ``x``.

    >>> cell_counts(torch.tensor([0, 1, 1]), torch.tensor([1, 0, 0]), 2, 2).tolist()
    [[0.0, 1.0], [2.0, 0.0]]
    """
    x, y = torch.as_tensor(x).long(), torch.as_tensor(y).long()
    if x.shape != y.shape:
        raise ValueError(f"x, y: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    flat = torch.bincount(x.reshape(-1) * num_y + y.reshape(-1), minlength=num_x * num_y)
    if flat.numel() != num_x * num_y:
        raise ValueError(f"x, y: values outside [0, {num_x - 1}] × [0, {num_y - 1}]")
    return flat.view(num_x, num_y).to(torch.get_default_dtype())


def count_objective(mixture: AttributeMixture, counts: torch.Tensor, gamma: float) -> torch.Tensor:
    """Σ_xy N_xy (−log p(x, y) + γ H[p(c | x, y)]): the γ-entropy loss of the whole data set, from its counts."""
    log_joint = mixture.log_joint_table()  # (K, X, Y)
    log_p_xy = log_joint.logsumexp(0)
    loss = -(counts * log_p_xy).sum()
    if torch.is_tensor(gamma) or gamma != 0.0:  # a tensor γ: one per member of a vectorised family
        loss = loss + gamma * (counts * _posterior_entropy(log_joint, log_p_xy)).sum()
    return loss


def _posterior_entropy(log_joint: torch.Tensor, log_p_xy: torch.Tensor) -> torch.Tensor:
    log_post = log_joint - log_p_xy
    return -(log_post.exp() * log_post).sum(0)


def cell_posterior_entropy(mixture: AttributeMixture) -> torch.Tensor:
    """H[p(c | x, y)] for every cell, shape (X, Y), in nats."""
    log_joint = mixture.log_joint_table()
    return _posterior_entropy(log_joint, log_joint.logsumexp(0))


def mean_nll(mixture: AttributeMixture, counts: torch.Tensor) -> torch.Tensor:
    """−(1/N) Σ_xy N_xy log p(x, y): the attribute-level fit in nats per datapoint (lower is better)."""
    return -(counts * mixture.log_joint_table().logsumexp(0)).sum() / counts.sum()


def _check_finite(loss: torch.Tensor | float, step: int, total: int, what: str, hint: str) -> None:
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)  # no grad-to-scalar warning
    if not math.isfinite(value):
        raise FloatingPointError(f"non-finite loss {value} at step {step} of {total} ({what}); {hint}")


def fit_attribute_counts(
    mixture: AttributeMixture,
    counts: torch.Tensor,
    *,
    gamma: float,
    seed: int | None,
    steps: int = 600,
    lr: float = 0.05,
    init_scale: float = 1.0,
    clip_norm: float = 10.0,
    progress: bool = True,
) -> list[float]:
    """Fit one member on cell counts with Pyro's ClippedAdam (the optimizer of the Pyro path).

    ``seed`` draws the random initial parameters as :func:`~cauvade_pyro.inference.fit_attribute_member`
    does; ``seed=None`` keeps the current parameters (a warm start). Returns the loss per step.
    """
    if not math.isfinite(float(gamma)):
        raise ValueError(f"gamma must be finite, got {gamma}")
    if seed is not None:
        mixture.reset_parameters(torch.Generator().manual_seed(seed), scale=init_scale)
    optimizer = ClippedAdam(mixture.parameters(), lr=lr, clip_norm=clip_norm)
    counts = counts.to(mixture.pi_logits.device, mixture.pi_logits.dtype)
    losses = torch.empty(steps)
    for step in tqdm(range(steps), desc=f"attributes γ={gamma:g} (counts)", disable=not progress, leave=False):
        optimizer.zero_grad(set_to_none=True)
        loss = count_objective(mixture, counts, gamma)
        loss.backward()
        optimizer.step()
        losses[step] = loss.detach()
    result = losses.tolist()
    _check_finite(losses[-1], steps, steps, f"γ={gamma:g}", f"try a lower inference.attribute_lr (now {lr})")
    return result


class _CountLoss(torch.nn.Module):
    """``count_objective`` as a module's forward, so ``torch.func.functional_call`` can swap the parameters."""

    def __init__(self, mixture: AttributeMixture):
        super().__init__()
        self.mixture = mixture

    def forward(self, counts: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        return count_objective(self.mixture, counts, gamma)


def fit_attribute_family_counts(
    mixtures: Sequence[AttributeMixture],
    counts: torch.Tensor,
    *,
    gammas: Sequence[float],
    seeds: Sequence[int | None],
    steps: int = 600,
    lr: float = 0.05,
    init_scale: float = 1.0,
    clip_norm: float = 10.0,
    progress: bool = True,
) -> list[list[float]]:
    """Fit a whole family in one vectorised fit: member m is ``mixtures[m]`` at γ = ``gammas[m]``, seed ``seeds[m]``.

    The members' parameters are stacked along a new leading dim and the summed loss Σ_m L_m(θ_m) is minimised
    with one ClippedAdam; since each L_m depends on θ_m only and ClippedAdam works element by element, every
    member follows the trajectory of its own :func:`fit_attribute_counts`: bit for bit with the ``additive`` and
    ``table`` p(y | x, c) (tested); with ``interaction`` the batched matrix products sum in another order, so
    the two agree to float rounding per step and then drift apart as any two runs of a non-convex fit do. A
    step costs about one member's step on a GPU. The fitted values are written back into ``mixtures``; returns
    each member's loss per step.
    """
    if not (len(mixtures) == len(gammas) == len(seeds)) or not mixtures:
        raise ValueError(f"need one γ and one seed per mixture, got {len(mixtures)} mixtures, "
                         f"{len(gammas)} gammas and {len(seeds)} seeds")
    if not all(math.isfinite(float(gamma)) for gamma in gammas):
        raise ValueError(f"gamma must be finite, got {list(gammas)}")
    for mixture, seed in zip(mixtures, seeds):
        if seed is not None:
            mixture.reset_parameters(torch.Generator().manual_seed(seed), scale=init_scale)
    first = mixtures[0]
    device, dtype = first.pi_logits.device, first.pi_logits.dtype
    params = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in mixtures]).requires_grad_()
              for name, _ in first.named_parameters()}
    counts = counts.to(device, dtype)
    loss_module = _CountLoss(first)
    member_loss = torch.func.vmap(lambda member_params, gamma: torch.func.functional_call(
        loss_module, {f"mixture.{name}": value for name, value in member_params.items()}, (counts, gamma)))
    gamma_tensor = torch.tensor([float(g) for g in gammas], device=device, dtype=dtype)
    optimizer = ClippedAdam(list(params.values()), lr=lr, clip_norm=clip_norm)
    losses = torch.empty(steps, len(mixtures), device=device)
    for step in tqdm(range(steps), desc=f"{len(mixtures)} attribute members (counts, vectorised)",
                     disable=not progress, leave=False):
        optimizer.zero_grad(set_to_none=True)
        loss = member_loss(params, gamma_tensor)
        loss.sum().backward()
        optimizer.step()
        losses[step] = loss.detach()
    with torch.no_grad():
        for index, mixture in enumerate(mixtures):
            for name, value in mixture.named_parameters():
                value.copy_(params[name][index])
    for gamma, last in zip(gammas, losses[-1].tolist()):
        _check_finite(last, steps, steps, f"γ={gamma:g}", f"try a lower inference.attribute_lr (now {lr})")
    return losses.T.tolist()


def fit_directed_member(
    mixture: AttributeMixture,
    counts: torch.Tensor,
    cell: tuple[int, int],
    direction: int,
    *,
    best_nll: float,
    tolerance: float = 0.002,
    steps: int = 1500,
    lr: float = 0.05,
    penalty: tuple[float, float] = (1e2, 1e6),
    progress: bool = False,
) -> dict:
    """Push P(y* | do(x*)) of ``cell = (x*, y*)`` up (``direction=+1``) or down (−1) while the mean NLL stays
    within ``tolerance`` nats of ``best_nll``. Starts from the mixture's current parameters (warm start from a
    fitted member). Returns the reached probability, the fit gap and whether the constraint holds.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction: must be +1 (maximise) or -1 (minimise), got {direction!r}")
    x_star, y_star = cell
    if not (0 <= x_star < mixture.num_x and 0 <= y_star < mixture.num_y):
        raise ValueError(f"cell: must lie in [0, {mixture.num_x - 1}] × [0, {mixture.num_y - 1}], got {cell}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance: must be >= 0 nats, got {tolerance!r}")
    counts = counts.to(mixture.pi_logits.device, mixture.pi_logits.dtype)
    optimizer = torch.optim.Adam(mixture.parameters(), lr=lr)
    low, high = penalty
    for step in tqdm(range(steps), desc=f"directed {cell} {'max' if direction > 0 else 'min'}",
                     disable=not progress, leave=False):
        progress_share = step / max(steps - 1, 1)
        weight = low * (high / low) ** progress_share  # geometric schedule: explore, then enforce
        # Adam's step size does not shrink with the gradient, so at a constant rate the iterate keeps bouncing
        # across the constraint boundary; decaying it 100-fold lets it settle on the boundary.
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.01**progress_share
        gap = mean_nll(mixture, counts) - best_nll
        target = mixture.interventional_y()[x_star, y_star]
        loss = -direction * target + weight * torch.relu(gap - tolerance) ** 2
        _check_finite(loss, step + 1, steps, f"directed member {cell}", "try a lower lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    # Restoration: should the penalty phase end just outside the tolerance, descend on the fit alone until it
    # is back inside (at most steps // 2 further steps, fresh optimizer state), so a reported member is feasible.
    optimizer = torch.optim.Adam(mixture.parameters(), lr=0.1 * lr)
    for _ in range(max(steps // 2, 1)):
        gap = mean_nll(mixture, counts) - best_nll
        if float(gap.detach()) <= tolerance:
            break
        optimizer.zero_grad(set_to_none=True)
        gap.backward()
        optimizer.step()
    with torch.no_grad():
        gap = float(mean_nll(mixture, counts) - best_nll)
        value = float(mixture.interventional_y()[x_star, y_star])
    return {"cell": [x_star, y_star], "direction": direction, "p_do": value, "nll_gap": gap,
            "feasible": gap <= tolerance}


def oracle_mixture(
    u: torch.Tensor, x: torch.Tensor, y: torch.Tensor, num_u: int, num_x: int, num_y: int, pseudo_count: float = 0.5
) -> AttributeMixture:
    """The mixture fitted with the confounder observed (c = u): closed-form table MLE, see the module docstring.

    >>> m = oracle_mixture(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([1, 0]), 2, 2, 2, 0.0)
    >>> m.pi_logits.softmax(-1).tolist()
    [0.5, 0.5]
    """
    u, x, y = (torch.as_tensor(t).long().reshape(-1) for t in (u, x, y))
    if not (u.shape == x.shape == y.shape):
        raise ValueError("u, x, y: must have the same length")
    counts = torch.bincount((u * num_x + x) * num_y + y, minlength=num_u * num_x * num_y)
    if counts.numel() != num_u * num_x * num_y:
        raise ValueError("u, x, y: values outside their ranges")
    counts = counts.view(num_u, num_x, num_y).to(torch.get_default_dtype()).cpu() + pseudo_count
    return table_mixture(counts.sum((1, 2)), counts.sum(2), counts)


def table_mixture(p_c: torch.Tensor, p_x_given_c: torch.Tensor, p_y_given_cx: torch.Tensor) -> AttributeMixture:
    """The table mixture with the given tables, π = ``p_c`` (K,), p(x | c) = ``p_x_given_c`` (K, |X|) and
    p(y | x, c) = ``p_y_given_cx`` (K, |X|, |Y|), laid out [c, x, y]; unnormalised non-negative weights are
    normalised. With a data set's true tables it is the true attribute level (the benchmark's oracle, which
    isolates the image model), whose do(x) is exactly Σ_c π_c p(y | x, c).

    >>> m = table_mixture(torch.tensor([0.5, 0.5]), torch.tensor([[0.9, 0.1], [0.2, 0.8]]),
    ...                   torch.tensor([[[0.7, 0.3], [0.4, 0.6]], [[0.1, 0.9], [0.2, 0.8]]]))
    >>> [round(p, 3) for p in m.interventional_y()[1].tolist()]  # ½ (0.4, 0.6) + ½ (0.2, 0.8)
    [0.3, 0.7]
    """
    p_c, p_x, p_y = (torch.as_tensor(t, dtype=torch.get_default_dtype()).cpu() for t in (p_c, p_x_given_c, p_y_given_cx))
    k = p_c.shape[0] if p_c.dim() == 1 else -1
    if k < 1 or p_x.dim() != 2 or p_x.shape[0] != k or p_y.shape != (k, p_x.shape[1], p_y.shape[-1]):
        raise ValueError(f"tables: expected p_c (K,), p_x_given_c (K, X), p_y_given_cx (K, X, Y), got shapes "
                         f"{tuple(p_c.shape)}, {tuple(p_x.shape)}, {tuple(p_y.shape)}")
    if not all(bool(torch.isfinite(t).all()) and float(t.min()) >= 0 for t in (p_c, p_x, p_y)):
        raise ValueError("tables: probabilities must be finite and non-negative")
    mixture = AttributeMixture(k, p_x.shape[1], p_y.shape[2], y_given_xc="table")
    # a zero probability becomes a very negative logit, not −inf, which would make the posterior entropy NaN
    tiny = torch.finfo(p_c.dtype).tiny
    with torch.no_grad():
        mixture.pi_logits.copy_(p_c.clamp_min(tiny).log())
        mixture.x_logits.copy_(p_x.clamp_min(tiny).log())
        mixture.y_table.copy_(p_y.clamp_min(tiny).log())
    return mixture
