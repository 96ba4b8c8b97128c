"""Procedural coloured shapes: shapes, dtypes, determinism, and the hue read back from pixels."""


import pytest
import torch

from cauvade_pyro.datasets import (
    SHAPE_NAMES,
    ConfoundedShapes,
    colourize,
    hue_in_bin,
    hue_to_rgb,
    rgb_to_hue,
    to_float,
)


@pytest.fixture(scope="module")
def data() -> ConfoundedShapes:
    return ConfoundedShapes(num_train=600, num_test=200, seed=3)


def test_layout_and_dtypes(data):
    assert data.image_shape == (3, 28, 28)
    assert data.name == "shapes" and data.class_names == SHAPE_NAMES[:3]
    assert data.num_classes == 3 and data.num_hue_bins == 6
    for split, n in ((data.train, 600), (data.test, 200)):
        assert split["image"].shape == (n, 3, 28, 28) and split["image"].dtype == torch.uint8
        for key in ("x", "y", "u"):
            assert split[key].shape == (n,) and split[key].dtype == torch.long
    images = to_float(data.train["image"])
    assert images.dtype == torch.float32 and 0.0 <= images.min() and images.max() <= 1.0


def test_deterministic_by_seed():
    first = ConfoundedShapes(num_train=50, num_test=10, seed=7)
    second = ConfoundedShapes(num_train=50, num_test=10, seed=7)
    other = ConfoundedShapes(num_train=50, num_test=10, seed=8)
    for key in ("x", "y", "u", "image"):
        assert torch.equal(first.train[key], second.train[key])
        assert torch.equal(first.test[key], second.test[key])
    assert not torch.equal(first.train["image"], other.train["image"])


def _pixel_hue_bins(images_uint8: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Read the hue bin of each image from its bright pixels (median hue, taken on the circle)."""
    images = to_float(images_uint8)
    value = images.amax(dim=1)  # (n, H, W)
    hue = rgb_to_hue(images, dim=1)
    bins = []
    for image_hue, image_value in zip(hue, value):
        bright = image_hue[image_value > 0.5]
        assert bright.numel() > 50, "shapes must be large"
        # Bins are read from hues well inside the bin, so a plain median is safe.
        bins.append(int(torch.floor(bright.median() * num_bins)) % num_bins)
    return torch.tensor(bins)


def test_pixel_hue_lands_in_the_labelled_bin(data):
    bins = _pixel_hue_bins(data.train["image"][:300], data.num_hue_bins)
    assert torch.equal(bins, data.train["y"][:300])


def test_reference_and_observational_samplers(data):
    generator = torch.Generator().manual_seed(0)
    reference = data.sample_reference(2, 100, generator)
    assert (reference["x"] == 2).all() and reference["image"].shape == (100, 3, 28, 28)
    assert torch.equal(_pixel_hue_bins(reference["image"], 6), reference["y"])
    observational = data.sample_observational(40, generator)
    assert set(observational) == {"x", "y", "u", "image"}
    conditional = data.sample_conditional(1, 50, generator)
    assert (conditional["x"] == 1).all() and torch.equal(_pixel_hue_bins(conditional["image"], 6), conditional["y"])


def test_render_every_shape_is_large_and_centred():
    data = ConfoundedShapes(num_train=10, num_test=10, num_classes=5)
    x = torch.arange(5).repeat_interleave(20)
    images = to_float(data.render(x, torch.zeros_like(x), torch.Generator().manual_seed(0)))
    coverage = (images.amax(dim=1) > 0.3).float()
    area = coverage.sum(dim=(1, 2))
    assert area.min() > 80  # at least ~10 % of the canvas
    assert coverage[:, :2].sum() == 0 and coverage[:, -2:].sum() == 0  # a black border: nothing cut off
    rows = torch.arange(28.0)
    centre_row = (coverage.sum(2) * rows).sum(1) / area
    centre_col = (coverage.sum(1) * rows).sum(1) / area
    assert ((centre_row - 13.5).abs() < 4).all() and ((centre_col - 13.5).abs() < 4).all()


def test_colour_helpers():
    torch.testing.assert_close(hue_to_rgb(torch.tensor([0.5])), torch.tensor([[0.0, 1.0, 1.0]]))
    hue = torch.rand(200, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rgb_to_hue(hue_to_rgb(hue), dim=-1), hue, atol=1e-5, rtol=0)
    coloured = colourize(torch.full((4, 5, 6), 0.5), torch.zeros(4))
    assert coloured.shape == (4, 3, 5, 6)
    assert torch.allclose(coloured[:, 0], torch.full((4, 5, 6), 0.5)) and coloured[:, 1:].abs().max() == 0
    y = torch.arange(6).repeat(50)
    sampled = hue_in_bin(y, 6, torch.Generator().manual_seed(0))
    position_in_bin = sampled * 6 - y
    assert (position_in_bin >= 0.25).all() and (position_in_bin <= 0.75).all()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_classes"):
        ConfoundedShapes(num_train=5, num_test=5, num_classes=6)
    data = ConfoundedShapes(num_train=5, num_test=5)
    with pytest.raises(ValueError, match="x"):
        data.render(torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="y"):
        data.render(torch.tensor([0]), torch.tensor([6]))

