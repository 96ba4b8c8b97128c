"""The γ-entropy ELBO against hand-written sums over the confounder."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from cauvade_pyro.inference import GammaEntropyELBO
from cauvade_pyro.models import confounder

X = torch.tensor([0, 1, 1, 0, 1, 1])
Y = torch.tensor([2, 0, 1, 1, 2, 0])


def tiny_model(data=None, num_samples=None):
    data = data or {}
    pi = pyro.param("pi", torch.tensor([0.3, -0.2, 0.5]))
    x_logits = pyro.param("x_logits", torch.tensor([[1.0, -1.0], [0.0, 0.5], [-1.0, 1.5]]))
    y_logits = pyro.param("y_logits", torch.arange(18.0).reshape(3, 2, 3).sin())
    with pyro.plate("data", num_samples or len(data["x"])):
        c = confounder("c", pi)
        x = pyro.sample("x", dist.Categorical(logits=x_logits[c]), obs=data.get("x"))
        pyro.sample("y", dist.Categorical(logits=y_logits[c, x]), obs=data.get("y"))


def empty_guide(data=None, num_samples=None):
    pass


def hand_log_joint():
    """log π_c + log p(x_n | c) + log p(y_n | x_n, c), shape (N, K), written out by hand."""
    pi = pyro.param("pi").log_softmax(-1)
    x_logits = pyro.param("x_logits").log_softmax(-1)
    y_logits = pyro.param("y_logits").log_softmax(-1)
    rows = []
    for x, y in zip(X.tolist(), Y.tolist()):
        rows.append(torch.stack([pi[c] + x_logits[c, x] + y_logits[c, x, y] for c in range(3)]))
    return torch.stack(rows)


def test_gamma_zero_loss_equals_hand_sum_over_c():
    loss = GammaEntropyELBO(gamma=0.0).differentiable_loss(tiny_model, empty_guide, {"x": X, "y": Y})
    expected = -hand_log_joint().logsumexp(-1).sum()
    assert torch.allclose(loss, expected, atol=1e-5)


@pytest.mark.parametrize("gamma", [-1.5, 0.7, 3.0])
def test_entropy_term_equals_hand_posterior_entropy(gamma):
    data = {"x": X, "y": Y}
    loss = GammaEntropyELBO(gamma=gamma).differentiable_loss(tiny_model, empty_guide, data)
    log_joint = hand_log_joint()
    posterior = log_joint.softmax(-1)
    entropy = -(posterior * posterior.log()).sum()
    expected = -log_joint.logsumexp(-1).sum() + gamma * entropy
    assert torch.allclose(loss, expected, atol=1e-5)
    per_point = GammaEntropyELBO(gamma=gamma).posterior_entropy(tiny_model, empty_guide, data)
    assert torch.allclose(per_point, -(posterior * posterior.log()).sum(-1), atol=1e-5)


def test_entropy_gradient_is_nonzero_and_matches_hand_gradient():
    data = {"x": X, "y": Y}
    elbo_0, elbo_1 = GammaEntropyELBO(gamma=0.0), GammaEntropyELBO(gamma=1.0)
    tiny_model(data)  # registers the params
    params = [pyro.param(n).unconstrained() for n in ("pi", "x_logits", "y_logits")]
    entropy_term = elbo_1.differentiable_loss(tiny_model, empty_guide, data) - elbo_0.differentiable_loss(
        tiny_model, empty_guide, data
    )
    grads = torch.autograd.grad(entropy_term, params)
    posterior = hand_log_joint().softmax(-1)
    hand = torch.autograd.grad(-(posterior * posterior.log()).sum(), params)
    assert any(g.abs().max() > 1e-3 for g in grads)
    for g, h in zip(grads, hand):
        assert torch.allclose(g, h, atol=1e-5)


def test_works_with_svi_and_continuous_latents():
    def model(data=None, num_samples=None):
        data = data or {}
        pi = pyro.param("pi", torch.zeros(2))
        locs = pyro.param("locs", torch.tensor([-1.0, 1.0]))
        with pyro.plate("data", len(data["x"])):
            c = confounder("c", pi)
            z = pyro.sample("z", dist.Normal(locs[c], 1.0))
            pyro.sample("x", dist.Normal(z, 0.5), obs=data["x"])

    def guide(data=None, num_samples=None):
        loc = pyro.param("q_loc", torch.zeros(len(data["x"])))
        with pyro.plate("data", len(data["x"])):
            pyro.sample("z", dist.Normal(loc, 0.5))

    data = {"x": torch.cat([torch.randn(20) - 2, torch.randn(20) + 2])}
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), GammaEntropyELBO(gamma=1.0))
    losses = [svi.step(data) for _ in range(30)]
    assert all(math.isfinite(v) for v in losses)
    entropy = GammaEntropyELBO(gamma=1.0).posterior_entropy(model, guide, data)
    assert entropy.shape == (40,) and bool(((entropy >= 0) & (entropy <= math.log(2) + 1e-6)).all())


def test_model_without_confounder_is_an_explained_error():
    def model(data=None, num_samples=None):
        with pyro.plate("data", 3):
            pyro.sample("x", dist.Normal(pyro.param("m", torch.zeros(())), 1.0), obs=torch.zeros(3))

    with pytest.raises(ValueError, match="no confounder site"):
        GammaEntropyELBO(gamma=1.0).differentiable_loss(model, empty_guide)


@pytest.mark.parametrize("gamma", [float("nan"), float("inf")])
def test_non_finite_gamma_is_rejected(gamma):
    with pytest.raises(ValueError, match="gamma must be finite"):
        GammaEntropyELBO(gamma=gamma)
