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
