"""The ground-truth SCM of the confounded colour benchmark: samplers match the exact tables."""

import numpy as np
import pytest
import torch

from cauvade_pyro.datasets import ConfoundedColourSCM
from cauvade_pyro.metrics import circular_w1, hue_histogram

NUM_SAMPLES = 20_000
# Max abs error of a 20k-sample histogram: sd <= 0.5 / sqrt(20k) = 0.0035, so 0.02 is > 5 sd.
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def scm() -> ConfoundedColourSCM:
    return ConfoundedColourSCM.make()


def test_tables_are_distributions(scm):
    assert scm.p_u.dtype == torch.float64
    assert scm.p_u.shape == (3,) and scm.p_x_given_u.shape == (3, 3) and scm.p_y_given_xu.shape == (3, 3, 6)
    torch.testing.assert_close(scm.p_x_given_u.sum(-1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(scm.p_y_given_xu.sum(-1), torch.ones(3, 3, dtype=torch.float64))
    torch.testing.assert_close(scm.joint_xy().sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(scm.joint_xy().sum(1), scm.p_x())
    centres = scm.bin_centres()
    assert ((centres >= 0) & (centres < 1)).all()


def test_logits_are_additive_in_x_and_u(scm):
    # log P(y | x, u) = a[x, y] + b[u, y] + const(x, u): the interaction contrast vanishes.
    logp = scm.p_y_given_xu.log()
    contrast = logp - logp[:, :1, :] - logp[:1, :, :] + logp[:1, :1, :]
    contrast = contrast - contrast[..., :1]
    assert contrast.abs().max() < 1e-10


def test_interventional_sampler_matches_table(scm):
    generator = torch.Generator().manual_seed(0)
    truth = scm.interventional_y()
    for x in range(scm.num_classes):
        sample = scm.sample_interventional(x, NUM_SAMPLES, generator)
        assert set(sample) == {"u", "x", "y"}
        assert all(v.dtype == torch.long and v.shape == (NUM_SAMPLES,) for v in sample.values())
        assert (sample["x"] == x).all()
        histogram = hue_histogram(sample["y"], scm.num_hue_bins)
        assert (histogram - truth[x]).abs().max() < TOLERANCE
        # U is drawn from its prior, not from P(U | x).
        assert (hue_histogram(sample["u"], scm.num_confounders) - scm.p_u).abs().max() < TOLERANCE


def test_observational_sampler_matches_table(scm):
    sample = scm.sample(3 * NUM_SAMPLES, torch.Generator().manual_seed(1))
    truth = scm.observational_y_given_x()
    assert (hue_histogram(sample["x"], scm.num_classes) - scm.p_x()).abs().max() < TOLERANCE
    for x in range(scm.num_classes):
        histogram = hue_histogram(sample["y"][sample["x"] == x], scm.num_hue_bins)
        assert (histogram - truth[x]).abs().max() < TOLERANCE


def test_conditional_sampler_matches_the_observational_table(scm):
    generator = torch.Generator().manual_seed(2)
    observational, p_u_given_x = scm.observational_y_given_x(), scm.p_u[:, None] * scm.p_x_given_u
    for x in range(scm.num_classes):
        sample = scm.sample_conditional(x, NUM_SAMPLES, generator)
        assert (sample["x"] == x).all()
        assert (hue_histogram(sample["y"], scm.num_hue_bins) - observational[x]).abs().max() < TOLERANCE
        # U is drawn from P(U | x), not from its prior (what tells it from sample_interventional)
        p_u = p_u_given_x[:, x] / p_u_given_x[:, x].sum()
        assert (hue_histogram(sample["u"], scm.num_confounders) - p_u).abs().max() < TOLERANCE


def test_default_confounding_separates_observational_from_interventional(scm):
    observational, interventional = scm.observational_y_given_x(), scm.interventional_y()
    for x in range(scm.num_classes):
        assert circular_w1(observational[x], interventional[x], scm.bin_centres()) >= 0.08


def test_no_confounding_means_do_equals_conditioning():
    scm = ConfoundedColourSCM.make(confounding=0.0)
    difference = (scm.observational_y_given_x() - scm.interventional_y()).abs().max()
    assert difference <= 1e-12


def test_sampling_is_deterministic_given_generator(scm):
    first = scm.sample(100, torch.Generator().manual_seed(5))
    second = scm.sample(100, torch.Generator().manual_seed(5))
    for key in first:
        assert torch.equal(first[key], second[key])


def test_numpy_integers_are_accepted(scm):
    sample = scm.sample_interventional(np.int64(2), np.int64(3), torch.Generator().manual_seed(0))
    assert sample["x"].tolist() == [2, 2, 2]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"num_hue_bins": 1}, "num_hue_bins"),
        ({"num_confounders": 0}, "num_confounders"),
        ({"confounding": 1.5}, "confounding"),
        ({"confounding": -0.1}, "confounding"),
        ({"confounding": "high"}, "confounding"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ConfoundedColourSCM.make(**kwargs)


def test_bad_sampling_arguments_raise(scm):
    with pytest.raises(ValueError, match="x"):
        scm.sample_interventional(3, 10)
    with pytest.raises(ValueError, match="x"):
        scm.sample_interventional(1.5, 10)
    with pytest.raises(ValueError, match="n"):
        scm.sample(0)
