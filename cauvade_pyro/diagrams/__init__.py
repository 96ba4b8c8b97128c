"""The diagrams ``python -m cauvade_pyro.fit`` runs. Each one registers in one place: its ``conf/model/<name>.yaml``.

That file holds the diagram's keys and a ``cli`` node naming functions by their ``package.module.function``
path (resolved with Hydra's ``get_method`` only when that diagram runs, so the CLI answers ``--help`` and bad
values without importing torch):

- ``cli.check``: ``check(cfg)`` raises :class:`~cauvade_pyro.config.ConfigError` (one line) for a bad value of
  the diagram's own keys, before any data is loaded; it must not import torch.
- ``cli.sweeps``: for each ``inference.sweep`` the diagram supports, the function that fits it on the dataset,
  ``fit(cfg, dataset, device, out_dir) -> (model, info, evaluate)``. The CLI trains the judge before and, after,
  calls ``evaluate(model, dataset, judge, num_samples, grid_samples) -> (metrics, panels)`` and writes
  ``samples.png``, ``effect.png`` and ``metrics.json``.
- or ``cli.run``, for a diagram that brings its own data instead of a dataset (``model=user``):
  ``run(cfg, out_dir, started) -> metrics``; it writes its own outputs.

The list of diagrams *is* the list of those files (:func:`names`): a new diagram adds its YAML file and the
module its functions live in, and touches nothing else (no choice list, no dispatch).

>>> "confounded_attributes" in names() and "user" in names()
True
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

__all__ = ["names", "resolve", "run_function", "sweep_function", "sweeps"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf" / "model"


def names() -> tuple[str, ...]:
    """The registered diagrams: the option names of the ``model`` config group."""
    return tuple(sorted(path.stem for path in CONFIG_DIR.glob("*.yaml")))


def resolve(path: str, what: str) -> Callable:
    """The function at ``package.module.function`` (one line naming ``what`` if it cannot be imported)."""
    import logging

    from hydra.utils import get_method

    hydra_log = logging.getLogger("hydra.utils")
    was_disabled, hydra_log.disabled = hydra_log.disabled, True  # it logs a multi-line error before raising one
    try:
        return get_method(path)
    except Exception as error:  # noqa: BLE001 - Hydra wraps every import problem in a multi-line error
        cause = error.__cause__ or error
        raise ValueError(f"{what}={path!r} cannot be imported: {type(cause).__name__}: "
                         f"{' '.join(str(cause).split())[:200]}") from None
    finally:
        hydra_log.disabled = was_disabled


def sweeps(cfg: DictConfig) -> tuple[str, ...]:
    """The values of ``inference.sweep`` that the chosen diagram supports (none for a ``cli.run`` diagram)."""
    return tuple(cfg.model.cli.get("sweeps") or ())


def sweep_function(cfg: DictConfig) -> Callable:
    """The function that fits ``cfg.model`` for ``cfg.inference.sweep``."""
    sweep = str(cfg.inference.get("sweep", "independent"))
    return resolve(str(cfg.model.cli.sweeps[sweep]), f"model.cli.sweeps.{sweep}")


def run_function(cfg: DictConfig) -> Callable | None:
    """The whole-run function of a diagram that brings its own data (``cli.run``), else None."""
    path = cfg.model.cli.get("run")
    return None if path is None else resolve(str(path), "model.cli.run")
