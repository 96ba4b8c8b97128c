"""Pointwise held-out log-likelihoods: exact attribute term, IWAE image term (docs/design.md §6, issue 4)."""

import math

import pytest
import torch

from cauvade_pyro.datasets import ConfoundedShapes
from cauvade_pyro.inference import attribute_loglik, iwae_image_loglik, table_loglik
from cauvade_pyro.models import AttributeMixture, ConditionalImageModel


@pytest.fixture(scope="module")
def mixture():
    torch.manual_seed(0)
    model = AttributeMixture(num_clusters=3, num_x=2, num_y=4, y_given_xc="table")
    model.reset_parameters(torch.Generator().manual_seed(1))
    return model


def test_attribute_term_equals_hand_sum_over_c(mixture):
    x = torch.tensor([0, 1, 1, 0, 1])
    y = torch.tensor([3, 0, 2, 1, 1])
    out = attribute_loglik(mixture, x, y, draws=3)
    assert out.shape == (3, 5) and out.dtype == torch.float64
    pi = mixture.pi_logits.detach().double().softmax(-1)
    px = mixture.x_logits.detach().double().softmax(-1)
    py = mixture.y_table.detach().double().softmax(-1)
    for n in range(5):
        by_hand = math.log(sum(pi[c] * px[c, x[n]] * py[c, x[n], y[n]] for c in range(3)))
        assert out[0, n].item() == pytest.approx(by_hand, abs=1e-12)
    assert torch.equal(out[0], out[2])  # exact: repeated draws are identical
    # sums to one over all (x, y) cells
    cells_x, cells_y = torch.meshgrid(torch.arange(2), torch.arange(4), indexing="ij")
    total = attribute_loglik(mixture, cells_x.reshape(-1), cells_y.reshape(-1)).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-12)


def test_table_term_matches_the_mixture_table(mixture):
    x, y = torch.tensor([0, 1, 1]), torch.tensor([2, 3, 0])
    table = mixture.joint_xy().detach()
    assert torch.allclose(table_loglik(table, x, y), attribute_loglik(mixture, x, y), atol=1e-6)
    with pytest.raises(ValueError):
        table_loglik(torch.ones(2, 2), x, y)


@pytest.fixture(scope="module")
def image_setup():
    torch.manual_seed(0)
    data = ConfoundedShapes(num_train=48, num_test=1, seed=3).train
    model = ConditionalImageModel(num_x=3, num_y=6, net="mlp", eps_dim=4)
    return model, data


def test_iwae_is_at_least_the_elbo_and_tightens_with_s(image_setup):
    model, data = image_setup
    generator = torch.Generator().manual_seed(0)
    means = {}
    for s in (1, 8, 64):
        out = iwae_image_loglik(model, data, num_samples=s, draws=4, generator=generator)
        assert out.shape == (4, 48) and torch.isfinite(out).all()
        means[s] = out.mean().item()
    assert means[1] <= means[8] <= means[64]
    assert means[64] - means[1] > 0.1  # an untrained encoder leaves a visible gap to close


def test_iwae_with_one_sample_is_the_pyro_elbo_on_average(image_setup):
    from pyro.infer import Trace_ELBO

    model, data = image_setup
    est = iwae_image_loglik(model, data, num_samples=1, draws=32, generator=torch.Generator().manual_seed(1))
    float_data = {k: (v.float() / 255 if v.dtype == torch.uint8 else v) for k, v in data.items() if k != "u"}
    torch.manual_seed(2)
    elbo = -sum(Trace_ELBO().loss(model.model, model.guide, float_data) for _ in range(32)) / 32 / 48
    assert est.mean().item() == pytest.approx(elbo, rel=0.02)


def test_bad_arguments_are_explained(mixture, image_setup):
    with pytest.raises(ValueError, match="draws"):
        attribute_loglik(mixture, torch.tensor([0]), torch.tensor([0]), draws=0)
    model, data = image_setup
    with pytest.raises(ValueError, match="num_samples"):
        iwae_image_loglik(model, data, num_samples=0)
