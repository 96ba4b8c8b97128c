"""Checkpoints: plain tensors and primitives only, written atomically, read with ``weights_only=True``.

A checkpoint is a dict ``{"format_version", "kind", "config", ...state dicts...}``; nothing pickled as code
is ever executed on load.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` to ``path`` through a temporary file and a rename, so a kill never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Load a checkpoint safely; a missing, foreign or truncated file is a one-line ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for torn or foreign files
        raise ValueError(f"{path} is not a readable cauvade-pyro checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise ValueError(f"{path} is not a cauvade-pyro checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {payload['format_version']}, this version reads {FORMAT_VERSION}")
    if kind is not None and payload.get("kind") != kind:
        raise ValueError(f"{path} holds a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    return payload


def _flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def config_differences(saved: dict, current: dict, keys: list[str] | None = None) -> list[str]:
    """``"key: saved → current"`` for every (flattened) key whose value differs; ``keys`` restricts the comparison.

    >>> config_differences({"model": {"K": 4}, "seed": 0}, {"model": {"K": 8}, "seed": 0})
    ['model.K: 4 → 8']
    """
    old, new = _flatten(saved), _flatten(current)
    names = keys if keys is not None else sorted(set(old) | set(new))
    missing = object()
    return [
        f"{name}: {old.get(name, '<absent>')} → {new.get(name, '<absent>')}"
        for name in names
        if old.get(name, missing) != new.get(name, missing)
    ]


def check_config_matches(path, saved: dict, current: dict, keys: list[str] | None = None, what: str = "checkpoint") -> None:
    """One-line ``ValueError`` naming what differs between the config a checkpoint was written with and ``current``."""
    differences = config_differences(saved, current, keys)
    if differences:
        raise ValueError(f"{path}: this {what} was written for a different configuration ({'; '.join(differences)})")
