"""User diagram errors are explanatory ValueErrors before any training: no confounder, a decoder taking c, do(image)."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.nn.functional import one_hot

from cauvade_pyro.inference import fit_diagram, intervene
from cauvade_pyro.models import confounder

K, NX, NY, PIXELS = 3, 2, 3, 4
DECODER = torch.nn.Linear(NX + NY + K, 3 * PIXELS * PIXELS)


def _data(n=8):
    g = torch.Generator().manual_seed(0)
    return {
        "x": torch.randint(0, NX, (n,), generator=g),
        "y": torch.randint(0, NY, (n,), generator=g),
        "image": torch.randint(0, 256, (n, 3, PIXELS, PIXELS), generator=g, dtype=torch.uint8),
    }


def make_model(with_confounder=True, decoder_takes_c=False):
    def model(data=None, num_samples=None):
        data = data or {}
        pyro.module("decoder", DECODER)
        pi = pyro.param("pi", torch.zeros(K))
        x_logits = pyro.param("x_logits", torch.zeros(K, NX))
        y_logits = pyro.param("y_logits", torch.zeros(K, NX, NY))
        with pyro.plate("data", num_samples or len(data["x"])):
            if with_confounder:
                c = confounder("c", pi)
            else:
                c = pyro.sample("c", dist.Categorical(logits=pi))  # a plain site, not marked as the confounder
            x = pyro.sample("x", dist.Categorical(logits=x_logits[c]), obs=data.get("x"))
            y = pyro.sample("y", dist.Categorical(logits=y_logits[c, x]), obs=data.get("y"))
            # Built to broadcast: with decoder_takes_c the image gets c's enumeration dim, without it (c = 0) not.
            c_input = one_hot(c if decoder_takes_c else torch.zeros_like(x), K)
            shape = torch.broadcast_shapes(x.shape, c_input.shape[:-1])
            cond = torch.cat([one_hot(x, NX).expand(shape + (NX,)), one_hot(y, NY).expand(shape + (NY,)),
                              c_input.expand(shape + (K,))], -1).float()
            logits = DECODER(cond).reshape(shape + (3, PIXELS, PIXELS))
            pyro.sample("image", dist.Bernoulli(logits=logits, validate_args=False).to_event(3), obs=data.get("image"))

    return model


def test_a_correct_diagram_fits():
    _, losses = fit_diagram(make_model(), _data(), steps=2, batch_size=None, progress=False)
    assert len(losses) == 2


def test_no_confounder_site_is_explained_before_training():
    with pytest.raises(ValueError, match=r"no confounder site \(its sample sites are \['c', 'image', 'x', 'y'\]\)"):
        fit_diagram(make_model(with_confounder=False), _data(), steps=2, progress=False)


def test_decoder_that_receives_c_is_named():
    with pytest.raises(ValueError, match="site 'image' .* depends on the confounder 'c': the decoder must not take 'c'"):
        fit_diagram(make_model(decoder_takes_c=True), _data(), steps=2, progress=False)


def test_decoder_that_breaks_under_enumeration_gets_the_likely_cause():
    def model(data=None, num_samples=None):
        with pyro.plate("data", len(data["x"])):
            c = confounder("c", torch.zeros(K))
            pyro.sample("x", dist.Categorical(logits=torch.zeros(K, NX)[c]), obs=data["x"])
            cond = torch.cat([one_hot(data["y"], NY), one_hot(c, K)], -1).float()  # torch.cat does not broadcast
            pyro.sample("image", dist.Bernoulli(logits=cond.sum(-1)), obs=data["y"].float())

    with pytest.raises(ValueError, match="fails when its confounder is enumerated .* the image decoder must not take c"):
        fit_diagram(model, _data(), steps=2, progress=False)


@pytest.mark.parametrize("site", ["image"])
def test_do_on_the_image_site_is_refused(site):
    with pytest.raises(ValueError, match="site 'image' is an image .* intervene on an attribute"):
        intervene(make_model(), {site: torch.zeros(3, PIXELS, PIXELS)}, num_samples=4)


def test_do_on_an_observed_site_is_refused():
    data = _data(4)
    with pytest.raises(ValueError, match="site 'x' is an observed site"):
        intervene(make_model(), {"x": 1}, num_samples=4, data=data)
