r"""Procedural coloured shapes: the download-free base of the confounded colour benchmark (docs/design.md §5).

An image is the grey mask of shape X (large, filled, roughly centred; jitter of ±2 px in position,
±10 % in size and a brightness in [0.75, 1]) coloured in HSV with saturation 1, value = grey level and a hue
drawn uniformly inside the central half of hue bin Y:

.. math::

    \mathrm{hue} \sim \mathrm{Uniform}\Big[\frac{y + 1/4}{N_Y}, \frac{y + 3/4}{N_Y}\Big], \qquad
    \mathrm{image} = \mathrm{grey}(x) \cdot \mathrm{rgb}(\mathrm{hue}).

(X, Y, U) come from :class:`~cauvade_pyro.datasets.scm.ConfoundedColourSCM`; the unconfounded reference for
do(X = x) renders U ~ P(U), Y ~ P(Y | x, U). Rendering is vectorised over images (signed-distance functions on a
coordinate grid, one soft pixel of anti-aliasing) and deterministic given a ``torch.Generator``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from cauvade_pyro.datasets.scm import ConfoundedColourSCM

__all__ = [
    "SHAPE_NAMES",
    "ConfoundedShapes",
    "checked_scm",
    "scm_digest",
    "colourize",
    "hue_in_bin",
    "hue_to_rgb",
    "render_shape_masks",
    "rgb_to_hue",
    "to_float",
]

SHAPE_NAMES: tuple[str, ...] = ("disc", "square", "cross", "triangle", "ring")
IMAGE_SIZE = 28
# Bump when the renderer changes: judges cached on disk are keyed on it.
RENDER_VERSION = 1

_BASE_RADIUS = 9.0  # px; shapes span about 2/3 of the 28 px canvas and never touch its 2 px border
_POSITION_JITTER = 2.0  # px
_SIZE_JITTER = 0.10  # relative
_MIN_BRIGHTNESS = 0.75


def hue_to_rgb(hue: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] of a hue in [0, 1) at full saturation and value (HSV); shape (..., 3).

    >>> hue_to_rgb(torch.tensor([0.0, 1 / 3, 2 / 3])).round().tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    hue = torch.as_tensor(hue, dtype=torch.float32)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hue.dtype, device=hue.device)
    k = (n + 6.0 * hue.remainder(1.0)[..., None]).remainder(6.0)
    # Standard HSV->RGB with S = V = 1: channel = 1 - clamp(min(k, 4 - k), 0, 1).
    return 1.0 - torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


def rgb_to_hue(rgb: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Hue in [0, 1) of RGB values (channels along ``dim``); undefined (0) where the pixel is grey.

    Used to read the hue back from pixels, e.g. by tests.

    >>> round(float(rgb_to_hue(hue_to_rgb(torch.tensor(0.3)), dim=-1)), 4)
    0.3
    """
    rgb = torch.as_tensor(rgb, dtype=torch.float32)
    r, g, b = rgb.unbind(dim)
    maximum = torch.maximum(torch.maximum(r, g), b)
    minimum = torch.minimum(torch.minimum(r, g), b)
    chroma = (maximum - minimum).clamp_min(1e-12)
    hue_sector = torch.where(
        maximum == r,
        ((g - b) / chroma).remainder(6.0),
        torch.where(maximum == g, (b - r) / chroma + 2.0, (r - g) / chroma + 4.0),
    )
    hue = (hue_sector / 6.0).remainder(1.0)
    return torch.where(maximum - minimum > 0, hue, torch.zeros_like(hue))


def colourize(gray: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Colour grey images (n, H, W) in [0, 1] with one hue per image (n,): HSV with S = 1, V = grey.

    Generic over the base images (shapes, MNIST, Fashion-MNIST). Returns float (n, 3, H, W) in [0, 1].

    >>> colourize(torch.ones(1, 2, 2), torch.tensor([0.0]))[0, :, 0, 0].tolist()
    [1.0, 0.0, 0.0]
    """
    if gray.dim() != 3:
        raise ValueError(f"gray: expected shape (n, H, W), got {tuple(gray.shape)}")
    if hue.shape != gray.shape[:1]:
        raise ValueError(f"hue: expected shape ({gray.shape[0]},), got {tuple(hue.shape)}")
    rgb = hue_to_rgb(hue).to(gray.dtype)  # (n, 3)
    return gray[:, None, :, :] * rgb[:, :, None, None]


def hue_in_bin(y: torch.Tensor, num_bins: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A continuous hue drawn uniformly inside the central 50 % of hue bin ``y`` (so the bin is unambiguous).

    >>> h = hue_in_bin(torch.tensor([0, 5]), 6, torch.Generator().manual_seed(0))
    >>> bool((h[0] > 1 / 24) & (h[0] < 3 / 24)) and bool((h[1] > 21 / 24) & (h[1] < 23 / 24))
    True
    """
    y = torch.as_tensor(y)
    if num_bins < 1:
        raise ValueError(f"num_bins: must be >= 1, got {num_bins!r}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_bins):
        raise ValueError(f"y: hue bins must lie in [0, {num_bins - 1}]")
    offset = 0.25 + 0.5 * torch.rand(y.shape, generator=generator, dtype=torch.float32)
    return (y.to(torch.float32) + offset) / num_bins


def _shape_signed_distance(shape: str, dx: torch.Tensor, dy: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance in px (negative inside) of ``shape`` of radius ``size`` at offsets (dx, dy)."""
    if shape == "disc":
        return torch.sqrt(dx**2 + dy**2) - size
    if shape == "square":
        half = 0.82 * size
        return torch.maximum(dx.abs(), dy.abs()) - half
    if shape == "cross":
        arm_half_width = 0.32 * size
        arm_length = 1.0 * size
        horizontal = torch.maximum(dx.abs() - arm_length, dy.abs() - arm_half_width)
        vertical = torch.maximum(dx.abs() - arm_half_width, dy.abs() - arm_length)
        return torch.minimum(horizontal, vertical)
    if shape == "triangle":
        # Upward isosceles triangle: apex (0, top), base corners (±half_base, bottom), in units of ``size``.
        top, bottom, half_base = -1.0, 0.85, 1.05
        height = bottom - top
        norm = math.hypot(height, half_base)
        # Signed distance to the slanted sides (outward normal (height, -half_base) / norm, mirrored in x).
        side = (height * dx.abs() - half_base * (dy - top * size)) / norm
        base = dy - bottom * size
        return torch.maximum(side, base)
    if shape == "ring":
        radius = torch.sqrt(dx**2 + dy**2)
        outer, inner = 1.0 * size, 0.5 * size
        return torch.maximum(radius - outer, inner - radius)
    raise ValueError(f"shape: unknown shape {shape!r}; choose from {SHAPE_NAMES}")


def render_shape_masks(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    image_size: int = IMAGE_SIZE,
    shape_names: tuple[str, ...] = SHAPE_NAMES,
) -> torch.Tensor:
    """Grey masks (n, H, W) in [0, 1] of shapes ``shape_names[x]`` with position, size and brightness jitter.

    Vectorised: one pass per shape class, never per image.

    >>> m = render_shape_masks(torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    >>> tuple(m.shape), bool(m[:, 14, 14].min() > 0.7), float(m[:, 0, 0].max())
    ((2, 28, 28), True, 0.0)
    """
    x = torch.as_tensor(x, dtype=torch.long)
    n = x.shape[0]
    if n and (int(x.min()) < 0 or int(x.max()) >= len(shape_names)):
        raise ValueError(f"x: classes must lie in [0, {len(shape_names) - 1}]")
    # Draw all jitter in a fixed order so that the output depends on the generator only.
    jitter = torch.rand(n, 4, generator=generator, dtype=torch.float32)
    centre = (image_size - 1) / 2.0
    centre_x = centre + _POSITION_JITTER * (2 * jitter[:, 0] - 1)
    centre_y = centre + _POSITION_JITTER * (2 * jitter[:, 1] - 1)
    size = _BASE_RADIUS * (1.0 + _SIZE_JITTER * (2 * jitter[:, 2] - 1))
    brightness = _MIN_BRIGHTNESS + (1.0 - _MIN_BRIGHTNESS) * jitter[:, 3]

    coords = torch.arange(image_size, dtype=torch.float32)
    masks = torch.zeros(n, image_size, image_size)
    for class_index in torch.unique(x).tolist():
        rows = (x == class_index).nonzero(as_tuple=True)[0]
        dx = coords[None, None, :] - centre_x[rows, None, None]
        dy = coords[None, :, None] - centre_y[rows, None, None]
        distance = _shape_signed_distance(shape_names[class_index], dx, dy, size[rows, None, None])
        # One pixel of linear anti-aliasing: coverage 1 inside, 0 outside, ramp across the edge.
        masks[rows] = (0.5 - distance).clamp(0.0, 1.0)
    return masks * brightness[:, None, None]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1].

    >>> to_float(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
    [0.0, 1.0]
    """
    return images.to(torch.float32) / 255.0


def scm_digest(scm: ConfoundedColourSCM) -> str:
    """16-hex digest of an SCM's three tables (float64): part of a dataset's generating parameters, so caches
    keyed by them (judges, FID features, image models) never reuse a model fitted to another SCM.

    >>> scm_digest(ConfoundedColourSCM.make()) == scm_digest(ConfoundedColourSCM.make())
    True
    """
    digest = hashlib.sha1()
    for table in (scm.p_u, scm.p_x_given_u, scm.p_y_given_xu):
        digest.update(str(tuple(table.shape)).encode())
        digest.update(table.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def checked_scm(scm: Any, num_classes: int, num_hue_bins: int, num_confounders: int) -> ConfoundedColourSCM:
    """``scm`` if it is a :class:`ConfoundedColourSCM` (its tables are validated when it is built) whose sizes
    agree with the dataset's; otherwise a one-line ``ValueError`` naming the tables' shapes.

    >>> checked_scm(ConfoundedColourSCM.make(num_classes=2), 3, 6, 3)
    Traceback (most recent call last):
    ...
    ValueError: scm: its tables p_u (3,), p_x_given_u (3, 2), p_y_given_xu (2, 3, 6) give 2 classes, 6 hue bins, 3 confounder values, but the dataset has num_classes=3, num_hue_bins=6, num_confounders=3; pass matching values
    """
    if not isinstance(scm, ConfoundedColourSCM):
        raise ValueError(f"scm: must be a ConfoundedColourSCM (tables p_u, p_x_given_u, p_y_given_xu), "
                         f"got {type(scm).__name__}")
    sizes = (scm.num_classes, scm.num_hue_bins, scm.num_confounders)
    if sizes != (num_classes, num_hue_bins, num_confounders):
        shapes = ", ".join(f"{name} {tuple(getattr(scm, name).shape)}"
                           for name in ("p_u", "p_x_given_u", "p_y_given_xu"))
        raise ValueError(f"scm: its tables {shapes} give {sizes[0]} classes, {sizes[1]} hue bins, {sizes[2]} "
                         f"confounder values, but the dataset has num_classes={num_classes}, "
                         f"num_hue_bins={num_hue_bins}, num_confounders={num_confounders}; pass matching values")
    return scm


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255.0).round_().clamp_(0, 255).to(torch.uint8)


class ConfoundedShapes:
    """Confounded colour benchmark on procedural 28×28 RGB shapes.

    ``train`` / ``test`` are dicts of ``x`` (class), ``y`` (hue bin), ``u`` (hidden confounder, for evaluation
    only) as LongTensors and ``image`` as uint8 (n, 3, 28, 28), drawn observationally from ``scm``: the default
    :meth:`ConfoundedColourSCM.make` of the sizes and ``confounding``, or your own ``scm`` (its sizes must
    match; ``confounding`` is then not used and ``generating_params`` carry the SCM's digest instead).

    >>> data = ConfoundedShapes(num_train=8, num_test=4)
    >>> data.train["image"].shape, data.train["image"].dtype, data.class_names
    (torch.Size([8, 3, 28, 28]), torch.uint8, ('disc', 'square', 'cross'))
    >>> ref = data.sample_reference(1, 5, torch.Generator().manual_seed(1))
    >>> ref["x"].tolist()
    [1, 1, 1, 1, 1]
    """

    name = "shapes"
    image_shape = (3, IMAGE_SIZE, IMAGE_SIZE)

    def __init__(
        self,
        num_train: int = 12000,
        num_test: int = 2000,
        num_classes: int = 3,
        num_hue_bins: int = 6,
        num_confounders: int = 3,
        confounding: float = 0.9,
        seed: int = 0,
        scm: ConfoundedColourSCM | None = None,
    ) -> None:
        if not isinstance(num_classes, int) or not 2 <= num_classes <= len(SHAPE_NAMES):
            raise ValueError(f"num_classes: must be an int in [2, {len(SHAPE_NAMES)}], got {num_classes!r}")
        if not isinstance(num_train, int) or num_train < 1:
            raise ValueError(f"num_train: must be a positive int, got {num_train!r}")
        if not isinstance(num_test, int) or num_test < 1:
            raise ValueError(f"num_test: must be a positive int, got {num_test!r}")
        if scm is None:
            self.scm = ConfoundedColourSCM.make(num_classes, num_hue_bins, num_confounders, confounding)
        else:
            self.scm = checked_scm(scm, num_classes, num_hue_bins, num_confounders)
        self.custom_scm = scm is not None
        self.num_classes = num_classes
        self.num_hue_bins = num_hue_bins
        self.num_confounders = num_confounders
        self.confounding = None if self.custom_scm else float(confounding)
        self.seed = seed
        self.class_names: tuple[str, ...] = SHAPE_NAMES[:num_classes]
        generator = torch.Generator().manual_seed(seed)
        self.train = self.sample_observational(num_train, generator)
        self.test = self.sample_observational(num_test, generator)

    @property
    def generating_params(self) -> dict[str, Any]:
        """Everything that determines the data-generating process (keys caches such as trained judges)."""
        params = {
            "name": self.name,
            "render_version": RENDER_VERSION,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "num_hue_bins": self.num_hue_bins,
            "num_confounders": self.num_confounders,
            "confounding": self.confounding,
        }
        if self.custom_scm:  # the default SCM keeps the keys of the caches made before this option
            params["scm"] = scm_digest(self.scm)
        return params

    def render(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 images (n, 3, 28, 28) of shapes ``x`` coloured with a hue inside bins ``y``."""
        x = torch.as_tensor(x, dtype=torch.long)
        y = torch.as_tensor(y, dtype=torch.long)
        if x.shape != y.shape or x.dim() != 1:
            raise ValueError(f"x, y: expected equal 1-d shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_classes):
            raise ValueError(f"x: classes must lie in [0, {self.num_classes - 1}]")
        masks = render_shape_masks(x, generator, IMAGE_SIZE, self.class_names)
        hue = hue_in_bin(y, self.num_hue_bins, generator)
        return _to_uint8(colourize(masks, hue))

    def sample_observational(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Observational draws ``x, y, u, image`` (confounded)."""
        sample = self.scm.sample(n, generator)
        sample["image"] = self.render(sample["x"], sample["y"], generator)
        return sample

    def sample_conditional(
        self, x: int, n: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Observational images given X = x: U ~ P(U | x), Y ~ P(Y | x, U), image of class x with hue Y (what a
        model of P(image | x) should reproduce)."""
        sample = self.scm.sample_conditional(x, n, generator)
        sample["image"] = self.render(sample["x"], sample["y"], generator)
        return sample

    def sample_reference(
        self, x: int, n: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Unconfounded reference for do(X = x): U ~ P(U), Y ~ P(Y | x, U), image of class x with hue Y."""
        sample = self.scm.sample_interventional(x, n, generator)
        sample["image"] = self.render(sample["x"], sample["y"], generator)
        return sample

    def __repr__(self) -> str:
        return (
            f"ConfoundedShapes(num_train={len(self.train['x'])}, num_test={len(self.test['x'])}, "
            f"num_classes={self.num_classes}, num_hue_bins={self.num_hue_bins}, "
            f"num_confounders={self.num_confounders}, confounding={self.confounding}, seed={self.seed})"
        )
