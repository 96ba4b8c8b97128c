"""The second diagram in the CLI: the response has no label (``model=latent_response``).

c → x; r ~ N(μ[c, x], σ[c, x]) is a latent embedding of the response (VaDE-style); (x, r, ε) → image. The
objective does not split, so each member is a whole fit: ``independent`` trains one from the warm-up on;
``shared`` fine-tunes one cached γ = 0 base per member (:func:`~cauvade_pyro.members.shared_latent_base`).
``family`` quantises the base's codes into ``model.response_atoms`` atoms and fits the whole family of the
(x, atom) tables with :func:`~cauvade_pyro.inference.fit_family` (:class:`~cauvade_pyro.models.AtomResponseModel`):
every member shares the base's networks and is scored from its images.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cauvade_pyro.config import ConfigError, check_clusters, check_family_options, check_image
from cauvade_pyro.diagrams.options import family_options

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
    if cfg.inference.get("sweep") == "family":
        check_family_options(cfg)
        atoms = cfg.model.get("response_atoms")
        if not isinstance(atoms, int) or isinstance(atoms, bool) or atoms < 2:
            raise ConfigError(f"model.response_atoms must be an integer >= 2, got {atoms!r}")
        if atoms > int(cfg.dataset.get("num_train", atoms)):  # found before the base trains, not after
            raise ConfigError(f"model.response_atoms ({atoms}) must not exceed dataset.num_train "
                              f"({cfg.dataset.num_train}): every atom needs training images")


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


def fit_family_sweep(cfg: DictConfig, dataset, device, out_dir: Path):
    """inference.sweep=family: the family over response atoms around the shared γ = 0 base.

    The base (:func:`~cauvade_pyro.members.shared_latent_base`, cached) encodes the training images; M =
    ``model.response_atoms`` Gaussian atoms are fitted to the codes (:func:`~cauvade_pyro.inference.fit_response_atoms`)
    and :func:`~cauvade_pyro.inference.fit_family` fits the (x, atom) tables (τ checked on
    ``inference.family.heldout_share`` of the training rows). The returned evaluation scores every member from
    images (:func:`~cauvade_pyro.evaluate.evaluate_atom_family`: coverage of the true P(hue | do(x)), span of the
    sharp bounds, the held-out IWAE of every member) and evaluates the diffuse end (the largest mean
    cluster-posterior entropy) in full. Writes ``family.pt`` (the members' tables), ``family.png`` (P(hue | do(x))
    of every member, read from images), ``family_samples.png`` and ``checkpoint.pt`` (the networks, the atoms and
    the evaluated member's tables).
    """
    from cauvade_pyro.inference import fit_family, fit_response_atoms, seed_everything
    from cauvade_pyro.members import build_latent_response, load_state, shared_latent_base
    from cauvade_pyro.models import AtomResponseModel, AttributeMixture

    base, base_path, trained = shared_latent_base(cfg, dataset, device, progress=cfg.progress)
    log.info("shared latent-response base %s (%s)", base_path, "trained" if trained else "loaded from cache")
    image = build_latent_response(cfg, dataset.num_classes, dataset.image_shape).to(device)
    load_state(image, base, base_path)
    image.eval()
    seed = int(cfg.seed)
    train = {k: dataset.train[k].to(device) for k in ("x", "image")}
    atom_law, assigned, atoms_info = fit_response_atoms(image, train, num_atoms=int(cfg.model.response_atoms),
                                                        seed=seed)
    attributes = AttributeMixture(int(cfg.model.K), dataset.num_classes, atom_law.num_conditions, y_given_xc="table",
                                  outcome="atom")
    model = AtomResponseModel(attributes, image, atom_law).to(device).eval()
    seed_everything(seed)
    family = fit_family(model.model, {"x": train["x"], "atom": assigned}, outcome="atom", seed=seed,
                        progress=bool(cfg.progress), **family_options(cfg))
    family.save(out_dir / "family.pt")
    info = {"sweep": "family", "base": str(base_path), "response_atoms": atoms_info}

    def evaluate(model, dataset, judge, num_samples: int, grid_samples: int):
        return evaluate_family_sweep(model, family, cfg, out_dir, dataset, judge, num_samples, grid_samples)

    return model, info, evaluate


def evaluate_family_sweep(model, family, cfg: DictConfig, out_dir: Path, dataset, judge, num_samples: int,
                          grid_samples: int) -> tuple[dict, dict]:
    """Score every member from images, write the family's figures, then evaluate the diffuse end in full (its
    images, held-out bounds, effectiveness) and save it to ``checkpoint.pt``; ``metrics["family"]`` holds the
    family's scores. Runs where the CLI evaluates (outside any training autocast)."""
    import numpy as np

    from cauvade_pyro.evaluate import evaluate_atom_family, evaluate_latent_response
    from cauvade_pyro.inference import save_checkpoint, seed_everything
    from cauvade_pyro.metrics import bow_graph_bounds
    from cauvade_pyro.plots import save_family_plot, save_member_grids

    seed_everything(int(cfg.seed))
    scores = evaluate_atom_family(model, family, dataset, judge, images_per_atom=num_samples)
    lower, upper = bow_graph_bounds(dataset.scm.joint_xy())
    values = [m["p_do_from_images"] for m in scores["member_scores"]]
    save_family_plot(out_dir / "family.png", np.array(values), [m.kind for m in family], "x",
                     "hue bin (read from images)", f"latent-response family over {model.num_atoms} response atoms: "
                     f"{len(family)} members within τ={family.tau:g} nats", lower.numpy(), upper.numpy(),
                     dataset.scm.interventional_y().numpy())
    save_member_grids(out_dir / "family_samples.png", member_columns(model, family, scores, dataset, grid_samples),
                      dataset.class_names, "latent-response family: do(x) images (means of the Bernoulli pixels at "
                      "sampled atoms and codes) of the diffuse end, the sharpest and the two most distant members")
    evaluated = next(m for m in family if m.label == scores["diffuse_end"])
    evaluated.activate()  # its images, held-out bounds and effectiveness go into the usual metrics
    save_checkpoint(out_dir / "checkpoint.pt", {
        "kind": "latent_response_atoms", "config": OmegaConf.to_container(cfg, resolve=True),
        "member": evaluated.label, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    })
    seed_everything(int(cfg.seed))
    metrics, panels = evaluate_latent_response(model, dataset, judge, num_samples, grid_samples)
    summary_keys = ("tau", "members", "dropped", "best_heldout_nll", "max_fit_gap_nats", "seconds", "by_kind")
    metrics["family"] = {**{k: v for k, v in family.summary().items() if k in summary_keys}, **scores,
                         "evaluated_member": evaluated.label}
    return metrics, panels


def member_columns(model, family, scores: dict, dataset, grid_samples: int) -> list[tuple[str, dict]]:
    """The columns of ``family_samples.png``: observational images (the diffuse end, given x), the do(x) images of
    the diffuse end, of the sharpest member (least posterior entropy) and of the two members whose image-read
    P(hue | do(x)) lies farthest from the diffuse end's, and reference images."""
    import torch

    from cauvade_pyro.inference import intervene

    rows = {m["label"]: m for m in scores["member_scores"]}
    diffuse = rows[scores["diffuse_end"]]
    sharpest = min(scores["member_scores"], key=lambda m: m["entropy"])
    distance = lambda m: sum(abs(a - b) for p, q in zip(m["p_do_from_images"], diffuse["p_do_from_images"])  # noqa: E731
                             for a, b in zip(p, q))
    farthest = sorted(scores["member_scores"], key=distance, reverse=True)
    chosen = list(dict.fromkeys([diffuse["label"], sharpest["label"]] + [m["label"] for m in farthest]))[:4]
    members = {m.label: m for m in family}
    xs = range(dataset.num_classes)
    members[diffuse["label"]].activate()
    columns = [("observational (diffuse end, given x)",
                {x: model.sample_given_x(x, grid_samples)["image_mean"].cpu() for x in xs})]
    for label in chosen:
        members[label].activate()
        columns.append((f"do(x): {label}" + (" (diffuse end)" if label == diffuse["label"] else ""),
                        {x: intervene(model.model, {"x": x}, grid_samples)["image_mean"].cpu() for x in xs}))
    columns.append(("unconfounded reference", {x: dataset.sample_reference(x, grid_samples, torch.Generator()
                                                                          .manual_seed(x))["image"].float().div(255)
                                               for x in xs}))
    return columns
