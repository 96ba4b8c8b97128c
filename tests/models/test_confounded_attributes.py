"""The attribute-level mixture: its exact tables agree with its own Pyro program."""

import pytest
import torch

from cauvade_pyro.inference import GammaEntropyELBO, intervene, sample_observational
from cauvade_pyro.models import Y_PARAMETERIZATIONS, AttributeMixture


@pytest.fixture(params=Y_PARAMETERIZATIONS)
def mixture(request):
    m = AttributeMixture(3, 2, 4, y_given_xc=request.param)
    m.reset_parameters(torch.Generator().manual_seed(0))
    return m


@torch.no_grad()
def test_tables_match_monte_carlo_of_the_program(mixture):
    n = 30_000
    natural = sample_observational(mixture.model, n)
    joint = torch.zeros(2, 4)
    joint.index_put_((natural["x"], natural["y"]), torch.ones(n), accumulate=True)
    assert (joint / n - mixture.joint_xy()).abs().max() < 0.015
    do_draws = intervene(mixture.model, {"x": 1}, n)
    freq = torch.bincount(do_draws["y"], minlength=4).float() / n
    assert (freq - mixture.interventional_y()[1]).abs().max() < 0.015


def test_exact_log_likelihood_equals_the_enumerated_elbo(mixture):
    x, y = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([3, 0, 2, 2, 1])
    loss = GammaEntropyELBO(gamma=0.0).differentiable_loss(mixture.model, mixture.guide, {"x": x, "y": y})
    assert torch.allclose(-loss, mixture.log_prob_xy(x, y).sum(), atol=1e-4)


def test_posterior_entropy_of_the_program_matches_the_tables(mixture):
    x, y = torch.tensor([0, 1, 1]), torch.tensor([3, 0, 2])
    entropy = GammaEntropyELBO(gamma=1.0).posterior_entropy(mixture.model, mixture.guide, {"x": x, "y": y})
    posterior = mixture.posterior_c(x, y)
    assert torch.allclose(entropy, -(posterior * posterior.log()).sum(-1), atol=1e-5)


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="model.K"):
        AttributeMixture(0, 2, 3)
