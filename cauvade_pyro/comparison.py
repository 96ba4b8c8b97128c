"""Model comparison with ArviZ: pointwise log-likelihoods of a γ-family and its baselines (docs/design.md §6).

Each member (and each baseline) becomes one ArviZ object with a ``log_likelihood`` group holding the arrays
from :mod:`cauvade_pyro.inference.loglik` (``(draws, observations)``, one variable per term), so that
``az.loo`` and ``az.compare`` work on it.

ArviZ versions: 0.2x (what Python 3.11 gets) builds ``InferenceData`` from keyword groups; 1.x (Python ≥ 3.12)
builds an xarray ``DataTree`` from one dict of groups. :func:`_from_log_likelihood` is the only place that
knows the difference. :func:`compare_table` runs ``az.compare`` and returns the same tidy columns whatever the
version names them or whichever scale it reports on (0.2x: ``elpd_loo``, ``warning``, a ``scale`` column; 1.x:
``elpd``, ``diag_elpd``, always log scale, rounded unless asked not to be). :func:`pareto_k` reads the pointwise
Pareto k̂ of one member's PSIS-LOO (the same attribute in both versions). Checked on ArviZ 0.23.4 (Python 3.11)
and 1.3.0 (Python 3.12).

**Genuine draws.** A member given as posterior draws (e.g. :meth:`cauvade_pyro.bayes_bounds.DiagramPosterior.
to_inference_data`, a γ-member sampled by NUTS with its γ-entropy term as a log-prior factor) gets a real PSIS-LOO
with meaningful k̂: ``notebooks/gamma_family_comparison.ipynb`` and ``notebooks/bounds_any_diagram.ipynb``
compare members that way.

**Point estimates, labelled as such.** A fitted member that is a point estimate has draws that repeat one value
(:func:`to_inference_data` repeats it up to ``MIN_DRAWS``). PSIS has nothing to reweight there: ArviZ 0.2x returns
the plain log-likelihoods with k̂ = inf, ArviZ 1.x refuses to smooth a constant tail. :func:`compare_table`
therefore never sends a point estimate through PSIS: it marks such rows ``point_estimate`` and scores them by their
log-likelihoods as they are. On *held-out* data that is the held-out log predictive density Σ_n log p(x_n, y_n),
with standard errors from the spread over observations.

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

__all__ = ["arviz_major", "compare_table", "log_likelihood_arrays", "pareto_k", "to_inference_data"]

#: A point estimate is repeated up to this many draws so that ArviZ accepts the object (it is never sent
#: through PSIS by :func:`compare_table`; see the module docstring).
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


def _loo(idata, var_name: str | None):
    """``az.loo(idata, pointwise=True)``, its k̂ warning silenced (callers report k̂ themselves)."""
    az = _arviz()
    kwargs = {"var_name": var_name} if var_name is not None else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        warnings.filterwarnings("ignore", message=".*shape parameter.*")
        return az.loo(idata, pointwise=True, **kwargs)


def pareto_k(idata, var_name: str | None = None) -> np.ndarray:
    """Pointwise Pareto k̂ of one member's PSIS-LOO (``az.loo(..., pointwise=True)``), flat float array.

    k̂ < 0.7 is where PSIS is reliable (with S < 2200 draws ArviZ flags from min(1 − 1/log10 S, 0.7)). A point
    estimate has no spread to reweight: its k̂ is meaningless (ArviZ reports it as large or undefined).
    """
    loo = _loo(idata, var_name)
    return np.asarray(loo.pareto_k, dtype=np.float64).ravel()


def _flag(value) -> bool:
    """A warning cell as a bool: True/False (0.2x) or a diagnostic string, empty when all is well (1.x)."""
    import pandas as pd

    return False if pd.isna(value) else bool(value)


def _pick(columns, *candidates):
    for name in candidates:
        if name in columns:
            return name
    raise KeyError(f"none of {candidates} in az.compare's columns {list(columns)}")


def _pointwise_elpd(idata, var_name: str | None) -> tuple[np.ndarray, float, bool]:
    """(elpd_i, p, warning) of one member: PSIS-LOO on genuine draws, the log-likelihood itself for a point estimate.

    A point estimate's draws repeat one value; PSIS-LOO would return exactly these log-likelihoods (ArviZ 0.2x
    does, with k̂ = inf), and ArviZ 1.x refuses them ("all tail values are the same"), so they are used as they are.
    """
    arrays = log_likelihood_arrays(idata)
    if var_name is None and len(arrays) != 1:
        raise ValueError(f"several log-likelihood terms {sorted(arrays)}: name one with var_name=")
    values = arrays[var_name] if var_name is not None else next(iter(arrays.values()))
    if _is_point_estimate(idata):
        return values[0, 0].reshape(-1), 0.0, False
    loo = _loo(idata, var_name)
    elpd_i = getattr(loo, "elpd_i", None)  # 1.x attribute; 0.2x: the Series label loo_i
    elpd_i = loo["loo_i"] if elpd_i is None else elpd_i
    p_loo = getattr(loo, "p", None)
    p_loo = loo["p_loo"] if p_loo is None else p_loo
    k_hat = np.asarray(loo.pareto_k, dtype=np.float64).ravel()
    return np.asarray(elpd_i, dtype=np.float64).ravel(), float(p_loo), bool((k_hat >= 0.7).any())


def _direct_table(idatas: Mapping[str, Any], point: Mapping[str, bool], var_name: str | None):
    """The comparison table from pointwise elpds, without ``az.compare`` (used when a point estimate is compared)."""
    import pandas as pd

    parts = {name: _pointwise_elpd(idata, var_name) for name, idata in idatas.items()}
    sizes = {len(elpd_i) for elpd_i, _, _ in parts.values()}
    if len(sizes) != 1:
        raise ValueError(f"every member needs the same observations to be compared, got sizes {sorted(sizes)}")
    elpd = pd.Series({name: float(elpd_i.sum()) for name, (elpd_i, _, _) in parts.items()})
    best = elpd.idxmax()
    n = sizes.pop()
    se = pd.Series({name: float(np.sqrt(n * np.var(elpd_i))) for name, (elpd_i, _, _) in parts.items()})
    dse = pd.Series({name: float(np.sqrt(n * np.var(elpd_i - parts[best][0]))) for name, (elpd_i, _, _) in parts.items()})
    return pd.DataFrame(
        {
            "rank": elpd.rank(ascending=False, method="first").astype(int) - 1,
            "elpd": elpd,
            "se": se,
            "elpd_diff": elpd.max() - elpd,
            "dse": dse,
            "p": pd.Series({name: part[1] for name, part in parts.items()}),
            "weight": np.nan,
            "warning": pd.Series({name: part[2] for name, part in parts.items()}),
            "point_estimate": pd.Series(point),
        }
    )


def compare_table(members: Mapping[str, Any], ic: str = "loo", var_name: str | None = None):
    """Run ``az.compare`` and return a tidy ``pandas.DataFrame`` indexed by member name.

    Columns: ``rank``, ``elpd`` (higher is better, log scale), ``se``, ``elpd_diff`` (≥ 0, from the best),
    ``dse`` (standard error of that difference), ``p`` (effective parameters), ``weight``, ``warning``,
    ``point_estimate`` and ``diff_over_dse`` (how many standard errors separate a member from the best).
    ``members`` holds ArviZ objects or anything :func:`to_inference_data` accepts.

    Where every member has genuine draws this is ``az.compare`` (PSIS-LOO, stacking weights; ``warning`` is
    ArviZ's high-k̂ flag). Where any member is a point estimate (``point_estimate`` True) the table is built from
    the pointwise values directly, the same way in every ArviZ version: a point estimate's elpd is the plain sum of
    its (held-out) log-likelihoods, a posterior's its PSIS-LOO; se and dse are √n × the standard deviation of the
    pointwise values and of their differences to the best member, as ArviZ computes them; ``weight`` is NaN (no
    stacking) and ``warning`` is True where a posterior member has a k̂ ≥ 0.7; ``ic`` must be ``"loo"``.
    """
    import pandas as pd

    az = _arviz()
    idatas = {name: (value if hasattr(value, "groups") or hasattr(value, "children") else None) for name, value in members.items()}
    if any(value is None for value in idatas.values()):
        idatas = to_inference_data(members)
    point = {name: _is_point_estimate(idata) for name, idata in idatas.items()}
    if any(point.values()):
        if ic != "loo":
            raise ValueError(f"ic={ic!r}: a comparison that holds point estimates is on held-out log-likelihoods (loo)")
        table = _direct_table(idatas, point, var_name).sort_values("rank")
        raw = None
    else:
        table, raw = _arviz_table(az, idatas, point, ic, var_name)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["diff_over_dse"] = np.where(table["dse"] > 0, table["elpd_diff"] / table["dse"], 0.0)
    table.attrs["arviz_version"] = az.__version__
    table.attrs["ic"] = ic
    table.attrs["raw"] = raw
    return table


def _arviz_table(az, idatas, point, ic: str, var_name: str | None):
    """``az.compare`` on members with genuine draws, its columns renamed to the tidy ones (either version)."""
    import pandas as pd

    kwargs: dict[str, Any] = {}
    if var_name is not None:
        kwargs["var_name"] = var_name
    with warnings.catch_warnings():
        # stacking weights over-/underflow when elpds differ by thousands of nats (e.g. with the image term)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="arviz")
        try:
            raw = az.compare(idatas, ic=ic, scale="log", **kwargs)
        except TypeError:  # a version without ``ic=`` / ``scale=`` (1.x): PSIS-LOO only, log scale, unrounded
            if ic != "loo":
                raise ValueError(f"ic={ic!r}: this ArviZ ({az.__version__}) compares by PSIS-LOO only") from None
            raw = az.compare(idatas, round_to="none", **kwargs)
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
            "warning": raw[_pick(cols, "warning", "diag_elpd")].map(_flag).astype(bool),
            "point_estimate": pd.Series(point),
        }
    ).sort_values("rank")
    return table, raw
