"""Datasets with a known ground-truth SCM (docs/design.md §5): the confounded colour benchmark and its bases."""

from cauvade_pyro.datasets.colored_images import (
    BASES,
    ConfoundedImages,
    DatasetNotFoundError,
    default_data_root,
    load_base_images,
    prepare_idx_files,
)
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

# The values of the config's dataset.name (cauvade_pyro.config.DATASETS repeats them).
DATASET_NAMES: tuple[str, ...] = ("shapes", *BASES)


def make_dataset(name: str, **params) -> ConfoundedShapes | ConfoundedImages:
    """The benchmark dataset called ``name``: ``shapes`` → :class:`ConfoundedShapes`, ``fashion_mnist`` and
    ``mnist`` → :class:`ConfoundedImages` on that base; ``params`` go to its constructor."""
    if name == "shapes":
        return ConfoundedShapes(**params)
    if name in BASES:
        return ConfoundedImages(base=name, **params)
    raise ValueError(f"name: must be one of {DATASET_NAMES}, got {name!r}")


__all__ = [
    "BASES",
    "DATASET_NAMES",
    "SHAPE_NAMES",
    "ConfoundedColourSCM",
    "ConfoundedImages",
    "ConfoundedShapes",
    "DatasetNotFoundError",
    "colourize",
    "default_data_root",
    "hue_in_bin",
    "hue_to_rgb",
    "load_base_images",
    "make_dataset",
    "prepare_idx_files",
    "render_shape_masks",
    "rgb_to_hue",
    "sample_categorical",
    "to_float",
]
