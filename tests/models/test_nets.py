"""Conv and MLP encoders/decoders for 28×28 images with 1 or 3 channels, and the image likelihoods."""

import pytest
import torch

from cauvade_pyro.inference import GammaEntropyELBO
from cauvade_pyro.models import LIKELIHOODS, ConditionalImageModel, make_decoder, make_encoder


@pytest.mark.parametrize("net", ["conv", "mlp"])
@pytest.mark.parametrize("channels", [1, 3])
def test_networks_map_28x28_images_with_enumeration_dims(net, channels):
    decoder = make_decoder(net, cond_dim=5, eps_dim=3, channels=channels)
    encoder = make_encoder(net, channels=channels)
    cond, eps = torch.zeros(4, 1, 5), torch.randn(7, 3)  # an enumeration dim broadcasts against the batch
    assert decoder(cond, eps).shape == (4, 7, channels, 28, 28)
    assert encoder(torch.rand(7, channels, 28, 28)).shape == (7, encoder.out_dim)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("net", ["conv", "mlp"])
def test_image_model_elbo_is_finite_for_every_likelihood(likelihood, net):
    model = ConditionalImageModel(2, 3, (1, 28, 28), net=net, eps_dim=2, likelihood=likelihood)
    data = {"x": torch.tensor([0, 1, 1]), "y": torch.tensor([2, 0, 1]), "image": torch.rand(3, 1, 28, 28)}
    loss = GammaEntropyELBO().differentiable_loss(model.model, model.guide, data)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_unknown_choices_name_the_key():
    with pytest.raises(ValueError, match="model.image.net"):
        make_decoder("resnet", 3, 2, 3)
    with pytest.raises(ValueError, match="model.image.likelihood"):
        ConditionalImageModel(2, 3, likelihood="poisson")


def test_eps_film_last_lets_eps_scale_the_colour_the_conditions_left_alone():
    """eps_film="last": ε alone drives the last FiLM layer (its embedding sees ε, not the conditions), and changes the
    image even with the stem's ε weights zeroed; "none" builds the plain decoder, whose ε enters at the stem only."""
    torch.manual_seed(0)
    plain, coloured = (make_decoder("conv", cond_dim=5, eps_dim=3, channels=3, eps_film=f) for f in ("none", "last"))
    assert not hasattr(plain, "embed") and coloured.embed[0].in_features == 3
    for name in ("embed", "film2"):  # FiLMs start at zero: give the ε path weights, and cut ε out of the stem
        for p in getattr(coloured, name).parameters():
            torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        coloured.stem.weight[:, 5:] = 0
    cond, eps = torch.eye(5)[:2], torch.randn(2, 3)
    assert not torch.allclose(coloured(cond, eps), coloured(cond, eps + 1.0))
    assert sum(p.numel() for p in coloured.parameters()) > sum(p.numel() for p in plain.parameters())


def test_eps_film_needs_the_conv_decoder():
    with pytest.raises(ValueError, match="needs the conv decoder"):
        make_decoder("mlp", cond_dim=5, eps_dim=3, channels=3, eps_film="last")
    with pytest.raises(ValueError, match="eps_film must be one of"):
        make_decoder("conv", cond_dim=5, eps_dim=3, channels=3, eps_film="all")


def test_colour_dims_split_eps_between_the_stem_and_the_colour_layer():
    """colour_dims = k: the last k entries of ε reach only the ε-only FiLM of the last layer, the others only the
    stem. With that FiLM's weights at their zero start, the colour entries change nothing; with the stem's ε
    weights zeroed instead, only the colour entries do."""
    torch.manual_seed(0)
    decoder = make_decoder("conv", cond_dim=5, eps_dim=4, channels=3, eps_film="last", colour_dims=1)
    assert decoder.stem.in_features == 5 + 3 and decoder.embed[0].in_features == 1
    cond, eps = torch.eye(5)[:2], torch.randn(2, 4)
    colour_moved, stem_moved = eps.clone(), eps.clone()
    colour_moved[:, 3] += 1.0
    stem_moved[:, 0] += 1.0
    for p in decoder.film2.parameters():
        torch.nn.init.zeros_(p)
    assert torch.equal(decoder(cond, eps), decoder(cond, colour_moved))  # the colour layer is the only way in
    assert not torch.allclose(decoder(cond, eps), decoder(cond, stem_moved))
    for p in list(decoder.embed.parameters()) + list(decoder.film2.parameters()):
        torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        decoder.stem.weight[:, 5:] = 0
    assert torch.equal(decoder(cond, eps), decoder(cond, stem_moved))  # the stem is the shape entries' only way in
    assert not torch.allclose(decoder(cond, eps), decoder(cond, colour_moved))


@pytest.mark.parametrize("kwargs, message", [
    ({"eps_film": "none", "colour_dims": 1}, "colour_dims=1 needs eps_film='last'"),
    ({"eps_film": "last", "colour_dims": 4}, "0 < colour_dims < eps_dim=4"),
])
def test_colour_dims_need_the_eps_only_film_and_a_stem_share(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_decoder("conv", cond_dim=5, eps_dim=4, channels=3, **kwargs)


def test_colour_kl_weight_weighs_only_the_colour_entries_of_the_eps_term():
    """The loss with β on the shape entries and β_c on the colour entries, against a hand sum from one traced ε:
    −log p(image | ε) + Σ_d β_d [log q(ε_d) − log N(ε_d; 0, 1)]."""
    import pyro
    import pyro.distributions as dist
    from pyro import poutine

    torch.manual_seed(0)
    model = ConditionalImageModel(2, 3, (3, 28, 28), eps_dim=4, eps_film="last", colour_eps_dim=2, kl_weight=8.0,
                                  colour_kl_weight=0.5)
    data = {"x": torch.tensor([0, 1, 1]), "y": torch.tensor([2, 0, 1]), "image": torch.rand(3, 3, 28, 28)}
    pyro.clear_param_store()
    guide_trace = poutine.trace(model.guide).get_trace(data)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(data)
    loss = GammaEntropyELBO().differentiable_loss(poutine.replay(model.model, trace=guide_trace),
                                                  poutine.replay(model.guide, trace=guide_trace), data)
    eps = guide_trace.nodes["eps"]["value"]
    loc, scale = model.encode(data["image"], data["x"], data["y"])
    per_entry = dist.Normal(loc, scale).log_prob(eps) - dist.Normal(0.0, 1.0).log_prob(eps)
    beta = torch.tensor([8.0, 8.0, 0.5, 0.5])
    image_log_lik = model_trace.nodes["image"]["fn"].log_prob(data["image"]).sum()
    expected = -image_log_lik + (per_entry * beta).sum()
    assert torch.allclose(loss, expected, rtol=1e-5)
