"""The sub-class mix of do(x) images (cauvade_pyro.metrics.subclass): exact on a reader whose reading is known,
about 0 for reference images, and the known TV for images of one sub-class only — through the CLI's evaluation
(cauvade_pyro.evaluate.interventional_images) on the real Colored Fashion-MNIST."""

from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from cauvade_pyro.metrics.subclass import SubclassReader, has_subclasses, subclass_mix, total_variation

LABELS = (0, 2, 4, 5, 6, 7, 9)
GROUPS = ((0, 2, 4, 6), (5, 7, 9))
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


class CodeReader(nn.Module):
    """Stands in for the trained reader: the label index is written in pixel (0, 0, 0) as index / 10."""

    num_classes = len(LABELS)

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        code = images[:, 0, 0, 0:1] * 10
        logits = -(code - torch.arange(len(LABELS), dtype=images.dtype)) ** 2
        return logits, torch.zeros(len(images), 6)


def coded(labels) -> torch.Tensor:
    images = torch.zeros(len(labels), 3, 28, 28)
    images[:, 0, 0, 0] = torch.tensor([LABELS.index(label) for label in labels], dtype=torch.float32) / 10
    return images


def test_tv_is_exact_for_a_known_reading():
    reader = SubclassReader(CodeReader(), LABELS, GROUPS)
    reference = coded([5] * 50 + [7] * 30 + [9] * 20)
    assert reader.histogram(reference, 1).tolist() == pytest.approx([0.5, 0.3, 0.2])
    assert subclass_mix(reader, reference[torch.randperm(100)], reference, 1)["tv"] == pytest.approx(0.0)
    # one sub-class only: TV = 1 - its share in the reference
    for label, share in ((5, 0.5), (7, 0.3), (9, 0.2)):
        assert subclass_mix(reader, coded([label] * 40), reference, 1)["tv"] == pytest.approx(1 - share)
    # half the sub-classes' mass moved: ½ Σ |p - q| = ½ (|0.25 - 0.5| + |0.25 - 0.3| + |0.5 - 0.2|)
    mixed = coded([5] * 25 + [7] * 25 + [9] * 50)
    assert subclass_mix(reader, mixed, reference, 1)["tv"] == pytest.approx(0.3)
    # the reference's histogram may be given instead of its images
    given = subclass_mix(reader, mixed, None, 1, reference_histogram=reader.histogram(reference, 1))
    assert given["tv"] == pytest.approx(0.3) and given["labels"] == [5, 7, 9]
    assert total_variation(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(1.0)


def test_datasets_without_subclasses_have_no_reader():
    from cauvade_pyro.datasets import ConfoundedShapes
    from cauvade_pyro.metrics.subclass import train_subclass_reader

    shapes = ConfoundedShapes(num_train=4, num_test=4)
    assert not has_subclasses(shapes) and train_subclass_reader(shapes) is None


class Bank:
    """A diagram whose do(x) image means are drawn uniformly from a fixed bank of images per x."""

    def __init__(self, banks: dict[int, torch.Tensor]):
        self.banks = banks

    def model(self, data=None, num_samples=None):
        n = num_samples or len(data["x"])
        with pyro.plate("data", n):
            x = pyro.sample("x", dist.Categorical(logits=torch.zeros(len(self.banks))))
            size = len(self.banks[0])
            index = pyro.sample("index", dist.Categorical(logits=torch.zeros(size)))
            stacked = torch.stack([self.banks[k] for k in sorted(self.banks)])
            pyro.deterministic("image_mean", stacked[x, index], event_dim=3)


class NoJudge:
    def predict(self, images):
        zeros = torch.zeros(len(images), dtype=torch.long)
        return zeros, zeros


@pytest.mark.skipif(not SYSTEM_FASHION.is_dir(), reason="needs `apt-get install dataset-fashion-mnist`")
def test_cli_evaluation_reads_the_subclass_mix_of_do_x_images(tmp_path):
    from cauvade_pyro.datasets import ConfoundedImages
    from cauvade_pyro.evaluate import interventional_images
    from cauvade_pyro.inference import seed_everything
    from cauvade_pyro.metrics.subclass import train_subclass_reader

    data = ConfoundedImages("fashion_mnist", "binary", root=tmp_path / "data", num_train=200, num_test=100)
    assert has_subclasses(data) and data.subclass_labels == LABELS
    reader = train_subclass_reader(data, num_images=8000, epochs=3, cache_dir=tmp_path / "cache")
    n = 1000
    # the evaluation's own reference for x is drawn with seed 10000 + x; these banks use other seeds
    reference_like = {x: data.sample_reference(x, n, torch.Generator().manual_seed(50 + x))["image"].float() / 255
                      for x in (0, 1)}
    seed_everything(0)
    rows, _ = interventional_images(Bank(reference_like), data, NoJudge(), n, 4, subclass_reader=reader)
    for row in rows:  # reference images against reference images: sampling noise only (about 0.05 at n = 1000)
        assert row["subclass_tv"] < 0.1, row["subclass_mix"]
    evaluation_reference = data.sample_reference(1, n, torch.Generator().manual_seed(10_001))
    for label in GROUPS[1]:  # footwear drawn as one sub-class only
        one = data.render_labels(torch.full((n,), label), evaluation_reference["y"],
                                 torch.Generator().manual_seed(label), split="test").float() / 255
        seed_everything(0)
        rows, _ = interventional_images(Bank({0: reference_like[0], 1: one}), data, NoJudge(), n, 4,
                                        subclass_reader=reader)
        known = 1 - float((evaluation_reference["label"] == label).float().mean())  # about 2/3
        # the reader's confusions can only shrink a TV (the same channel on both sides), never grow it
        assert 0.75 * known <= rows[1]["subclass_tv"] <= known + 0.03, (label, known, rows[1]["subclass_mix"])
