"""Within-bin hue read from pixels: exact on rendered data, W1 = 1/8 for a point mass at the bin centre."""

import math

import pytest
import torch

from cauvade_pyro.datasets import ConfoundedShapes, colourize
from cauvade_pyro.metrics.hue import POINT_MASS_W1, image_hue, image_hue_bins, within_bin_hue_w1, within_bin_positions


@pytest.fixture(scope="module")
def data():
    return ConfoundedShapes(num_train=3000, num_test=2)


def test_rendered_images_read_back_their_bin_and_the_central_half(data):
    images, y = data.train["image"], data.train["y"]
    bins, position = within_bin_positions(images, data.num_hue_bins)
    assert torch.equal(bins, y)
    # uint8 rounding moves the read hue by well under 1 % of a bin
    assert float(position.min()) > 0.24 and float(position.max()) < 0.76
    # uniform on [1/4, 3/4]: mean 1/2, mean absolute deviation from the centre 1/8
    assert float(position.mean()) == pytest.approx(0.5, abs=0.01)
    assert float((position - 0.5).abs().mean()) == pytest.approx(0.125, abs=0.005)


def test_point_mass_at_the_bin_centre_scores_one_eighth_and_the_data_itself_zero(data):
    images, y = data.train["image"], data.train["y"]
    gray = images.float().amax(1) / 255.0  # the value channel: the grey image before colouring
    centred = colourize(gray[:1500], (y[:1500].float() + 0.5) / data.num_hue_bins)
    result = within_bin_hue_w1(centred, images[1500:], data.num_hue_bins)
    assert result["w1"] == pytest.approx(POINT_MASS_W1, abs=0.01)
    assert result["generated_spread"] == pytest.approx(0.0, abs=0.005)
    same = within_bin_hue_w1(images[:1500], images[1500:], data.num_hue_bins)
    assert same["w1"] < 0.015 and same["bins_compared"] == data.num_hue_bins


def test_hue_wraps_around_and_black_images_have_none():
    # hues just below 1 and just above 0 average across the wrap, not to 1/2
    two_pixel = torch.zeros(1, 3, 1, 2)
    two_pixel[0, :, 0, 0] = colourize(torch.ones(1, 1, 1), torch.tensor([0.98]))[0, :, 0, 0]
    two_pixel[0, :, 0, 1] = colourize(torch.ones(1, 1, 1), torch.tensor([0.04]))[0, :, 0, 0]
    assert float(image_hue(two_pixel)[0]) == pytest.approx(0.01, abs=1e-3)
    black = torch.zeros(4, 3, 28, 28)
    assert image_hue_bins(black, 6).tolist() == [-1] * 4
    result = within_bin_hue_w1(black, colourize(torch.ones(4, 2, 2), torch.tensor([0.1, 0.3, 0.5, 0.7])), 6)
    assert result["unreadable_generated"] == 1.0 and math.isnan(result["w1"])
