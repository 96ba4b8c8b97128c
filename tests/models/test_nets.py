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
