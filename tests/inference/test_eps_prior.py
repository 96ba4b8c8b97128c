"""The ex-post ε prior: EM recovers a known mixture of codes, the program and the IWAE use it, it survives a
state-dict round trip, and without a fit the model is exactly the N(0, I) one."""


import math

import pytest
import torch
from pyro import poutine

from cauvade_pyro.inference import fit_eps_prior, iwae_image_loglik
from cauvade_pyro.models import ConditionalImageModel


class KnownCodes(ConditionalImageModel):
    """An image model whose encoder puts image n at a fixed code: two tight clusters at (±3, 1)."""

    def encode(self, image, x, y):
        sign = torch.where(image.flatten(1)[:, 0] > 0.5, 3.0, -3.0)
        loc = torch.stack([sign, torch.ones_like(sign)], -1)
        return loc, torch.full_like(loc, 0.1)


def tiny(cls=ConditionalImageModel, components=2):
    torch.manual_seed(0)
    return cls(2, 3, (3, 28, 28), net="mlp", eps_dim=2, eps_prior_components=components).eval()


def data(n=300):
    image = torch.zeros(n, 3, 28, 28)
    image[: n // 3, 0, 0, 0] = 1.0  # a third of the images at code (3, 1), the rest at (-3, 1)
    return {"x": torch.arange(n) % 2, "y": torch.arange(n) % 3, "image": image}


def test_em_recovers_the_mixture_of_the_codes():
    model = tiny(KnownCodes)
    info = fit_eps_prior(model, data(), draws=4, seed=0)
    assert info["codes"] == 1200 and info["converged"]
    weights = model.eps_noise.logits.softmax(-1)
    order = model.eps_noise.loc[:, 0].argsort()
    assert torch.allclose(weights[order], torch.tensor([2 / 3, 1 / 3]), atol=0.03)
    assert torch.allclose(model.eps_noise.loc[order], torch.tensor([[-3.0, 1.0], [3.0, 1.0]]), atol=0.03)
    # component std ≈ the codes' 0.1 (plus the tiny reg_covar)
    stds = torch.linalg.diagonal(model.eps_noise.scale_tril)
    assert torch.allclose(stds, torch.full_like(stds, 0.1), atol=0.02)
    assert info["code_log_density_mixture"] > info["code_log_density_standard_normal"] + 5


def test_the_program_and_the_iwae_use_the_fitted_prior():
    model = tiny(KnownCodes)
    fit_eps_prior(model, data(), seed=0)
    batch = {"x": torch.tensor([0, 1]), "y": torch.tensor([2, 0])}
    trace = poutine.trace(model.model).get_trace(batch, num_samples=2)
    eps = trace.nodes["eps"]["value"]
    # the mixture's density by hand: log Σ_m w_m N(ε; μ_m, L_m L_mᵀ)
    weights = model.eps_noise.logits.softmax(-1)
    by_hand = torch.stack([
        torch.distributions.MultivariateNormal(model.eps_noise.loc[m], scale_tril=model.eps_noise.scale_tril[m])
        .log_prob(eps) + weights[m].log() for m in range(2)]).logsumexp(0)
    assert torch.allclose(trace.nodes["eps"]["fn"].log_prob(eps), by_hand, atol=1e-5)
    # prior draws land on the codes' clusters, not around 0
    draws = model.sample_eps(2000)
    assert draws[:, 0].abs().min() > 2.0 and abs(float((draws[:, 0] > 0).float().mean()) - 1 / 3) < 0.05
    # the IWAE's log p(ε) term is the mixture's: a single sample differs from the N(0, I) one by exactly that term
    images = data(6)
    generator = torch.Generator().manual_seed(3)
    fitted = iwae_image_loglik(model, images, num_samples=1, generator=generator)
    model.eps_noise.fitted = False
    standard = iwae_image_loglik(model, images, num_samples=1, generator=torch.Generator().manual_seed(3))
    model.eps_noise.fitted = True
    noise = torch.randn((1, 6, 2), generator=torch.Generator().manual_seed(3))
    loc, scale = model.encode(images["image"], images["x"], images["y"])
    codes = (loc + scale * noise)[0]
    gap = model.eps_prior(codes).log_prob(codes) - torch.distributions.Normal(0.0, 1.0).log_prob(codes).sum(-1)
    assert torch.allclose((fitted - standard)[0].float(), gap, atol=1e-3)


def test_a_fitted_prior_survives_a_state_dict_round_trip():
    model = tiny(KnownCodes)
    fit_eps_prior(model, data(), seed=0)
    fresh = tiny()
    assert not fresh.eps_prior_fitted
    fresh.load_state_dict(model.state_dict())
    assert fresh.eps_prior_fitted
    assert torch.equal(fresh.eps_noise.loc, model.eps_noise.loc)


def test_unfitted_is_exactly_the_standard_normal_model():
    plain, room = tiny(components=0), tiny(components=3)
    assert plain.state_dict().keys() <= room.state_dict().keys()
    eps = torch.randn(5, 2)
    assert torch.equal(room.eps_prior(eps).log_prob(eps), plain.eps_prior(eps).log_prob(eps))
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum(-1)
    assert torch.allclose(room.eps_prior(eps).log_prob(eps), expected)
    torch.manual_seed(1)
    a = room.sample_eps(4)
    torch.manual_seed(1)
    assert torch.equal(a, torch.randn(4, 2))  # the same draws as before the option


def test_bad_requests_fail_in_one_line():
    with pytest.raises(ValueError, match="eps_prior_components must be >= 0"):
        ConditionalImageModel(2, 3, net="mlp", eps_prior_components=-1)
    with pytest.raises(ValueError, match="eps_prior_components=0"):
        fit_eps_prior(tiny(components=0), data(6))
    with pytest.raises(ValueError, match="cannot fit 8 mixture components"):
        fit_eps_prior(tiny(components=8), data(6))


def test_the_latent_response_model_draws_and_scores_eps_from_its_mixture():
    from cauvade_pyro.models import LatentResponseModel

    torch.manual_seed(0)
    model = LatentResponseModel(2, 2, (1, 28, 28), r_dim=2, eps_dim=1, net="mlp", eps_prior_components=2).eval()
    image = torch.rand(3, 1, 28, 28)
    x = torch.tensor([0, 1, 1])
    loc, scale = model.encode(image, x)
    r, eps = loc[:, :2], loc[:, 2:]
    standard = model.log_weight(image, x, r, eps, loc, scale)
    model.eps_noise.set(torch.tensor([0.0, -1.0]), torch.tensor([[5.0], [-5.0]]), torch.full((2, 1, 1), 0.5))
    mixture = model.log_weight(image, x, r, eps, loc, scale)
    by_hand = (torch.stack([torch.distributions.Normal(5.0, 0.5).log_prob(eps[:, 0]),
                            torch.distributions.Normal(-5.0, 0.5).log_prob(eps[:, 0])])
               + torch.tensor([0.0, -1.0]).log_softmax(0)[:, None]).logsumexp(0)
    assert torch.allclose(mixture - standard, by_hand - torch.distributions.Normal(0.0, 1.0).log_prob(eps[:, 0]),
                          atol=1e-4)
    draws = model.sample_given_x(1, 4000)["eps"][:, 0]
    assert draws.abs().min() > 2.5 and abs(float((draws > 0).float().mean()) - 1 / (1 + math.exp(-1))) < 0.03
    # fitted to the encoder's ε codes (the r part of the code is left out)
    info = fit_eps_prior(model, {"x": x.repeat(20), "image": image.repeat(20, 1, 1, 1)}, seed=0)
    assert info["codes"] == 60 and model.eps_noise.loc.shape == (2, 1)
