"""Latent-response γ-family by warm starts (cauvade_pyro.inference.latent_family): the member starts from the
base exactly, whatever the param store held, fine-tuning at γ ≠ 0 moves it, and the base is the γ = 0 fit."""

import pyro
import pytest
import torch

from cauvade_pyro.inference import (
    GammaEntropyELBO,
    base_state,
    fine_tune_member,
    fit_latent_base,
    fit_svi,
    init_latent_response,
    warm_start,
)
from cauvade_pyro.datasets import ConfoundedShapes
from cauvade_pyro.models import LatentResponseModel

SETTINGS = {"batch_size": 16, "lr": 2e-3}


@pytest.fixture(scope="module")
def data():
    dataset = ConfoundedShapes(num_train=64, num_test=16)
    return {k: dataset.train[k] for k in ("x", "image")}


def make(seed: int) -> LatentResponseModel:
    torch.manual_seed(seed)
    return LatentResponseModel(3, 3, (3, 28, 28), r_dim=2, eps_dim=2, net="mlp")


@pytest.fixture(scope="module")
def base(data):
    model = make(0)
    fit_latent_base(model, data, warmup_epochs=1, epochs=2, seed=5, progress=False, **SETTINGS)
    return base_state(model)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_warm_start_sets_every_parameter_to_the_base(base):
    member = make(1)
    assert not states_equal(base_state(member), base)  # a different initialisation to begin with
    warm_start(member, base)
    assert states_equal(base_state(member), base)
    assert len(pyro.get_param_store()) == 0


def test_first_fine_tuning_step_sees_the_base_even_after_a_stale_param_store(base, data):
    # Pyro's param store outlives a fit; a member must not pick up the previous model's values from it.
    clean, stale = make(1), make(2)
    losses_clean = fine_tune_member(clean, base, data, gamma=2.0, epochs=1, seed=3, progress=False, **SETTINGS)
    pyro.clear_param_store()
    other = make(4)
    fit_svi(other.model, other.guide, data, GammaEntropyELBO(gamma=0.0), steps=1, batch_size=16, progress=False)
    assert len(pyro.get_param_store()) > 0
    losses_stale = fine_tune_member(stale, base, data, gamma=2.0, epochs=1, seed=3, progress=False, **SETTINGS)
    assert losses_stale == losses_clean
    assert states_equal(base_state(stale), base_state(clean))


def test_fine_tuning_at_nonzero_gamma_moves_the_parameters_and_depends_on_gamma_and_seed(base, data):
    members = {}
    for gamma, seed in ((2.0, 0), (-2.0, 0), (2.0, 1)):
        model = make(1)
        fine_tune_member(model, base, data, gamma=gamma, epochs=1, seed=seed, progress=False, **SETTINGS)
        members[gamma, seed] = base_state(model)
    for state in members.values():
        for name in ("pi_logits", "r_loc", "decoder.out.weight", "head.net.0.weight"):
            assert not torch.equal(state[name], base[name]), name
    assert not states_equal(members[2.0, 0], members[-2.0, 0])
    assert not states_equal(members[2.0, 0], members[2.0, 1])


def test_base_is_the_independent_gamma_zero_fit_with_the_image_seed(base, data):
    # The independent latent-response fit of cauvade_pyro.fit at γ = 0 with seed = image_seed, step for step.
    model = make(0)
    init_latent_response(model, data, warmup_epochs=1, seed=5, progress=False, **SETTINGS)
    fit_svi(model.model, model.guide, data, GammaEntropyELBO(gamma=0.0), epochs=2, clip_norm=10.0,
            generator=torch.Generator().manual_seed(5), progress=False, **SETTINGS)
    assert states_equal(base_state(model), base)
