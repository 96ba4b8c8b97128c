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


# ---- the one-plate direct sum against the general TraceEnum_ELBO contraction ---------------------------------

from pyro.infer.traceenum_elbo import _compute_dice_elbo  # noqa: E402

from cauvade_pyro.inference.elbo import _one_plate_loss  # noqa: E402


def general_loss(elbo, model, guide, *args):
    """The loss by TraceEnum_ELBO's contraction and marginals (the path _one_plate_loss short-cuts)."""
    model_trace, guide_trace = next(iter(elbo._get_traces(model, guide, args, {})))
    loss = -_compute_dice_elbo(model_trace, guide_trace)
    if elbo.gamma != 0.0:
        posteriors = elbo.confounder_posteriors(model_trace, guide_trace)
        loss = loss + elbo.gamma * sum(p.entropy().sum() for p in posteriors.values())
    return loss, model_trace, guide_trace


def assert_direct_sum_matches_contraction(elbo, model, data) -> torch.Tensor:
    """``_one_plate_loss`` applies to ``model`` and equals the general contraction, loss and gradients."""
    pyro.clear_param_store()
    torch.manual_seed(3)
    reference, model_trace, guide_trace = general_loss(elbo, model.model, model.guide, data)
    fast = _one_plate_loss(model_trace, guide_trace, elbo.gamma)
    assert fast is not None  # the diagram takes the direct sum
    params = list(model.parameters())
    reference_grads = torch.autograd.grad(reference, params, allow_unused=True, retain_graph=True)
    fast_grads = torch.autograd.grad(fast, params, allow_unused=True)
    assert torch.allclose(fast, reference, rtol=1e-6)
    for a, b in zip(fast_grads, reference_grads):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    return reference


def small_default_diagram():
    from cauvade_pyro.models import AttributeMixture, ConditionalImageModel, ConfoundedAttributesModel

    torch.manual_seed(0)
    model = ConfoundedAttributesModel(AttributeMixture(3, 2, 4),
                                      ConditionalImageModel(2, 4, (1, 28, 28), net="mlp", eps_dim=2, kl_weight=2.0))
    model.attributes.reset_parameters(torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    data = {"x": torch.randint(2, (7,), generator=generator), "y": torch.randint(4, (7,), generator=generator),
            "image": (torch.rand(7, 1, 28, 28, generator=generator) < 0.3).float()}
    return model, data


@pytest.mark.parametrize("gamma", [0.0, 1.5, -2.0])
def test_one_plate_loss_equals_general_contraction_on_the_default_diagram(gamma):
    model, data = small_default_diagram()
    elbo = GammaEntropyELBO(gamma=gamma)
    reference = assert_direct_sum_matches_contraction(elbo, model, data)
    torch.manual_seed(3)  # the public loss takes the direct sum at the same ε draw
    assert torch.allclose(elbo.differentiable_loss(model.model, model.guide, data), reference, rtol=1e-6)


def two_confounder_model(data=None, num_samples=None):
    data = data or {}
    a_logits = pyro.param("a_logits", torch.tensor([[1.0, -1.0, 0.2], [0.0, 0.5, -0.3]]))
    b_table = pyro.param("b_table", torch.arange(12.0).reshape(2, 2, 3).cos())
    with pyro.plate("data", num_samples or len(data["x"])):
        c = confounder("c", pyro.param("pi_c", torch.tensor([0.3, -0.2])))
        d = confounder("d", pyro.param("pi_d", torch.tensor([0.1, 0.4])))
        x = pyro.sample("x", dist.Categorical(logits=a_logits[c]), obs=data.get("x"))
        pyro.sample("y", dist.Categorical(logits=b_table[d, c]), obs=data.get("y"))
        return x


def test_one_plate_loss_sums_each_confounders_marginal_entropy():
    pyro.clear_param_store()
    elbo = GammaEntropyELBO(gamma=0.7)
    data = {"x": torch.tensor([0, 2, 1, 1]), "y": torch.tensor([2, 0, 1, 2])}
    reference, model_trace, guide_trace = general_loss(elbo, two_confounder_model, empty_guide, data)
    fast = _one_plate_loss(model_trace, guide_trace, elbo.gamma)
    assert fast is not None
    assert torch.allclose(fast, reference, rtol=1e-6)


def test_one_plate_loss_leaves_other_structures_to_the_general_path():
    """Two nested plates, a score-function guide site, a scaled enumerated site: None (general path)."""

    def two_plates(data=None, num_samples=None):
        with pyro.plate("outer", 2, dim=-2), pyro.plate("data", 3, dim=-1):
            c = confounder("c", pyro.param("pi", torch.zeros(2)))
            pyro.sample("x", dist.Normal(c.float(), 1.0), obs=torch.zeros(2, 3))

    def discrete_latent(data=None, num_samples=None):
        with pyro.plate("data", 3):
            c = confounder("c", pyro.param("pi", torch.zeros(2)))
            z = pyro.sample("z", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(c.float() + z, 1.0), obs=torch.zeros(3))

    def discrete_guide(data=None, num_samples=None):
        with pyro.plate("data", 3):
            pyro.sample("z", dist.Bernoulli(pyro.param("q", torch.tensor(0.3))))

    def scaled(data=None, num_samples=None):
        with pyro.plate("data", 3), pyro.poutine.scale(scale=2.0):
            c = confounder("c", pyro.param("pi", torch.zeros(2)))
            pyro.sample("x", dist.Normal(c.float(), 1.0), obs=torch.zeros(3))

    for model, guide, nesting in ((two_plates, empty_guide, 2), (discrete_latent, discrete_guide, 1),
                                  (scaled, empty_guide, 1)):
        pyro.clear_param_store()
        elbo = GammaEntropyELBO(gamma=1.0, max_plate_nesting=nesting)
        _, model_trace, guide_trace = general_loss(elbo, model, guide)
        assert _one_plate_loss(model_trace, guide_trace, 1.0) is None, model.__name__
        assert torch.isfinite(elbo.differentiable_loss(model, guide))


@pytest.mark.parametrize("gamma", [0.0, 1.5, -2.0])
def test_one_plate_loss_equals_general_contraction_on_the_latent_response_diagram(gamma):
    """The response r is drawn by the guide and its prior depends on c: the same direct sum applies."""
    from cauvade_pyro.models import LatentResponseModel

    torch.manual_seed(0)
    model = LatentResponseModel(3, 2, (1, 28, 28), r_dim=2, eps_dim=2, net="mlp", kl_weight=2.0)
    with torch.no_grad():  # clusters apart, so the posterior over c is not flat
        for value in (model.r_loc, model.pi_logits, model.x_logits):
            value.normal_()
        model.r_log_scale.normal_(0.0, 0.3)
    generator = torch.Generator().manual_seed(2)
    data = {"x": torch.randint(2, (7,), generator=generator),
            "image": (torch.rand(7, 1, 28, 28, generator=generator) < 0.3).float()}
    assert_direct_sum_matches_contraction(GammaEntropyELBO(gamma=gamma), model, data)
