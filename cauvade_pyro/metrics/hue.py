r"""Within-bin hue diversity read from the pixels (no judge): how much of the hue spread inside a bin survives.

The built-in datasets colour a grey image :math:`g \in [0, 1]^{H \times W}` with one hue per image in HSV with
saturation 1 and value :math:`g` (:func:`~cauvade_pyro.datasets.shapes.colourize`), the hue drawn uniformly over
the central half of its bin :math:`y` of :math:`K`: :math:`h \sim \mathrm{Uniform}[(y + 1/4)/K, (y + 3/4)/K]`.

**Hue of an image.** Per pixel, hue :math:`h_p` and chroma :math:`c_p = \max(r, g, b) - \min(r, g, b)`
(:func:`~cauvade_pyro.datasets.shapes.rgb_to_hue`); the image's hue is the chroma-weighted circular mean

.. math::

    \hat h = \frac{1}{2\pi} \arg \sum_p c_p \, e^{2\pi i h_p} \bmod 1,

exact for a coloured grey image (every lit pixel has the same hue), and NaN when the total chroma is below
``min_chroma`` per pixel on average (a black or grey image has no hue; such images are counted, not read).

**Within-bin position.** :math:`t = K \hat h - \lfloor K \hat h \rfloor \in [0, 1)`, in units of the bin
width, in the bin :math:`\lfloor K \hat h \rfloor` the image's own pixels fall in. The data put :math:`t`
uniformly on :math:`[1/4, 3/4]`.

**Within-bin W1.** Per bin k, the 1-D Wasserstein-1 distance (SciPy's ``wasserstein_distance``) between the
generated and the reference positions that fall in bin k, averaged over bins with weights the share of
generated images in each bin (bins one side never reaches are left out and counted). A point mass at the bin
centre scores :math:`\mathbb E|U - 1/2| = 1/8` against :math:`U \sim \mathrm{Uniform}[1/4, 3/4]`; 0 is a
generator that reproduces the spread. Reading both sides with the same reader cancels its own bias.

>>> import torch
>>> from cauvade_pyro.datasets import ConfoundedShapes
>>> data = ConfoundedShapes(num_train=400, num_test=2)
>>> images, y = data.train["image"], data.train["y"]
>>> bool((image_hue_bins(images, 6) == y).all())
True
>>> w1 = within_bin_hue_w1(images[:200], images[200:], 6)
>>> w1["w1"] < 0.05, w1["unreadable_generated"]
(True, 0.0)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from cauvade_pyro.datasets.shapes import rgb_to_hue

__all__ = ["POINT_MASS_W1", "image_hue", "image_hue_bins", "within_bin_positions", "within_bin_hue_w1"]

POINT_MASS_W1 = 0.125  # W1 of a point mass at the bin centre against Uniform[1/4, 3/4] (bin widths)


def _float_images(images: torch.Tensor) -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected RGB images (n, 3, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    return images.detach().to("cpu", torch.float32)


def image_hue(images: torch.Tensor, min_chroma: float = 0.02) -> torch.Tensor:
    """Chroma-weighted circular mean hue in [0, 1) of each RGB image (n, 3, H, W); NaN where it has no colour.

    ``images`` are uint8 in [0, 255] or float in [0, 1]; an image whose mean chroma per pixel is below
    ``min_chroma`` (black, grey) has no hue.

    >>> from cauvade_pyro.datasets import colourize
    >>> hues = image_hue(colourize(torch.ones(3, 4, 4), torch.tensor([0.1, 0.5, 0.95])))
    >>> [round(float(h), 4) for h in hues]
    [0.1, 0.5, 0.95]
    >>> bool(image_hue(torch.zeros(1, 3, 4, 4)).isnan().all())
    True
    """
    images = _float_images(images).cpu()
    hue = rgb_to_hue(images, dim=1)  # (n, H, W)
    chroma = images.amax(1) - images.amin(1)
    angle = 2 * math.pi * hue
    sin = (chroma * angle.sin()).sum((-2, -1))
    cos = (chroma * angle.cos()).sum((-2, -1))
    mean_hue = (torch.atan2(sin, cos) / (2 * math.pi)).remainder(1.0)
    coloured = chroma.mean((-2, -1)) >= min_chroma
    return torch.where(coloured, mean_hue, torch.full_like(mean_hue, math.nan))


def image_hue_bins(images: torch.Tensor, num_bins: int, min_chroma: float = 0.02) -> torch.Tensor:
    """Hue bin (long, -1 where the image has no hue) of each image, read from its pixels.

    >>> from cauvade_pyro.datasets import colourize
    >>> image_hue_bins(colourize(torch.ones(2, 4, 4), torch.tensor([0.05, 0.6])), 6).tolist()
    [0, 3]
    """
    if num_bins < 1:
        raise ValueError(f"num_bins: must be >= 1, got {num_bins!r}")
    hue = image_hue(images, min_chroma)
    bins = torch.floor(hue * num_bins).clamp(max=num_bins - 1)
    return torch.where(hue.isnan(), torch.full_like(hue, -1), bins).long()


def within_bin_positions(images: torch.Tensor, num_bins: int, min_chroma: float = 0.02
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(bin, position in [0, 1) within that bin in bin widths) of each image; bin -1 and NaN: no hue.

    >>> from cauvade_pyro.datasets import colourize
    >>> bins, t = within_bin_positions(colourize(torch.ones(1, 4, 4), torch.tensor([0.125])), 4)
    >>> bins.tolist(), [round(float(v), 4) for v in t]
    ([0], [0.5])
    """
    hue = image_hue(images, min_chroma)
    scaled = hue * num_bins
    bins = torch.floor(scaled).clamp(max=num_bins - 1)
    position = scaled - bins
    return torch.where(hue.isnan(), torch.full_like(hue, -1), bins).long(), position


def within_bin_hue_w1(generated: torch.Tensor, reference: torch.Tensor, num_bins: int,
                      min_chroma: float = 0.02) -> dict[str, float]:
    """Within-bin hue W1 (bin widths) between generated and reference images, read from their pixels.

    Returns ``w1`` (the weighted mean over bins both sides reach; NaN if none), ``bins_compared``,
    ``generated_outside_reference_bins`` (share of readable generated images in bins the reference never
    reaches), ``unreadable_generated`` / ``unreadable_reference`` (share with no hue), and the mean absolute
    deviation of the generated positions from the bin centre, ``generated_spread`` (data: 1/8).

    >>> from cauvade_pyro.datasets import colourize
    >>> gray = torch.ones(400, 2, 2)
    >>> uniform = (2 + 0.25 + 0.5 * torch.rand(400, generator=torch.Generator().manual_seed(0))) / 6
    >>> centre = torch.full((400,), 2.5 / 6)
    >>> abs(within_bin_hue_w1(colourize(gray, centre), colourize(gray, uniform), 6)["w1"] - POINT_MASS_W1) < 0.01
    True
    """
    gen_bins, gen_pos = within_bin_positions(generated, num_bins, min_chroma)
    ref_bins, ref_pos = within_bin_positions(reference, num_bins, min_chroma)
    if len(gen_bins) == 0 or len(ref_bins) == 0:
        raise ValueError("generated, reference: need at least one image each")
    readable = gen_bins >= 0
    total, weight, compared, outside = 0.0, 0, 0, 0
    for k in range(num_bins):
        gen_k = gen_pos[gen_bins == k].numpy()
        ref_k = ref_pos[ref_bins == k].numpy()
        if len(gen_k) == 0:
            continue
        if len(ref_k) == 0:
            outside += len(gen_k)
            continue
        total += len(gen_k) * float(wasserstein_distance(gen_k, ref_k))
        weight += len(gen_k)
        compared += 1
    spread = float(np.abs(gen_pos[readable].numpy() - 0.5).mean()) if readable.any() else math.nan
    return {
        "w1": total / weight if weight else math.nan,
        "bins_compared": compared,
        "generated_outside_reference_bins": outside / int(readable.sum()) if readable.any() else math.nan,
        "unreadable_generated": float((~readable).float().mean()),
        "unreadable_reference": float((ref_bins < 0).float().mean()),
        "generated_spread": spread,
    }
