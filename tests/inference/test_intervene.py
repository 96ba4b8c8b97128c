"""``intervene`` against the analytic interventional distribution of a tiny tabular canonical SCM."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from cauvade_pyro.inference import intervene, sample_conditional, sample_observational
from cauvade_pyro.models import confounder

PI = torch.tensor([0.7, 0.3])
P_X_GIVEN_C = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
P_Y_GIVEN_XC = torch.tensor([  # [c, x, y]
    [[0.8, 0.15, 0.05], [0.6, 0.3, 0.1]],
    [[0.1, 0.2, 0.7], [0.05, 0.15, 0.8]],
])


def tabular_scm(data=None, num_samples=None):
    data = data or {}
    with pyro.plate("data", num_samples):
        c = confounder("c", PI.log())
        x = pyro.sample("x", dist.Categorical(P_X_GIVEN_C[c]), obs=data.get("x"))
        return pyro.sample("y", dist.Categorical(P_Y_GIVEN_XC[c, x]), obs=data.get("y"))


def analytic_do(x):
    return (PI[:, None] * P_Y_GIVEN_XC[:, x]).sum(0)


def analytic_conditional(x):
    joint = PI[:, None] * P_X_GIVEN_C[:, x, None] * P_Y_GIVEN_XC[:, x]
    return joint.sum(0) / joint.sum()


@pytest.mark.parametrize("x", [0, 1])
def test_monte_carlo_do_matches_analytic_truth(x):
    n = 40_000
    draws = intervene(tabular_scm, {"x": x}, num_samples=n)
    assert bool((draws["x"] == x).all()), "intervene must return the intervened value, not the natural draw"
    freq = torch.bincount(draws["y"], minlength=3).float() / n
    truth = analytic_do(x)
    tolerance = 4 * (truth * (1 - truth) / n).sqrt() + 1e-3
    assert bool(((freq - truth).abs() < tolerance).all()), (freq, truth)
    # and it is not the observational answer
    assert (analytic_conditional(x) - truth).abs().max() > 0.1
    assert (freq - analytic_conditional(x)).abs().max() > 0.1


def test_conditional_sampling_matches_observational_truth():
    n = 20_000
    draws = sample_conditional(tabular_scm, {"x": 1}, num_samples=n)
    freq = torch.bincount(draws["y"], minlength=3).float() / n
    assert (freq - analytic_conditional(1)).abs().max() < 0.02


def test_natural_samples_have_every_site():
    draws = sample_observational(tabular_scm, num_samples=5)
    assert set(draws) == {"c", "x", "y"} and draws["y"].shape == (5,)


def test_per_sample_values_are_accepted():
    values = torch.tensor([0, 1, 0, 1])
    draws = intervene(tabular_scm, {"x": values}, num_samples=4)
    assert torch.equal(draws["x"], values)


def test_unknown_site_names_the_site():
    with pytest.raises(ValueError, match="no sample site 'shape'"):
        intervene(tabular_scm, {"shape": 1}, num_samples=10)


def test_out_of_support_value_names_the_site():
    with pytest.raises(ValueError, match="site 'x' is outside the site's support"):
        intervene(tabular_scm, {"x": 5}, num_samples=10)


def test_wrong_shape_names_the_site():
    with pytest.raises(ValueError, match="site 'x' has shape"):
        intervene(tabular_scm, {"x": torch.tensor([0, 1, 1])}, num_samples=10)
