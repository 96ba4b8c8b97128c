"""``python -m cauvade_pyro.fit``: fit one member of a CauVaDE γ-family and evaluate it against the truth.

Which diagram runs, and how it is fitted for each ``inference.sweep``, is what its ``conf/model/<name>.yaml``
registers (:mod:`cauvade_pyro.diagrams`); this module is the pipeline around it (config checks, dataset, judge,
evaluation, plots, ``metrics.json``).

The member minimises −ELBO + γ Σ_n H[p(c | o_n, z_n)] (γ < 0: diffuse clusters, the observational answer;
γ > 0: sharp clusters, the confounder explains more). Into Hydra's run folder it writes ``checkpoint.pt``,
``metrics.json``, ``samples.png`` (observational, do(x) and reference samples per x) and ``effect.png``.

    python -m cauvade_pyro.fit                                   # default: confounded shapes, γ = 0
    python -m cauvade_pyro.fit -m inference.gamma=-2,0,2,4 seed=0,1,2   # a γ × seed family
    python -m cauvade_pyro.fit model=user model.target=pkg.mod:diagram model.data=data.npz  # your own diagram
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from cauvade_pyro.config import (
    DATASET_DEFAULTS,
    ConfigError,
    DatasetNotFoundError,
    check_dataset_files,
    check_overrides,
    validate_config,
)

# The numerical stack (torch, Pyro, torchvision) is imported by the functions that use it, after the config
# has been checked: `--help` and a mistyped value answer in a second instead of after ~10 s of imports.

log = logging.getLogger("cauvade_pyro.fit")


#: keys of a dataset's config that are not arguments of its constructor: its name, and the defaults it gives
#: other keys (:data:`~cauvade_pyro.config.DATASET_DEFAULTS`, read by those keys themselves, see their configs)
NOT_DATASET_ARGUMENTS = ("name", *DATASET_DEFAULTS)


def build_dataset(cfg: DictConfig):
    from cauvade_pyro.datasets import make_dataset

    params = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items()
              if k not in NOT_DATASET_ARGUMENTS}
    return make_dataset(cfg.dataset.name, **params)


def build_judge(cfg: DictConfig, dataset, device):
    """The judge of ``dataset`` (trained once, then loaded from ``cache_dir``): never in a training loss."""
    from cauvade_pyro.metrics import train_judge

    return train_judge(dataset, seed=int(cfg.eval.judge_seed), num_images=int(cfg.eval.judge_images),
                       epochs=int(cfg.eval.judge_epochs), device=str(device), cache_dir=cfg.cache_dir)


def resume_source(cfg: DictConfig, out_dir: Path) -> Path | None:
    """The member's training state to continue from: ``resume=true`` finds this run dir's, a path names one."""
    if cfg.resume is False:
        return None
    if cfg.resume is True:
        path = out_dir / "train_state.pt"
        return path if path.is_file() else None
    path = Path(cfg.resume)
    return path / "train_state.pt" if path.is_dir() else path


def check_resume_state(cfg: DictConfig, out_dir: Path) -> None:
    """Before any data is loaded: the member state to resume must be readable and fit this config (one line)."""
    source = resume_source(cfg, out_dir)
    if source is None:
        return
    from cauvade_pyro.inference import load_checkpoint
    from cauvade_pyro.inference.checkpoint import check_config_matches
    from cauvade_pyro.members import fit_fingerprint

    state = load_checkpoint(source, kind="train_state")
    hint = " (pass resume=false to start over)" if cfg.resume is True else ""
    try:
        check_config_matches(source, state["config"], fit_fingerprint(cfg), what="training state")
    except ValueError as error:
        raise ValueError(f"{error}{hint}") from None


def resume_options(cfg: DictConfig, out_dir: Path, hint: str) -> dict:
    """Checkpoint and resume keyword arguments of a member fit (shared by the diagrams' CLI entries)."""
    from cauvade_pyro.members import fit_fingerprint

    source = resume_source(cfg, out_dir)
    if source is not None:
        log.info("resuming the %s fit from %s", cfg.model.diagram, source)
    return {
        "checkpoint_path": out_dir / "train_state.pt", "checkpoint_every": int(cfg.inference.checkpoint_every),
        "resume_from": source, "fingerprint": fit_fingerprint(cfg), "hint": hint,
    }


def run(cfg: DictConfig) -> dict:
    """Fit and evaluate one member; returns the metrics written to ``metrics.json``."""
    started = time.perf_counter()
    validate_config(cfg)
    from cauvade_pyro import diagrams

    own_run = diagrams.run_function(cfg)
    if own_run is not None:  # a diagram with its own data (model=user): no dataset, judge or image grids
        import torch
        from hydra.core.hydra_config import HydraConfig

        if int(cfg.torch_threads) > 0:
            torch.set_num_threads(int(cfg.torch_threads))
        return own_run(cfg, Path(HydraConfig.get().runtime.output_dir), started)
    check_dataset_files(cfg)  # a missing base dataset answers before the numerical stack loads
    import pyro
    import torch
    from hydra.core.hydra_config import HydraConfig

    from cauvade_pyro.inference import resolve_device, seed_everything
    from cauvade_pyro.models.precision import net_autocast, precision_dtype
    from cauvade_pyro.plots import save_effect_plot, save_sample_grids

    device = resolve_device(str(cfg.device))
    if int(cfg.torch_threads) > 0:
        torch.set_num_threads(int(cfg.torch_threads))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    check_resume_state(cfg, out_dir)
    seed_everything(int(cfg.seed))
    pyro.clear_param_store()
    dataset = build_dataset(cfg)
    judge = build_judge(cfg, dataset, device)
    fitter = diagrams.sweep_function(cfg)  # what conf/model/<diagram>.yaml names for this inference.sweep
    # inference.precision=bf16: every network of the fit (warm-up and shared bases included) under bf16 autocast
    with net_autocast(precision_dtype(str(cfg.inference.get("precision", "fp32")))):
        model, fit_info, evaluate = fitter(cfg, dataset, device, out_dir)
    evaluation, panels = evaluate(model, dataset, judge, int(cfg.eval.num_samples), int(cfg.eval.grid_samples))
    clusters = cfg.model.get("K")  # a registered diagram need not have a K
    title = f"{cfg.model.diagram}  γ={float(cfg.inference.gamma):g}  seed={int(cfg.seed)}" + (
        f"  K={int(clusters)}" if clusters is not None else "")
    save_sample_grids(out_dir / "samples.png", panels, dataset.class_names, title)
    save_effect_plot(out_dir / "effect.png", evaluation["per_x"], title)
    metrics = {
        "gamma": float(cfg.inference.gamma),
        "seed": int(cfg.seed),
        "K": None if clusters is None else int(clusters),
        "diagram": cfg.model.diagram,
        "dataset": cfg.dataset.name,
        "device": str(device),
        "precision": str(cfg.inference.get("precision", "fp32")),
        **fit_info,
        **evaluation,
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    write_atomically(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    (out_dir / "train_state.pt").unlink(missing_ok=True)  # the fit is complete: checkpoint.pt holds its result
    print(summary(metrics, out_dir))
    return metrics


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def summary(metrics: dict, out_dir: Path) -> str:
    lines = [f"cauvade-pyro fit: γ={metrics['gamma']:g} seed={metrics['seed']} K={metrics['K']} "
             f"({metrics['diagram']}, {metrics['dataset']}, {metrics['device']}, {metrics['wall_time_s']} s)"]
    w1 = metrics["w1_mean"]
    lines.append("  mean W1 to true P(hue | do(x)): " + ", ".join(f"{k.removeprefix('w1_').removesuffix('_to_truth')} {v:.3f}" for k, v in w1.items()))
    if "posterior_entropy" in metrics:
        lines.append(f"  posterior entropy {metrics['posterior_entropy']:.3f}   held-out ELBO/image {metrics['heldout']['elbo']:.1f}")
    spread = metrics.get("diversity", {})
    if spread.get("within_bin_hue_w1") is not None:
        floor = spread.get("within_bin_hue_w1_reference_floor")
        lines.append(f"  within-bin hue W1 of the do(x) images (bin widths, from pixels): {spread['within_bin_hue_w1']:.3f}"
                     + ("" if floor is None else f" (reference vs reference {floor:.3f})"))
    lines.append("  effectiveness: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics["effectiveness"].items()))
    lines += [f"  WARNING: {warning}" for warning in metrics.get("warnings", [])]
    if "family" in metrics:
        family = metrics["family"]
        lines.append(f"  family: {family['members']} members within τ={family['tau']:g} (dropped {family['dropped']}); "
                     f"coverage of the truth {family['coverage']:.2f}, span of the sharp bounds {family['span']:.2f}")
    lines.append(f"  outputs: {out_dir}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (ConfigError, ValueError, DatasetNotFoundError) as error:
        print(f"cauvade_pyro.fit: error: {error}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as error:
        print(f"cauvade_pyro.fit: stopped: {error}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:])
    except ConfigError as error:
        print(f"cauvade_pyro.fit: error: {error}", file=sys.stderr)
        sys.exit(2)
    main()
