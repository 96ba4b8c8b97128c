"""GammaEntropyELBO's general (TraceEnum) path, on a nested-plate diagram the one-plate direct sum refuses."""

import pytest
import pyro
import pyro.distributions as dist
import torch

from cauvade_pyro.inference import GammaEntropyELBO
from cauvade_pyro.inference.elbo import _one_plate_loss
from cauvade_pyro.models import confounder

PI = torch.tensor([0.3, 0.7])
RATE = torch.tensor([0.2, 0.8])
OBS = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])  # 4 datapoints × 3 trials


def nested(data=None, num_samples=None):
    """c per datapoint (outer plate), three Bernoulli trials per datapoint in an inner plate."""
    with pyro.plate("data", 4, dim=-2):
        c = confounder("c", pyro.param("pi_logits", PI.log()))
        with pyro.plate("trials", 3, dim=-1):
            pyro.sample("o", dist.Bernoulli(RATE[c]), obs=OBS)


def hand(gamma):
    likelihood = torch.stack([PI[c] * (RATE[c] ** OBS * (1 - RATE[c]) ** (1 - OBS)).prod(-1) for c in (0, 1)], -1)
    evidence = likelihood.sum(-1)
    posterior = likelihood / evidence[:, None]
    entropy = -(posterior * posterior.log()).sum(-1)
    return -evidence.log().sum() + gamma * entropy.sum()


@pytest.mark.parametrize("gamma", [-1.0, 0.0, 0.5, 2.0])
def test_nested_plates_equal_the_hand_sum(gamma):
    elbo = GammaEntropyELBO(gamma=gamma, max_plate_nesting=2)
    loss = elbo.differentiable_loss(nested, lambda *a, **k: None)
    assert loss.item() == pytest.approx(hand(gamma).item(), abs=1e-5)
    # the sign of γ and the posterior (not the prior) entropy matter: the hand sums with either swapped differ
    prior_entropy = -(PI * PI.log()).sum() * 4
    assert abs(loss.item() - (hand(0.0) + gamma * prior_entropy).item()) > 1e-3 or gamma == 0.0
    assert abs(loss.item() - hand(-gamma).item()) > 1e-3 or gamma == 0.0


def test_nested_plates_take_the_general_path():
    from pyro import poutine

    enum_model = poutine.enum(nested, first_available_dim=-3)
    model_trace = poutine.trace(enum_model).get_trace()
    guide_trace = poutine.trace(lambda *a, **k: None).get_trace()
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    assert _one_plate_loss(model_trace, guide_trace, 1.0) is None
