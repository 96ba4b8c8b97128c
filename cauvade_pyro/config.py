"""Start-up validation of a fit configuration: every bad value is one line naming its key and the allowed range."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from cauvade_pyro.diagrams import names as _diagram_names

# The built-in diagrams: the files of conf/model (cauvade_pyro.diagrams: each registers there, in one place).
DIAGRAMS = _diagram_names()
DATASETS = ("shapes", "fashion_mnist", "mnist")
# Image shape (channels, height, width) of each dataset, known without loading it.
DATASET_IMAGE_SHAPES = {"shapes": (3, 28, 28), "fashion_mnist": (3, 28, 28), "mnist": (3, 28, 28)}
# Datasets coloured from a base of real grey images (cauvade_pyro.datasets.colored_images). Their files are
# looked up here, before torch loads, so that a missing download answers in one line at once.
X_FORMS = ("binary", "classes")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# base -> (torchvision's folder under root, the folder a system package puts the gzipped files in, how to get it)
BASE_DATASETS = {
    "fashion_mnist": ("FashionMNIST", "/usr/share/datasets/fashion-mnist", "apt-get install dataset-fashion-mnist"),
    "mnist": ("MNIST", None, None),
}
NETS = ("conv", "mlp")
# Keys of a dataset's config that only give the default of another key for that dataset (inference.image_epochs,
# model.image.net of the built-in diagram, eval.judge_images and eval.judge_epochs): not arguments of its
# constructor, and not part of a cache key, which holds the resolved value of the key they default.
DATASET_DEFAULTS = ("image_epochs", "image_net", "judge_images", "judge_epochs")
IMAGE_EPS_FILM = ("none", "last")  # models.nets.IMAGE_EPS_FILM, here before torch loads
LIKELIHOODS = ("bernoulli", "logistic")
EPS_PRIOR_GIVEN = ("x", "xy")
Y_PARAMETERIZATIONS = ("additive", "interaction", "table")
ATTRIBUTE_OBJECTIVES = ("pyro", "counts")
PRECISIONS = ("fp32", "bf16")


class ConfigError(ValueError):
    """A configuration value outside its allowed range."""


class DatasetNotFoundError(FileNotFoundError):
    """The files of a base image dataset are neither under its root nor in a system directory (one-line message)."""


def locate_idx_files(base: str, root, system_dir="auto") -> dict[str, Path]:
    """Where each IDX file of ``base`` is: ``root/<Folder>/raw/<name>``, else ``<name>.gz`` there, else in
    ``system_dir`` ("auto": the one of the base's system package; None: none). Raises DatasetNotFoundError."""
    if base not in BASE_DATASETS:
        raise ValueError(f"base: must be one of {tuple(BASE_DATASETS)}, got {base!r}")
    folder, auto_dir, package = BASE_DATASETS[base]
    raw = Path(os.path.expanduser(os.fspath(root))) / folder / "raw"
    system = auto_dir if system_dir == "auto" else system_dir
    places = [raw] + ([Path(system)] if system is not None else [])
    found, missing = {}, []
    for name in IDX_FILES:
        candidates = [raw / name, raw / f"{name}.gz"] + ([Path(system) / f"{name}.gz"] if system is not None else [])
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        hints = ([f"install it with `{package}`"] if package else []) + [
            "pass dataset.download=true (download=True; needs a network)",
            f"or set dataset.root to a directory containing {folder}/raw",
        ]
        raise DatasetNotFoundError(
            f"{base} not found: no {', '.join(missing)} (nor .gz) in {' or '.join(str(p) for p in places)}; "
            + ", ".join(hints)
        )
    return found


def check_dataset_files(cfg: DictConfig) -> None:
    """Before torch loads: a base image dataset that is not downloaded must be findable (DatasetNotFoundError)."""
    if cfg.dataset.name in BASE_DATASETS and cfg.dataset.download is not True:
        locate_idx_files(cfg.dataset.name, cfg.dataset.root)


def number(cfg: DictConfig, key: str):
    """The number at ``key`` (one-line ConfigError if it is missing or not a number)."""
    value = cfg
    for part in key.split("."):
        if not isinstance(value, DictConfig) or part not in value:
            raise ConfigError(f"{key} is missing from the configuration")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return value


def check_family_options(cfg: DictConfig) -> None:
    """``inference.family``: the options of fit_family (model=user, or inference.sweep=family)."""
    family = "inference.family"
    if not number(cfg, f"{family}.tau") > 0 or not math.isfinite(number(cfg, f"{family}.tau")):
        raise ConfigError(f"{family}.tau must be a finite number of nats per datapoint > 0, got {cfg.inference.family.tau}")
    if not 0.0 < number(cfg, f"{family}.heldout_share") < 1.0:
        raise ConfigError(f"{family}.heldout_share must lie in (0, 1), got {cfg.inference.family.heldout_share}")
    for key, low in (("restarts", 1), ("random_directions", 0), ("steps", 1), ("member_steps", 1)):
        value = number(cfg, f"{family}.{key}")
        if value < low or not float(value).is_integer():
            raise ConfigError(f"{family}.{key} must be an integer >= {low}, got {value}")
    if not number(cfg, f"{family}.lr") > 0:
        raise ConfigError(f"{family}.lr must be > 0, got {cfg.inference.family.lr}")
    for key in ("gammas", "entropy_targets"):  # a bare number (gammas=-2) would otherwise fail later, not here
        if not isinstance(cfg.inference.family.get(key, []), ListConfig):
            raise ConfigError(f"{family}.{key} must be a list, e.g. [{cfg.inference.family.get(key)}], "
                              f"got {cfg.inference.family.get(key)!r}")
    gammas = cfg.inference.family.get("gammas", [])
    if not all(isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) for g in gammas):
        raise ConfigError(f"{family}.gammas must be finite numbers, got {list(gammas)}")
    targets = cfg.inference.family.entropy_targets
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in targets):
        raise ConfigError(f"{family}.entropy_targets must be fractions in [0, 1], got {list(targets)}")


def check_image(cfg: DictConfig) -> None:
    """``model.image``: the image networks' keys, and their shape against the dataset's (for dataset diagrams)."""
    image = cfg.model.image
    if number(cfg, "model.image.eps_dim") < 1:
        raise ConfigError(f"model.image.eps_dim must be >= 1, got {image.eps_dim}")
    if image.net not in NETS:
        raise ConfigError(f"model.image.net must be one of {NETS}, got {image.net!r}")
    components = image.get("eps_prior_components", 0)
    if isinstance(components, bool) or not isinstance(components, int) or components < 0:
        raise ConfigError(f"model.image.eps_prior_components must be an integer >= 0, got {components!r}")
    if image.get("eps_prior_given", "x") not in EPS_PRIOR_GIVEN:
        raise ConfigError(f"model.image.eps_prior_given must be one of {EPS_PRIOR_GIVEN}, got {image.eps_prior_given!r}")
    eps_film = image.get("eps_film", "none")
    if eps_film not in IMAGE_EPS_FILM:
        raise ConfigError(f"model.image.eps_film must be one of {IMAGE_EPS_FILM}, got {eps_film!r}")
    if eps_film != "none" and image.net != "conv":
        default = (f" (dataset {cfg.dataset.name!r} defaults it to {image.net!r})"
                   if cfg.dataset.get("image_net") == image.net else "")
        raise ConfigError(f"model.image.eps_film={eps_film} needs model.image.net=conv, got {image.net!r}{default}")
    if image.likelihood not in LIKELIHOODS:
        raise ConfigError(f"model.image.likelihood must be one of {LIKELIHOODS}, got {image.likelihood!r}")
    channels, height, width = DATASET_IMAGE_SHAPES[cfg.dataset.name]
    if number(cfg, "model.image.channels") != channels:
        raise ConfigError(f"model.image.channels must be {channels} for dataset {cfg.dataset.name!r} "
                          f"(its images are {channels}x{height}x{width}), got {image.channels}")
    if number(cfg, "model.image.size") != height:
        raise ConfigError(f"model.image.size must be {height} for dataset {cfg.dataset.name!r} "
                          f"(its images are {channels}x{height}x{width}), got {image.size}")


def check_clusters(cfg: DictConfig) -> None:
    """``model.K``: the number of values of the canonical confounder."""
    if number(cfg, "model.K") < 1 or not float(cfg.model.K).is_integer():
        raise ConfigError(f"model.K must be an integer >= 1, got {cfg.model.K}")


def _check_integers(cfg: DictConfig, keys) -> None:
    for key in keys:
        value = number(cfg, key)
        if not float(value).is_integer() or (key != "seed" and value < 0):
            raise ConfigError(f"{key} must be an integer{'' if key == 'seed' else ' >= 0'}, got {value}")


def _chosen_model() -> str | None:
    """The ``model`` group option of the running Hydra app (None outside one, e.g. under ``compose``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("model")


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value outside its range (before any data is loaded).

    The checks every run shares are here; each diagram checks its own keys with the ``cli.check`` function its
    config file names (:mod:`cauvade_pyro.diagrams`)."""
    from cauvade_pyro import diagrams

    cli = cfg.model.get("cli")
    if not isinstance(cli, DictConfig) or "check" not in cli or ("sweeps" not in cli) == ("run" not in cli):
        raise ConfigError(f"model.diagram={cfg.model.get('diagram')!r} is not registered: its config file needs a cli "
                          "node with check and either sweeps or run (see cauvade_pyro.diagrams; built in: "
                          f"{', '.join(DIAGRAMS)})")
    chosen = _chosen_model()
    if chosen is not None and chosen != cfg.model.diagram:
        raise ConfigError(f"model.diagram={cfg.model.diagram} does not name the chosen model={chosen}; pick a diagram "
                          f"with model={cfg.model.diagram} instead")
    check_diagram = diagrams.resolve(str(cli.check), "model.cli.check")
    _check_integers(cfg, ("seed", "torch_threads"))
    if cfg.model.cli.get("run") is not None:
        check_diagram(cfg)  # a diagram with its own data: no dataset, judge or image model to check
        return
    if not math.isfinite(number(cfg, "inference.gamma")):
        raise ConfigError(f"inference.gamma must be finite, got {cfg.inference.gamma}")
    for key in ("inference.batch_size", "inference.attribute_steps", "inference.image_epochs", "eval.num_samples"):
        if number(cfg, key) <= 0:
            raise ConfigError(f"{key} must be > 0, got {number(cfg, key)}")
    for key in ("inference.attribute_lr", "inference.image_lr", "inference.clip_norm"):
        if not number(cfg, key) > 0 or not math.isfinite(number(cfg, key)):
            raise ConfigError(f"{key} must be a finite number > 0, got {number(cfg, key)}")
    if cfg.inference.get("attribute_objective", "pyro") not in ATTRIBUTE_OBJECTIVES:
        raise ConfigError(f"inference.attribute_objective must be one of {ATTRIBUTE_OBJECTIVES}, "
                          f"got {cfg.inference.attribute_objective!r}")
    if cfg.inference.get("precision", "fp32") not in PRECISIONS:
        raise ConfigError(f"inference.precision must be one of {PRECISIONS}, got {cfg.inference.precision!r}")
    sweep = cfg.inference.get("sweep", "independent")
    if sweep not in diagrams.sweeps(cfg):
        raise ConfigError(f"inference.sweep={sweep} is not available for model={cfg.model.diagram} (its sweeps: "
                          f"{', '.join(diagrams.sweeps(cfg))}; the family of any discrete diagram: model=user)")
    if "member_epochs" in cfg.inference:
        member_epochs = number(cfg, "inference.member_epochs")
        if member_epochs < 1 or not float(member_epochs).is_integer():
            raise ConfigError(f"inference.member_epochs must be an integer >= 1, got {member_epochs}")
    confounding = number(cfg, "dataset.confounding")
    if not 0.0 <= confounding <= 1.0:
        raise ConfigError(f"dataset.confounding must be in [0, 1], got {confounding}")
    for key in ("dataset.num_train", "dataset.num_test"):
        if number(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {number(cfg, key)}")
    _check_integers(cfg, ("inference.checkpoint_every", "inference.image_seed"))
    if cfg.dataset.name not in DATASETS:
        raise ConfigError(f"dataset.name must be one of {DATASETS}, got {cfg.dataset.name!r}")
    if (cfg.dataset.name in BASE_DATASETS) != ("x_form" in cfg.dataset):
        raise ConfigError(f"dataset.name={cfg.dataset.name} does not fit the keys of the chosen dataset config; "
                          f"pick the dataset with dataset={cfg.dataset.name} instead")
    if cfg.dataset.name in BASE_DATASETS:
        if cfg.dataset.x_form not in X_FORMS:
            raise ConfigError(f"dataset.x_form must be one of {X_FORMS}, got {cfg.dataset.x_form!r}")
        if not isinstance(cfg.dataset.download, bool):
            raise ConfigError(f"dataset.download must be true or false, got {cfg.dataset.download!r}")
        if not isinstance(cfg.dataset.root, str) or not cfg.dataset.root:
            raise ConfigError(f"dataset.root must be a directory path, got {cfg.dataset.root!r}")
    check_diagram(cfg)
    resume = cfg.resume
    if not isinstance(resume, bool):
        if not isinstance(resume, str) or not resume:
            raise ConfigError(f"resume must be true, false or a path to a run dir or train_state.pt, got {resume!r}")
        path = Path(resume)
        if not (path.is_file() or (path / "train_state.pt").is_file()):
            raise ConfigError(f"resume: no training state at {resume!r} (give a run dir holding train_state.pt, "
                              "or the file itself)")
    device = str(cfg.device)
    if not (device in ("auto", "cpu") or re.fullmatch(r"cuda(:\d+)?", device)):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda"):
        import torch  # only here: every other check answers without the numerical stack

        if not torch.cuda.is_available():
            raise ConfigError(f"device={device} was requested but CUDA is not available here; use device=auto or device=cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"so N must be in [0, {torch.cuda.device_count() - 1}]")


def check_overrides(argv: list[str]) -> None:
    """Unknown keys in command-line overrides → one-line :class:`ConfigError` (Hydra's own answer is 5+ lines).

    Composes the config with the given group choices (the first value of a sweep) and looks every plain
    ``key=value`` override up in it; ``+key``, ``++key``, ``~key`` and ``hydra.*`` are left to Hydra.
    """
    overrides = [arg for arg in argv if not arg.startswith("-") and "=" in arg]
    if not overrides:
        return
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as error:
        raise ConfigError(str(error).strip().splitlines()[0]) from None
    groups = {p.name for p in (Path(__file__).parent / "conf").iterdir() if p.is_dir() and not p.name.startswith("_")}
    choices, plain, added = [], [], []
    for override in parsed:
        key = override.key_or_group
        if override.package or key.startswith("hydra"):
            continue
        if override.type in (OverrideType.ADD, OverrideType.FORCE_ADD):
            added.append(key)  # `+key=…` adds a key: the app must read it, or it would be silently ignored
            continue
        if override.type is not OverrideType.CHANGE:
            continue
        if key in groups:
            value = next(iter(override.sweep_string_iterator())) if override.is_sweep_override() else override.value()
            choices.append(f"{key}={value}")
        else:
            plain.append(key)
    if not plain and not choices and not added:
        return
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        try:
            cfg = compose(config_name="config", overrides=choices)
        except Exception as error:  # e.g. an unknown group option: keep Hydra's words, drop its search path
            text = str(error).split("Config search path")[0]
            raise ConfigError(" ".join(text.split())) from None
    def known(key: str) -> bool:  # a key with a mandatory value (???) is known, though select calls it missing
        parent, _, last = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        try:
            return isinstance(node, DictConfig) and node._get_node(last) is not None
        except Exception:  # noqa: BLE001 - a struct config refuses the lookup of a key it lacks
            return False

    for key in added:
        if not known(key):
            hint = (" (a diagram of your own: model=user model.target=package.module:name model.data=FILE)"
                    if key.endswith("_target_") or key.startswith("model") else "")
            raise ConfigError(f"config key {key!r} is not used by cauvade_pyro.fit, so it would be ignored{hint}")
    for key in plain:
        if not known(key):
            parent = key.rpartition(".")[0]
            while parent and not isinstance(OmegaConf.select(cfg, parent, default=None), DictConfig):
                parent = parent.rpartition(".")[0]
            node = OmegaConf.select(cfg, parent) if parent else cfg
            known = ", ".join(k for k in node.keys() if k != "hydra")
            raise ConfigError(f"unknown config key {key!r}; the keys of {parent or 'the top level'} are: {known} "
                              f"(to add a key on purpose, write +{key}=...)")


def compose_config(overrides: list[str]) -> DictConfig:
    """The CLI's config with ``overrides`` applied, outside a Hydra app (benchmarks, notebooks), checked as the CLI
    checks it: unknown keys (:func:`check_overrides`), then every value (:func:`validate_config`); either raises a
    one-line :class:`ConfigError`.

    >>> cfg = compose_config(["dataset=shapes", "inference.gamma=2.0"])
    >>> cfg.dataset.name, cfg.inference.gamma
    ('shapes', 2.0)
    """
    from hydra import compose, initialize_config_module

    check_overrides(list(overrides))
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    validate_config(cfg)
    return cfg
