"""ArviZ export of pointwise log-likelihoods and the tidy comparison table (issue 4)."""

import numpy as np
import pytest
import torch

from cauvade_pyro.comparison import MIN_DRAWS, arviz_major, compare_table, log_likelihood_arrays, to_inference_data


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
    elpd = float(loo["elpd_loo"] if "elpd_loo" in loo else loo["elpd"])
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
