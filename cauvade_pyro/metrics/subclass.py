r"""Sub-class mix of generated images: does do(x) draw the reference's mix of the base labels a class is made of?

With a binary X on Colored Fashion-MNIST each value of X groups several base labels, its *sub-classes* (tops:
T-shirt/top, Pullover, Coat, Shirt; footwear: Sandal, Sneaker, Ankle boot). A generator can follow x and still
draw nearly only one sub-class (e.g. footwear that is all boots). The measure:

- a **sub-class reader**: an :class:`~cauvade_pyro.metrics.judge.AttributeJudge` whose class head predicts the
  base label, trained with the judge's recipe (:func:`~cauvade_pyro.metrics.judge.train_judge`: real images of
  the *train* split with labels and hue bins drawn uniformly and independently, randomly blurred because
  generated means are blurry), its own seed (:data:`SUBCLASS_SEED`), cached as ``subclass-<key>.pt`` keyed by
  the dataset's generating parameters. It is never used in a training loss;
- for images of class x, the histogram :math:`p` of the sub-class the reader reads among x's own sub-classes
  (the argmax over those labels only);
- the **total-variation distance** between the generated images' histogram and the reference's, both read by
  the same reader (its confusions act on both sides alike, so they can only shrink the TV):

.. math::

    \mathrm{TV}(p_g, p_r) = \tfrac12 \sum_k |p_g(k) - p_r(k)| \in [0, 1].

Two independent reference sets score about 0 (sampling noise); a generator that draws one sub-class k only
scores at most :math:`1 - p_r(k)` (e.g. 2/3 for footwear, whose three labels are equally common in the test
split); the reader's confusions shrink it (measured with the default reader: 0.60–0.62 for one footwear label,
0.42–0.59 for one label of tops).
Datasets whose classes have one label each (the shapes, ``x_form="classes"``) have no sub-classes: no reader.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from cauvade_pyro.metrics.judge import AttributeJudge, train_judge

__all__ = ["SUBCLASS_EPOCHS", "SUBCLASS_IMAGES", "SUBCLASS_SEED", "SubclassReader", "has_subclasses", "subclass_mix",
           "total_variation", "train_subclass_reader"]

SUBCLASS_SEED = 2  # differs from the judge's (0) and the FID feature net's (1)
# Sub-classes are harder to tell apart than the judge's classes: 3× its images, 5 epochs (about a minute on one
# CPU thread, once per cache). Read on real reference images of Colored Fashion-MNIST the reader is right in
# 0.95 of footwear and 0.76 of tops (benchmarks/results/fashion_mnist.json; 8000 images, 3 epochs: 0.89 and 0.62).
SUBCLASS_IMAGES = 24000
SUBCLASS_EPOCHS = 5


def has_subclasses(dataset) -> bool:
    """Whether some class of ``dataset`` groups several base labels (Colored Fashion-MNIST / MNIST, binary X).

    >>> from cauvade_pyro.datasets import ConfoundedShapes
    >>> has_subclasses(ConfoundedShapes(num_train=2, num_test=2))
    False
    """
    groups = getattr(dataset, "groups", None)
    return bool(groups) and hasattr(dataset, "render_labels") and any(len(group) > 1 for group in groups)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """½ Σ |p − q| of two histograms.

    >>> total_variation(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1 / 3, 1 / 3, 1 / 3]))
    0.6666666865348816
    """
    p, q = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    if p.shape != q.shape:
        raise ValueError(f"p, q: histograms of different sizes {tuple(p.shape)} and {tuple(q.shape)}")
    return float(0.5 * (p - q).abs().sum().to(torch.float32))


class _SubclassView:
    """The dataset seen by its base labels: what :func:`train_judge` needs to train a reader of them."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.labels: tuple[int, ...] = tuple(dataset.subclass_labels)
        self.name = f"{dataset.name}-subclasses"
        self.num_classes = len(self.labels)
        self.num_hue_bins = dataset.num_hue_bins
        self.image_shape = dataset.image_shape

    @property
    def generating_params(self) -> dict[str, Any]:
        return {**dataset_params(self.dataset), "reader": "subclass", "labels": list(self.labels)}

    def render(self, index: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.dataset.render_labels(torch.tensor(self.labels)[index], y, generator, split="train")


def dataset_params(dataset) -> dict[str, Any]:
    return dict(getattr(dataset, "generating_params", {"name": dataset.name}))


class SubclassReader:
    """Reads the base label of images of a given class x, among x's own sub-classes (``groups[x]``).

    ``judge`` is an :class:`AttributeJudge` whose class head has one output per label of ``labels`` (sorted).
    """

    def __init__(self, judge: AttributeJudge, labels: tuple[int, ...], groups: tuple[tuple[int, ...], ...]):
        if judge.num_classes != len(labels):
            raise ValueError(f"judge: {judge.num_classes} class outputs for {len(labels)} labels")
        self.judge, self.labels, self.groups = judge, tuple(labels), tuple(tuple(g) for g in groups)

    @torch.no_grad()
    def read(self, images: torch.Tensor, x: int, batch_size: int = 1024) -> torch.Tensor:
        """Index into ``groups[x]`` of the sub-class read off each float image in [0, 1] (or uint8)."""
        columns = torch.tensor([self.labels.index(label) for label in self.groups[x]])
        device = next(self.judge.parameters()).device
        self.judge.eval()
        reads = []
        for start in range(0, len(images), batch_size):
            batch = torch.as_tensor(images[start : start + batch_size])
            batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
            logits, _ = self.judge(batch.to(device))
            reads.append(logits[:, columns.to(device)].argmax(-1).cpu())
        return torch.cat(reads) if reads else torch.empty(0, dtype=torch.long)

    def histogram(self, images: torch.Tensor, x: int) -> torch.Tensor:
        """Share of images of class x read as each of x's sub-classes (in the order of ``groups[x]``)."""
        reads = self.read(images, x)
        if len(reads) == 0:
            raise ValueError("images: need at least one image")
        return torch.bincount(reads, minlength=len(self.groups[x])).double() / len(reads)


def subclass_mix(reader: SubclassReader, generated: torch.Tensor, reference: torch.Tensor | None, x: int,
                 reference_histogram: torch.Tensor | None = None) -> dict:
    """TV distance between the sub-class mix read off ``generated`` images of class x and the reference's.

    Give the ``reference`` images of class x, or their ``reference_histogram`` (:meth:`SubclassReader.histogram`)
    when it is compared with many generated sets. Returns ``tv``, both histograms and the sub-classes' labels.
    """
    if reference_histogram is None:
        if reference is None:
            raise ValueError("reference: give the reference images or their reference_histogram")
        reference_histogram = reader.histogram(reference, x)
    generated_histogram = reader.histogram(generated, x)
    return {
        "tv": total_variation(generated_histogram, reference_histogram),
        "generated": [round(float(v), 4) for v in generated_histogram],
        "reference": [round(float(v), 4) for v in reference_histogram],
        "labels": list(reader.groups[x]),
    }


def train_subclass_reader(
    dataset,
    seed: int = SUBCLASS_SEED,
    num_images: int = SUBCLASS_IMAGES,
    epochs: int = SUBCLASS_EPOCHS,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
) -> SubclassReader | None:
    """Train (or load from ``cache_dir``: ``subclass-<key>.pt``) the sub-class reader of ``dataset``; ``None`` if
    its classes have no sub-classes (:func:`has_subclasses`)."""
    if not has_subclasses(dataset):
        return None
    view = _SubclassView(dataset)
    judge = train_judge(view, seed=seed, num_images=num_images, epochs=epochs, device=device, cache_dir=cache_dir,
                        prefix="subclass")
    return SubclassReader(judge, view.labels, dataset.groups)
