"""Datasets with a known ground-truth SCM (DESIGN §4): the confounded colour benchmark and its bases."""

from cauvade_pyro.datasets.scm import ConfoundedColourSCM, sample_categorical
from cauvade_pyro.datasets.shapes import (
    SHAPE_NAMES,
    ConfoundedShapes,
    colourize,
    hue_in_bin,
    hue_to_rgb,
    render_shape_masks,
    rgb_to_hue,
    to_float,
)

__all__ = [
    "SHAPE_NAMES",
    "ConfoundedColourSCM",
    "ConfoundedShapes",
    "colourize",
    "hue_in_bin",
    "hue_to_rgb",
    "render_shape_masks",
    "rgb_to_hue",
    "sample_categorical",
    "to_float",
]
