"""Family metrics on hand-made ranges: range, coverage of the truth, span relative to bounds, diversity."""

import math

import pytest
import torch

from cauvade_pyro.metrics import (
    bow_graph_bounds,
    coverage,
    diversity,
    family_range,
    hue_entropy,
    span,
)


def f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_family_range_is_min_and_max_over_members():
    values = f64([[[0.1, 0.9], [0.5, 0.5]], [[0.3, 0.7], [0.2, 0.8]], [[0.2, 0.8], [0.4, 0.6]]])
    low, high = family_range(values)
    assert torch.equal(low, f64([[0.1, 0.7], [0.2, 0.5]]))
    assert torch.equal(high, f64([[0.3, 0.9], [0.5, 0.8]]))
    single_low, single_high = family_range(values[:1])
    assert torch.equal(single_low, values[0]) and torch.equal(single_high, values[0])
    with pytest.raises(ValueError, match="members"):
        family_range(values[0])


def test_coverage_inside_outside_and_on_the_edges():
    low = f64([[0.2, 0.2, 0.2], [0.2, 0.2, 0.2]])
    high = f64([[0.4, 0.4, 0.4], [0.4, 0.4, 0.4]])
    truth = f64([[0.3, 0.1, 0.5], [0.2, 0.4, 0.4 + 1e-6]])  # inside, below, above; both edges; just outside
    result = coverage(truth, low, high)
    assert result.per_cell.dtype == torch.bool
    assert result.per_cell.tolist() == [[True, False, False], [True, True, False]]
    assert result.share == pytest.approx(3 / 6)
    assert coverage(truth, low, high, atol=1e-5).share == pytest.approx(4 / 6)  # tolerance admits the last cell
    point = coverage(f64([[0.25]]), f64([[0.25]]), f64([[0.25]]))  # a zero-width family that hits the truth
    assert point.share == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        coverage(truth, low[:1], high)


def test_span_relative_to_bounds():
    lower = f64([[0.0, 0.2, 0.5, 0.0]])
    upper = f64([[1.0, 0.6, 0.5, 0.5]])  # third cell: zero width, no span
    low = f64([[0.25, 0.3, 0.5, 0.0]])
    high = f64([[0.75, 0.4, 0.5, 1.0]])  # last cell reaches outside the bounds: span 2, not clipped
    result = span(low, high, lower, upper)
    per_cell = result.per_cell[0]
    assert per_cell[0] == pytest.approx(0.5) and per_cell[1] == pytest.approx(0.25) and per_cell[3] == 2.0
    assert math.isnan(per_cell[2])
    assert result.mean == pytest.approx((0.5 + 0.25 + 2.0) / 3)
    assert math.isnan(span(low[:, 2:3], high[:, 2:3], lower[:, 2:3], upper[:, 2:3]).mean)
    with pytest.raises(ValueError, match="exceeds"):
        span(high, low, lower, upper)


def test_family_sweeping_the_bow_graph_bounds_has_span_one_and_covers_any_truth_inside():
    joint = f64([[0.3, 0.2], [0.1, 0.4]])
    lower, upper = bow_graph_bounds(joint)
    low, high = family_range(torch.stack([lower, upper, (lower + upper) / 2]))
    assert torch.allclose(span(low, high, lower, upper).per_cell, torch.ones(2, 2, dtype=torch.float64))
    assert coverage(0.3 * lower + 0.7 * upper, low, high).share == 1.0


def test_hue_entropy():
    assert hue_entropy(torch.arange(6).repeat(5), 6) == pytest.approx(math.log(6))
    assert hue_entropy(torch.full((10,), 2), 6) == 0.0
    quarter = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert hue_entropy(torch.tensor([0, 1, 1, 1]), 4) == pytest.approx(quarter)


def test_diversity():
    result = diversity(torch.tensor([0, 1, 2, 3]), 4, f64([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, 0.0]]))
    assert set(result) == {"hue_entropy", "mean_pairwise_distance"}
    assert result["hue_entropy"] == pytest.approx(math.log(4))
    assert result["mean_pairwise_distance"] == pytest.approx((3 + 4 + 0 + 5 + 3 + 4) / 6)
