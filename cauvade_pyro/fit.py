"""``python -m cauvade_pyro.fit``: fit one member of a CauVaDE γ-family and evaluate it against the truth.

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
    ConfigError,
    DatasetNotFoundError,
    check_dataset_files,
    check_overrides,
    validate_config,
)

# The numerical stack (torch, Pyro, torchvision) is imported by the functions that use it, after the config
# has been checked: `--help` and a mistyped value answer in a second instead of after ~10 s of imports.

log = logging.getLogger("cauvade_pyro.fit")


def build_dataset(cfg: DictConfig):
    from cauvade_pyro.datasets import make_dataset

    params = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items() if k != "name"}
    return make_dataset(cfg.dataset.name, **params)


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


def _resume_options(cfg: DictConfig, out_dir: Path, hint: str) -> dict:
    from cauvade_pyro.members import fit_fingerprint

    source = resume_source(cfg, out_dir)
    if source is not None:
        log.info("resuming the %s fit from %s", cfg.model.diagram, source)
    return {
        "checkpoint_path": out_dir / "train_state.pt", "checkpoint_every": int(cfg.inference.checkpoint_every),
        "resume_from": source, "fingerprint": fit_fingerprint(cfg), "hint": hint,
    }


def _fit_confounded_attributes(cfg, dataset, device, out_dir: Path):
    from cauvade_pyro.evaluate import evaluate_confounded_attributes
    from cauvade_pyro.inference import fit_attribute_member, seed_everything
    from cauvade_pyro.members import build_attributes, save_member, shared_image_model
    from cauvade_pyro.models import ConfoundedAttributesModel

    image_model, image_path, trained = shared_image_model(cfg, dataset, device, progress=cfg.progress)
    log.info("shared image model %s (%s)", image_path, "trained" if trained else "loaded from cache")
    attributes = build_attributes(cfg, dataset.num_classes, dataset.num_hue_bins).to(device)
    losses = fit_attribute_member(
        attributes, dataset.train["x"].to(device), dataset.train["y"].to(device),
        gamma=float(cfg.inference.gamma), seed=int(cfg.seed), steps=int(cfg.inference.attribute_steps),
        lr=float(cfg.inference.attribute_lr), init_scale=float(cfg.inference.init_scale),
        clip_norm=float(cfg.inference.clip_norm), progress=cfg.progress,
        objective=str(cfg.inference.attribute_objective),
        **_resume_options(cfg, out_dir, f"try a lower inference.attribute_lr (now {cfg.inference.attribute_lr}) "
                                        f"or inference.init_scale (now {cfg.inference.init_scale})"),
    )
    model = ConfoundedAttributesModel(attributes, image_model).eval()
    save_member(out_dir / "checkpoint.pt", cfg, model, image_path)
    seed_everything(int(cfg.seed))
    return model, {"image_model": str(image_path), "attribute_loss_final": losses[-1]}, evaluate_confounded_attributes


def _family_options(cfg: DictConfig) -> dict:
    options = OmegaConf.to_container(cfg.inference.family, resolve=True)
    options["entropy_targets"] = tuple(options["entropy_targets"])
    return options


def _fit_confounded_family(cfg, dataset, device, out_dir: Path):
    """inference.sweep=family: the whole family of the attribute level (fit_family) around the shared image model.

    Writes ``family.pt`` and ``family.png``; the member evaluated in full (images, effectiveness) is the best
    γ = 0 restart, every member is scored at the attribute level (exact P(y | do(x)) against the truth, and the
    family's coverage of the truth and span of the sharp bounds)."""
    from cauvade_pyro.evaluate import evaluate_confounded_attributes
    from cauvade_pyro.inference import fit_family, seed_everything
    from cauvade_pyro.members import build_attributes, shared_image_model
    from cauvade_pyro.metrics import bow_graph_bounds, circular_w1
    from cauvade_pyro.metrics.family import coverage, span
    from cauvade_pyro.models import ConfoundedAttributesModel
    from cauvade_pyro.plots import save_family_plot

    image_model, image_path, trained = shared_image_model(cfg, dataset, device, progress=cfg.progress)
    log.info("shared image model %s (%s)", image_path, "trained" if trained else "loaded from cache")
    attributes = build_attributes(cfg, dataset.num_classes, dataset.num_hue_bins).to(device)
    model = ConfoundedAttributesModel(attributes, image_model).eval()
    seed_everything(int(cfg.seed))
    train = {k: dataset.train[k].to(device) for k in ("x", "y")}
    heldout = {k: dataset.test[k].to(device) for k in ("x", "y")}  # τ is checked on the test split
    options = {k: v for k, v in _family_options(cfg).items() if k != "heldout_share"}
    family = fit_family(model.model, train, heldout=heldout, seed=int(cfg.seed), progress=bool(cfg.progress), **options)
    family.save(out_dir / "family.pt")
    scm = dataset.scm
    truth = scm.interventional_y().float()
    lower, upper = bow_graph_bounds(scm.joint_xy())
    low, high = family.range()
    positions = scm.bin_centres()
    scores = {
        "coverage": round(coverage(truth, low, high, atol=1e-6).share, 4),
        "span": round(span(low, high, lower, upper).clipped_mean, 4),
        "member_scores": [{**m.summary(), "w1_to_truth": [round(circular_w1(m.p_do[x], truth[x], positions), 5)
                                                     for x in range(dataset.num_classes)]} for m in family],
    }
    save_family_plot(out_dir / "family.png", family.p_do().numpy(), [m.kind for m in family], "x", "hue bin",
                     f"family of the attribute level: {len(family)} members within τ={family.tau:g} nats",
                     lower.numpy(), upper.numpy(), truth.numpy())
    summary_keys = ("tau", "members", "dropped", "best_heldout_nll", "max_fit_gap_nats", "seconds", "by_kind")
    info = {"image_model": str(image_path), "sweep": "family",
            "family": {**{k: v for k, v in family.summary().items() if k in summary_keys}, **scores}}
    family.best_restart().activate()  # the best γ = 0 restart: its images and effectiveness go into the usual metrics
    return model, info, evaluate_confounded_attributes


def _fit_latent_response(cfg, dataset, device, out_dir: Path):
    from cauvade_pyro.evaluate import evaluate_latent_response
    from cauvade_pyro.inference import fit_latent_base, save_checkpoint, seed_everything
    from cauvade_pyro.members import build_latent_response, image_nan_hint

    model = build_latent_response(cfg, dataset.num_classes, dataset.image_shape).to(device)
    train = {k: dataset.train[k].to(device) for k in ("x", "image")}
    batch, lr, seed = int(cfg.inference.batch_size), float(cfg.inference.image_lr), int(cfg.seed)
    info = {}
    if cfg.inference.get("sweep", "independent") == "shared":
        from cauvade_pyro.inference import fine_tune_member
        from cauvade_pyro.members import load_state, shared_latent_base

        base, base_path, trained = shared_latent_base(cfg, dataset, device, progress=cfg.progress)
        log.info("shared latent-response base %s (%s)", base_path, "trained" if trained else "loaded from cache")
        load_state(model, base, base_path)  # a base that does not fit this model: one line, before any training
        losses = fine_tune_member(model, base, train, gamma=float(cfg.inference.gamma),
                                  epochs=int(cfg.inference.get("member_epochs", 1)), batch_size=batch, lr=lr, seed=seed,
                                  clip_norm=float(cfg.inference.clip_norm), progress=cfg.progress,
                                  **_resume_options(cfg, out_dir, image_nan_hint(cfg)))
        info = {"sweep": "shared", "base": str(base_path), "member_epochs": int(cfg.inference.get("member_epochs", 1))}
    else:
        losses = fit_latent_base(model, train, gamma=float(cfg.inference.gamma),
                                 warmup_epochs=int(cfg.model.warmup_epochs), epochs=int(cfg.inference.image_epochs),
                                 batch_size=batch, lr=lr, seed=seed, clip_norm=float(cfg.inference.clip_norm),
                                 progress=cfg.progress, **_resume_options(cfg, out_dir, image_nan_hint(cfg)))
    model.eval()
    save_checkpoint(out_dir / "checkpoint.pt", {
        "kind": "latent_response_member", "config": OmegaConf.to_container(cfg, resolve=True),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    })
    seed_everything(seed)
    return model, {"loss_final": losses[-1], **info}, evaluate_latent_response


def run_user_family(cfg: DictConfig, started: float) -> dict:
    """``model=user``: the family of the user's own diagram (``family.pt``, ``metrics.json``, ``effect.png``)."""
    import torch
    from hydra.core.hydra_config import HydraConfig

    from cauvade_pyro.inference import fit_family, seed_everything
    from cauvade_pyro.plots import save_family_plot
    from cauvade_pyro.user_diagram import load_data, load_diagram

    if int(cfg.torch_threads) > 0:
        torch.set_num_threads(int(cfg.torch_threads))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    diagram = load_diagram(str(cfg.model.target))
    data = load_data(str(cfg.model.data))
    seed_everything(int(cfg.seed))
    family = fit_family(diagram, data, treatment=str(cfg.model.treatment), outcome=str(cfg.model.outcome),
                        seed=int(cfg.seed), progress=bool(cfg.progress), **_family_options(cfg))
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


def run(cfg: DictConfig) -> dict:
    """Fit and evaluate one member; returns the metrics written to ``metrics.json``."""
    started = time.perf_counter()
    validate_config(cfg)
    if cfg.model.diagram == "user":
        return run_user_family(cfg, started)
    check_dataset_files(cfg)  # a missing base dataset answers before the numerical stack loads
    import pyro
    import torch
    from hydra.core.hydra_config import HydraConfig

    from cauvade_pyro.inference import resolve_device, seed_everything
    from cauvade_pyro.metrics import train_judge
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
    judge = train_judge(dataset, seed=int(cfg.eval.judge_seed), num_images=int(cfg.eval.judge_images),
                        epochs=int(cfg.eval.judge_epochs), device=str(device), cache_dir=cfg.cache_dir)
    fitter = {"confounded_attributes": _fit_confounded_attributes, "latent_response": _fit_latent_response}[
        cfg.model.diagram]
    if cfg.inference.get("sweep") == "family":
        fitter = _fit_confounded_family
    # inference.precision=bf16: every network of the fit (warm-up and shared bases included) under bf16 autocast
    with net_autocast(precision_dtype(str(cfg.inference.get("precision", "fp32")))):
        model, fit_info, evaluate = fitter(cfg, dataset, device, out_dir)
    evaluation, panels = evaluate(model, dataset, judge, int(cfg.eval.num_samples), int(cfg.eval.grid_samples))
    title = f"{cfg.model.diagram}  γ={float(cfg.inference.gamma):g}  seed={int(cfg.seed)}  K={int(cfg.model.K)}"
    save_sample_grids(out_dir / "samples.png", panels, dataset.class_names, title)
    save_effect_plot(out_dir / "effect.png", evaluation["per_x"], title)
    metrics = {
        "gamma": float(cfg.inference.gamma),
        "seed": int(cfg.seed),
        "K": int(cfg.model.K),
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
