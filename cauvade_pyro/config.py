"""Start-up validation of a fit configuration: every bad value is one line naming its key and the allowed range."""

from __future__ import annotations

import math

from omegaconf import DictConfig

DIAGRAMS = ("confounded_attributes", "latent_response")


class ConfigError(ValueError):
    """A configuration value outside its allowed range."""


def _number(cfg: DictConfig, key: str):
    value = cfg
    for part in key.split("."):
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return value


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value outside its range (before any data is loaded)."""
    if _number(cfg, "model.K") < 1 or not float(cfg.model.K).is_integer():
        raise ConfigError(f"model.K must be an integer >= 1, got {cfg.model.K}")
    if not math.isfinite(_number(cfg, "inference.gamma")):
        raise ConfigError(f"inference.gamma must be finite, got {cfg.inference.gamma}")
    for key in ("inference.batch_size", "inference.attribute_steps", "inference.image_epochs", "eval.num_samples"):
        if _number(cfg, key) <= 0:
            raise ConfigError(f"{key} must be > 0, got {_number(cfg, key)}")
    for key in ("inference.attribute_lr", "inference.image_lr", "inference.clip_norm"):
        if not _number(cfg, key) > 0 or not math.isfinite(_number(cfg, key)):
            raise ConfigError(f"{key} must be a finite number > 0, got {_number(cfg, key)}")
    if cfg.model.diagram not in DIAGRAMS:
        raise ConfigError(f"model.diagram must be one of {DIAGRAMS}, got {cfg.model.diagram!r}")
    if _number(cfg, "model.image.eps_dim") < 1:
        raise ConfigError(f"model.image.eps_dim must be >= 1, got {cfg.model.image.eps_dim}")
    confounding = _number(cfg, "dataset.confounding")
    if not 0.0 <= confounding <= 1.0:
        raise ConfigError(f"dataset.confounding must be in [0, 1], got {confounding}")
    for key in ("dataset.num_train", "dataset.num_test"):
        if _number(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {_number(cfg, key)}")
    device = str(cfg.device)
    if not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
