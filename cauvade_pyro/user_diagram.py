"""A user's own diagram for ``python -m cauvade_pyro.fit model=user``: where it is imported from, its data file.

``model.target`` names the diagram as ``package.module:name`` (or ``package.module.name``), where ``name`` is

- a Pyro program ``model(data=None, num_samples=None)`` with :func:`~cauvade_pyro.models.confounder` sites,
- an :class:`torch.nn.Module` with such a ``model`` method (its parameters are the diagram's), or
- a function of no arguments that returns either (a factory, e.g. a class).

``model.data`` is a file of equal-length tensors, one per observed site: ``.pt`` (``torch.save`` of a dict of
tensors; read with ``weights_only=True``) or ``.npz`` (``numpy.savez``). Every problem is one line.

>>> diagram = load_diagram("cauvade_pyro.models:TabularDiagram")  # a class needs arguments: refused
Traceback (most recent call last):
...
ValueError: model.target='cauvade_pyro.models:TabularDiagram': calling it with no arguments failed (TypeError: TabularDiagram.__init__() missing 1 required positional argument: 'cards'); name a Pyro program, an nn.Module with a .model method, or a function of no arguments returning one
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_data", "load_diagram"]


def _resolve(target: str):
    module_name, sep, attribute = target.partition(":")
    if not sep:
        module_name, _, attribute = target.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"model.target={target!r}: write it as package.module:name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"model.target={target!r}: cannot import {module_name!r} ({error}); is it on PYTHONPATH "
                         "(run from the folder that holds it)?") from None
    value = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ValueError(f"model.target={target!r}: {module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    return value


def _as_program(value) -> Callable | None:
    if isinstance(value, torch.nn.Module):
        model = getattr(value, "model", None)
        return model if callable(model) else None
    if callable(value) and not inspect.isclass(value):
        parameters = inspect.signature(value).parameters
        if "data" in parameters or "num_samples" in parameters:
            return value
    return None


def load_diagram(target: str) -> Callable:
    """The Pyro program named by ``target`` (module docstring)."""
    value = _resolve(target)
    program = _as_program(value)
    if program is not None:
        return program
    if not callable(value):
        raise ValueError(f"model.target={target!r} is a {type(value).__name__}, not a diagram")
    try:
        made = value()
    except Exception as error:  # noqa: BLE001 - any failure of the user's factory is reported in one line
        first = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"model.target={target!r}: calling it with no arguments failed ({type(error).__name__}: {first}); name a "
            "Pyro program, an nn.Module with a .model method, or a function of no arguments returning one") from None
    program = _as_program(made)
    if program is None:
        raise ValueError(f"model.target={target!r} returned a {type(made).__name__}: expected a Pyro program "
                         "model(data=None, num_samples=None) or an nn.Module with a .model method")
    return program


def load_data(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pt`` or ``.npz`` file, one per observed site."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model.data={str(path)!r}: no such file (a .pt dict of tensors or a .npz of arrays)")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            data = {key: torch.from_numpy(np.array(arrays[key])) for key in arrays.files}
    elif path.suffix == ".pt":
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - a corrupt or pickled file: one line
            raise ValueError(f"model.data={str(path)!r}: not a readable torch file of tensors "
                             f"({type(error).__name__})") from None
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
            raise ValueError(f"model.data={str(path)!r}: expected a dict of tensors, got {type(data).__name__}")
    else:
        raise ValueError(f"model.data={str(path)!r}: the file must end in .pt or .npz")
    if not data:
        raise ValueError(f"model.data={str(path)!r}: the file holds no arrays")
    return dict(data)
