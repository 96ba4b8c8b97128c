"""Checks of the data a user's diagram receives, before any fitting; every problem is a one-line ``ValueError``.

A diagram ``model(data=None, num_samples=None)`` observes site ``s`` through ``obs=data.get(s)`` inside the plate
named ``"data"``. :func:`check_data` compares the data with the sites the diagram declares, learnt from two
traces of the model without enumeration: one sampling ``num_samples`` datapoints (the sites, their
distributions and per-datapoint shapes) and one on the first rows of the data (what it observes and reads).
With ``n`` datapoints it requires

- a mapping of tensors (NumPy arrays are converted: floats to the default dtype), all of length ``n`` and
  on one device;
- a plate named ``"data"`` around the observed sites, at most ``max_plate_nesting`` plates deep;
- a key for every categorical or image site in the plate that is not a confounder (only confounders, and
  sites marked ``infer={"enumerate": ...}``, are summed out); a site given by the data must observe it;
- integer labels inside the support ``0..K-1`` of a categorical site (ints for a real site become floats),
  finite values inside the support of any other site;
- images ``(n, C, H, W)`` of the site's size, stored as uint8 (0..255) or as floats in [0, 1] (a site with
  real support, a Gaussian, may take any finite floats except whole numbers up to 255: raw pixels);
- and warns (``UserWarning``) about keys the diagram never reads: they are ignored.

A failure of the data trace is reported as such: without enumeration the confounder cannot be its cause.
The checks leave Pyro's param store and the random state as they found them.

>>> import torch, pyro, pyro.distributions as dist
>>> from cauvade_pyro.models import confounder
>>> def model(data=None, num_samples=None):
...     data = data or {}
...     with pyro.plate("data", num_samples or len(data["x"])):
...         c = confounder("c", torch.zeros(2))
...         pyro.sample("x", dist.Categorical(logits=torch.zeros(2, 3)[c]), obs=data.get("x"))
>>> sorted(check_data(model, {"x": torch.tensor([0, 2, 1])}))
['x']
>>> check_data(model, {"x": torch.tensor([0.0, 2.0, 1.0])})
Traceback (most recent call last):
...
ValueError: data['x'] holds torch.float32 values but site 'x' is categorical (0..2): pass integer class indices, e.g. data['x'].long()
"""

from __future__ import annotations

import difflib
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from .primitives import DATA_PLATE, is_confounder

__all__ = ["check_data", "isolated"]

PROBE = 3  # datapoints drawn by the sampling trace; 3 so that it is not mistaken for a channel or event size 2


@contextmanager
def isolated(devices: list[int] | None = None) -> Iterator[None]:
    """Run a trace without side effects: the random state is restored and params it created are removed.

    >>> with isolated():
    ...     _ = pyro.param("made_here", torch.zeros(1)), torch.rand(1)
    >>> "made_here" in pyro.get_param_store()
    False
    """
    store = pyro.get_param_store()
    before = set(store.keys())
    with torch.random.fork_rng(devices=devices or []):
        try:
            yield
        finally:
            for name in set(store.keys()) - before:
                del store[name]


class _Reads(dict):
    """A dict that records the keys a model reads with ``[]`` or ``.get``."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.read: set = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def _base(support):
    while isinstance(support, dist.constraints.independent):
        support = support.base_constraint
    return support


def _categorical_range(site: Mapping) -> tuple[int, int] | None:
    support = _base(site["fn"].support)
    if isinstance(support, dist.constraints.integer_interval):
        return int(support.lower_bound), int(support.upper_bound)
    return None


def _is_image(site: Mapping) -> bool:
    return len(site["fn"].event_shape) >= 3


def _plates(site: Mapping) -> list[str]:
    return [frame.name for frame in site["cond_indep_stack"]]


def _sites(trace) -> dict[str, Mapping]:
    """Sample sites that are distributions (not plates) and not ``pyro.deterministic``."""
    return {
        name: site for name, site in trace.nodes.items()
        if site["type"] == "sample" and isinstance(site["fn"], torch.distributions.Distribution)
        and not site["infer"].get("_deterministic")
    }


def _must_be_data(site: Mapping, sites: Mapping[str, Mapping]) -> bool:
    """A categorical or image site that nothing sums out must be observed (the amortized guide takes reals only).

    In a diagram without a confounder a discrete latent is more likely the undeclared confounder (that message
    comes from :func:`~cauvade_pyro.models.primitives.check_diagram`)."""
    if site["is_observed"] or is_confounder(site) or site["infer"].get("enumerate") or DATA_PLATE not in _plates(site):
        return False
    if _is_image(site):
        return True
    return bool(site["fn"].support.is_discrete) and any(is_confounder(other) for other in sites.values())


def _suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return close[0] if close else ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _summary(data: Mapping[str, torch.Tensor]) -> str:
    return ", ".join(f"{key}: {str(value.dtype).replace('torch.', '')} {tuple(value.shape)}" for key, value in data.items())


def _as_tensors(data) -> dict[str, torch.Tensor]:
    if not isinstance(data, Mapping) or not data:
        raise ValueError(f"data must be a non-empty dict of tensors keyed by site name, got {type(data).__name__}")
    out = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ValueError(f"data key {key!r} is a {type(key).__name__}: keys are site names (strings)")
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise ValueError(f"data[{key!r}] is a NumPy array of dtype {value.dtype}: pass numbers")
            tensor = torch.as_tensor(value)
            value = tensor.to(torch.get_default_dtype()) if tensor.is_floating_point() else tensor
        elif not isinstance(value, torch.Tensor):
            raise ValueError(f"data[{key!r}] is a {type(value).__name__}: pass a torch.Tensor (torch.as_tensor(...))")
        if value.dim() == 0:
            raise ValueError(f"data[{key!r}] is a scalar: pass one value per datapoint, shape (n, ...)")
        out[key] = value
    lengths = {key: len(value) for key, value in out.items()}
    if len(set(lengths.values())) > 1:
        values = list(lengths.values())
        n = max(values, key=values.count)  # the most common length, and the first key that has it
        key_n = next(key for key, length in lengths.items() if length == n)
        key_m = next(key for key, length in lengths.items() if length != n)
        raise ValueError(f"data[{key_m!r}] has {lengths[key_m]} rows but data[{key_n!r}] has {n}: every value needs one "
                         f"row per datapoint (lengths: {lengths})")
    if next(iter(lengths.values())) == 0:
        raise ValueError("data holds no datapoints (every value has length 0)")
    devices = {key: value.device for key, value in out.items()}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{key}: {device}" for key, device in devices.items())
        raise ValueError(f"data values lie on different devices ({where}): move them all to one device")
    return out


def _check_image(key: str, value: torch.Tensor, site: Mapping | None) -> None:
    got = tuple(value.shape[1:])
    event = tuple(site["fn"].event_shape) if site is not None else None
    if site is None:  # no sampling trace: channels last by the look of the shape
        channels_last = value.dim() == 4 and value.shape[-1] in (1, 3, 4) and value.shape[1] not in (1, 3, 4)
    else:
        channels_last = got != event and len(event) == 3 and got == (event[1], event[2], event[0])
    if channels_last:
        expected = f"site {key!r} takes {event}, channels first" if site is not None else "images are (n, C, H, W)"
        raise ValueError(f"data[{key!r}] has shape {tuple(value.shape)}, channels last; {expected}: pass "
                         f"data[{key!r}].permute(0, 3, 1, 2)")
    if site is not None:
        if got != event:
            if len(got) == 3 and len(event) == 3 and got[0] == event[0]:
                raise ValueError(f"data[{key!r}] holds {'x'.join(map(str, got))} images but the diagram's site {key!r} makes "
                                 f"{'x'.join(map(str, event))} (its decoder's output): resize the images or build the "
                                 f"decoder for {got[1]}x{got[2]}")
            raise ValueError(f"data[{key!r}] has per-datapoint shape {got} but site {key!r} has event shape {event}: "
                             "pass one image per row, shape (n, C, H, W)")
    if value.dtype == torch.uint8:
        return
    if not value.is_floating_point():
        raise ValueError(f"data[{key!r}] holds {value.dtype} images: store images as torch.uint8 (0..255) or as floats "
                         f"in [0, 1], e.g. data[{key!r}].to(torch.uint8)")
    if not bool(value.isfinite().all()):
        raise ValueError(f"data[{key!r}] holds NaN or infinite pixels: clean or drop those images")
    low, high = float(value.min()), float(value.max())
    real = site is not None and _base(site["fn"].support) is dist.constraints.real
    raw_pixels = high > 1.0 and high <= 255.0 and bool((value == value.round()).all())
    if (low < 0.0 or high > 1.0) and (not real or raw_pixels):
        raise ValueError(f"data[{key!r}] holds float pixels in [{low:g}, {high:g}]: images must be uint8 (0..255) or "
                         f"floats in [0, 1]; divide by 255 (data[{key!r}] / 255)")


def _check_value(key: str, value: torch.Tensor, site: Mapping) -> torch.Tensor:
    """The per-site checks of a non-image key; returns the value, ints converted to the dtype of a float site."""
    natural = site["value"]
    event = tuple(site["fn"].event_shape)
    got = tuple(value.shape[1:])
    if _plates(site) and natural.dim() >= 1 and natural.shape[0] == PROBE and got != tuple(natural.shape[1:]):
        raise ValueError(f"data[{key!r}] has per-datapoint shape {got} but site {key!r} has {tuple(natural.shape[1:])} "
                         f"(event shape {event}): pass shape (n,) + {tuple(natural.shape[1:])}")
    bounds = _categorical_range(site)
    if bounds is not None:
        low, high = bounds
        if value.is_floating_point() or value.dtype == torch.bool:
            raise ValueError(f"data[{key!r}] holds {value.dtype} values but site {key!r} is categorical ({low}..{high}): "
                             f"pass integer class indices, e.g. data[{key!r}].long()")
        seen_low, seen_high = int(value.min()), int(value.max())
        if seen_low < low or seen_high > high:
            raise ValueError(f"data[{key!r}] holds labels {seen_low}..{seen_high} but site {key!r} takes {low}..{high}: "
                             f"relabel the data or give the site {seen_high + 1} categories")
        return value
    if value.is_floating_point() and not bool(value.isfinite().all()):
        raise ValueError(f"data[{key!r}] holds NaN or infinite values: clean or drop those rows")
    if natural.is_floating_point() and not value.is_floating_point():
        value = value.to(natural.dtype)  # 0/1 labels of a Bernoulli site, counts of a Poisson site
    support = site["fn"].support
    if not bool(support.check(value).all()):
        raise ValueError(f"data[{key!r}] holds values outside the support of site {key!r} ({support}): check the data "
                         f"or the site's distribution")
    return value


def _missing(name: str, site: Mapping, unused: list[str]) -> ValueError:
    kind = "an image" if _is_image(site) else "a discrete"
    close = _suggest(name, unused)
    fix = f"rename data[{close!r}] to data[{name!r}]" if close else f"add data[{name!r}]"
    extra = f"; data[{close!r}] is unused" if close else ""
    return ValueError(f"the data has no key {name!r} for the diagram's site {name!r} ({kind} site, which only data can "
                      f"give: only confounders are summed out){extra}: {fix}")


def _check_plates(sites: Mapping[str, Mapping], keys, max_plate_nesting: int) -> None:
    if sites and not any(DATA_PLATE in _plates(site) for site in sites.values()):
        others = sorted({plate for site in sites.values() for plate in _plates(site)})
        if others:
            raise ValueError(f"the diagram has no plate named {DATA_PLATE!r}; its sites sit in plate {others[0]!r} (a plate, "
                             f"not a site): name the per-datapoint plate pyro.plate({DATA_PLATE!r}, n), the name the "
                             "library looks for")
        raise ValueError(f"the diagram has no plate named {DATA_PLATE!r} (its sites {sorted(sites)} sit in no plate): "
                         f"wrap the per-datapoint sites in `with pyro.plate({DATA_PLATE!r}, n):`")
    for name, site in sites.items():
        if name in keys and DATA_PLATE not in _plates(site):
            raise ValueError(f"site {name!r} is given by data[{name!r}] but sits outside the {DATA_PLATE!r} plate: move it "
                             f"inside `with pyro.plate({DATA_PLATE!r}, n):`")
        if len(_plates(site)) > max_plate_nesting:
            raise ValueError(f"site {name!r} sits in {len(_plates(site))} nested plates {_plates(site)} but the fit allows "
                             f"max_plate_nesting={max_plate_nesting}: declare per-pixel or per-feature dims as the "
                             "event (.to_event(k)) instead of a plate")


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside this library."""
    here = Path(__file__).resolve().parents[1]
    roots = [here / "models", here / "inference", here / "cauvade_pyro"] + ([here] if here.name == "cauvade_pyro" else [])
    library = tuple(str(root) + "/" for root in roots)
    frame, level = sys._getframe(1), 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().as_posix().startswith(library):
        frame, level = frame.f_back, level + 1
    return level


def _trace(model: Callable, devices: list[int], *args, **kwargs):
    with isolated(devices):
        return poutine.trace(model).get_trace(*args, **kwargs)


def check_data(model: Callable, data: Mapping, max_plate_nesting: int = 1) -> dict[str, torch.Tensor]:
    """Check ``data`` against the sites ``model`` observes; return it normalised (NumPy arrays as tensors, ints
    of real-valued sites as floats; uint8 images stay uint8). Each problem is a one-line ``ValueError``.

    >>> import torch, pyro, pyro.distributions as dist
    >>> from cauvade_pyro.models import confounder
    >>> def model(data=None, num_samples=None):
    ...     data = data or {}
    ...     with pyro.plate("data", num_samples or len(data["x"])):
    ...         c = confounder("c", torch.zeros(2))
    ...         pyro.sample("x", dist.Bernoulli(logits=torch.zeros(2)[c]), obs=data.get("x"))
    >>> check_data(model, {"x": np.array([0, 1, 1])})["x"]  # NumPy ints of a Bernoulli site become floats
    tensor([0., 1., 1.])
    >>> check_data(model, {"x": torch.ones(3), "y": torch.zeros(2)})
    Traceback (most recent call last):
    ...
    ValueError: data['y'] has 2 rows but data['x'] has 3: every value needs one row per datapoint (lengths: {'x': 3, 'y': 2})
    """
    data = _as_tensors(data)
    device = next(iter(data.values())).device
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        sampled = _sites(_trace(model, devices, num_samples=PROBE))
    except Exception:  # a diagram that cannot sample without data: the data trace below still checks it
        sampled = None
    if sampled:
        _check_plates(sampled, data, max_plate_nesting)
        unused = [key for key in data if key not in sampled]
        for name, site in sampled.items():
            if name not in data and _must_be_data(site, sampled):
                raise _missing(name, site, unused)
    for key, value in list(data.items()):
        site = (sampled or {}).get(key)
        if site is not None and _is_image(site):
            _check_image(key, value, site)
        elif site is None and sampled is None and value.dim() == 4:  # no sampling trace: an image by its rank
            _check_image(key, value, None)
        elif site is not None:
            data[key] = _check_value(key, value, site)
    example = _Reads({key: (value[:2].float() / 255.0 if value.dtype == torch.uint8 else value[:2])
                      for key, value in data.items()})
    try:
        trace = _trace(model, devices, example)
    except KeyError as error:
        key = error.args[0] if error.args else None
        if isinstance(key, str) and key in example.read and key not in data:
            close = _suggest(key, data)
            fix = f"rename data[{close!r}] to data[{key!r}]" if close else f"add data[{key!r}]"
            raise ValueError(f"the diagram reads data[{key!r}] but the data has no key {key!r} (its keys are "
                             f"{sorted(data)}): {fix}") from None
        raise ValueError(f"the diagram fails on the first rows of the data ({_first_line(error)}), traced without "
                         f"enumerating the confounder, so c is not the cause; the data: {_summary(data)}") from None
    except ValueError as error:
        if len(str(error).strip().splitlines()) <= 1:
            raise  # the diagram's own one-line message
        raise ValueError(f"the diagram refuses the first rows of the data ({_first_line(error)}), traced without "
                         f"enumerating the confounder, so c is not the cause; the data: {_summary(data)}") from None
    except Exception as error:
        raise ValueError(f"the diagram fails on the first rows of the data ({_first_line(error)}), traced without "
                         f"enumerating the confounder, so c is not the cause; the data: {_summary(data)}") from None
    sites = _sites(trace)
    if not sampled:
        _check_plates(sites, data, max_plate_nesting)
    unused = [key for key in data if key not in example.read and not (key in sites and sites[key]["is_observed"])]
    for name, site in sites.items():
        if name not in data and _must_be_data(site, sites):
            raise _missing(name, site, unused)
        if name in data and not site["is_observed"] and not is_confounder(site):
            raise ValueError(f"site {name!r} is sampled, not observed, although data[{name!r}] is given: pass "
                             f"obs=data.get({name!r}) to pyro.sample({name!r}, ...)")
    if unused:
        observed = sorted(name for name, site in sites.items() if site["is_observed"])
        warnings.warn(f"data keys {unused} are not read by the diagram and are ignored (it observes {observed}); "
                      "drop them to silence this warning", UserWarning, stacklevel=_user_stacklevel())
    return data
