"""``python -m cauvade_pyro.fit``: fit one member of a CauVaDE γ-family and evaluate it against the truth.

The member minimises −ELBO + γ Σ_n H[p(c | o_n, z_n)] (γ < 0: diffuse clusters, the observational answer;
γ > 0: sharp clusters, the confounder explains more). Into Hydra's run folder it writes ``checkpoint.pt``,
``metrics.json``, ``samples.png`` (observational, do(x) and reference samples per x) and ``effect.png``.

    python -m cauvade_pyro.fit                                   # default: confounded shapes, γ = 0
    python -m cauvade_pyro.fit -m inference.gamma=-2,0,2,4 seed=0,1,2   # a γ × seed family
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from cauvade_pyro.config import ConfigError, validate_config

# The numerical stack (torch, Pyro, torchvision) is imported by the functions that use it, after the config
# has been checked: `--help` and a mistyped value answer in a second instead of after ~10 s of imports.

log = logging.getLogger("cauvade_pyro.fit")


def build_dataset(cfg: DictConfig):
    from cauvade_pyro.datasets import ConfoundedShapes

    params = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items() if k != "name"}
    if cfg.dataset.name != "shapes":
        raise ConfigError(f"dataset.name must be 'shapes', got {cfg.dataset.name!r}")
    return ConfoundedShapes(**params)


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
    )
    model = ConfoundedAttributesModel(attributes, image_model).eval()
    save_member(out_dir / "checkpoint.pt", cfg, model, image_path)
    seed_everything(int(cfg.seed))
    return model, {"image_model": str(image_path), "attribute_loss_final": losses[-1]}, evaluate_confounded_attributes


def _fit_latent_response(cfg, dataset, device, out_dir: Path):
    import torch

    from cauvade_pyro.evaluate import evaluate_latent_response
    from cauvade_pyro.inference import GammaEntropyELBO, fit_svi, init_latent_response, save_checkpoint, seed_everything
    from cauvade_pyro.models import LatentResponseModel

    image = cfg.model.image
    model = LatentResponseModel(
        int(cfg.model.K), dataset.num_classes, dataset.image_shape, r_dim=int(cfg.model.r_dim),
        eps_dim=int(image.eps_dim), net=image.net, likelihood=image.likelihood, kl_weight=float(image.kl_weight),
    ).to(device)
    train = {k: dataset.train[k].to(device) for k in ("x", "image")}
    batch, lr, seed = int(cfg.inference.batch_size), float(cfg.inference.image_lr), int(cfg.seed)
    init_latent_response(model, train, warmup_epochs=int(cfg.model.warmup_epochs), batch_size=batch, lr=lr,
                         seed=seed, progress=cfg.progress)
    losses = fit_svi(model.model, model.guide, train, GammaEntropyELBO(gamma=float(cfg.inference.gamma)),
                     epochs=int(cfg.inference.image_epochs), batch_size=batch, lr=lr,
                     clip_norm=float(cfg.inference.clip_norm),
                     generator=torch.Generator().manual_seed(seed), progress=cfg.progress, desc="latent response")
    model.eval()
    save_checkpoint(out_dir / "checkpoint.pt", {
        "kind": "latent_response_member", "config": OmegaConf.to_container(cfg, resolve=True),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    })
    seed_everything(seed)
    return model, {"loss_final": losses[-1]}, evaluate_latent_response


def run(cfg: DictConfig) -> dict:
    """Fit and evaluate one member; returns the metrics written to ``metrics.json``."""
    started = time.perf_counter()
    validate_config(cfg)
    import pyro
    import torch
    from hydra.core.hydra_config import HydraConfig

    from cauvade_pyro.inference import resolve_device, seed_everything
    from cauvade_pyro.metrics import train_judge
    from cauvade_pyro.plots import save_effect_plot, save_sample_grids

    device = resolve_device(str(cfg.device))
    if int(cfg.torch_threads) > 0:
        torch.set_num_threads(int(cfg.torch_threads))
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    seed_everything(int(cfg.seed))
    pyro.clear_param_store()
    dataset = build_dataset(cfg)
    judge = train_judge(dataset, seed=int(cfg.eval.judge_seed), num_images=int(cfg.eval.judge_images),
                        epochs=int(cfg.eval.judge_epochs), device=str(device), cache_dir=cfg.cache_dir)
    fitter = _fit_confounded_attributes if cfg.model.diagram == "confounded_attributes" else _fit_latent_response
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
        **fit_info,
        **evaluation,
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(summary(metrics, out_dir))
    return metrics


def summary(metrics: dict, out_dir: Path) -> str:
    lines = [f"cauvade-pyro fit: γ={metrics['gamma']:g} seed={metrics['seed']} K={metrics['K']} "
             f"({metrics['diagram']}, {metrics['dataset']}, {metrics['device']}, {metrics['wall_time_s']} s)"]
    w1 = metrics["w1_mean"]
    lines.append("  mean W1 to true P(hue | do(x)): " + ", ".join(f"{k.removeprefix('w1_').removesuffix('_to_truth')} {v:.3f}" for k, v in w1.items()))
    if "posterior_entropy" in metrics:
        lines.append(f"  posterior entropy {metrics['posterior_entropy']:.3f}   held-out ELBO/image {metrics['heldout']['elbo']:.1f}")
    lines.append("  effectiveness: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics["effectiveness"].items()))
    lines.append(f"  outputs: {out_dir}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (ConfigError, ValueError) as error:
        print(f"cauvade_pyro.fit: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
