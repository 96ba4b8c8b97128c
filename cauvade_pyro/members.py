"""Building, caching and reloading the pieces of a fitted family member from its configuration.

For the default diagram one image model p(image | x, y) is shared by every member of a family: it is cached
under ``cache_dir/image_models/`` keyed by everything that determines it (dataset, image net, training
settings, image seed), and a member's checkpoint points to it by path and key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyro
import torch
from omegaconf import DictConfig, OmegaConf

from cauvade_pyro.inference import fit_image_model, load_checkpoint, save_checkpoint
from cauvade_pyro.models import AttributeMixture, ConditionalImageModel, ConfoundedAttributesModel


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def pyro_param_values() -> dict[str, torch.Tensor]:
    """The constrained values in Pyro's param store (tensors only, so they load with ``weights_only=True``)."""
    return {name: value.detach().cpu() for name, value in pyro.get_param_store().items()}


def image_model_key(cfg: DictConfig) -> str:
    """Hash of everything the shared image model depends on (not γ, not the member seed)."""
    inference = cfg.inference
    spec = {
        "dataset": _plain(cfg.dataset),
        "image": _plain(cfg.model.image),
        "training": {k: inference[k] for k in ("image_epochs", "image_lr", "image_seed", "batch_size", "clip_norm")},
        "version": 1,
    }
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_image_model(cfg: DictConfig, num_x: int, num_y: int, image_shape) -> ConditionalImageModel:
    image = cfg.model.image
    return ConditionalImageModel(
        num_x, num_y, tuple(image_shape), net=image.net, eps_dim=int(image.eps_dim),
        likelihood=image.likelihood, kl_weight=float(image.kl_weight),
    )


def shared_image_model(cfg: DictConfig, dataset, device: torch.device, progress: bool = True):
    """Load the cached shared image model for ``cfg``, or train and cache it. Returns ``(model, path, trained)``."""
    key = image_model_key(cfg)
    path = Path(cfg.cache_dir) / "image_models" / f"image-{key}.pt"
    model = build_image_model(cfg, dataset.num_classes, dataset.num_hue_bins, dataset.image_shape).to(device)
    if path.is_file():
        payload = load_checkpoint(path, kind="image_model")
        model.load_state_dict(payload["state_dict"])
        model.eval()
        return model, path, False
    train = {k: dataset.train[k].to(device) for k in ("x", "y", "image")}
    inference = cfg.inference
    fit_image_model(
        model, train, epochs=int(inference.image_epochs), batch_size=int(inference.batch_size),
        lr=float(inference.image_lr), seed=int(inference.image_seed), clip_norm=float(inference.clip_norm),
        progress=progress,
    )
    save_checkpoint(path, {
        "kind": "image_model", "key": key, "config": _plain(cfg),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    })
    return model, path, True


def build_attributes(cfg: DictConfig, num_x: int, num_y: int) -> AttributeMixture:
    return AttributeMixture(int(cfg.model.K), num_x, num_y, y_given_xc=cfg.model.y_given_xc)


def save_member(path: str | Path, cfg: DictConfig, model: ConfoundedAttributesModel, image_path: Path) -> Path:
    """A member's checkpoint: its attribute-level state and a pointer to the shared image model."""
    return save_checkpoint(path, {
        "kind": "member",
        "config": _plain(cfg),
        "gamma": float(cfg.inference.gamma),
        "seed": int(cfg.seed),
        "attributes": {k: v.cpu() for k, v in model.attributes.state_dict().items()},
        "pyro_params": pyro_param_values(),
        "image_model_path": str(image_path),
        "image_model_key": image_model_key(cfg),
        "num_x": model.attributes.num_x,
        "num_y": model.attributes.num_y,
        "image_shape": list(model.image_model.image_shape),
    })


def load_member(path: str | Path, device: str | torch.device = "cpu") -> ConfoundedAttributesModel:
    """Rebuild a fitted confounded-attributes member (and its shared image model) from its checkpoint."""
    payload = load_checkpoint(path, kind="member")
    cfg = OmegaConf.create(payload["config"])
    image_payload = load_checkpoint(payload["image_model_path"], kind="image_model")
    if image_payload["key"] != payload["image_model_key"]:
        raise ValueError(f"{payload['image_model_path']} is not the image model this member was fitted with")
    num_x, num_y, image_shape = payload["num_x"], payload["num_y"], tuple(payload["image_shape"])
    image_model = build_image_model(cfg, num_x, num_y, image_shape)
    image_model.load_state_dict(image_payload["state_dict"])
    attributes = build_attributes(cfg, num_x, num_y)
    attributes.load_state_dict(payload["attributes"])
    return ConfoundedAttributesModel(attributes, image_model).to(device).eval()
