"""Model comparison with ArviZ: pointwise log-likelihoods of a γ-family and its baselines (docs/design.md §6).

Each member (and each baseline) becomes one ArviZ object with a ``log_likelihood`` group holding the arrays
from :mod:`cauvade_pyro.inference.loglik` (``(draws, observations)``, one variable per term), so that
``az.loo`` and ``az.compare`` work on it.

ArviZ versions: 0.2x (what Python 3.11 gets) builds ``InferenceData`` from keyword groups; 1.x (Python ≥ 3.12)
builds an xarray ``DataTree`` from one dict of groups. :func:`_from_log_likelihood` is the only place that
knows the difference. :func:`compare_table` runs ``az.compare`` and returns the same tidy columns whatever the
version names them or whichever scale it reports on.

Fitted members are point estimates: their draws repeat one value, so PSIS has nothing to reweight and ArviZ
flags every Pareto k̂. On *held-out* data that is harmless: the elpd is then exactly the held-out log
predictive density Σ_n log p(x_n, y_n), and its standard errors come from the spread over observations.
:func:`compare_table` marks such rows ``point_estimate`` and silences the k̂ warning for them.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> family = to_inference_data({"a": {"xy": rng.normal(-2, 0.5, (1, 50))}, "b": {"xy": rng.normal(-2, 0.5, (1, 50))}})
>>> table = compare_table(family)
>>> sorted(table.index), list(table.columns)[:3]
(['a', 'b'], ['rank', 'elpd', 'se'])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["arviz_major", "compare_table", "log_likelihood_arrays", "to_inference_data"]

#: ArviZ needs at least this many draws to run PSIS; a single point estimate is repeated up to it.
MIN_DRAWS = 4


def _arviz():
    import arviz as az

    return az


def arviz_major() -> int:
    """The installed ArviZ major version (0 or 1)."""
    return int(_arviz().__version__.split(".")[0])


def _as_array(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"log-likelihood arrays must be (draws, observations), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("log-likelihood arrays must be finite")
    return array


def _from_log_likelihood(log_likelihood: Mapping[str, np.ndarray], posterior: Mapping[str, np.ndarray]):
    """Build the ArviZ object from ``(chain, draw, ...)`` arrays; the one place that knows the ArviZ version."""
    az = _arviz()
    if arviz_major() >= 1:
        return az.from_dict({"posterior": dict(posterior), "log_likelihood": dict(log_likelihood)})
    return az.from_dict(posterior=dict(posterior), log_likelihood=dict(log_likelihood))


def _member(terms: Any, posterior: Mapping[str, Any] | None):
    if not isinstance(terms, Mapping):
        terms = {"obs": terms}
    arrays = {name: _as_array(values) for name, values in terms.items()}
    shapes = {array.shape for array in arrays.values()}
    draws = {shape[0] for shape in shapes}
    if len(draws) != 1:
        raise ValueError(f"every term of one member needs the same number of draws, got shapes {sorted(shapes)}")
    (num_draws,) = draws
    if num_draws < MIN_DRAWS:  # a point estimate: repeat it so PSIS can run (documented above)
        reps = -(-MIN_DRAWS // num_draws)
        arrays = {name: np.tile(array, (reps, 1)) for name, array in arrays.items()}
        num_draws *= reps
    log_lik = {name: array[None] for name, array in arrays.items()}  # add the chain dim
    post = {"draw_index": np.arange(num_draws, dtype=np.float64)[None]}
    for name, values in (posterior or {}).items():
        values = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
        if values.shape[:1] != (num_draws,):
            raise ValueError(f"posterior {name!r}: leading dim must be draws ({num_draws}), got {values.shape}")
        post[name] = values[None]
    return _from_log_likelihood(log_lik, post)


def to_inference_data(members: Mapping[str, Any], posteriors: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """One ArviZ object per member: ``{name: array (draws, obs)}`` or ``{name: {term: array}}`` → ``{name: idata}``.

    A term is one ``log_likelihood`` variable (e.g. ``"xy"`` for the attribute term, ``"image"`` for the IWAE
    image term); every member must use the same term names and observation counts for ``az.compare``.
    Numpy arrays and torch tensors are accepted. ``posteriors`` optionally adds posterior draws per member.
    """
    if not members:
        raise ValueError("members: need at least one")
    return {name: _member(terms, (posteriors or {}).get(name)) for name, terms in members.items()}


def log_likelihood_arrays(idata) -> dict[str, np.ndarray]:
    """The ``log_likelihood`` group back as ``{term: (chain, draw, obs)}`` numpy arrays (either ArviZ version)."""
    group = idata["log_likelihood"]
    dataset = group.to_dataset() if hasattr(group, "to_dataset") else group
    return {name: np.asarray(dataset[name].values) for name in dataset.data_vars}


def _is_point_estimate(idata) -> bool:
    return all(np.ptp(values, axis=(0, 1)).max() == 0 for values in log_likelihood_arrays(idata).values())


def _pick(columns, *candidates):
    for name in candidates:
        if name in columns:
            return name
    raise KeyError(f"none of {candidates} in az.compare's columns {list(columns)}")


def compare_table(members: Mapping[str, Any], ic: str = "loo", var_name: str | None = None):
    """Run ``az.compare`` and return a tidy ``pandas.DataFrame`` indexed by member name.

    Columns: ``rank``, ``elpd`` (higher is better, log scale), ``se``, ``elpd_diff`` (≥ 0, from the best),
    ``dse`` (standard error of that difference), ``p`` (effective parameters), ``weight``, ``warning``,
    ``point_estimate`` and ``diff_over_dse`` (how many standard errors separate a member from the best).
    ``members`` holds ArviZ objects or anything :func:`to_inference_data` accepts.
    """
    import pandas as pd

    az = _arviz()
    idatas = {name: (value if hasattr(value, "groups") or hasattr(value, "children") else None) for name, value in members.items()}
    if any(value is None for value in idatas.values()):
        idatas = to_inference_data(members)
    point = {name: _is_point_estimate(idata) for name, idata in idatas.items()}
    kwargs: dict[str, Any] = {}
    if var_name is not None:
        kwargs["var_name"] = var_name
    with warnings.catch_warnings():
        # stacking weights over-/underflow when elpds differ by thousands of nats (e.g. with the image term)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="arviz")
        if all(point.values()):
            warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
            warnings.filterwarnings("ignore", message=".*shape parameter.*")
        try:
            raw = az.compare(idatas, ic=ic, scale="log", **kwargs)
        except TypeError:  # a version without ``ic=`` / ``scale=``
            raw = az.compare(idatas, **kwargs)
    cols = raw.columns
    elpd_col = _pick(cols, "elpd", f"elpd_{ic}", "elpd_loo", "elpd_waic", ic, "loo", "waic")
    scale = str(raw["scale"].iloc[0]) if "scale" in cols else "log"
    factor = {"log": 1.0, "negative_log": -1.0, "deviance": -0.5}.get(scale, 1.0)
    elpd = raw[elpd_col].astype(float) * factor
    se = raw[_pick(cols, "se")].astype(float) * abs(factor)
    dse = raw[_pick(cols, "dse")].astype(float) * abs(factor)
    best = elpd.max()
    table = pd.DataFrame(
        {
            "rank": elpd.rank(ascending=False, method="first").astype(int) - 1,
            "elpd": elpd,
            "se": se,
            "elpd_diff": best - elpd,
            "dse": dse,
            "p": raw[_pick(cols, "p", f"p_{ic}", "p_loo", "p_waic")].astype(float),
            "weight": raw[_pick(cols, "weight")].astype(float),
            "warning": raw[_pick(cols, "warning")].astype(bool),
            "point_estimate": pd.Series(point),
        }
    ).sort_values("rank")
    with np.errstate(divide="ignore", invalid="ignore"):
        table["diff_over_dse"] = np.where(table["dse"] > 0, table["elpd_diff"] / table["dse"], 0.0)
    table.attrs["arviz_version"] = az.__version__
    table.attrs["ic"] = ic
    table.attrs["raw"] = raw
    return table
