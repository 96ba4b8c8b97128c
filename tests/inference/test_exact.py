"""Exact enumeration (cauvade_pyro.inference.exact) against closed forms and brute-force hand sums."""

import itertools

import pytest
import torch

from cauvade_pyro.inference.counts import cell_posterior_entropy
from cauvade_pyro.inference.exact import (
    compress, compress_outcome, enumerate_data, enumerate_outcome, interventional_table, mean_loglik,
)
from cauvade_pyro.models import AttributeMixture, TabularDiagram


def _randomise(module, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))


@pytest.mark.parametrize("y_given_xc", ["additive", "interaction", "table"])
def test_attribute_mixture_matches_its_closed_forms(y_given_xc):
    mixture = AttributeMixture(4, 3, 5, y_given_xc=y_given_xc)
    mixture.reset_parameters(torch.Generator().manual_seed(1))
    x, y = torch.randint(0, 3, (40,)), torch.randint(0, 5, (40,))
    out = enumerate_data(mixture.model, {"x": x, "y": y})
    assert torch.allclose(out.loglik, mixture.log_prob_xy(x, y), atol=1e-5)
    assert torch.allclose(out.entropy, cell_posterior_entropy(mixture)[x, y], atol=1e-5)
    assert torch.allclose(interventional_table(mixture.model, "x", 3, "y", 5), mixture.interventional_y(), atol=1e-6)


@torch.no_grad()
def _two_confounder_tables(diagram):
    pi1, pi2 = (diagram.pi[c].softmax(-1) for c in ("c1", "c2"))
    px = diagram.tables["x"].softmax(-1)          # [c1, x]
    pw = diagram.tables["w"].softmax(-1)          # [c2, w]
    py = diagram.tables["y"].softmax(-1)          # [c1, c2, x, w, y]
    return pi1, pi2, px, pw, py


def test_two_confounders_against_a_hand_sum():
    diagram = TabularDiagram({"x": 2, "w": 3, "y": 2}, {"y": ["x", "w"]},
                             {"c1": (2, ["x", "y"]), "c2": (3, ["w", "y"])})
    _randomise(diagram, 0)
    pi1, pi2, px, pw, py = _two_confounder_tables(diagram)
    rows = list(itertools.product(range(2), range(3), range(2)))
    data = {k: torch.tensor([r[i] for r in rows]) for i, k in enumerate(("x", "w", "y"))}
    out = enumerate_data(diagram.model, data)
    for n, (x, w, y) in enumerate(rows):
        joint = torch.tensor([[pi1[a] * pi2[b] * px[a, x] * pw[b, w] * py[a, b, x, w, y] for b in range(3)]
                              for a in range(2)])
        assert out.loglik[n].item() == pytest.approx(joint.sum().log().item(), abs=1e-5)
        post = joint / joint.sum()
        entropy = sum(-(m * m.log()).sum() for m in (post.sum(1), post.sum(0)))
        assert out.entropy[n].item() == pytest.approx(entropy.item(), abs=1e-5)
    # truncated factorisation: P(y | do(x)) = Σ_{c1, c2, w} π1 π2 p(w | c2) p(y | c1, c2, x, w)
    table = interventional_table(diagram.model, "x", 2, "y", 2)
    hand = torch.einsum("a,b,bw,abxwy->xy", pi1, pi2, pw, py)
    assert torch.allclose(table, hand, atol=1e-6)


def test_instrumental_variable_marginalises_the_instrument():
    diagram = TabularDiagram({"z": 2, "x": 2, "y": 2}, {"x": ["z"], "y": ["x"]}, {"c": (3, ["x", "y"])})
    _randomise(diagram, 3)
    pi, py = diagram.pi["c"].softmax(-1), diagram.tables["y"].softmax(-1)  # y: [c, x, y]
    hand = torch.einsum("c,cxy->xy", pi, py)   # z and x's own factor drop out under do(x)
    assert torch.allclose(interventional_table(diagram.model, "x", 2, "y", 2), hand, atol=1e-6)
    # and the flipped truncation (keeping x's factor) would differ: the test can fail
    assert not torch.allclose(interventional_table(diagram.model, "z", 2, "y", 2), hand, atol=1e-3)


def test_compressed_rows_give_the_same_mean_loglik():
    mixture = AttributeMixture(3, 2, 4, y_given_xc="table")
    mixture.reset_parameters(torch.Generator().manual_seed(2))
    x, y = torch.randint(0, 2, (500,)), torch.randint(0, 4, (500,))
    rows, counts = compress({"x": x, "y": y})
    assert counts.sum().item() == 500 and len(rows["x"]) <= 8
    assert mean_loglik(mixture.model, {"x": x, "y": y}) == pytest.approx(mixture.log_prob_xy(x, y).mean().item(),
                                                                         abs=1e-5)
    assert compress({"x": torch.rand(3)}) is None


def test_unknown_site_is_one_line():
    mixture = AttributeMixture(2, 2, 2)
    with pytest.raises(ValueError, match="no sample site 'shape'"):
        interventional_table(mixture.model, "shape", 2, "y", 2)


def _diagrams():
    mixture = AttributeMixture(4, 3, 5, y_given_xc="table")
    mixture.reset_parameters(torch.Generator().manual_seed(4))
    two = TabularDiagram({"x": 2, "w": 3, "y": 3}, {"y": ["x", "w"]}, {"c1": (2, ["x", "y"]), "c2": (3, ["w", "y"])})
    iv = TabularDiagram({"z": 2, "x": 3, "y": 4}, {"x": ["z"], "y": ["x"]}, {"c": (3, ["x", "y"])})
    front = TabularDiagram({"x": 2, "m": 3, "y": 2}, {"m": ["x"], "y": ["m"]}, {"c": (2, ["x", "y"])})
    for seed, diagram in enumerate((two, iv, front)):
        _randomise(diagram, 10 + seed)
    return {"mixture": (mixture.model, {"x": 3}, 5), "two confounders": (two.model, {"x": 2, "w": 3}, 3),
            "instrument": (iv.model, {"z": 2, "x": 3}, 4), "front door": (front.model, {"x": 2, "m": 3}, 2)}


@pytest.mark.parametrize("name", list(_diagrams()))
def test_enumerating_the_outcome_gives_every_row_path_number(name):
    model, others, num_y = _diagrams()[name]
    rows = list(itertools.product(*(range(n) for n in others.values())))
    by_outcome = enumerate_outcome(model, {k: torch.tensor([r[i] for r in rows]) for i, k in enumerate(others)}, "y")
    assert by_outcome.loglik.shape == by_outcome.entropy.shape == (len(rows), num_y)
    every = [(*r, j) for r in rows for j in range(num_y)]  # the row path on every (row, outcome) pair
    data = {k: torch.tensor([r[i] for r in every]) for i, k in enumerate([*others, "y"])}
    row_path = enumerate_data(model, data)
    assert torch.allclose(by_outcome.loglik.reshape(-1), row_path.loglik, atol=1e-5)
    assert torch.allclose(by_outcome.entropy.reshape(-1), row_path.entropy, atol=1e-5)
    treatment = "x"
    num_t = others[treatment]
    assert torch.allclose(interventional_table(model, treatment, num_t, "y", num_y, enumerate_outcome=True),
                          interventional_table(model, treatment, num_t, "y", num_y), atol=1e-6)


def test_outcome_counts_match_the_rows():
    x, y = torch.randint(0, 3, (300,)), torch.randint(0, 4, (300,))
    rows, counts = compress_outcome({"x": x, "y": y}, "y", 4)
    for r, value in enumerate(rows["x"].tolist()):
        assert counts[r].tolist() == [float(((x == value) & (y == j)).sum()) for j in range(4)]
    assert compress_outcome({"x": x, "y": y}, "y", 3) is None  # a label beyond the outcome's values: no shortcut
    assert compress_outcome({"x": x}, "y", 4) is None
