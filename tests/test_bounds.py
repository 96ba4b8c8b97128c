"""LP bounds over response functions (issue 11): published Balke–Pearl numbers, the bow graph's closed form,
truths of random SCMs inside the bounds, and one-line errors outside what the LP handles."""

import itertools

import numpy as np
import pytest
import torch

from cauvade_pyro.bounds import (
    DiscreteDiagram, Query, ace, linear_query, lp_bounds, observed_counts, p_do, p_do_bounds,
)
from cauvade_pyro.metrics import bow_graph_bounds

IV = DiscreteDiagram(cards={"z": 2, "x": 2, "y": 2}, parents={"x": ["z"], "y": ["x"]}, confounded=[{"x", "y"}])


def vitamin_a() -> np.ndarray:
    """Sommer et al. vitamin A trial as tabulated by Balke & Pearl (1997): counts by (z, x, y)."""
    counts = np.zeros((2, 2, 2))
    for (z, x, y), n in {(0, 0, 0): 74, (0, 0, 1): 11514, (1, 0, 0): 34, (1, 0, 1): 2385,
                         (1, 1, 0): 12, (1, 1, 1): 9663}.items():
        counts[z, x, y] = n
    return counts


def test_vitamin_a_matches_balke_pearl_published_bounds():
    p = vitamin_a() / vitamin_a().sum()
    lo, hi = lp_bounds(IV, p, ace("y", "x"))
    assert abs(lo - (-0.1946)) < 1e-3 and abs(hi - 0.0054) < 1e-3
    lo, hi = lp_bounds(IV, p, p_do("y", 1, "x", 1))
    assert abs(lo - 0.7990) < 1e-3 and abs(hi - 0.9990) < 1e-3
    lo, hi = lp_bounds(IV, p, p_do("y", 1, "x", 0))
    assert abs(lo - 0.9936) < 1e-3 and abs(hi - 0.9936) < 1e-3
    # the distribution of the randomised z does not matter: only P(x, y | z) constrains the LP
    reweighted = vitamin_a() / vitamin_a().sum(axis=(1, 2), keepdims=True) * np.array([0.9, 0.1])[:, None, None]
    assert np.allclose(lp_bounds(IV, reweighted, ace("y", "x")), lp_bounds(IV, p, ace("y", "x")), atol=1e-8)
    lower, upper = p_do_bounds(IV, p, "x", "y")
    assert lower.shape == (2, 2) and abs(float(lower[1, 1]) - 0.7990) < 1e-3 and abs(float(upper[1, 1]) - 0.9990) < 1e-3
    assert bool((lower <= upper + 1e-9).all())


@pytest.mark.parametrize("seed, nx, ny", [(0, 2, 2), (1, 3, 2), (2, 2, 4), (3, 3, 3)])
def test_bow_graph_lp_equals_closed_form(seed, nx, ny):
    rng = np.random.default_rng(seed)
    joint = rng.dirichlet(np.full(nx * ny, 0.7)).reshape(nx, ny)
    bow = DiscreteDiagram({"x": nx, "y": ny}, {"y": ["x"]}, [{"x", "y"}])
    lower, upper = p_do_bounds(bow, joint, "x", "y")
    closed_lo, closed_hi = bow_graph_bounds(torch.as_tensor(joint))
    assert torch.allclose(lower, closed_lo, atol=1e-8) and torch.allclose(upper, closed_hi, atol=1e-8)
    # a contrast: its bounds are the closed-form differences of independent ends
    lo, hi = lp_bounds(bow, joint, linear_query([[1.0] + [0.0] * (ny - 1), [-1.0] + [0.0] * (ny - 1)] + [[0.0] * ny] * (nx - 2), "x", "y"))
    assert abs(lo - (closed_lo[0, 0] - closed_hi[1, 0])) < 1e-8 and abs(hi - (closed_hi[0, 0] - closed_lo[1, 0])) < 1e-8


def _random_scm_truth(rng, diagram_kind):
    """A random SCM with a K-state latent c: observed joint and the true P(y | do x) (both exact)."""
    K = 3
    pi = rng.dirichlet(np.ones(K))
    if diagram_kind == "iv":  # z -> x -> y, c -> x, y
        pz = rng.dirichlet(np.ones(2))
        px = rng.dirichlet(np.ones(2), size=(2, K))  # [z, c, x]
        py = rng.dirichlet(np.ones(2), size=(2, K))  # [x, c, y]
        joint = np.einsum("z,c,zcx,xcy->zxy", pz, pi, px, py)
        truth = np.einsum("c,xcy->xy", pi, py)
    elif diagram_kind == "front_door":  # c -> x, y; x -> m -> y
        px = rng.dirichlet(np.ones(2), size=K)  # [c, x]
        pm = rng.dirichlet(np.ones(2), size=2)  # [x, m]
        py = rng.dirichlet(np.ones(2), size=(2, K))  # [m, c, y]
        joint = np.einsum("c,cx,xm,mcy->xmy", pi, px, pm, py)
        truth = np.einsum("c,xm,mcy->xy", pi, pm, py)
    else:  # two confounders: c -> x, y and d -> w, y; x -> y <- w
        pi_d = rng.dirichlet(np.ones(2))
        px = rng.dirichlet(np.ones(2), size=K)  # [c, x]
        pw = rng.dirichlet(np.ones(2), size=2)  # [d, w]
        py = rng.dirichlet(np.ones(2), size=(2, 2, K, 2))  # [x, w, c, d, y]
        joint = np.einsum("c,d,cx,dw,xwcdy->xwy", pi, pi_d, px, pw, py)
        truth = np.einsum("c,d,dw,xwcdy->xy", pi, pi_d, pw, py)
    return joint, truth


DIAGRAMS = {
    "iv": IV,
    "front_door": DiscreteDiagram({"x": 2, "m": 2, "y": 2}, {"m": ["x"], "y": ["m"]}, [{"x", "y"}]),
    "two_confounders": DiscreteDiagram({"x": 2, "w": 2, "y": 2}, {"y": ["x", "w"]}, [{"x", "y"}, {"w", "y"}]),
}


@pytest.mark.parametrize("kind", list(DIAGRAMS))
def test_truth_of_random_scms_lies_inside_the_bounds(kind):
    rng = np.random.default_rng(7)
    diagram = DIAGRAMS[kind]
    assert diagram.sharp == (kind == "iv")
    for _ in range(5):
        joint, truth = _random_scm_truth(rng, kind)
        lower, upper = p_do_bounds(diagram, joint, "x", "y")
        assert bool((lower.numpy() <= truth + 1e-7).all() and (truth <= upper.numpy() + 1e-7).all()), (lower, truth, upper)
        # never wider than the bow graph's bounds on the same (x, y) margin (the LP uses more structure)
        xy = joint.sum(axis=tuple(k for k, v in enumerate(diagram.variables) if v not in ("x", "y")))
        bow_lo, bow_hi = bow_graph_bounds(torch.as_tensor(xy))  # axes (x, y) in every diagram here
        assert bool((lower >= bow_lo - 1e-7).all() and (upper <= bow_hi + 1e-7).all())


def test_iv_response_function_mixture_lies_inside_its_bounds():
    """Data made by a random mixture of the 16 IV response types (z uniform): its own P(y | do x) lies inside
    the bounds computed from its data, and the bounds are a proper interval (not identified)."""
    rng = np.random.default_rng(3)
    q = rng.dirichlet(np.ones(16))
    funcs = list(itertools.product(range(2), repeat=2))  # f(parent) for parent 0, 1
    joint, truth = np.zeros((2, 2, 2)), np.zeros((2, 2))
    for t, weight in enumerate(q):
        fx, fy = funcs[t // 4], funcs[t % 4]
        for z in range(2):
            joint[z, fx[z], fy[fx[z]]] += 0.5 * weight
        for x in range(2):
            truth[x, fy[x]] += weight
    lower, upper = p_do_bounds(IV, joint, "x", "y")
    assert bool((lower.numpy() <= truth + 1e-8).all() and (truth <= upper.numpy() + 1e-8).all())
    assert float((upper - lower).min()) > 0.01  # not identified


def test_observed_counts_and_query_algebra():
    d = DiscreteDiagram({"z": 2, "x": 2, "y": 3}, {"x": ["z"], "y": ["x"]}, [{"x", "y"}])
    counts = observed_counts(d, {"z": [0, 1, 1, 1], "x": [0, 1, 1, 0], "y": [2, 0, 0, 1]})
    assert counts.shape == (2, 2, 3) and float(counts.sum()) == 4 and float(counts[1, 1, 0]) == 2
    q = 0.5 - 2 * p_do("y", 1, "x", 0)
    assert isinstance(q, Query) and q.constant == 0.5 and q.terms[0][3] == -2.0
    bow = DiscreteDiagram({"x": 2, "y": 2}, {"y": ["x"]}, [{"x", "y"}])
    joint = np.array([[0.3, 0.2], [0.1, 0.4]])
    lo, hi = lp_bounds(bow, joint, 1 - p_do("y", 1, "x", 0))  # = P(y = 0 | do x = 0)
    assert abs(lo - 0.3) < 1e-9 and abs(hi - 0.8) < 1e-9
    lo, hi = lp_bounds(IV, vitamin_a() / vitamin_a().sum(), p_do("z", 1, "x", 0))  # z upstream: P(z) itself
    assert abs(lo - hi) < 1e-12 and abs(lo - vitamin_a()[1].sum() / vitamin_a().sum()) < 1e-12


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_unsupported_diagrams_and_queries_get_one_line_errors():
    with pytest.raises(ValueError, match="2 confounded components") as e:
        DiscreteDiagram({"x": 2, "y": 2, "w": 2, "v": 2}, {"y": ["x"], "v": ["w"]}, [{"x", "y"}, {"w", "v"}])
    assert "Bayesian" in _one_line(e)
    p = vitamin_a() / vitamin_a().sum()
    with pytest.raises(ValueError, match="linear Query") as e:
        lp_bounds(IV, p, lambda tables: tables["y"] / tables["x"])
    assert "Bayesian" in _one_line(e)
    with pytest.raises(ValueError, match="treatment 'z' lies outside") as e:
        lp_bounds(IV, p, p_do("y", 1, "z", 1))
    assert "Bayesian" in _one_line(e)
    with pytest.raises(ValueError, match="cycle"):
        DiscreteDiagram({"x": 2, "y": 2}, {"y": ["x"], "x": ["y"]}, [{"x", "y"}])
    with pytest.raises(ValueError, match="no confounded component"):
        lp_bounds(DiscreteDiagram({"x": 2, "y": 2}, {"y": ["x"]}), np.full((2, 2), 0.25), p_do("y", 1, "x", 1))
    with pytest.raises(ValueError, match="p_obs: expected shape"):
        lp_bounds(IV, np.full((2, 2), 0.25), p_do("y", 1, "x", 1))
    with pytest.raises(ValueError, match="sum 1"):
        lp_bounds(IV, vitamin_a(), p_do("y", 1, "x", 1))
    with pytest.raises(ValueError, match="not a variable"):
        lp_bounds(IV, p, p_do("hue", 1, "x", 1))
    with pytest.raises(ValueError, match="outside 0..1"):
        lp_bounds(IV, p, p_do("y", 2, "x", 1))
    # data that violate the instrumental inequalities: z flips y although only x may carry its effect
    bad = np.zeros((2, 2, 2))
    bad[0, 0, 0] = bad[1, 0, 1] = 0.5
    with pytest.raises(ValueError, match="incompatible with the diagram") as e:
        lp_bounds(IV, bad, p_do("y", 1, "x", 1))
    _one_line(e)
    with pytest.raises(ValueError, match="cards"):
        DiscreteDiagram({"x": 0, "y": 2}, {"y": ["x"]}, [{"x", "y"}])
    with pytest.raises(ValueError, match="confounded set"):
        DiscreteDiagram({"x": 2, "y": 2}, {"y": ["x"]}, [{"x", "q"}])
