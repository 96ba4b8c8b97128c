"""init_latent_response's options: warmup_kl_weight scales r's KL in the warm-up only, gmm_restarts is the GMM's
n_init; both at 1 reproduce the defaults exactly."""

import pyro
import pytest
import torch

from cauvade_pyro.inference import init_latent_response
from cauvade_pyro.inference.init import _scale_site
from cauvade_pyro.models import LatentResponseModel


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randint(0, 2, (n,), generator=g), "image": (torch.rand(n, 1, 28, 28, generator=g) * 255).byte()}


def _fit(**options):
    torch.manual_seed(0)
    pyro.clear_param_store()
    model = LatentResponseModel(3, 2, (1, 28, 28), r_dim=2, eps_dim=1, net="mlp")
    init_latent_response(model, _data(), warmup_epochs=1, batch_size=32, lr=1e-3, seed=0, progress=False, **options)
    return model


def test_defaults_are_today_and_options_change_the_start():
    base, same = _fit(), _fit(warmup_kl_weight=1.0, gmm_restarts=1)
    assert torch.equal(base.r_loc, same.r_loc)
    assert not torch.equal(base.r_loc, _fit(warmup_kl_weight=0.01).r_loc)
    assert _fit(gmm_restarts=3).r_loc.isfinite().all()


def test_scale_site_scales_only_the_named_site():
    def program():
        pyro.sample("r", pyro.distributions.Normal(0.0, 1.0))
        pyro.sample("eps", pyro.distributions.Normal(0.0, 1.0))

    trace = pyro.poutine.trace(_scale_site(program, "r", 0.1)).get_trace()
    assert trace.nodes["r"]["scale"] == pytest.approx(0.1) and trace.nodes["eps"]["scale"] == 1.0


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        _fit(warmup_kl_weight=0.0)
    with pytest.raises(ValueError):
        _fit(gmm_restarts=0)
