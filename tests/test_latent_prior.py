"""inference/latent_prior.py: EM on the mixture p(x, r) = Σ_c π_c p(x | c) N(r; μ[c, x], σ[c, x]) recovers known
tables from synthetic codes, never lowers the likelihood, and refits a model's tables in place."""

import math

import torch

from cauvade_pyro.inference.latent_prior import (
    MixtureTables,
    _log_joint,
    fit_mixture_em,
    mixture_loglik,
    refit_latent_prior,
)
from cauvade_pyro.models import LatentResponseModel

PI = torch.tensor([0.3, 0.7], dtype=torch.float64)
PX = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]], dtype=torch.float64)
LOC = torch.tensor([[[-4.0, 0.0], [-4.0, 2.0], [-4.0, -2.0]], [[4.0, 0.0], [4.0, 2.0], [4.0, -2.0]]],
                   dtype=torch.float64)
SCALE = torch.tensor([[[0.5, 1.0], [0.8, 0.6], [1.0, 0.4]], [[0.7, 0.7], [0.5, 1.2], [0.9, 0.5]]],
                     dtype=torch.float64)


def _draw(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = torch.multinomial(PI, n, replacement=True, generator=g)
    x = torch.multinomial(PX[c], 1, generator=g).squeeze(-1)
    r = LOC[c, x] + SCALE[c, x] * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return c, x, r


def _start() -> MixtureTables:
    """Far from the truth but on the right side of it (no label switching): uniform π and p(x | c), shifted μ,
    unit σ."""
    return MixtureTables(torch.full((2,), 0.5, dtype=torch.float64).log(), torch.full((2, 3), 1 / 3).double().log(),
                         LOC * 0.5 + 0.7, torch.zeros(2, 3, 2, dtype=torch.float64))


def test_em_recovers_known_tables_and_matches_the_labelled_mle():
    c, x, r = _draw(20000)
    fitted = fit_mixture_em(_start(), x, r, iterations=200)
    # against the truth: sampling error only (the smallest cell holds ≈ 600 codes)
    assert torch.allclose(fitted.log_pi.exp(), PI, atol=0.015)
    assert torch.allclose(fitted.log_px.exp(), PX, atol=0.02)
    assert torch.allclose(fitted.loc, LOC, atol=0.1)
    assert torch.allclose(fitted.log_scale.exp(), SCALE, atol=0.06)
    # the clusters are 8 nats apart in r, so EM's responsibilities are the labels: its answer is the labelled MLE
    onehot_c = torch.nn.functional.one_hot(c, 2).double()
    onehot_x = torch.nn.functional.one_hot(x, 3).double()
    counts = onehot_c.T @ onehot_x
    assert torch.allclose(fitted.log_pi.exp(), onehot_c.mean(0), atol=1e-4)
    assert torch.allclose(fitted.log_px.exp(), counts / counts.sum(1, keepdim=True), atol=1e-4)
    mean = torch.einsum("nc,nx,nd->cxd", onehot_c, onehot_x, r) / counts[..., None]
    var = torch.einsum("nc,nx,nd->cxd", onehot_c, onehot_x, r * r) / counts[..., None] - mean**2
    assert torch.allclose(fitted.loc, mean, atol=1e-3)
    assert torch.allclose(fitted.log_scale.exp(), var.sqrt(), atol=1e-3)
    truth = MixtureTables(PI.log(), PX.log(), LOC, SCALE.log())
    assert mixture_loglik(fitted, x, r) >= mixture_loglik(truth, x, r)  # the MLE beats the truth on its sample


def test_em_never_lowers_the_likelihood_and_overlapping_clusters_still_fit():
    _, x, r = _draw(4000, seed=1)
    r = r * torch.tensor([0.25, 1.0], dtype=torch.float64)  # clusters now overlap: responsibilities are soft
    tables, previous = _start(), -math.inf
    for _ in range(30):
        current = mixture_loglik(tables, x, r)
        assert current >= previous - 1e-9
        previous = current
        tables = fit_mixture_em(tables, x, r, iterations=1)
    posterior = _log_joint(tables, x, r).softmax(-1)
    assert torch.allclose(posterior.sum(-1), torch.ones(len(x), dtype=torch.float64))


def test_tied_x_keeps_p_x_given_c_at_the_marginal():
    _, x, r = _draw(4000, seed=2)
    fitted = fit_mixture_em(_start(), x, r, iterations=50, tie_x=True)
    marginal = torch.bincount(x, minlength=3).double() / len(x)
    assert torch.allclose(fitted.log_px.exp(), marginal.expand(2, 3), atol=1e-12)


def test_refit_sets_the_model_tables_and_does_not_lower_the_likelihood():
    def make() -> LatentResponseModel:
        torch.manual_seed(0)
        model = LatentResponseModel(3, 2, (1, 28, 28), r_dim=2, eps_dim=2, net="mlp")
        with torch.no_grad():  # clusters that differ (all-zero tables are a fixed point of EM)
            model.r_loc.normal_(0.0, 0.3)
            model.x_logits.normal_(0.0, 0.5)
        return model

    model = make()
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    data = {"x": torch.arange(64) % 2, "image": torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)}
    report = refit_latent_prior(model, data, samples=4, iterations=50, seed=0)
    assert report["codes"] == 64 * 4
    assert report["loglik_after"] >= report["loglik_before"]
    assert all(torch.equal(v, decoder[k]) for k, v in model.decoder.state_dict().items())  # networks untouched
    assert torch.isclose(model.pi_logits.softmax(-1).sum(), torch.tensor(1.0))
    # γ < 0 on the tables: the clusters' posterior p(c | x, r) is at least as spread as with EM alone
    assert report["entropy_c_given_x_r_after"] < math.log(3) - 0.05
    diffuse = refit_latent_prior(make(), data, samples=4, iterations=50, seed=0, gamma=-5.0, steps=200)
    assert diffuse["entropy_c_given_x_r_after"] > report["entropy_c_given_x_r_after"] + 0.05


def test_em_recovers_overlapping_clusters_where_the_e_step_needs_pi_and_p_x_given_c():
    """Clusters ≈ 3 σ apart in r: the responsibilities are soft, so an E-step without π or p(x | c), or normalised
    over the codes instead of the clusters, lands elsewhere."""
    loc = LOC * torch.tensor([0.4, 1.0], dtype=torch.float64)  # c0 at r₀ = −1.6, c1 at +1.6
    g = torch.Generator().manual_seed(3)
    c = torch.multinomial(PI, 40000, replacement=True, generator=g)
    x = torch.multinomial(PX[c], 1, generator=g).squeeze(-1)
    r = loc[c, x] + SCALE[c, x] * torch.randn(len(c), 2, generator=g, dtype=torch.float64)
    start = MixtureTables(torch.tensor([0.45, 0.55], dtype=torch.float64).log(),  # near the truth, perturbed
                          (PX + 0.1).log().log_softmax(-1), loc + 0.3, (SCALE * 1.3).log())
    fitted = fit_mixture_em(start, x, r, iterations=1000, tol=1e-9)
    assert torch.allclose(fitted.log_pi.exp(), PI, atol=0.03)
    assert torch.allclose(fitted.log_px.exp(), PX, atol=0.04)
    assert torch.allclose(fitted.loc, loc, atol=0.15)
    assert torch.allclose(fitted.log_scale.exp(), SCALE, atol=0.1)
