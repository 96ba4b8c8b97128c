r"""Metrics of a family of generators (docs/design.md §6): the range it spans, coverage of the truth, span, diversity.

A family has members :math:`m = 1..M` (e.g. fits over a grid of confounding strengths), each giving an
interventional distribution :math:`P_m(y \mid do(x))` over classes x and hue bins y, stacked as ``values`` of
shape (M, X, Y).

**Range.** Per cell :math:`(x, y)`: :math:`\ell_{xy} = \min_m P_m(y \mid do(x))`,
:math:`u_{xy} = \max_m P_m(y \mid do(x))`.

**Coverage** of the truth :math:`p^\star_{xy} = P(y \mid do(x))`: the share of cells with
:math:`\ell_{xy} - \text{atol} \le p^\star_{xy} \le u_{xy} + \text{atol}`.

**Span** relative to bounds :math:`[L_{xy}, U_{xy}]` (e.g. the sharp bow-graph bounds,
:func:`~cauvade_pyro.metrics.attributes.bow_graph_bounds`):
:math:`s_{xy} = (u_{xy} - \ell_{xy}) / (U_{xy} - L_{xy})`, not clipped; cells with zero-width bounds
(:math:`U_{xy} - L_{xy} \le \text{atol}`) have no span (NaN) and are left out of the mean over cells.
1 means the family sweeps the whole identified set, 0 means all members agree. ``clipped_mean`` averages
:math:`\min(s_{xy}, 1)`: a cell the family overshoots counts as fully spanned, never as more.

**Hue entropy** of hue-bin labels with empirical histogram :math:`\hat p` over K bins:
:math:`H = -\sum_k \hat p_k \log \hat p_k` nats (0 log 0 = 0), between 0 (one bin) and :math:`\log K` (uniform).

**Diversity** of generated images: hue entropy and the mean pairwise feature distance
(:func:`~cauvade_pyro.metrics.fid.mean_pairwise_distance`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cauvade_pyro.metrics.attributes import hue_histogram
from cauvade_pyro.metrics.fid import mean_pairwise_distance

__all__ = ["Coverage", "Span", "coverage", "diversity", "family_range", "hue_entropy", "span", "span_within_bounds"]

ArrayLike = torch.Tensor | np.ndarray


@dataclass(frozen=True)
class Coverage:
    """``share`` of covered cells and the boolean ``per_cell`` tensor (X, Y)."""

    share: float
    per_cell: torch.Tensor


@dataclass(frozen=True)
class Span:
    """``mean`` span over cells with non-zero bound width, the same with each cell clipped at 1
    (``clipped_mean``), and the float64 ``per_cell`` tensor (NaN: no width)."""

    mean: float
    per_cell: torch.Tensor
    clipped_mean: float = math.nan


def _float64(value: ArrayLike, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value).detach().to("cpu", torch.float64)
    if torch.isnan(tensor).any():
        raise ValueError(f"{name}: contains NaN")
    return tensor


def _same_shapes(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{', '.join(shapes)}: shapes differ, {shapes}")


def family_range(values: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell (min, max) over members of ``values`` (members, X, Y), each float64 (X, Y).

    >>> low, high = family_range(torch.tensor([[[0.25, 0.75]], [[0.5, 0.5]]]))
    >>> low.tolist(), high.tolist()
    ([[0.25, 0.5]], [[0.5, 0.75]])
    """
    values = _float64(values, "values")
    if values.dim() != 3 or values.shape[0] < 1:
        raise ValueError(f"values: expected shape (members >= 1, X, Y), got {tuple(values.shape)}")
    return values.amin(dim=0), values.amax(dim=0)


def coverage(truth: ArrayLike, family_min: ArrayLike, family_max: ArrayLike, atol: float = 1e-9) -> Coverage:
    """Share of cells whose true P(y | do(x)) lies in [family_min - atol, family_max + atol].

    >>> result = coverage(torch.tensor([[0.3, 0.9]]), torch.tensor([[0.2, 0.5]]), torch.tensor([[0.5, 0.8]]))
    >>> result.share, result.per_cell.tolist()
    (0.5, [[True, False]])
    """
    truth = _float64(truth, "truth")
    low = _float64(family_min, "family_min")
    high = _float64(family_max, "family_max")
    _same_shapes(truth=truth, family_min=low, family_max=high)
    if truth.numel() == 0:
        raise ValueError("truth: no cells")
    per_cell = (truth >= low - atol) & (truth <= high + atol)
    return Coverage(share=float(per_cell.to(torch.float64).mean()), per_cell=per_cell)


def span(
    family_min: ArrayLike, family_max: ArrayLike, lower: ArrayLike, upper: ArrayLike, atol: float = 1e-12
) -> Span:
    """Per-cell (family_max - family_min) / (upper - lower), NaN where upper - lower <= atol, and its mean.

    The mean is over the cells with a width (NaN if there are none). Not clipped: a family reaching outside
    the bounds has a span above 1.

    >>> result = span(torch.tensor([[0.25, 0.5]]), torch.tensor([[0.5, 0.5]]),
    ...               torch.tensor([[0.0, 0.5]]), torch.tensor([[0.5, 0.5]]))
    >>> result.mean, result.per_cell.tolist()
    (0.5, [[0.5, nan]])
    >>> span(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.8, 0.25]]),
    ...      torch.tensor([[0.2, 0.0]]), torch.tensor([[0.6, 0.5]])).clipped_mean   # (min(2, 1) + 0.5) / 2
    0.75
    """
    low = _float64(family_min, "family_min")
    high = _float64(family_max, "family_max")
    lower_t = _float64(lower, "lower")
    upper_t = _float64(upper, "upper")
    _same_shapes(family_min=low, family_max=high, lower=lower_t, upper=upper_t)
    if (low > high).any():
        raise ValueError("family_min, family_max: family_min exceeds family_max in some cell")
    if (lower_t > upper_t + atol).any():
        raise ValueError("lower, upper: lower exceeds upper in some cell")
    width = upper_t - lower_t
    has_width = width > atol
    per_cell = torch.where(has_width, (high - low) / torch.where(has_width, width, 1.0), math.nan)
    if not has_width.any():
        return Span(mean=math.nan, per_cell=per_cell)
    spans = per_cell[has_width]
    return Span(mean=float(spans.mean()), per_cell=per_cell, clipped_mean=float(spans.clamp(max=1.0).mean()))


def span_within_bounds(family_min: ArrayLike, family_max: ArrayLike, lower: ArrayLike, upper: ArrayLike,
                       atol: float = 1e-12) -> Span:
    """:func:`span` of the family's range clipped per cell to the bounds: only the part of [min, max] that lies
    inside [lower, upper] counts, so a reach beyond one bound cannot make up for falling short of the other.

    >>> result = span_within_bounds(torch.tensor([[0.0, 0.3]]), torch.tensor([[0.9, 0.4]]),
    ...                             torch.tensor([[0.1, 0.2]]), torch.tensor([[0.5, 0.6]]))
    >>> round(result.mean, 4)   # cell 1: all of [0.1, 0.5]; cell 2: [0.3, 0.4] of [0.2, 0.6]
    0.625
    """
    lower_t, upper_t = _float64(lower, "lower"), _float64(upper, "upper")
    low = torch.maximum(torch.minimum(_float64(family_min, "family_min"), upper_t), lower_t)
    high = torch.maximum(torch.minimum(_float64(family_max, "family_max"), upper_t), lower_t)
    return span(low, high, lower_t, upper_t, atol=atol)


def hue_entropy(hue_bins: ArrayLike, num_bins: int) -> float:
    """Entropy (nats) of the empirical histogram of hue-bin labels; log(num_bins) when uniform.

    >>> round(hue_entropy(torch.tensor([0, 1, 2, 3]), 4), 6) == round(math.log(4), 6)
    True
    """
    probs = hue_histogram(hue_bins, num_bins)
    probs = probs[probs > 0]
    return float(-(probs * probs.log()).sum())


def diversity(hue_bins: ArrayLike, num_bins: int, features: torch.Tensor) -> dict[str, float]:
    """``{"hue_entropy": nats, "mean_pairwise_distance": mean feature distance}`` of generated images.

    >>> result = diversity(torch.tensor([0, 1]), 2, torch.tensor([[0.0], [2.0]]))
    >>> round(result["hue_entropy"], 4), result["mean_pairwise_distance"]
    (0.6931, 2.0)
    """
    return {
        "hue_entropy": hue_entropy(hue_bins, num_bins),
        "mean_pairwise_distance": mean_pairwise_distance(features),
    }
