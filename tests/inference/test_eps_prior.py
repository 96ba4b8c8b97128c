"""The ex-post ε prior p(ε | x): EM recovers a known mixture of codes for each x, the program and the IWAE use
it, it survives a state-dict round trip, and without a fit the model is exactly the N(0, I) one."""

import math

import pytest
import torch
from pyro import poutine

from cauvade_pyro.inference import fit_eps_prior, iwae_image_loglik
from cauvade_pyro.models import ConditionalImageModel, LatentResponseModel


class KnownCodes(ConditionalImageModel):
    """An image model whose encoder puts image n at a fixed code: (±3, 1) for x = 0, (±3, −4) for x = 1."""

    def encode(self, image, x, y):
        sign = torch.where(image.flatten(1)[:, 0] > 0.5, 3.0, -3.0)
        loc = torch.stack([sign, torch.where(x == 0, 1.0, -4.0)], -1)
        return loc, torch.full_like(loc, 0.1)


def tiny(cls=ConditionalImageModel, components=2):
    torch.manual_seed(0)
    return cls(2, 3, (3, 28, 28), net="mlp", eps_dim=2, eps_prior_components=components).eval()


def data(n=300):
    image = torch.zeros(n, 3, 28, 28)
    image[: n // 3, 0, 0, 0] = 1.0  # a third of the images (of each x) at sign +3, the rest at −3
    return {"x": torch.arange(n) % 2, "y": torch.arange(n) % 3, "image": image}


def test_em_recovers_the_mixture_of_the_codes_of_each_x():
    model = tiny(KnownCodes)
    info = fit_eps_prior(model, data(), draws=4, seed=0)
    assert info["codes"] == 1200 and info["converged"]
    noise = model.eps_noise
    for x, second in ((0, 1.0), (1, -4.0)):
        order = noise.loc[x, :, 0].argsort()
        assert torch.allclose(noise.logits[x].softmax(-1)[order], torch.tensor([2 / 3, 1 / 3]), atol=0.03)
        assert torch.allclose(noise.loc[x, order], torch.tensor([[-3.0, second], [3.0, second]]), atol=0.03)
    # component std ≈ the codes' 0.1 (plus the tiny reg_covar)
    stds = torch.linalg.diagonal(noise.scale_tril)
    assert torch.allclose(stds, torch.full_like(stds, 0.1), atol=0.02)
    assert info["code_log_density_mixture"] > info["code_log_density_standard_normal"] + 5


def test_the_program_and_the_iwae_use_the_fitted_prior():
    model = tiny(KnownCodes)
    fit_eps_prior(model, data(), seed=0)
    noise = model.eps_noise
    batch = {"x": torch.tensor([0, 1]), "y": torch.tensor([2, 0])}
    trace = poutine.trace(model.model).get_trace(batch, num_samples=2)
    eps = trace.nodes["eps"]["value"]

    def by_hand(eps, x):  # log Σ_m w_{x,m} N(ε; μ_{x,m}, L_{x,m} L_{x,m}ᵀ), one row at a time
        return torch.stack([torch.stack([
            torch.distributions.MultivariateNormal(noise.loc[int(k), m], scale_tril=noise.scale_tril[int(k), m])
            .log_prob(e) + noise.logits[int(k)].log_softmax(-1)[m] for m in range(2)]).logsumexp(0)
            for e, k in zip(eps, x)])

    assert torch.allclose(trace.nodes["eps"]["fn"].log_prob(eps), by_hand(eps, batch["x"]), atol=1e-5)
    # prior draws land on the codes of their own x, not around 0
    draws = model.sample_eps(torch.tensor([1] * 2000), torch.tensor([0, 1, 2] * 666 + [0, 1]))
    assert draws[:, 0].abs().min() > 2.0 and (draws[:, 1] + 4).abs().max() < 1.0
    assert abs(float((draws[:, 0] > 0).float().mean()) - 1 / 3) < 0.05
    # the IWAE's log p(ε | x) term is the mixture's: one sample differs from the N(0, I) one by exactly that term
    images = data(6)
    fitted = iwae_image_loglik(model, images, num_samples=1, generator=torch.Generator().manual_seed(3))
    noise.fitted = False
    standard = iwae_image_loglik(model, images, num_samples=1, generator=torch.Generator().manual_seed(3))
    noise.fitted = True
    loc, scale = model.encode(images["image"], images["x"], images["y"])
    codes = (loc + scale * torch.randn((1, 6, 2), generator=torch.Generator().manual_seed(3)))[0]
    gap = by_hand(codes, images["x"]) - torch.distributions.Normal(0.0, 1.0).log_prob(codes).sum(-1)
    assert torch.allclose((fitted - standard)[0].float(), gap, atol=1e-3)


def test_a_fitted_prior_survives_a_state_dict_round_trip():
    model = tiny(KnownCodes)
    fit_eps_prior(model, data(), seed=0)
    fresh = tiny()
    assert not fresh.eps_prior_fitted
    fresh.load_state_dict(model.state_dict())
    assert fresh.eps_prior_fitted and torch.equal(fresh.eps_noise.loc, model.eps_noise.loc)


def test_unfitted_is_exactly_the_standard_normal_model():
    plain, room = tiny(components=0), tiny(components=3)
    assert plain.state_dict().keys() <= room.state_dict().keys()
    eps, x = torch.randn(5, 2), torch.tensor([0, 1, 0, 1, 1])
    y = torch.tensor([2, 0, 1, 1, 0])
    assert torch.equal(room.eps_prior(x, y).log_prob(eps), plain.eps_prior(x, y).log_prob(eps))
    assert torch.allclose(room.eps_prior(x, y).log_prob(eps),
                          torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum(-1))
    torch.manual_seed(1)
    a = room.sample_eps(x[:4], y[:4])
    torch.manual_seed(1)
    assert torch.equal(a, torch.randn(4, 2))  # the same draws as before the option


def test_bad_requests_fail_in_one_line():
    with pytest.raises(ValueError, match="eps_prior_components must be >= 0"):
        ConditionalImageModel(2, 3, net="mlp", eps_prior_components=-1)
    with pytest.raises(ValueError, match="eps_prior_components=0"):
        fit_eps_prior(tiny(components=0), data(6))



def test_too_few_codes_for_an_x_use_fewer_components_and_none_keep_the_standard_normal():
    model = tiny(KnownCodes, components=8)
    few = {k: v[[0, 2, 4, 1]] for k, v in data(6).items()}  # three images of x = 0, one of x = 1 (EM needs two)
    info = fit_eps_prior(model, few, seed=0)
    weights = model.eps_noise.logits.softmax(-1)
    assert info["codes"] == 4 and int((weights[0] > 0).sum()) == 3  # as many components as codes
    assert torch.equal(weights[1], torch.eye(8)[0])  # x = 1: one component, N(0, I)
    assert torch.equal(model.eps_noise.loc[1, 0], torch.zeros(2)) and torch.equal(model.eps_noise.scale_tril[1, 0],
                                                                                   torch.eye(2))
    xs, ys = torch.tensor([0, 1] * 50), torch.tensor([0, 1] * 50)
    draws = model.sample_eps(xs, ys)
    assert torch.isfinite(draws).all() and torch.isfinite(model.eps_prior(xs[:2], ys[:2]).log_prob(draws[:2])).all()


def test_the_latent_response_model_draws_and_scores_eps_from_its_mixture():
    torch.manual_seed(0)
    model = LatentResponseModel(2, 2, (1, 28, 28), r_dim=2, eps_dim=1, net="mlp", eps_prior_components=2).eval()
    image = torch.rand(3, 1, 28, 28)
    x = torch.tensor([0, 1, 1])
    loc, scale = model.encode(image, x)
    r, eps = loc[:, :2], loc[:, 2:]
    standard = model.log_weight(image, x, r, eps, loc, scale)
    # x = 0: N(0, 1) twice (the standard normal again); x = 1: 0.73 N(5, 0.5²) + 0.27 N(−5, 0.5²)
    model.eps_noise.set(torch.tensor([[0.0, 0.0], [0.0, -1.0]]), torch.tensor([[[0.0], [0.0]], [[5.0], [-5.0]]]),
                        torch.tensor([1.0, 1.0, 0.5, 0.5]).reshape(2, 2, 1, 1))
    mixture = model.log_weight(image, x, r, eps, loc, scale)
    e = eps[:, 0]
    normal = torch.distributions.Normal(0.0, 1.0).log_prob(e)
    second = (torch.stack([torch.distributions.Normal(5.0, 0.5).log_prob(e),
                           torch.distributions.Normal(-5.0, 0.5).log_prob(e)])
              + torch.tensor([0.0, -1.0]).log_softmax(0)[:, None]).logsumexp(0)
    assert torch.allclose(mixture - standard, torch.where(x == 1, second - normal, 0.0), atol=1e-4)
    draws = model.sample_given_x(1, 4000)["eps"][:, 0]
    assert draws.abs().min() > 2.5 and abs(float((draws > 0).float().mean()) - 1 / (1 + math.exp(-1))) < 0.03
    # fitted to the encoder's ε codes (the r part of the code is left out)
    info = fit_eps_prior(model, {"x": x.repeat(20), "image": image.repeat(20, 1, 1, 1)}, seed=0)
    assert info["codes"] == 60 and model.eps_noise.loc.shape == (2, 2, 1)


class CodesByCell(ConditionalImageModel):
    """An image model whose codes sit at (3y, x): they depend on y, which a mixture per x alone would pool."""

    def encode(self, image, x, y):
        loc = torch.stack([3.0 * y, x.to(torch.float32)], -1).to(torch.float32)
        return loc, torch.full_like(loc, 0.1)


def test_a_mixture_per_cell_keeps_what_the_codes_of_each_y_hold():
    model = tiny(CodesByCell, components=1)
    model.reset_eps_prior(1, "xy")
    info = fit_eps_prior(model, data(300), seed=0)
    assert info["codes"] == 300 and model.eps_noise.loc.shape == (6, 1, 2)
    for x in range(2):
        for y in range(3):
            assert torch.allclose(model.eps_noise.loc[x * 3 + y, 0], torch.tensor([3.0 * y, float(x)]), atol=0.05)
    draws = model.sample_eps(torch.tensor([1] * 500), torch.tensor([2] * 500))
    assert (draws.mean(0) - torch.tensor([6.0, 1.0])).abs().max() < 0.05
    # per x alone, the same codes pool the three y's: draws of (x = 1, y = 2) land on every y's codes
    pooled = tiny(CodesByCell, components=3)
    fit_eps_prior(pooled, data(300), seed=0)
    spread = pooled.sample_eps(torch.tensor([1] * 500), torch.tensor([2] * 500))[:, 0]
    assert spread.min() < 1.0 and spread.max() > 5.0
    with pytest.raises(ValueError, match="eps_prior_given must be one of"):
        model.reset_eps_prior(1, "y")
