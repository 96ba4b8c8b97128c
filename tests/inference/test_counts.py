"""The count-based attribute objective equals the Pyro γ-entropy loss; directed members and the oracle."""

import copy

import pyro
import pytest
import torch

from cauvade_pyro.datasets import ConfoundedColourSCM
from cauvade_pyro.inference import (
    GammaEntropyELBO,
    cell_counts,
    count_objective,
    fit_attribute_counts,
    fit_attribute_member,
    fit_directed_member,
    mean_nll,
    oracle_mixture,
)
from cauvade_pyro.metrics import bow_graph_bounds
from cauvade_pyro.models import AttributeMixture


@pytest.fixture(scope="module")
def observational():
    scm = ConfoundedColourSCM.make()
    return scm, scm.sample(3000, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("gamma", [0.0, 2.0, -1.0])
@pytest.mark.parametrize("y_given_xc", ["additive", "table", "interaction"])
def test_count_objective_equals_pyro_loss(observational, gamma, y_given_xc):
    _, sample = observational
    mixture = AttributeMixture(4, 3, 6, y_given_xc=y_given_xc)
    mixture.reset_parameters(torch.Generator().manual_seed(1))
    data = {"x": sample["x"], "y": sample["y"]}
    pyro_loss = GammaEntropyELBO(gamma=gamma).loss(mixture.model, mixture.guide, data)
    counts = cell_counts(sample["x"], sample["y"], 3, 6)
    assert count_objective(mixture, counts, gamma).item() == pytest.approx(pyro_loss, rel=1e-5)


def test_cell_counts_by_hand():
    counts = cell_counts(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 1, 0, 2, 2, 0]), 3, 3)
    assert counts.tolist() == [[0, 2, 0], [1, 0, 0], [1, 0, 2]]
    with pytest.raises(ValueError, match="outside"):
        cell_counts(torch.tensor([3]), torch.tensor([0]), 3, 3)


def test_counts_path_follows_the_pyro_path(observational):
    """Same loss, same optimizer, same initial draw: the two fits end at the same parameters."""
    _, sample = observational
    by_pyro, by_counts = AttributeMixture(4, 3, 6), AttributeMixture(4, 3, 6)
    fit_attribute_member(by_pyro, sample["x"], sample["y"], gamma=2.0, seed=3, steps=60, progress=False)
    fit_attribute_member(by_counts, sample["x"], sample["y"], gamma=2.0, seed=3, steps=60, progress=False,
                         objective="counts")
    for a, b in zip(by_pyro.parameters(), by_counts.parameters()):
        assert torch.allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match="objective"):
        fit_attribute_member(by_pyro, sample["x"], sample["y"], gamma=0.0, seed=0, steps=1, objective="nope")


@pytest.fixture(scope="module")
def fitted_table_member():
    scm = ConfoundedColourSCM.make()
    joint = scm.joint_xy()
    counts = (joint * 60000).to(torch.get_default_dtype())
    mixture = AttributeMixture(4, 3, 6, y_given_xc="table")
    fit_attribute_counts(mixture, counts, gamma=0.0, seed=0, steps=1500, progress=False)
    return joint, counts, mixture


def test_counts_fit_reaches_the_empirical_entropy(fitted_table_member):
    joint, counts, mixture = fitted_table_member
    entropy = -(joint * joint.log()).sum().item()
    assert mean_nll(mixture, counts).item() == pytest.approx(entropy, abs=1e-4)


@pytest.mark.parametrize("cell", [(0, 0), (1, 3)])
def test_directed_members_reach_the_sharp_bounds(fitted_table_member, cell):
    joint, counts, mixture = fitted_table_member
    best = mean_nll(mixture, counts).item()
    lower, upper = bow_graph_bounds(joint)
    tolerance = 0.001
    reached = {}
    for direction in (1, -1):
        member = copy.deepcopy(mixture)
        result = fit_directed_member(member, counts, cell, direction, best_nll=best, tolerance=tolerance,
                                     steps=800)
        assert result["feasible"] and result["nll_gap"] <= tolerance
        reached[direction] = result["p_do"]
    width = float(upper[cell] - lower[cell])
    # Within a 0.001-nat tolerance the mixture reaches (nearly) the ends of the sharp bounds, not beyond them
    # by more than the tolerance allows.
    assert reached[1] > float(upper[cell]) - 0.1 * width
    assert reached[-1] < float(lower[cell]) + 0.1 * width
    assert reached[1] < float(upper[cell]) + 0.1 * width and reached[-1] > float(lower[cell]) - 0.1 * width


def test_directed_member_validates_its_arguments(fitted_table_member):
    _, counts, mixture = fitted_table_member
    with pytest.raises(ValueError, match="direction"):
        fit_directed_member(mixture, counts, (0, 0), 0, best_nll=2.0)
    with pytest.raises(ValueError, match="cell"):
        fit_directed_member(mixture, counts, (5, 0), 1, best_nll=2.0)


def test_oracle_recovers_the_true_interventional_law():
    scm = ConfoundedColourSCM.make()
    sample = scm.sample(200_000, torch.Generator().manual_seed(0))
    oracle = oracle_mixture(sample["u"], sample["x"], sample["y"], 3, 3, 6)
    truth = scm.interventional_y().float()
    assert torch.allclose(oracle.interventional_y(), truth, atol=0.01)
    # ... which the observational answer is far from
    assert (scm.observational_y_given_x().float() - truth).abs().max() > 0.1


@pytest.mark.parametrize("y_given_xc, steps, exact", [("additive", 200, True), ("table", 200, True),
                                                      ("interaction", 5, False)])
def test_vectorised_family_follows_each_members_own_fit(y_given_xc, steps, exact):
    from cauvade_pyro.inference import fit_attribute_family_counts

    g = torch.Generator().manual_seed(0)
    counts = cell_counts(torch.randint(0, 3, (500,), generator=g), torch.randint(0, 4, (500,), generator=g), 3, 4)
    gammas, seeds = [-1.0, 0.0, 2.0, 2.0], [0, 1, 2, 3]
    alone = [AttributeMixture(3, 3, 4, y_given_xc=y_given_xc) for _ in gammas]
    alone_losses = [fit_attribute_counts(m, counts, gamma=gamma, seed=seed, steps=steps, progress=False)
                    for m, gamma, seed in zip(alone, gammas, seeds)]
    together = [AttributeMixture(3, 3, 4, y_given_xc=y_given_xc) for _ in gammas]
    together_losses = fit_attribute_family_counts(together, counts, gammas=gammas, seeds=seeds, steps=steps,
                                                  progress=False)
    for a, b, la, lb in zip(alone, together, alone_losses, together_losses):
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb) if exact else torch.allclose(pa, pb, atol=1e-5)
        assert (la == lb) if exact else torch.allclose(torch.tensor(la), torch.tensor(lb), rtol=1e-6)
    # the members did move apart: different γ and seeds give different answers
    assert not torch.allclose(together[2].interventional_y(), together[3].interventional_y())


def test_vectorised_family_needs_one_gamma_and_seed_per_member():
    from cauvade_pyro.inference import fit_attribute_family_counts

    with pytest.raises(ValueError, match="one γ and one seed per mixture"):
        fit_attribute_family_counts([AttributeMixture(2, 2, 2)], torch.ones(2, 2), gammas=[0.0, 1.0], seeds=[0])


def test_table_mixture_of_the_true_tables_intervenes_as_the_scm():
    """do(x) of the mixture built from a data set's own tables is the SCM's P(y | do(x)), exactly and in draws."""
    from cauvade_pyro.datasets import ConfoundedColourSCM
    from cauvade_pyro.inference import intervene, table_mixture

    scm = ConfoundedColourSCM.make(num_classes=2, confounding=0.8)  # 3 values of u, 2 of x
    mixture = table_mixture(scm.p_u, scm.p_x_given_u, scm.p_y_given_xu.transpose(0, 1))
    assert torch.allclose(mixture.interventional_y().double(), scm.interventional_y().double(), atol=1e-6)
    pyro.set_rng_seed(0)
    draws = intervene(mixture.model, {"x": 1}, num_samples=20000)["y"]
    frequencies = torch.bincount(draws, minlength=scm.p_y_given_xu.shape[-1]).double() / 20000
    assert torch.allclose(frequencies, scm.interventional_y()[1].double(), atol=0.015)
    with pytest.raises(ValueError, match="p_y_given_cx"):
        table_mixture(scm.p_u, scm.p_x_given_u, scm.p_y_given_xu)  # laid out [x, u, y], not [c, x, y]


def test_table_mixture_with_zero_probabilities_stays_finite():
    """A table with zeros (confounding = 1 makes some P(x | u) zero) keeps do(x) exact and the entropy finite."""
    from cauvade_pyro.datasets import ConfoundedColourSCM
    from cauvade_pyro.inference import table_mixture
    from cauvade_pyro.inference.counts import cell_posterior_entropy

    scm = ConfoundedColourSCM.make(num_classes=2, confounding=1.0)
    assert (scm.p_x_given_u == 0).any()
    mixture = table_mixture(scm.p_u, scm.p_x_given_u, scm.p_y_given_xu.transpose(0, 1))
    assert torch.allclose(mixture.interventional_y().double(), scm.interventional_y().double(), atol=1e-6)
    assert torch.isfinite(cell_posterior_entropy(mixture)).all()
    with pytest.raises(ValueError, match="finite and non-negative"):
        table_mixture(scm.p_u, scm.p_x_given_u, -scm.p_y_given_xu.transpose(0, 1))
