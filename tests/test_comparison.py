"""ArviZ export of pointwise log-likelihoods and the tidy comparison table (issue 4)."""

import numpy as np
import pytest
import torch

from cauvade_pyro.comparison import (
    MIN_DRAWS, arviz_major, compare_table, log_likelihood_arrays, pareto_k, to_inference_data,
)


@pytest.fixture(scope="module")
def family():
    rng = np.random.default_rng(0)
    return {
        "gamma=0 seed=0": {"xy": torch.as_tensor(rng.normal(-2.0, 0.5, (1, 200)))},  # torch point estimate
        "gamma=2 seed=0": {"xy": rng.normal(-2.0, 0.5, (1, 200))},
        "posterior": {"xy": rng.normal(-2.0, 0.5, (30, 200))},  # real draws
        "worse": {"xy": rng.normal(-2.6, 0.5, (1, 200))},
    }


def test_export_round_trips_shapes_and_names(family):
    idatas = to_inference_data(family)
    assert list(idatas) == list(family)
    for name, idata in idatas.items():
        arrays = log_likelihood_arrays(idata)
        assert list(arrays) == ["xy"]
        draws = max(np.shape(family[name]["xy"])[0], MIN_DRAWS)
        assert arrays["xy"].shape == (1, draws, 200)
        np.testing.assert_allclose(arrays["xy"][0, 0], np.asarray(family[name]["xy"])[0])


def test_several_terms_and_posterior_draws():
    idata = to_inference_data(
        {"m": {"xy": np.full((5, 3), -1.0), "image": np.full((5, 3), -100.0)}},
        posteriors={"m": {"pi": np.ones((5, 4)) / 4}},
    )["m"]
    arrays = log_likelihood_arrays(idata)
    assert sorted(arrays) == ["image", "xy"] and arrays["image"].shape == (1, 5, 3)
    assert idata["posterior"]["pi"].shape == (1, 5, 4)


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="draws, observations"):
        to_inference_data({"m": np.zeros((2, 3, 4))})
    with pytest.raises(ValueError, match="same number of draws"):
        to_inference_data({"m": {"a": np.zeros((2, 3)), "b": np.zeros((3, 3))}})
    with pytest.raises(ValueError, match="finite"):
        to_inference_data({"m": np.array([[0.0, -np.inf]])})


def test_loo_and_compare_run_and_the_table_is_tidy(family):
    import arviz as az

    idatas = to_inference_data(family)
    loo = az.loo(idatas["posterior"])
    elpd = float(loo.elpd if hasattr(loo, "elpd") else loo["elpd_loo"])  # 1.x: attribute; 0.2x: Series label
    assert np.isfinite(elpd)
    table = compare_table(idatas)
    assert list(table.columns[:5]) == ["rank", "elpd", "se", "elpd_diff", "dse"]
    assert table.index[-1] == "worse" and table["elpd_diff"].min() == 0.0
    assert (table["elpd_diff"] >= 0).all() and table["rank"].tolist() == [0, 1, 2, 3]
    # a point estimate's elpd is the plain sum of its held-out log-likelihoods
    assert table.loc["gamma=2 seed=0", "elpd"] == pytest.approx(float(np.sum(family["gamma=2 seed=0"]["xy"])))
    assert table.loc["gamma=2 seed=0", "point_estimate"] and not table.loc["posterior", "point_estimate"]
    # same table from raw arrays
    assert compare_table(family)["elpd"].round(6).to_dict() == table["elpd"].round(6).to_dict()
    assert arviz_major() in (0, 1) and table.attrs["arviz_version"] == az.__version__


def test_psis_loo_on_genuine_draws_matches_exact_leave_one_out():
    """Conjugate normal mean (flat prior, unit noise): exact LOO is analytic; PSIS on real draws must match it."""
    rng = np.random.default_rng(1)
    n, draws = 60, 4000
    y = rng.normal(0.3, 1.0, n)
    theta = rng.normal(y.mean(), (1.0 / n) ** 0.5, draws)  # exact posterior draws of the mean
    log_lik = -0.5 * np.log(2 * np.pi) - 0.5 * (y[None, :] - theta[:, None]) ** 2
    loo_mean = (y.sum() - y) / (n - 1)  # posterior mean without point i; predictive variance 1 + 1/(n - 1)
    var = 1.0 + 1.0 / (n - 1)
    exact = float(np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (y - loo_mean) ** 2 / var))
    shifted = log_lik - 0.5 * (y[None, :] - theta[:, None] - 1.0) ** 2 + 0.5 * (y[None, :] - theta[:, None]) ** 2
    idatas = to_inference_data({"right": {"y": log_lik}, "shifted": {"y": shifted}})
    k_hat = pareto_k(idatas["right"])
    assert k_hat.shape == (n,) and np.isfinite(k_hat).all() and (k_hat < 0.7).all()
    table = compare_table(idatas)
    assert table.loc["right", "elpd"] == pytest.approx(exact, abs=0.05)
    assert table.index[0] == "right" and table.loc["shifted", "elpd_diff"] > 10  # a mean off by 1 loses ~n/2 nats
    assert not table["point_estimate"].any() and not table.loc["right", "warning"]
