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
