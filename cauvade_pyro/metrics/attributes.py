r"""Attribute-level metrics (docs/design.md §6): hue histograms, circular Wasserstein-1 and the bow-graph bounds.

**Circular W1.** Hue lives on the circle of circumference 1. For distributions p, q over hue bins with
positions :math:`t_k \in [0, 1)` (by default the bin centres :math:`(k + 1/2)/K`), with CDFs
:math:`F_p, F_q` on [0, 1),

.. math::

    W_1^{\circ}(p, q) = \int_0^1 \big| F_p(t) - F_q(t) - m \big| \, dt,
    \qquad m = \text{a median of } F_p - F_q \text{ (the optimal rotation of the cut point)},

computed by POT's :func:`ot.wasserstein_circle`. Point masses on adjacent bins of K are 1/K apart, also
across the wrap-around (bins 0 and K-1).

**Bow-graph bounds** (natural / Manski bounds for X → Y with X ↔ Y). Since
:math:`P(y \mid do(x)) = P(x, y) + \sum_{x' \ne x} P(Y_x = y, X = x')` and the unobserved part lies in
:math:`[0, 1 - P(x)]`,

.. math::

    P(x, y) \le P(y \mid do(x)) \le P(x, y) + 1 - P(x),

and these bounds are sharp without further assumptions.
"""

from __future__ import annotations

import numpy as np
import ot
import torch

__all__ = ["bow_graph_bounds", "circular_w1", "hue_histogram"]

ArrayLike = torch.Tensor | np.ndarray


def hue_histogram(bins: ArrayLike, num_bins: int) -> torch.Tensor:
    """Empirical probability vector (float64, shape (num_bins,)) of hue-bin labels ``bins``.

    >>> hue_histogram(torch.tensor([0, 0, 2, 3]), 4).tolist()
    [0.5, 0.0, 0.25, 0.25]
    """
    bins = torch.as_tensor(bins).reshape(-1).long()
    if bins.numel() == 0:
        raise ValueError("bins: need at least one label")
    if int(bins.min()) < 0 or int(bins.max()) >= num_bins:
        raise ValueError(f"bins: labels must lie in [0, {num_bins - 1}]")
    counts = torch.bincount(bins.cpu(), minlength=num_bins).to(torch.float64)
    return counts / counts.sum()


def _as_probability_vector(p: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else p, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d probability vector, got shape {array.shape}")
    if (array < -1e-12).any() or not np.isclose(array.sum(), 1.0, atol=1e-6):
        raise ValueError(f"{name}: must be non-negative and sum to 1 (sum = {array.sum():.6g})")
    array = array.clip(min=0.0)
    return array / array.sum()


def circular_w1(p: ArrayLike, q: ArrayLike, positions: ArrayLike | None = None) -> float:
    """W1 on the circle of circumference 1 between distributions ``p`` and ``q`` over hue bins.

    ``positions`` are the bins' hues in [0, 1) (default: bin centres ``(k + 0.5) / K``).

    >>> round(circular_w1([1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]), 6)  # across the wrap-around
    0.166667
    """
    p_vec = _as_probability_vector(p, "p")
    q_vec = _as_probability_vector(q, "q")
    if p_vec.shape != q_vec.shape:
        raise ValueError(f"p, q: shapes differ, {p_vec.shape} vs {q_vec.shape}")
    if positions is None:
        positions_vec = (np.arange(p_vec.shape[0]) + 0.5) / p_vec.shape[0]
    else:
        positions_vec = np.asarray(
            positions.detach().cpu().numpy() if isinstance(positions, torch.Tensor) else positions,
            dtype=np.float64,
        ).reshape(-1)
        if positions_vec.shape != p_vec.shape:
            raise ValueError(f"positions: expected shape {p_vec.shape}, got {positions_vec.shape}")
    positions_vec = np.mod(positions_vec, 1.0)
    distance = ot.wasserstein_circle(positions_vec, positions_vec, p_vec, q_vec, p=1)
    return float(np.asarray(distance).reshape(-1)[0])


def bow_graph_bounds(joint_xy: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Sharp bounds on P(y | do(x)) in the bow graph: ``(P(x, y), P(x, y) + 1 - P(x))``, each (NX, NY).

    >>> lower, upper = bow_graph_bounds(torch.tensor([[0.3, 0.2], [0.1, 0.4]], dtype=torch.float64))
    >>> lower[0].tolist(), [round(v, 6) for v in upper[0].tolist()]
    ([0.3, 0.2], [0.8, 0.7])
    """
    joint = torch.as_tensor(joint_xy, dtype=torch.float64)
    if joint.dim() != 2:
        raise ValueError(f"joint_xy: expected shape (NX, NY), got {tuple(joint.shape)}")
    if (joint < 0).any() or abs(float(joint.sum()) - 1.0) > 1e-6:
        raise ValueError(f"joint_xy: must be non-negative and sum to 1 (sum = {float(joint.sum()):.6g})")
    p_x = joint.sum(dim=1, keepdim=True)
    lower = joint.clone()
    upper = joint + (1.0 - p_x)
    return lower, upper
