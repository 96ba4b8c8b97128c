"""Config nodes turned into keyword arguments of the library's functions (shared by the diagrams' CLI entries)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def family_options(cfg: DictConfig) -> dict:
    """``inference.family`` as keyword arguments of :func:`~cauvade_pyro.inference.fit_family`."""
    options = OmegaConf.to_container(cfg.inference.family, resolve=True)
    options["entropy_targets"] = tuple(options["entropy_targets"])
    options["gammas"] = tuple(options.get("gammas", ()))
    return options
