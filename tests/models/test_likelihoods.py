"""Image likelihoods: the discretised logistic is a distribution over the 256 pixel levels, every likelihood's
``image_mean`` is its own mean (continuous Bernoulli included), and the logistic image model runs end to end."""

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from cauvade_pyro.evaluate import chance_warnings
from cauvade_pyro.models import ConditionalImageModel
from cauvade_pyro.models.nets import DiscretizedLogistic, image_likelihood, image_mean

LEVELS = torch.arange(256, dtype=torch.float64) / 255


@pytest.mark.parametrize("loc, scale", [(0.3, 0.05), (-0.2, 1e-3), (0.999, 2e-3), (0.5, 2.0), (1.7, 0.1)])
def test_discretized_logistic_sums_to_one_and_its_mean_is_the_mean(loc, scale):
    d = DiscretizedLogistic(torch.full((256,), loc, dtype=torch.float64), torch.full((256,), scale,
                                                                                     dtype=torch.float64))
    probs = d.log_prob(LEVELS).exp()
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float((probs * LEVELS).sum()) == pytest.approx(float(d.mean[0]), abs=2e-3)  # rounding to the grid
    draws = d.sample()
    assert torch.equal(draws, torch.round(draws * 255) / 255) and draws.min() >= 0 and draws.max() <= 1


def test_image_mean_is_the_likelihood_mean():
    logits = torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.0], dtype=torch.float64).view(1, 1, 5)
    assert torch.equal(image_mean("bernoulli", logits), torch.sigmoid(logits))
    two_maps = torch.cat([logits / 4, logits - 2.0], dim=-3)  # (2, 1, 5): locations, then raw scales
    base = image_likelihood("logistic", two_maps).base_dist
    pmf = base.log_prob(LEVELS.view(-1, 1, 1, 1)).exp()  # over the 256 levels
    assert pmf.sum(0).flatten().tolist() == pytest.approx([1.0] * 5, abs=1e-5)
    expected = (LEVELS.view(-1, 1, 1, 1) * pmf).sum(0)
    assert image_mean("logistic", two_maps).flatten().tolist() == pytest.approx(expected.flatten().tolist(), abs=2e-3)


@pytest.mark.parametrize("removed", ["continuous_bernoulli", "gaussian"])
def test_removed_likelihoods_are_refused_in_one_line(removed):
    with pytest.raises(ValueError, match="model.image.likelihood must be one of"):
        ConditionalImageModel(2, 3, likelihood=removed)


def test_logistic_image_model_elbo_sampling_and_decoding():
    model = ConditionalImageModel(2, 3, (3, 28, 28), eps_dim=2, likelihood="logistic")
    assert model.decoder.out.out_channels == 6  # a location and a scale per channel
    data = {"x": torch.tensor([0, 1]), "y": torch.tensor([2, 0]),
            "image": torch.randint(0, 256, (2, 3, 28, 28)).float() / 255}
    loss = Trace_ELBO().loss(model.model, model.guide, data)
    assert torch.isfinite(torch.tensor(loss)) and loss > 0  # a probability per pixel: −ELBO > 0
    images = model.decode(data["x"], data["y"], torch.zeros(2, 2))
    assert images.shape == (2, 3, 28, 28) and images.min() >= 0 and images.max() <= 1
    trace = pyro.poutine.trace(model.model).get_trace({"x": data["x"], "y": data["y"]})
    assert trace.nodes["image"]["value"].shape == (2, 3, 28, 28)


def test_a_fit_near_chance_says_so():
    assert chance_warnings({"x_flip_follows": 0.97, "y_flip_follows": 0.99}, 3, 6) == []
    lines = chance_warnings({"x_flip_follows": 0.33, "y_flip_follows": 0.17}, 3, 6)
    assert len(lines) == 2 and "ignores x" in lines[0] and "ignores y" in lines[1]
