"""Attribute metrics: circular W1 on known cases, histograms, bow-graph bounds."""

import numpy as np
import pytest
import torch

from cauvade_pyro.datasets import ConfoundedColourSCM
from cauvade_pyro.metrics import bow_graph_bounds, circular_w1, hue_histogram

EYE6 = np.eye(6)


def test_circular_w1_known_cases():
    p = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.1])
    assert circular_w1(p, p) == pytest.approx(0.0, abs=1e-12)
    assert circular_w1(EYE6[0], EYE6[1]) == pytest.approx(1 / 6)
    assert circular_w1(EYE6[0], EYE6[5]) == pytest.approx(1 / 6)  # wrap-around, not 5/6
    assert circular_w1(EYE6[0], EYE6[3]) == pytest.approx(1 / 2)  # antipodal
    assert circular_w1(EYE6[0], np.full(6, 1 / 6)) == pytest.approx(0.25)
    assert circular_w1(torch.tensor(EYE6[2]), torch.tensor(EYE6[4])) == pytest.approx(1 / 3)


def test_circular_w1_is_symmetric_and_uses_positions():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    assert circular_w1(p, q) == pytest.approx(circular_w1(q, p))
    positions = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.95])
    assert circular_w1(EYE6[0], EYE6[5], positions) == pytest.approx(0.05)


def test_circular_w1_rejects_non_distributions():
    with pytest.raises(ValueError, match="p"):
        circular_w1([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="p, q"):
        circular_w1([0.5, 0.5], [1.0, 0.0, 0.0])


def test_hue_histogram():
    histogram = hue_histogram(torch.tensor([0, 1, 1, 5]), 6)
    assert histogram.dtype == torch.float64
    assert histogram.tolist() == [0.25, 0.5, 0.0, 0.0, 0.0, 0.25]
    with pytest.raises(ValueError, match="bins"):
        hue_histogram(torch.tensor([6]), 6)


def test_bow_graph_bounds_hand_made_table():
    joint = torch.tensor([[0.10, 0.30], [0.40, 0.20]], dtype=torch.float64)  # P(x=0) = 0.4, P(x=1) = 0.6
    lower, upper = bow_graph_bounds(joint)
    torch.testing.assert_close(lower, joint)
    torch.testing.assert_close(upper, torch.tensor([[0.70, 0.90], [0.80, 0.60]], dtype=torch.float64))
    # Width of each interval is 1 - P(x).
    torch.testing.assert_close(upper - lower, torch.tensor([[0.6, 0.6], [0.4, 0.4]], dtype=torch.float64))
    with pytest.raises(ValueError, match="joint_xy"):
        bow_graph_bounds(joint * 2)


def test_bounds_contain_the_truth_of_the_benchmark():
    scm = ConfoundedColourSCM.make()
    lower, upper = bow_graph_bounds(scm.joint_xy())
    truth = scm.interventional_y()
    assert (lower <= truth + 1e-12).all() and (truth <= upper + 1e-12).all()
