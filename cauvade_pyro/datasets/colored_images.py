r"""Colored Fashion-MNIST and Colored MNIST: the confounded colour benchmark on real grey images (docs/design.md §5).

(U, X, Y) come from :class:`~cauvade_pyro.datasets.scm.ConfoundedColourSCM`. X is the class of the base image:
its 10 labels (``x_form="classes"``) or one of two groups of labels (``x_form="binary"``: Fashion-MNIST tops
{T-shirt/top, Pullover, Coat, Shirt} vs footwear {Sandal, Sneaker, Ankle boot}, the other labels unused;
MNIST digits 0-4 vs 5-9). An image is a base image of class X drawn uniformly, with replacement, from the
split's pool, coloured in HSV with saturation 1, value = grey level and a hue inside the central half of bin Y:

.. math::

    B \sim \mathrm{Uniform}\{b : \mathrm{label}(b) \in \mathrm{group}(X)\}, \qquad
    \mathrm{hue} \sim \mathrm{Uniform}\Big[\frac{y + 1/4}{N_Y}, \frac{y + 3/4}{N_Y}\Big], \qquad
    \mathrm{image} = \frac{B}{255} \cdot \mathrm{rgb}(\mathrm{hue}).

``train`` draws from the base train split; ``test``, the unconfounded reference for do(X = x) (U ~ P(U),
Y ~ P(Y | x, U)) and ``render(..., split="test")`` from the base test split. Rendering is vectorised and
deterministic given a ``torch.Generator``.

The base images are read by torchvision from ``root/FashionMNIST/raw`` (``root/MNIST/raw``);
:func:`prepare_idx_files` fills that folder from gzipped copies (e.g. Debian's ``dataset-fashion-mnist``).
"""

from __future__ import annotations

import gzip
import hashlib
import operator
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from cauvade_pyro.config import (
    BASE_DATASETS,
    IDX_FILES,
    X_FORMS,
    DatasetNotFoundError,
    locate_idx_files,
)
from cauvade_pyro.datasets.scm import ConfoundedColourSCM
from cauvade_pyro.datasets.shapes import _to_uint8, checked_scm, colourize, hue_in_bin, scm_digest, to_float

__all__ = [
    "BASES",
    "X_FORMS",
    "ConfoundedImages",
    "DatasetNotFoundError",
    "default_data_root",
    "load_base_images",
    "prepare_idx_files",
]

BASES: tuple[str, ...] = tuple(BASE_DATASETS)
IMAGE_SIZE = 28
# Bump when the colouring changes: judges cached on disk are keyed on it.
RENDER_VERSION = 1
# Images coloured at once (bounds the float32 working memory to about 80 MB).
_CHUNK = 8192

LABEL_NAMES: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(digit) for digit in range(10)),
}
# x_form="binary": the base labels of each value of X, and the names of those groups.
BINARY_GROUPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "fashion_mnist": ((0, 2, 4, 6), (5, 7, 9)),
    "mnist": ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)),
}
BINARY_NAMES: dict[str, tuple[str, ...]] = {"fashion_mnist": ("tops", "footwear"), "mnist": ("0-4", "5-9")}


def default_data_root() -> Path:
    """``$CAUVADE_CACHE/data`` (default ``~/.cache/cauvade_pyro/data``), like the CLI's ``${cache_dir}/data``."""
    cache = os.environ.get("CAUVADE_CACHE") or Path(os.environ.get("HOME", ".")) / ".cache" / "cauvade_pyro"
    return Path(cache) / "data"


def prepare_idx_files(base: str, root: str | os.PathLike, system_dir: str | os.PathLike | None = "auto") -> Path:
    """Put the four un-gzipped IDX files of ``base`` where torchvision reads them; returns ``root/<Folder>/raw``.

    A file already there is kept; otherwise its ``.gz`` there, else in ``system_dir`` ("auto": the folder of
    the base's system package, e.g. ``/usr/share/datasets/fashion-mnist``; None: none) is decompressed
    atomically (temporary file, then rename). Raises :class:`DatasetNotFoundError` naming where it looked.
    """
    sources = locate_idx_files(base, root, system_dir)
    raw = Path(os.path.expanduser(os.fspath(root))) / BASE_DATASETS[base][0] / "raw"
    for name in IDX_FILES:
        target, source = raw / name, sources[name]
        if source == target:
            continue
        raw.mkdir(parents=True, exist_ok=True)
        tmp = raw / f".{name}.{os.getpid()}.tmp"
        try:
            with gzip.open(source, "rb") as compressed, open(tmp, "wb") as out:
                shutil.copyfileobj(compressed, out, length=1 << 20)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return raw


def load_base_images(
    base: str, root: str | os.PathLike | None = None, download: bool = False, system_dir: str | os.PathLike | None = "auto"
) -> dict[str, torch.Tensor]:
    """``train_images``/``test_images`` (uint8 N×28×28) and ``train_labels``/``test_labels`` (long) of ``base``.

    Read through ``torchvision.datasets.FashionMNIST`` / ``MNIST`` after :func:`prepare_idx_files`;
    ``download=True`` lets torchvision fetch missing files (needs a network).
    """
    if base not in BASES:
        raise ValueError(f"base: must be one of {BASES}, got {base!r}")
    root = Path(os.path.expanduser(os.fspath(root))) if root is not None else default_data_root()
    try:
        prepare_idx_files(base, root, system_dir)
    except DatasetNotFoundError:
        if not download:
            raise
    # Only here: importing torchvision takes seconds.
    from torchvision import datasets as tv_datasets

    loader = tv_datasets.FashionMNIST if base == "fashion_mnist" else tv_datasets.MNIST
    out = {}
    for split, train in (("train", True), ("test", False)):
        try:
            data = loader(str(root), train=train, download=download)
        except RuntimeError as error:  # torchvision: "Dataset not found ..." or "Error downloading ..."
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DatasetNotFoundError(f"{base}: torchvision could not load it from {root}: {message}") from None
        out[f"{split}_images"] = data.data.to(torch.uint8)
        out[f"{split}_labels"] = data.targets.to(torch.long)
    return out


class _Pool:
    """The base images of one split, indexed by class: ``order[start[x] : start[x] + count[x]]`` are class x's."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, groups: tuple[tuple[int, ...], ...], what: str):
        self.images = images
        self.labels = labels
        label_to_class = torch.full((int(labels.max()) + 1 if labels.numel() else 1,), -1, dtype=torch.long)
        for x, group in enumerate(groups):
            label_to_class[[label for label in group if label < len(label_to_class)]] = x
        image_class = label_to_class[labels]
        used = (image_class >= 0).nonzero(as_tuple=True)[0]
        self.order = used[torch.argsort(image_class[used], stable=True)]
        self.count = torch.bincount(image_class[used], minlength=len(groups))
        self.start = torch.cumsum(self.count, 0) - self.count
        if int(self.count.min()) == 0:
            empty = int((self.count == 0).nonzero()[0])
            raise ValueError(f"{what}: no base image of class {empty} (labels {groups[empty]})")

    def draw(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Indices into ``images`` of one uniformly drawn image of class ``x[i]`` per i (with replacement)."""
        count = self.count[x]
        offset = (torch.rand(x.shape, generator=generator, dtype=torch.float64) * count).long()
        return self.order[self.start[x] + torch.minimum(offset, count - 1)]


class ConfoundedImages:
    """Confounded colour benchmark on Colored Fashion-MNIST (``base="fashion_mnist"``) or Colored MNIST.

    ``train`` / ``test`` are dicts of ``x`` (class), ``y`` (hue bin), ``u`` (hidden confounder, for evaluation
    only), ``label`` (the base image's own label) as LongTensors and ``image`` as uint8 (n, 3, 28, 28), drawn
    observationally from ``scm``; the same interface as :class:`~cauvade_pyro.datasets.ConfoundedShapes`.
    """

    image_shape = (3, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(
        self,
        base: str = "fashion_mnist",
        x_form: str = "binary",
        root: str | os.PathLike | None = None,
        download: bool = False,
        num_train: int = 60000,
        num_test: int = 10000,
        num_hue_bins: int = 6,
        num_confounders: int = 3,
        confounding: float = 0.9,
        seed: int = 0,
        system_dir: str | os.PathLike | None = "auto",
        scm: ConfoundedColourSCM | None = None,
    ) -> None:
        if base not in BASES:
            raise ValueError(f"base: must be one of {BASES}, got {base!r}")
        if x_form not in X_FORMS:
            raise ValueError(f"x_form: must be one of {X_FORMS}, got {x_form!r}")
        for key, value in (("num_train", num_train), ("num_test", num_test)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: must be a positive int, got {value!r}")
        try:
            seed = operator.index(seed)
        except TypeError:
            raise ValueError(f"seed: must be an int, got {seed!r}") from None
        if download not in (True, False):
            raise ValueError(f"download: must be True or False, got {download!r}")
        self.name = base
        self.base = base
        self.x_form = x_form
        self.root = Path(os.path.expanduser(os.fspath(root))) if root is not None else default_data_root()
        if x_form == "binary":
            self.groups = BINARY_GROUPS[base]
            self.class_names: tuple[str, ...] = BINARY_NAMES[base]
        else:
            self.groups = tuple((label,) for label in range(10))
            self.class_names = LABEL_NAMES[base]
        self.label_names = LABEL_NAMES[base]
        self.num_classes = len(self.groups)
        if scm is None:
            self.scm = ConfoundedColourSCM.make(self.num_classes, num_hue_bins, num_confounders, confounding)
        else:  # your own SCM: its sizes must match; `confounding` is not used
            self.scm = checked_scm(scm, self.num_classes, num_hue_bins, num_confounders)
        self.custom_scm = scm is not None
        self.num_hue_bins = num_hue_bins
        self.num_confounders = num_confounders
        self.confounding = None if self.custom_scm else float(confounding)
        self.seed = seed

        data = load_base_images(base, self.root, bool(download), system_dir)
        for split in ("train", "test"):
            images, labels = data[f"{split}_images"], data[f"{split}_labels"]
            if images.dim() != 3 or tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE) or len(labels) != len(images):
                raise ValueError(f"{base} {split} split: expected N×28×28 images with N labels, "
                                 f"got {tuple(images.shape)} and {tuple(labels.shape)}")
        self._pools = {
            split: _Pool(data[f"{split}_images"], data[f"{split}_labels"], self.groups, f"{base} {split} split")
            for split in ("train", "test")
        }
        self._label_pools: dict[str, _Pool] = {}  # pools by base label, built on first use (render_labels)
        digest = hashlib.sha1()
        for key in ("train_images", "train_labels", "test_images", "test_labels"):
            digest.update(data[key].contiguous().numpy().tobytes())
        self.base_digest = digest.hexdigest()[:16]

        generator = torch.Generator().manual_seed(seed)
        self.train = self.sample_observational(num_train, generator, split="train")
        self.test = self.sample_observational(num_test, generator, split="test")

    @property
    def generating_params(self) -> dict[str, Any]:
        """Everything that determines the data-generating process (keys caches such as trained judges).

        Like :class:`~cauvade_pyro.datasets.ConfoundedShapes`'s it leaves out ``num_train``, ``num_test`` and
        ``seed`` (they pick draws, not the process) and adds the base data: its split sizes and a content hash.
        """
        params = {
            "name": self.name,
            "x_form": self.x_form,
            "render_version": RENDER_VERSION,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "num_hue_bins": self.num_hue_bins,
            "num_confounders": self.num_confounders,
            "confounding": self.confounding,
            "base_sizes": [len(self._pools["train"].images), len(self._pools["test"].images)],
            "base_digest": self.base_digest,
        }
        if self.custom_scm:  # the default SCM keeps the keys of the caches made before this option
            params["scm"] = scm_digest(self.scm)
        return params

    def _render(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None, split: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(x, dtype=torch.long)
        y = torch.as_tensor(y, dtype=torch.long)
        if x.shape != y.shape or x.dim() != 1:
            raise ValueError(f"x, y: expected equal 1-d shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_classes):
            raise ValueError(f"x: classes must lie in [0, {self.num_classes - 1}]")
        if split not in self._pools:
            raise ValueError(f"split: must be 'train' or 'test', got {split!r}")
        pool = self._pools[split]
        index = pool.draw(x, generator)
        hue = hue_in_bin(y, self.num_hue_bins, generator)
        images = torch.empty((len(x), *self.image_shape), dtype=torch.uint8)
        for begin in range(0, len(x), _CHUNK):
            rows = slice(begin, begin + _CHUNK)
            images[rows] = _to_uint8(colourize(to_float(pool.images[index[rows]]), hue[rows]))
        return images, pool.labels[index]

    @property
    def subclass_labels(self) -> tuple[int, ...]:
        """The base labels the classes of X are made of, sorted (binary X: several per class, its sub-classes)."""
        return tuple(sorted({label for group in self.groups for label in group}))

    def render_labels(
        self, labels: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None, split: str = "train"
    ) -> torch.Tensor:
        """uint8 images (n, 3, 28, 28): base images of the base ``labels`` (e.g. Sandal = 5) from ``split``,
        coloured as :meth:`render` colours them, with hues in bins ``y`` (what the sub-class reader
        :func:`cauvade_pyro.metrics.subclass.train_subclass_reader` is trained on)."""
        labels = torch.as_tensor(labels, dtype=torch.long)
        y = torch.as_tensor(y, dtype=torch.long)
        if labels.shape != y.shape or labels.dim() != 1:
            raise ValueError(f"labels, y: expected equal 1-d shapes, got {tuple(labels.shape)} and {tuple(y.shape)}")
        known = self.subclass_labels
        position = torch.full((max(known) + 1,), -1, dtype=torch.long)
        position[list(known)] = torch.arange(len(known))
        outside = (labels < 0) | (labels > max(known))
        if bool(outside.any()) or bool((position[labels.clamp(0, max(known))] < 0).any()):
            raise ValueError(f"labels: must be base labels of this dataset's classes {known}")
        if split not in self._pools:
            raise ValueError(f"split: must be 'train' or 'test', got {split!r}")
        if split not in self._label_pools:
            pool = self._pools[split]
            self._label_pools[split] = _Pool(pool.images, pool.labels, tuple((label,) for label in known),
                                             f"{self.base} {split} split")
        pool = self._label_pools[split]
        index = pool.draw(position[labels], generator)
        hue = hue_in_bin(y, self.num_hue_bins, generator)
        images = torch.empty((len(labels), *self.image_shape), dtype=torch.uint8)
        for begin in range(0, len(labels), _CHUNK):
            rows = slice(begin, begin + _CHUNK)
            images[rows] = _to_uint8(colourize(to_float(pool.images[index[rows]]), hue[rows]))
        return images

    def render(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None, split: str = "train"
    ) -> torch.Tensor:
        """uint8 images (n, 3, 28, 28): base images of classes ``x`` from ``split`` coloured with hues in bins ``y``."""
        return self._render(x, y, generator, split)[0]

    def sample_observational(
        self, n: int, generator: torch.Generator | None = None, split: str = "train"
    ) -> dict[str, torch.Tensor]:
        """Observational draws ``x, y, u, label, image`` (confounded), base images from ``split``."""
        sample = self.scm.sample(n, generator)
        sample["image"], sample["label"] = self._render(sample["x"], sample["y"], generator, split)
        return sample

    def sample_conditional(
        self, x: int, n: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Observational images given X = x: U ~ P(U | x), Y ~ P(Y | x, U), a base test image of class x, hue Y."""
        sample = self.scm.sample_conditional(x, n, generator)
        sample["image"], sample["label"] = self._render(sample["x"], sample["y"], generator, "test")
        return sample

    def sample_reference(
        self, x: int, n: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Unconfounded reference for do(X = x): U ~ P(U), Y ~ P(Y | x, U), a base test image of class x, hue Y."""
        sample = self.scm.sample_interventional(x, n, generator)
        sample["image"], sample["label"] = self._render(sample["x"], sample["y"], generator, "test")
        return sample

    def __repr__(self) -> str:
        return (
            f"ConfoundedImages(base={self.base!r}, x_form={self.x_form!r}, root={str(self.root)!r}, "
            f"num_train={len(self.train['x'])}, num_test={len(self.test['x'])}, num_hue_bins={self.num_hue_bins}, "
            f"num_confounders={self.num_confounders}, confounding={self.confounding}, seed={self.seed})"
        )
