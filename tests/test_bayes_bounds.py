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


# ---------------------------------------------------------------------------- any discrete diagram (issue 11)
import numpy as np  # noqa: E402
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402

from benchmarks.bounds_checks import (  # noqa: E402
    bootstrap_se, canonical_iv_model, front_door_bayes_model, front_door_formula, sample_front_door, sample_iv,
)
from cauvade_pyro.bayes_bounds import exact_p_do, fit_posterior  # noqa: E402
from cauvade_pyro.bounds import DiscreteDiagram, lp_bounds, p_do  # noqa: E402
from cauvade_pyro.models import confounder  # noqa: E402

PI = torch.tensor([0.7, 0.3])
P_X_C = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
P_M_X = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
P_Y_MC = torch.rand(3, 2, 2, generator=torch.Generator().manual_seed(0)).softmax(-1)  # [m, c, y]


def fixed_front_door(data=None, num_samples=None):
    data = data or {}
    with pyro.plate("data", num_samples or len(data["x"])):
        c = confounder("c", PI.log())
        x = pyro.sample("x", dist.Categorical(P_X_C[c]), obs=data.get("x"))
        m = pyro.sample("m", dist.Categorical(P_M_X[x]), obs=data.get("m"))
        return pyro.sample("y", dist.Categorical(P_Y_MC[m, c]), obs=data.get("y"))


@pytest.mark.parametrize("x", [0, 1])
def test_exact_p_do_is_the_truncated_factorisation(x):
    truth = torch.einsum("c,m,mcy->y", PI, P_M_X[x], P_Y_MC).double()
    assert torch.allclose(exact_p_do(fixed_front_door, {"x": x}, "y"), truth, atol=1e-6)
    # the mediator's own law under do(x), and a joint intervention that cuts the mediator
    assert torch.allclose(exact_p_do(fixed_front_door, {"x": x}, "m"), P_M_X[x].double(), atol=1e-6)
    both = torch.einsum("c,cy->y", PI, P_Y_MC[2]).double()
    assert torch.allclose(exact_p_do(fixed_front_door, {"x": x, "m": 2}, "y"), both, atol=1e-6)


def test_exact_p_do_reads_a_posterior_draw():
    model = front_door_bayes_model()
    draw = {"pi": PI, "p_x": P_X_C, "p_m": P_M_X[:, :2] / P_M_X[:, :2].sum(-1, keepdim=True), "p_y": P_Y_MC[:2]}
    truth = torch.einsum("c,m,mcy->y", PI, draw["p_m"][1], P_Y_MC[:2]).double()
    assert torch.allclose(exact_p_do(model, {"x": 1}, "y", draw), truth, atol=1e-6)


def test_front_door_posterior_concentrates_on_the_front_door_formula():
    torch.set_num_threads(1)
    n = 4000
    arrays = sample_front_door(n, seed=5)
    counts = np.zeros((2, 2, 2))
    np.add.at(counts, (arrays["x"], arrays["m"], arrays["y"]), 1)
    formula = front_door_formula(counts / n)
    se = bootstrap_se(counts, front_door_formula, reps=200)
    post = fit_posterior(front_door_bayes_model(), {k: torch.as_tensor(v) for k, v in arrays.items()},
                         num_samples=50, warmup_steps=50, seed=0, max_tree_depth=4)
    draws = post.p_do("x", "y", 2).numpy()
    assert draws.shape == (50, 2, 2)
    assert (np.abs(draws.mean(0) - formula) < 3 * se).all(), (draws.mean(0), formula, se)
    assert (draws.std(0) < 3 * se).all()  # concentrated: the query is identified


def test_iv_posterior_draws_stay_inside_the_lp_bounds():
    torch.set_num_threads(1)
    n = 20000
    arrays = sample_iv(n, seed=1)
    counts = np.zeros((2, 2, 2))
    np.add.at(counts, (arrays["z"], arrays["x"], arrays["y"]), 1)
    iv = DiscreteDiagram({"z": 2, "x": 2, "y": 2}, {"x": ["z"], "y": ["x"]}, [{"x", "y"}])
    lo, hi = lp_bounds(iv, counts / n, p_do("y", 1, "x", 1))
    post = fit_posterior(canonical_iv_model(), {k: torch.as_tensor(v) for k, v in arrays.items()},
                         num_samples=50, warmup_steps=50, seed=0, max_tree_depth=4)
    draws = post.p_do("x", "y", 2)[:, 1, 1].numpy()
    tol = 4 * (0.25 / (n / 2)) ** 0.5  # sampling error of P(x, y | z) behind the bounds
    assert (draws >= lo - tol).all() and (draws <= hi + tol).all(), (draws.min(), draws.max(), lo, hi)
    assert draws.max() - draws.min() > 0.02  # not identified: the chain moves inside the bounds (the range vs n: benchmark)


def test_fit_posterior_explains_unsupported_programs():
    def continuous_latent(data=None, num_samples=None):
        data = data or {}
        pi = pyro.sample("pi", dist.Dirichlet(torch.ones(2)))
        with pyro.plate("data", num_samples or len(data["x"])):
            c = confounder("c", pi.log())
            e = pyro.sample("e", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Bernoulli(logits=e + c), obs=data.get("x"))

    with pytest.raises(ValueError, match="'e' is a per-datapoint latent that cannot be enumerated"):
        fit_posterior(continuous_latent, {"x": torch.tensor([0.0, 1.0])}, num_samples=2, warmup_steps=2)
    with pytest.raises(ValueError, match="no global sample site"):
        fit_posterior(fixed_front_door, {"x": torch.tensor([0, 1]), "m": torch.tensor([0, 2]),
                                         "y": torch.tensor([1, 1])}, num_samples=2, warmup_steps=2)
    with pytest.raises(ValueError, match="discrete data only"):
        fit_posterior(front_door_bayes_model(), {"x": torch.tensor([0.5, 1.0])}, num_samples=2, warmup_steps=2)


def test_entropy_term_and_pointwise_log_lik_match_hand_sums():
    from cauvade_pyro.bayes_bounds import DiagramPosterior, _enumerated_trace, _per_row_terms

    rows = {"x": torch.tensor([0, 1, 1, 0]), "m": torch.tensor([0, 2, 1, 1]), "y": torch.tensor([1, 0, 1, 1])}
    joint = PI[:, None] * P_X_C[:, rows["x"]] * P_M_X[rows["x"], rows["m"]] * P_Y_MC[rows["m"], :, rows["y"]].T
    log_lik, entropy = _per_row_terms(_enumerated_trace(fixed_front_door, rows), 4, entropy=True)
    post = joint / joint.sum(0)
    assert torch.allclose(log_lik, joint.sum(0).log(), atol=1e-6)
    assert torch.allclose(entropy, -(post * post.log()).sum(0), atol=1e-6)
    # pointwise log-likelihood of held-out rows under two draws of the Dirichlet program
    model = front_door_bayes_model()
    p_m = P_M_X[:, :2] / P_M_X[:, :2].sum(-1, keepdim=True)
    draws = {"pi": torch.stack([PI, PI.flip(0)]), "p_x": torch.stack([P_X_C, P_X_C]), "p_m": torch.stack([p_m, p_m]),
             "p_y": torch.stack([P_Y_MC[:2], P_Y_MC[:2]])}
    post = DiagramPosterior(samples=draws, samples_by_chain={k: v[None] for k, v in draws.items()}, model=model)
    held = {"x": torch.tensor([0, 1]), "m": torch.tensor([1, 0]), "y": torch.tensor([0, 1])}
    ll = post.pointwise_log_lik(held)
    for s, pi in enumerate((PI, PI.flip(0))):
        hand = (pi[:, None] * P_X_C[:, held["x"]] * p_m[held["x"], held["m"]] * P_Y_MC[held["m"], :, held["y"]].T).sum(0)
        assert torch.allclose(ll[s], hand.log().double(), atol=1e-6)


def test_gamma_member_as_posterior_gives_genuine_draws_for_psis():
    """A γ-member sampled as a posterior: its held-out log-likelihoods vary across draws (what PSIS-LOO needs)."""
    torch.set_num_threads(1)
    arrays = {k: torch.as_tensor(v) for k, v in sample_front_door(1000, seed=3).items()}
    held = {k: torch.as_tensor(v) for k, v in sample_front_door(100, seed=4).items()}
    # 40 draws: ArviZ 1.x's PSIS needs at least 5 tail draws (about 25 draws), 0.2x accepts fewer
    post = fit_posterior(front_door_bayes_model(), arrays, num_samples=40, warmup_steps=20, seed=0, max_tree_depth=3,
                         gamma=-1.0)
    idata = post.to_inference_data(held)
    ll = idata["log_likelihood"]["obs"].values
    assert ll.shape == (1, 40, 100) and np.isfinite(ll).all()
    assert np.ptp(ll, axis=(0, 1)).min() > 0  # every held-out point sees different draws: not a point estimate
    # two members compared by az.compare on their draws (either ArviZ line), with pointwise Pareto k̂
    from cauvade_pyro.comparison import compare_table, pareto_k

    plain = fit_posterior(front_door_bayes_model(), arrays, num_samples=40, warmup_steps=40, seed=0, max_tree_depth=3)
    members = {"γ=-1": idata, "γ=0": plain.to_inference_data(held)}
    table = compare_table(members)
    assert sorted(table.index) == ["γ=-1", "γ=0"] and not table["point_estimate"].any()
    assert np.isfinite(table["elpd"]).all() and np.isfinite(table["weight"]).all()
    k_hat = pareto_k(members["γ=0"])
    assert k_hat.shape == (100,) and np.isfinite(k_hat).all()
    with pytest.raises(ValueError, match="gamma must be finite"):
        fit_posterior(front_door_bayes_model(), arrays, num_samples=2, warmup_steps=2, gamma=float("nan"))
