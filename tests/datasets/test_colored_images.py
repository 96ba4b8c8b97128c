"""Colored Fashion-MNIST / Colored MNIST on tiny fake IDX files (and the real Fashion-MNIST where installed)."""

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from cauvade_pyro import config
from cauvade_pyro.config import ConfigError, check_overrides, validate_config
from cauvade_pyro.datasets import (
    BASES,
    DATASET_NAMES,
    ConfoundedImages,
    ConfoundedShapes,
    DatasetNotFoundError,
    load_base_images,
    make_dataset,
    prepare_idx_files,
    rgb_to_hue,
)
from cauvade_pyro.datasets.colored_images import BINARY_GROUPS, X_FORMS

REPO = Path(__file__).resolve().parents[2]
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")
FOLDERS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}
NUM_FAKE = {"train": 40, "t10k": 20}


def write_idx_gz(path: Path, array: torch.Tensor) -> None:
    """The IDX format: magic 0x00000803 (uint8, 3 dims) or 0x00000801 (1 dim), big-endian dims, then the bytes."""
    magic = 0x0800 | array.dim()
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", size) for size in array.shape)
    with gzip.open(path, "wb") as out:
        out.write(header + array.to(torch.uint8).contiguous().numpy().tobytes())


def fake_split(prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random grey images (all distinct) with a bright 10x10 block, labels cycling through all 10 classes."""
    n = NUM_FAKE[prefix]
    generator = torch.Generator().manual_seed(len(prefix))
    images = torch.randint(0, 256, (n, 28, 28), generator=generator, dtype=torch.uint8)
    images[:, 9:19, 9:19] = 255
    return images, torch.arange(n) % 10


def write_fake_gz(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in NUM_FAKE:
        images, labels = fake_split(prefix)
        write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for folder in FOLDERS.values():
        write_fake_gz(root / folder / "raw")
    return root


def make(fake_root, base="fashion_mnist", x_form="binary", **params) -> ConfoundedImages:
    settings = {"num_train": 300, "num_test": 100, "seed": 1, **params}
    return ConfoundedImages(base, x_form, root=fake_root, system_dir=None, **settings)


def source_index(images: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """Which pool image each coloured image was made from (its grey level is the maximum over channels)."""
    grey = images.max(dim=1).values.flatten(1)
    match = (grey[:, None, :] == pool.flatten(1)[None, :, :]).all(-1)
    assert bool((match.sum(1) == 1).all())
    return match.int().argmax(1)


# ------------------------------------------------------------------ files
def test_prepare_idx_files_ungzips_into_the_torchvision_layout(tmp_path):
    from torchvision.datasets import FashionMNIST

    write_fake_gz(tmp_path / "system")
    raw = prepare_idx_files("fashion_mnist", tmp_path / "root", system_dir=tmp_path / "system")
    assert raw == tmp_path / "root" / "FashionMNIST" / "raw"
    assert sorted(os.listdir(raw)) == sorted(config.IDX_FILES)  # no temporary files left behind
    data = FashionMNIST(str(tmp_path / "root"), train=True, download=False)
    images, labels = fake_split("train")
    assert torch.equal(data.data, images) and torch.equal(data.targets, labels)
    assert len(FashionMNIST(str(tmp_path / "root"), train=False)) == NUM_FAKE["t10k"]
    # Files already in place are kept (the system copy is no longer needed).
    assert prepare_idx_files("fashion_mnist", tmp_path / "root", system_dir=None) == raw


def test_prepare_idx_files_also_unpacks_gz_files_in_the_raw_folder(tmp_path):
    write_fake_gz(tmp_path / "MNIST" / "raw")
    prepare_idx_files("mnist", tmp_path)
    data = load_base_images("mnist", tmp_path)
    assert data["train_images"].shape == (40, 28, 28) and data["train_images"].dtype == torch.uint8
    assert data["test_labels"].tolist() == (torch.arange(20) % 10).tolist()


def test_a_missing_dataset_is_one_line_naming_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        ConfoundedImages("mnist", root=tmp_path / "none")
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError) and len(message.splitlines()) == 1
    assert str(tmp_path / "none" / "MNIST" / "raw") in message and "dataset.download=true" in message
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_base_images("fashion_mnist", tmp_path / "none", system_dir=None)


def test_fit_with_a_missing_dataset_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "CAUVADE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "cauvade_pyro.fit", "dataset=mnist", f"dataset.root={tmp_path / 'empty'}",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "mnist not found" in lines[0] and str(tmp_path / "empty" / "MNIST" / "raw") in lines[0]
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not SYSTEM_FASHION.is_dir(), reason="needs `apt-get install dataset-fashion-mnist`")
def test_the_real_fashion_mnist_from_the_system_package(tmp_path):
    data = load_base_images("fashion_mnist", tmp_path)
    assert data["train_images"].shape == (60000, 28, 28) and data["test_images"].shape == (10000, 28, 28)
    assert torch.bincount(data["train_labels"]).tolist() == [6000] * 10


# ------------------------------------------------------------------ the dataset
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("x_form", X_FORMS)
def test_images_come_from_base_images_of_class_x(fake_root, base, x_form):
    data = make(fake_root, base, x_form)
    assert data.name == base and data.image_shape == (3, 28, 28)
    assert data.num_classes == (2 if x_form == "binary" else 10) == len(data.class_names)
    groups = BINARY_GROUPS[base] if x_form == "binary" else tuple((label,) for label in range(10))
    for split, size, prefix in (("train", 300, "train"), ("test", 100, "t10k")):
        sample = getattr(data, split)
        for key in ("x", "y", "u", "label"):
            assert sample[key].shape == (size,) and sample[key].dtype == torch.long
        assert sample["image"].shape == (size, 3, 28, 28) and sample["image"].dtype == torch.uint8
        assert all(label in groups[x] for x, label in zip(sample["x"].tolist(), sample["label"].tolist()))
        images, labels = fake_split(prefix)
        assert torch.equal(labels[source_index(sample["image"], images)], sample["label"])
    if x_form == "binary":
        assert data.class_names == {"fashion_mnist": ("tops", "footwear"), "mnist": ("0-4", "5-9")}[base]


def test_deterministic_given_the_seed(fake_root):
    first, second, other = make(fake_root), make(fake_root), make(fake_root, seed=2)
    for key in ("x", "y", "u", "label", "image"):
        assert torch.equal(first.train[key], second.train[key]) and torch.equal(first.test[key], second.test[key])
    assert not torch.equal(first.train["image"], other.train["image"])
    x, y = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 2, 5, 3])
    draws = [first.render(x, y, torch.Generator().manual_seed(4)) for _ in range(2)]
    assert torch.equal(*draws)


def test_hue_of_bright_pixels_lies_in_bin_y(fake_root):
    data = make(fake_root, num_hue_bins=8)
    images, y = data.train["image"], data.train["y"]
    bright = images.max(dim=1).values >= 128
    hue = rgb_to_hue(images.to(torch.float32) / 255.0)
    bins = torch.floor(hue * 8).long()
    assert bool(bright.sum((1, 2)).min() >= 100)
    assert bool((bins == y[:, None, None])[bright].all())


def test_render_and_reference_use_the_requested_split(fake_root):
    data = make(fake_root)
    x = torch.tensor([0, 1] * 10)
    test_images, test_labels = fake_split("t10k")
    rendered = data.render(x, torch.zeros(20, dtype=torch.long), torch.Generator().manual_seed(0), split="test")
    assert all(label in BINARY_GROUPS["fashion_mnist"][c] for c, label in
               zip(x.tolist(), test_labels[source_index(rendered, test_images)].tolist()))
    reference = data.sample_reference(1, 50, torch.Generator().manual_seed(0))
    assert reference["x"].tolist() == [1] * 50 and set(reference["label"].tolist()) <= {5, 7, 9}
    assert torch.equal(test_labels[source_index(reference["image"], test_images)], reference["label"])
    with pytest.raises(ValueError, match="split"):
        data.render(x, x, split="valid")


def test_reference_hue_bins_follow_the_interventional_law(fake_root):
    data = make(fake_root)
    truth = data.scm.interventional_y()
    for x in range(data.num_classes):
        y = data.sample_reference(x, 4000, torch.Generator().manual_seed(10 + x))["y"]
        empirical = torch.bincount(y, minlength=data.num_hue_bins).double() / len(y)
        assert float((empirical - truth[x]).abs().max()) < 0.02


def test_generating_params_key_the_process_not_the_draws(fake_root):
    binary, classes = make(fake_root), make(fake_root, x_form="classes")
    params = binary.generating_params
    for key in ("name", "x_form", "image_shape", "num_classes", "num_hue_bins", "num_confounders", "confounding"):
        assert key in params
    assert params["base_sizes"] == [40, 20]
    assert params != classes.generating_params
    assert params == make(fake_root, seed=5, num_train=10).generating_params
    assert params != make(fake_root, base="mnist").generating_params


def test_bad_arguments_are_one_line_value_errors(fake_root):
    for kwargs, match in (({"base": "cifar"}, "base"), ({"x_form": "pairs"}, "x_form"),
                          ({"num_train": 0}, "num_train"), ({"confounding": 1.5}, "confounding")):
        with pytest.raises(ValueError, match=match) as error:
            ConfoundedImages(**{"root": fake_root, "system_dir": None, **kwargs})
        assert len(str(error.value).splitlines()) == 1
    data = make(fake_root)
    with pytest.raises(ValueError, match="x: classes"):
        data.render(torch.tensor([2]), torch.tensor([0]))
    assert "ConfoundedImages(base='fashion_mnist', x_form='binary'" in repr(data)


def test_make_dataset_maps_names_to_datasets(fake_root):
    assert DATASET_NAMES == config.DATASETS and set(config.DATASET_IMAGE_SHAPES) == set(DATASET_NAMES)
    assert isinstance(make_dataset("shapes", num_train=4, num_test=2), ConfoundedShapes)
    data = make_dataset("mnist", root=fake_root, num_train=20, num_test=10, system_dir=None)
    assert isinstance(data, ConfoundedImages) and data.name == "mnist" and data.class_names == ("0-4", "5-9")
    with pytest.raises(ValueError, match="name: must be one of"):
        make_dataset("cifar")


# ------------------------------------------------------------------ configuration
def compose_config(overrides):
    check_overrides(overrides)
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("base", BASES)
def test_the_dataset_configs_validate_and_accept_their_keys(base, tmp_path):
    cfg = compose_config([f"dataset={base}", f"dataset.root={tmp_path}", "dataset.download=true",
                          "dataset.x_form=classes"])
    validate_config(cfg)
    assert (cfg.dataset.name, cfg.dataset.root, cfg.dataset.x_form) == (base, str(tmp_path), "classes")
    assert compose_config([f"dataset={base}"]).dataset.root.endswith("/data")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["dataset=mnist", "dataset.x_form=pairs"], "dataset.x_form must be one of ('binary', 'classes')"),
        (["dataset.name=mnist"], "pick the dataset with dataset=mnist instead"),
        (["dataset=fashion_mnist", "dataset.name=shapes"], "pick the dataset with dataset=shapes instead"),
        (["dataset.root=/tmp"], "unknown config key 'dataset.root'"),
    ],
)
def test_bad_dataset_config_is_one_line(overrides, expected):
    with pytest.raises(ConfigError) as error:
        validate_config(compose_config(overrides))
    assert len(str(error.value).splitlines()) == 1 and expected in str(error.value), error.value


@pytest.mark.parametrize("base", BASES)
def test_the_cli_builds_each_dataset_from_its_config(base, fake_root):
    """Keys that a dataset's config gives only as defaults of other keys (image epochs, the judge's budget) resolve
    where they belong and never reach the dataset's constructor."""
    from cauvade_pyro.fit import build_dataset

    cfg = compose_config([f"dataset={base}", f"dataset.root={fake_root}", "dataset.num_train=300",
                          "dataset.num_test=100"])
    validate_config(cfg)
    data = build_dataset(cfg)
    assert isinstance(data, ConfoundedImages) and data.name == base and len(data.train["x"]) == 300
    # Fashion-MNIST's judge reads real images better with its own budget; MNIST keeps the default
    assert (cfg.eval.judge_images, cfg.eval.judge_epochs) == ((60000, 10) if base == "fashion_mnist" else (8000, 3))
    assert cfg.inference.image_epochs == 5 and cfg.model.image.net == "conv"
