"""The shared per-x read-out of generated images (:func:`cauvade_pyro.evaluate.read_images`), used by the CLI's
evaluation and by benchmarks/quality.py: reference images read against themselves score as the reference does,
and a deliberately shifted set scores worse on the read-out that sees the shift."""

import pytest
import torch

from cauvade_pyro.datasets import ConfoundedShapes, colourize
from cauvade_pyro.evaluate import read_images
from cauvade_pyro.metrics import circular_w1
from cauvade_pyro.metrics.hue import image_hue, image_hue_bins
from cauvade_pyro.metrics.subclass import total_variation

N, X = 400, 1


class PixelJudge:
    """Reads the hue bin from the pixels and calls the first quarter of every set class 0 (the rest class X)."""

    def __init__(self, num_bins: int):
        self.num_bins = num_bins

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        classes = torch.full((len(images),), X)
        classes[: len(images) // 4] = 0
        return classes, image_hue_bins(images, self.num_bins).clamp_min(0)


class ParityReader:
    """A sub-class reader whose two sub-classes of every class are the even and the odd hue bins."""

    def __init__(self, num_bins: int, num_classes: int):
        self.num_bins = num_bins
        self.groups = [(10 * x, 10 * x + 1) for x in range(num_classes)]

    def histogram(self, images: torch.Tensor, x: int) -> torch.Tensor:
        reads = image_hue_bins(images, self.num_bins).clamp_min(0) % 2
        return torch.bincount(reads, minlength=2).double() / len(reads)


@pytest.fixture(scope="module")
def reference():
    data = ConfoundedShapes(num_train=8, num_test=4)
    draw = data.sample_reference(X, N, torch.Generator().manual_seed(7))
    return data, draw


def test_reference_images_read_against_themselves(reference):
    data, draw = reference
    k = data.num_hue_bins
    images = draw["image"].float() / 255
    read = read_images(images, X, data, PixelJudge(k), draw["image"],
                       subclass_reader=ParityReader(k, data.num_classes))
    # the shapes are painted inside the central half of bin y: the pixels' bin is the label, by hand
    hand = torch.bincount(draw["y"], minlength=k).double() / N
    assert torch.equal(read["p_do_from_images"], hand)
    assert torch.equal(read["judge_hue"], draw["y"])
    positions = data.scm.bin_centres()
    truth, observational = data.scm.interventional_y().float(), data.scm.observational_y_given_x().float()
    assert read["w1_images_to_truth"] == pytest.approx(circular_w1(hand, truth[X], positions), abs=1e-12)
    assert read["w1_images_to_observational"] == pytest.approx(circular_w1(hand, observational[X], positions),
                                                               abs=1e-12)
    assert read["w1_images_to_truth"] < 0.05  # 400 draws of the truth itself
    assert read["class_accuracy"] == 0.75
    assert read["within_bin_hue_w1"] == pytest.approx(0.0, abs=1e-9)
    assert read["hue_unreadable"] == 0.0
    assert read["subclass"]["tv"] == pytest.approx(0.0, abs=1e-9)
    assert read["subclass"]["labels"] == [10 * X, 10 * X + 1]


def test_shifted_images_score_worse(reference):
    data, draw = reference
    k = data.num_hue_bins
    images = draw["image"].float() / 255
    judge, reader = PixelJudge(k), ParityReader(k, data.num_classes)
    gray = images.amax(1)  # V of the HSV colouring: the grey shape
    same = read_images(images, X, data, judge, draw["image"], subclass_reader=reader)

    # every hue moved to the lower edge of its bin: the judge's histogram is unchanged, the within-bin W1 is not
    edge = read_images(colourize(gray, (draw["y"].float() + 0.02) / k), X, data, judge, draw["image"])
    assert torch.equal(edge["p_do_from_images"], same["p_do_from_images"])
    assert edge["within_bin_hue_w1"] > 0.4  # positions near 0 against uniform on [0.25, 0.75]
    assert edge["subclass"] is None

    # every hue moved one bin on: the histogram rolls, W1 to the truth grows, the parity mix flips
    rolled_images = colourize(gray, image_hue(images).add(1 / k).remainder(1))
    histogram = reader.histogram(draw["image"], X)
    rolled = read_images(rolled_images, X, data, judge, draw["image"], subclass_reader=reader,
                         reference_histogram=histogram)
    assert torch.equal(rolled["p_do_from_images"], same["p_do_from_images"].roll(1))
    assert rolled["w1_images_to_truth"] > same["w1_images_to_truth"] + 0.03
    assert rolled["subclass"]["tv"] == pytest.approx(total_variation(histogram.flip(0), histogram), abs=1e-9)
    assert rolled["subclass"]["tv"] > 0.05
    # the precomputed reference histogram and the reference images give the same mix
    again = read_images(rolled_images, X, data, judge, draw["image"], subclass_reader=reader)
    assert again["subclass"] == rolled["subclass"]

    # a tenth of the images black: no hue to read from their pixels
    dark = images.clone()
    dark[: N // 10] = 0
    assert read_images(dark, X, data, judge, draw["image"])["hue_unreadable"] == pytest.approx(0.1)
