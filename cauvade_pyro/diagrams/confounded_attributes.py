"""The default diagram in the CLI: c → x, (x, c) → y, ε ~ N(0, I), (x, y, ε) → image (``model=confounded_attributes``).

The objective splits: log p(x, y) (the attribute level, where γ acts) plus log p(image | x, y) (one image model
shared by every member and cached). Sweeps: ``independent`` (and ``shared``, the same: the image model is always
shared) fits one member at ``inference.gamma``; ``family`` fits the whole family of the attribute level with
:func:`~cauvade_pyro.inference.fit_family` around the shared image model.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from cauvade_pyro.config import Y_PARAMETERIZATIONS, ConfigError, check_clusters, check_family_options, check_image
from cauvade_pyro.diagrams.options import family_options

# The numerical stack is imported inside the functions: the CLI checks this diagram's keys before it loads.

log = logging.getLogger("cauvade_pyro.fit")


def check(cfg: DictConfig) -> None:
    """This diagram's keys: K, the image model and the parameterisation of p(y | x, c)."""
    check_clusters(cfg)
    check_image(cfg)
    if cfg.model.y_given_xc not in Y_PARAMETERIZATIONS:
        raise ConfigError(f"model.y_given_xc must be one of {Y_PARAMETERIZATIONS}, got {cfg.model.y_given_xc!r}")
    if cfg.inference.get("sweep") == "family":
        check_family_options(cfg)


def fit_member(cfg: DictConfig, dataset, device, out_dir: Path):
    """One member at ``inference.gamma`` from ``seed``: the attribute mixture around the shared image model."""
    from cauvade_pyro.evaluate import evaluate_confounded_attributes
    from cauvade_pyro.fit import resume_options
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
        **resume_options(cfg, out_dir, f"try a lower inference.attribute_lr (now {cfg.inference.attribute_lr}) "
                                       f"or inference.init_scale (now {cfg.inference.init_scale})"),
    )
    model = ConfoundedAttributesModel(attributes, image_model).eval()
    save_member(out_dir / "checkpoint.pt", cfg, model, image_path, dataset)
    seed_everything(int(cfg.seed))
    return model, {"image_model": str(image_path), "attribute_loss_final": losses[-1]}, evaluate_confounded_attributes


def fit_family_sweep(cfg: DictConfig, dataset, device, out_dir: Path):
    """inference.sweep=family: the whole family of the attribute level (fit_family) around the shared image model.

    Writes ``family.pt`` and ``family.png``. The fit tolerance is checked on ``inference.family.heldout_share`` of
    the training rows, so the test split takes no part in fitting or accepting members; the member evaluated in
    full on it (images, effectiveness) is the best γ = 0 restart, every member is scored at the attribute level (exact P(y | do(x)) against the truth, and the
    family's coverage of the truth and span of the sharp bounds)."""
    from cauvade_pyro.evaluate import evaluate_confounded_attributes, score_attribute_family
    from cauvade_pyro.inference import fit_family, seed_everything
    from cauvade_pyro.members import build_attributes, shared_image_model
    from cauvade_pyro.models import ConfoundedAttributesModel
    from cauvade_pyro.plots import save_family_plot

    image_model, image_path, trained = shared_image_model(cfg, dataset, device, progress=cfg.progress)
    log.info("shared image model %s (%s)", image_path, "trained" if trained else "loaded from cache")
    attributes = build_attributes(cfg, dataset.num_classes, dataset.num_hue_bins).to(device)
    model = ConfoundedAttributesModel(attributes, image_model).eval()
    seed_everything(int(cfg.seed))
    # τ is checked on inference.family.heldout_share of the training rows: the test split stays for the evaluation
    train = {k: dataset.train[k].to(device) for k in ("x", "y")}
    family = fit_family(model.model, train, seed=int(cfg.seed), progress=bool(cfg.progress), **family_options(cfg))
    family.save(out_dir / "family.pt")
    scored = score_attribute_family(family, dataset.scm)
    scores = {
        "coverage": round(scored["coverage"], 4),
        "span": round(scored["span"], 4),
        "member_scores": [{**m.summary(), "w1_to_truth": [round(float(v), 5) for v in w1]}
                          for m, w1 in zip(family, scored["w1"])],
    }
    save_family_plot(out_dir / "family.png", family.p_do().numpy(), [m.kind for m in family], "x", "hue bin",
                     f"family of the attribute level: {len(family)} members within τ={family.tau:g} nats",
                     scored["lower"].numpy(), scored["upper"].numpy(), scored["truth"].numpy())
    summary_keys = ("tau", "members", "dropped", "best_heldout_nll", "max_fit_gap_nats", "seconds", "by_kind")
    info = {"image_model": str(image_path), "sweep": "family",
            "family": {**{k: v for k, v in family.summary().items() if k in summary_keys}, **scores}}
    evaluated = family.best_restart()  # the best γ = 0 restart (else, if every restart was dropped, the best fit)
    evaluated.activate()  # its images and effectiveness go into the usual metrics
    info["family"]["evaluated_member"] = evaluated.label
    return model, info, evaluate_confounded_attributes
