"""Building, caching and reloading the pieces of a fitted family member from its configuration.

For the default diagram one image model p(image | x, y) is shared by every member of a family: it is cached
under ``cache_dir/image_models/`` keyed by everything that determines it (dataset, image net, training
settings, image seed), and a member's checkpoint points to it by path and key. For the latent-response
diagram with ``inference.sweep=shared``, the γ = 0 base every member is fine-tuned from is cached the same way
under ``cache_dir/latent_bases/`` (:func:`shared_latent_base`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pyro
import torch
from omegaconf import DictConfig, OmegaConf

from cauvade_pyro.cache import load_or_build
from cauvade_pyro.config import DATASET_DEFAULTS
from cauvade_pyro.inference import (
    base_state,
    fit_eps_prior,
    fit_image_model,
    fit_latent_base,
    load_checkpoint,
    save_checkpoint,
)
from cauvade_pyro.inference.checkpoint import check_config_matches
from cauvade_pyro.models import AttributeMixture, ConditionalImageModel, ConfoundedAttributesModel, LatentResponseModel


log = logging.getLogger("cauvade_pyro.fit")


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def pyro_param_values() -> dict[str, torch.Tensor]:
    """The constrained values in Pyro's param store (tensors only, so they load with ``weights_only=True``)."""
    return {name: value.detach().cpu() for name, value in pyro.get_param_store().items()}


def scm_key(dataset) -> dict:
    """What a dataset adds to a cache key beyond the config: the digest of its SCM's tables when it was built with
    a custom SCM (``ConfoundedShapes(..., scm=...)``), which the config cannot express. The default SCM is
    determined by ``cfg.dataset`` (sizes and ``confounding``) and adds nothing, so its keys stay those of the
    models cached before custom SCMs existed.

    >>> from cauvade_pyro.datasets import ConfoundedColourSCM, ConfoundedShapes
    >>> scm_key(ConfoundedShapes(num_train=2, num_test=2))
    {}
    >>> scm = ConfoundedColourSCM.make(confounding=0.5)
    >>> list(scm_key(ConfoundedShapes(num_train=2, num_test=2, scm=scm)))
    ['scm']
    """
    if dataset is None or not getattr(dataset, "custom_scm", False):
        return {}
    from cauvade_pyro.datasets.shapes import scm_digest

    return {"scm": scm_digest(dataset.scm)}


def image_model_key(cfg: DictConfig, dataset=None) -> str:
    """Hash of everything the shared image model depends on (not γ, not the member seed).

    Pass the ``dataset`` the model is trained on: a dataset built with a custom SCM adds its tables' digest
    (:func:`scm_key`), so a changed SCM never reuses a stale model. Without it (or with the default SCM) the key
    is the config's alone.
    """
    inference = cfg.inference
    spec = {
        "dataset": _dataset_spec(cfg),
        # channels and size must equal the dataset's (checked at start-up), so they add nothing to the key; no ε
        # mixture (0 components), or one per x, keeps the keys of the models cached before those options
        "image": _image_spec(cfg.model.image),
        "training": {k: inference[k] for k in ("image_epochs", "image_lr", "image_seed", "batch_size", "clip_norm")},
        "version": 1,
    }
    if inference.get("precision", "fp32") != "fp32":  # fp32 keys stay those of the models cached before the option
        spec["training"]["precision"] = inference.precision
    spec.update(scm_key(dataset))
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# Keys that change nothing in a fit (where it runs, what it prints, how it is evaluated, how often it saves).
RUNTIME_KEYS = ("eval", "progress", "torch_threads", "device", "cache_dir", "resume")


def _without_default_image_options(image: dict) -> dict:
    """``model.image`` without the keys added later where they change nothing a model held before them: the
    ε-prior keys for no mixture (0 components; then ``eps_prior_given`` is moot) or a mixture per x, and
    ``eps_film`` for the plain decoder (``none``)."""
    components = image.get("eps_prior_components", 0)
    drop = ("eps_prior_components", "eps_prior_given") if not components else (
        ("eps_prior_given",) if image.get("eps_prior_given", "x") == "x" else ())
    if image.get("eps_film", "none") == "none":
        drop += ("eps_film",)
    return {k: v for k, v in image.items() if k not in drop}


def _dataset_spec(cfg: DictConfig) -> dict:
    """The dataset's part of a cache key: where the files live, whether they may be downloaded and the defaults it
    gives other keys (``DATASET_DEFAULTS``; the key holds their resolved values) do not change the data."""
    return {k: v for k, v in _plain(cfg.dataset).items() if k not in ("root", "download", *DATASET_DEFAULTS)}


def _image_spec(image) -> dict:
    """The image networks' part of a cache key: channels and size are the dataset's (checked at start-up)."""
    return {k: v for k, v in _without_default_image_options(_plain(image)).items() if k not in ("channels", "size")}


def fit_fingerprint(cfg: DictConfig) -> dict:
    """The configuration a training state must match to be resumed (everything but runtime settings)."""
    plain = {k: v for k, v in _plain(cfg).items() if k not in RUNTIME_KEYS}
    # the dataset's DATASET_DEFAULTS only default other keys, whose resolved values are kept
    plain["dataset"] = {k: v for k, v in plain["dataset"].items() if k not in DATASET_DEFAULTS}
    plain["model"] = {k: v for k, v in plain["model"].items() if k != "cli"}  # which functions run it, not the fit
    image = plain["model"].get("image")
    if isinstance(image, dict):  # states written before the options: no mixture or one per x, the plain decoder
        plain["model"]["image"] = _without_default_image_options(image)
    # sweep and member_epochs determine only a shared-sweep fit (a training state written before they existed
    # still resumes an independent one)
    drop = ("checkpoint_every",) + (() if plain["inference"].get("sweep") == "shared" else ("sweep", "member_epochs"))
    if plain["inference"].get("precision", "fp32") == "fp32":  # likewise for states written before precision
        drop += ("precision",)
    if plain["inference"].get("sweep") != "family":  # fit_family's options determine only a family sweep
        drop += ("family",)
    elif not plain["inference"]["family"].get("gammas"):  # states written before gammas= still resume
        plain["inference"]["family"] = {k: v for k, v in plain["inference"]["family"].items() if k != "gammas"}
    plain["inference"] = {k: v for k, v in plain["inference"].items() if k not in drop}
    return plain


# What a member checkpoint must agree on with the config it is loaded into.
MEMBER_KEYS = ["model.diagram", "model.K", "model.y_given_xc", "model.image.channels", "model.image.size"]


def image_nan_hint(cfg: DictConfig) -> str:
    return (f"try a lower inference.image_lr (now {cfg.inference.image_lr}) or inference.clip_norm "
            f"(now {cfg.inference.clip_norm}); with model.image.likelihood=logistic the learned pixel scale can "
            "collapse, try bernoulli")


def build_image_model(cfg: DictConfig, num_x: int, num_y: int, image_shape) -> ConditionalImageModel:
    image = cfg.model.image
    return ConditionalImageModel(
        num_x, num_y, tuple(image_shape), net=image.net, eps_dim=int(image.eps_dim),
        likelihood=image.likelihood, kl_weight=float(image.kl_weight),
        eps_prior_components=int(image.get("eps_prior_components", 0)),
        eps_prior_given=str(image.get("eps_prior_given", "x")),
        eps_film=str(image.get("eps_film", "none")),
    )


def shared_image_model(
    cfg: DictConfig, dataset, device: torch.device, progress: bool = True, condition_on_y: bool = True
):
    """Load the cached shared image model for ``cfg``, or train and cache it. Returns ``(model, path, trained)``.

    ``condition_on_y=False`` gives the non-causal baseline instead: a conditional VAE of p(image | x) with the
    same nets and training budget (its decoder sees x only, so the hue goes into ε and keeps the observational
    association with x), cached as ``cvae-<key>.pt``. Processes asking at once for a model not yet cached agree
    through a file lock (:func:`cauvade_pyro.cache.load_or_build`): one trains, the others wait and load it.
    """
    key = image_model_key(cfg, dataset)  # the cVAE's key below derives from it: it sees a custom SCM too
    prefix = "image"
    num_y = dataset.num_hue_bins
    if not condition_on_y:
        key, prefix, num_y = hashlib.sha1(f"{key}-x-only".encode()).hexdigest()[:16], "cvae", 1
    path = Path(cfg.cache_dir) / "image_models" / f"{prefix}-{key}.pt"
    # Initial weights from the image seed, not from the global RNG (which follows the member's seed): the model
    # depends only on its key, whichever member of a parallel sweep gets to train it.
    model = _seeded(int(cfg.inference.image_seed), build_image_model, cfg, dataset.num_classes, num_y,
                    dataset.image_shape).to(device)

    def load(file: Path):
        payload = load_checkpoint(file, kind="image_model")
        load_state(model, payload["state_dict"], file)
        return model.eval()

    def train():
        # A training state next to the cache file: a killed run resumes here, whatever its run dir.
        partial = path.with_name(path.name + ".partial")
        resume_from = partial if cfg.resume is not False and partial.is_file() else None
        if resume_from is not None:
            log.info("resuming the shared image model from %s", partial)
        data = {k: dataset.train[k].to(device) for k in ("x", "y", "image")}
        if not condition_on_y:
            data["y"] = torch.zeros_like(data["y"])
        inference = cfg.inference
        fit_image_model(
            model, data, epochs=int(inference.image_epochs), batch_size=int(inference.batch_size),
            lr=float(inference.image_lr), seed=int(inference.image_seed), clip_norm=float(inference.clip_norm),
            progress=progress, checkpoint_path=partial, checkpoint_every=int(inference.checkpoint_every),
            resume_from=resume_from, fingerprint={"image_model_key": key}, hint=image_nan_hint(cfg),
            precision=str(inference.get("precision", "fp32")),
        )
        if model.eps_prior_components:  # the ex-post prior of ε, fitted to the trained encoder's codes
            log.info("ε prior: %s", fit_eps_prior(model, data, seed=int(inference.image_seed)))
        save_checkpoint(path, {
            "kind": "image_model", "key": key, "config": _plain(cfg),
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        })
        partial.unlink(missing_ok=True)
        return model

    # Members started together on a fresh cache: one trains under the lock, the others wait and load its file.
    model, trained = load_or_build(path, load, train)
    return model, path, trained


def _seeded(seed: int, build, *args):
    """``build(*args)`` with torch's CPU RNG seeded by ``seed``, leaving the caller's RNG state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args)


def load_state(module: torch.nn.Module, state_dict: dict, path) -> None:
    """``load_state_dict`` with a one-line error naming the first mismatching tensor (torch's is many lines)."""
    own = module.state_dict()
    for name in sorted(set(own) | set(state_dict)):
        if name not in state_dict or name not in own:
            where = "the checkpoint" if name in state_dict else "this model"
            raise ValueError(f"{path} does not fit this model: {name!r} exists only in {where}")
        if own[name].shape != state_dict[name].shape:
            raise ValueError(f"{path} does not fit this model: {name!r} has shape {tuple(state_dict[name].shape)} "
                             f"in the checkpoint, {tuple(own[name].shape)} here")
    module.load_state_dict(state_dict)


def build_attributes(cfg: DictConfig, num_x: int, num_y: int) -> AttributeMixture:
    return AttributeMixture(int(cfg.model.K), num_x, num_y, y_given_xc=cfg.model.y_given_xc)


def save_member(path: str | Path, cfg: DictConfig, model: ConfoundedAttributesModel, image_path: Path,
                dataset=None) -> Path:
    """A member's checkpoint: its attribute-level state and a pointer to the shared image model (whose key, like
    :func:`shared_image_model`'s, includes a custom SCM of ``dataset``)."""
    return save_checkpoint(path, {
        "kind": "member",
        "config": _plain(cfg),
        "gamma": float(cfg.inference.gamma),
        "seed": int(cfg.seed),
        "attributes": {k: v.cpu() for k, v in model.attributes.state_dict().items()},
        "pyro_params": pyro_param_values(),
        "image_model_path": str(image_path),
        "image_model_key": image_model_key(cfg, dataset),
        "num_x": model.attributes.num_x,
        "num_y": model.attributes.num_y,
        "image_shape": list(model.image_model.image_shape),
    })


def load_member(
    path: str | Path, device: str | torch.device = "cpu", expect: DictConfig | dict | None = None
) -> ConfoundedAttributesModel:
    """Rebuild a fitted confounded-attributes member (and its shared image model) from its checkpoint.

    With ``expect`` (a config), a checkpoint fitted with another K, diagram, y-parameterization or image shape
    is refused with one line naming what differs.
    """
    payload = load_checkpoint(path, kind="member")
    if expect is not None:
        check_config_matches(path, payload["config"], _plain(expect), keys=MEMBER_KEYS, what="member checkpoint")
    cfg = OmegaConf.create(payload["config"])
    image_payload = load_checkpoint(payload["image_model_path"], kind="image_model")
    if image_payload["key"] != payload["image_model_key"]:
        raise ValueError(f"{payload['image_model_path']} is not the image model this member was fitted with")
    num_x, num_y, image_shape = payload["num_x"], payload["num_y"], tuple(payload["image_shape"])
    image_model = build_image_model(cfg, num_x, num_y, image_shape)
    load_state(image_model, image_payload["state_dict"], payload["image_model_path"])
    attributes = build_attributes(cfg, num_x, num_y)
    load_state(attributes, payload["attributes"], path)
    return ConfoundedAttributesModel(attributes, image_model).to(device).eval()


def latent_base_key(cfg: DictConfig, dataset=None) -> str:
    """Hash of everything the shared latent-response base depends on (not γ, not the member seed, not the
    device, not ``member_epochs``); a ``dataset`` with a custom SCM adds its digest, as in :func:`image_model_key`."""
    inference = cfg.inference
    spec = {
        "dataset": _dataset_spec(cfg),
        "model": {k: v for k, v in _plain(cfg.model).items() if k not in ("image", "cli")},  # cli: how, not what
        # the ε mixture is fitted per member after the base, but the base's state holds its (unfitted) tables, whose
        # shape follows the number of components; 0 keeps the keys of the bases cached before the option
        "image": _image_spec(cfg.model.image),
        "training": {k: inference[k] for k in ("image_epochs", "image_lr", "image_seed", "batch_size", "clip_norm")},
        "kind": "latent_response_base",
        "version": 1,
    }
    if inference.get("precision", "fp32") != "fp32":
        spec["training"]["precision"] = inference.precision
    spec.update(scm_key(dataset))
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_latent_response(cfg: DictConfig, num_x: int, image_shape) -> LatentResponseModel:
    image = cfg.model.image
    return LatentResponseModel(
        int(cfg.model.K), num_x, tuple(image_shape), r_dim=int(cfg.model.r_dim), eps_dim=int(image.eps_dim),
        net=image.net, likelihood=image.likelihood, kl_weight=float(image.kl_weight),
        eps_prior_components=int(image.get("eps_prior_components", 0)),
    )


def shared_latent_base(cfg: DictConfig, dataset, device: torch.device, progress: bool = True):
    """Load the cached γ = 0 base of a latent-response family for ``cfg``, or train and cache it.

    Returns ``(state_dict, path, trained)``; the state dict holds CPU tensors. The base is the warm-up, the GMM
    init and ``inference.image_epochs`` epochs at γ = 0 with seed ``inference.image_seed``
    (:func:`~cauvade_pyro.inference.fit_latent_base`). A killed run resumes from ``latent-<key>.pt.partial``;
    concurrent processes agree on who trains it through a file lock (:func:`cauvade_pyro.cache.load_or_build`).
    """
    key = latent_base_key(cfg, dataset)
    path = Path(cfg.cache_dir) / "latent_bases" / f"latent-{key}.pt"

    def load(file: Path) -> dict:
        payload = load_checkpoint(file, kind="latent_response_base")
        if payload.get("key") != key:
            raise ValueError(f"{file} holds the base for key {payload.get('key')!r}, expected {key!r}")
        return payload["state_dict"]

    def train() -> dict:
        partial = path.with_name(path.name + ".partial")
        resume_from = partial if cfg.resume is not False and partial.is_file() else None
        if resume_from is not None:
            log.info("resuming the shared latent-response base from %s", partial)
        model = _seeded(int(cfg.inference.image_seed), build_latent_response, cfg, dataset.num_classes,
                        dataset.image_shape).to(device)  # from the image seed, whichever member trains it
        data = {k: dataset.train[k].to(device) for k in ("x", "image")}
        inference = cfg.inference
        fit_latent_base(
            model, data, warmup_epochs=int(cfg.model.warmup_epochs), epochs=int(inference.image_epochs),
            batch_size=int(inference.batch_size), lr=float(inference.image_lr), seed=int(inference.image_seed),
            clip_norm=float(inference.clip_norm), progress=progress, checkpoint_path=partial,
            checkpoint_every=int(inference.checkpoint_every), resume_from=resume_from,
            fingerprint={"latent_base_key": key}, hint=image_nan_hint(cfg),
        )
        state = base_state(model)
        save_checkpoint(path, {"kind": "latent_response_base", "key": key, "config": _plain(cfg), "state_dict": state})
        partial.unlink(missing_ok=True)
        return state

    state, trained = load_or_build(path, load, train)  # one process trains, concurrent ones wait and load
    return state, path, trained
