"""A user's own discrete diagram in the CLI (``model=user``): the family of their Pyro program on their data.

    python -m cauvade_pyro.fit model=user model.target=my_pkg.diagrams:iv model.data=iv.npz

``model.target`` and ``model.data`` are read by :mod:`cauvade_pyro.user_diagram`; the family is
:func:`~cauvade_pyro.inference.fit_family` with the options of ``inference.family``. Writes ``family.pt``,
``effect.png`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cauvade_pyro.config import ConfigError, check_family_options
from cauvade_pyro.diagrams.options import family_options


def check(cfg: DictConfig) -> None:
    """The diagram's target and data file, its treatment and outcome sites, and fit_family's options."""
    from omegaconf.errors import MissingMandatoryValue

    for key, what in (("model.target", "package.module:name of your diagram"),
                      ("model.data", "a .pt or .npz file of your data")):
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True)
        except MissingMandatoryValue:
            raise ConfigError(f"{key} is required with model=user: give {what}") from None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key} must be {what}, got {value!r}")
    for key in ("model.treatment", "model.outcome"):
        if not isinstance(OmegaConf.select(cfg, key), str):
            raise ConfigError(f"{key} must name a site of the diagram, got {OmegaConf.select(cfg, key)!r}")
    check_family_options(cfg)


def run(cfg: DictConfig, out_dir: Path, started: float) -> dict:
    """Fit the family of the user's diagram; write ``family.pt``, ``effect.png`` and ``metrics.json``."""
    from cauvade_pyro.fit import write_atomically
    from cauvade_pyro.inference import fit_family, seed_everything
    from cauvade_pyro.plots import save_family_plot
    from cauvade_pyro.user_diagram import load_data, load_diagram

    diagram = load_diagram(str(cfg.model.target))
    data = load_data(str(cfg.model.data))
    seed_everything(int(cfg.seed))
    family = fit_family(diagram, data, treatment=str(cfg.model.treatment), outcome=str(cfg.model.outcome),
                        seed=int(cfg.seed), progress=bool(cfg.progress), **family_options(cfg))
    family.save(out_dir / "family.pt")
    title = f"{cfg.model.target}  τ={family.tau:g}  {len(family)} members"
    save_family_plot(out_dir / "effect.png", family.p_do().numpy(), [m.kind for m in family], family.treatment,
                     family.outcome, title)
    low, high = family.range()
    metrics = {"diagram": "user", "target": str(cfg.model.target), "data": str(cfg.model.data),
               "seed": int(cfg.seed), **family.summary(),
               "p_do_min": low.tolist(), "p_do_max": high.tolist(),
               "wall_time_s": round(time.perf_counter() - started, 1)}
    write_atomically(out_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False))
    print(f"cauvade-pyro family: {len(family)} members of {cfg.model.target} within τ={family.tau:g} nats "
          f"(largest held-out gap {metrics['max_fit_gap_nats']:.4f}; dropped {family.dropped}), "
          f"{metrics['wall_time_s']} s")
    for t in range(family.num_treatment):
        cells = ", ".join(f"{low[t, o]:.3f}–{high[t, o]:.3f}" for o in range(family.num_outcome))
        print(f"  P({family.outcome} | do({family.treatment}={t})): {cells}")
    print(f"  outputs: {out_dir}")
    return metrics
