"""The second diagram in the CLI: the response has no label (``model=latent_response``).

c → x; r ~ N(μ[c, x], σ[c, x]) is a latent embedding of the response (VaDE-style); (x, r, ε) → image. The
objective does not split, so each member is a whole fit: ``independent`` trains one from the warm-up on;
``shared`` fine-tunes one cached γ = 0 base per member (:func:`~cauvade_pyro.members.shared_latent_base`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cauvade_pyro.config import ConfigError, check_clusters, check_image

log = logging.getLogger("cauvade_pyro.fit")


def check(cfg: DictConfig) -> None:
    """This diagram's keys: K and the image model (whose likelihood must be Bernoulli here)."""
    check_clusters(cfg)
    check_image(cfg)
    if cfg.model.image.get("eps_prior_given", "x") != "x":  # this diagram's ε never depends on the response r
        raise ConfigError(f"model.image.eps_prior_given must be x with model=latent_response, "
                          f"got {cfg.model.image.eps_prior_given!r}")
    if cfg.model.image.likelihood != "bernoulli":
        raise ConfigError(f"model.image.likelihood must be bernoulli with model=latent_response, "
                          f"got {cfg.model.image.likelihood!r}")


def fit_member(cfg: DictConfig, dataset, device, out_dir: Path):
    """One member at ``inference.gamma``: a whole fit, or a fine-tune of the shared base (``inference.sweep``)."""
    from cauvade_pyro.evaluate import evaluate_latent_response
    from cauvade_pyro.fit import resume_options
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
                                  **resume_options(cfg, out_dir, image_nan_hint(cfg)))
        info = {"sweep": "shared", "base": str(base_path), "member_epochs": int(cfg.inference.get("member_epochs", 1))}
    else:
        losses = fit_latent_base(model, train, gamma=float(cfg.inference.gamma),
                                 warmup_epochs=int(cfg.model.warmup_epochs), epochs=int(cfg.inference.image_epochs),
                                 batch_size=batch, lr=lr, seed=seed, clip_norm=float(cfg.inference.clip_norm),
                                 progress=cfg.progress, **resume_options(cfg, out_dir, image_nan_hint(cfg)))
    model.eval()
    if model.eps_noise.components:  # the ex-post prior of ε, fitted to this member's codes
        from cauvade_pyro.inference import fit_eps_prior

        info["eps_prior"] = fit_eps_prior(model, train, seed=seed)
    save_checkpoint(out_dir / "checkpoint.pt", {
        "kind": "latent_response_member", "config": OmegaConf.to_container(cfg, resolve=True),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    })
    seed_everything(seed)
    return model, {"loss_final": losses[-1], **info}, evaluate_latent_response
