"""Response atoms: the codes' quantisation, and the quantised diagram's do(x), observational draws and posteriors
against hand sums."""

import math

import pyro
import pytest
import torch
from torch import nn

from cauvade_pyro.inference import fit_family, fit_response_atoms, intervene
from cauvade_pyro.models import AtomResponseModel, AttributeMixture, LatentResponseModel
from cauvade_pyro.models.noise import NoiseMixture


class CodeFromPixels(nn.Module):
    """A stand-in encoder: the code of an image is its first two pixels (scaled), so the atoms are known."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def encode(self, image, x):
        code = image.flatten(1)[:, :2] * 10.0
        return code, torch.ones_like(code)


def test_atoms_recover_well_separated_codes():
    group = torch.arange(90) % 3  # three code clusters at (0, 0), (5, 5), (10, 10); x unrelated to them
    image = torch.zeros(90, 1, 2, 2)
    image.view(90, -1)[:, :2] = (group.float() / 2).unsqueeze(-1) + 0.01 * torch.randn(90, 2)
    data = {"x": torch.arange(90) % 2, "image": image}
    atoms, assigned, info = fit_response_atoms(CodeFromPixels(), data, num_atoms=3, seed=0)
    # the partition is the groups' (atom labels are arbitrary: compare co-membership)
    assert torch.equal(assigned[:, None] == assigned[None, :], group[:, None] == group[None, :])
    centres = sorted(round(float(atoms.loc[a, 0, 0])) for a in range(3))
    assert centres == [0, 5, 10] and info["share_per_atom"] == [pytest.approx(1 / 3, abs=1e-4)] * 3


def test_atoms_refuse_more_atoms_than_images():
    data = {"x": torch.zeros(2, dtype=torch.long), "image": torch.rand(2, 1, 2, 2)}
    with pytest.raises(ValueError, match="3 atoms need at least as many images"):
        fit_response_atoms(CodeFromPixels(), data, num_atoms=3)


def _hand_model(seed=0):
    torch.manual_seed(seed)
    image = LatentResponseModel(2, 2, (1, 28, 28), r_dim=1, eps_dim=1, net="mlp")
    atoms = NoiseMixture(dim=2, components=1, num_conditions=3)
    atoms.set(torch.zeros(3, 1), torch.tensor([[[0.0, 0.0]], [[3.0, 0.0]], [[0.0, 3.0]]]),
              0.5 * torch.eye(2).expand(3, 1, 2, 2))
    attributes = AttributeMixture(2, 2, 3, y_given_xc="table", outcome="atom")
    with torch.no_grad():
        for p in attributes.parameters():
            p.copy_(torch.randn(p.shape))
    return AtomResponseModel(attributes, image, atoms).eval()


def test_do_x_draws_atoms_from_the_interventional_table_and_conditioning_from_the_observational_one():
    model = _hand_model()
    a = model.attributes
    pi, px = a.pi_logits.softmax(-1), a.x_logits.softmax(-1)
    pa = a.y_table.softmax(-1)  # (K, X, A)
    do_1 = (pi[:, None] * pa[:, 1]).sum(0)  # Σ_c π_c p(a | x = 1, c), by hand
    joint_1 = (pi[:, None] * px[:, 1, None] * pa[:, 1]).sum(0)
    pyro.set_rng_seed(0)
    draws = intervene(model.model, {"x": 1}, 20000)
    freq = torch.bincount(draws["atom"], minlength=3).float() / 20000
    assert torch.allclose(freq, do_1.detach(), atol=0.015)
    observed = model.sample_given_x(1, 20000)["atom"]
    freq = torch.bincount(observed, minlength=3).float() / 20000
    assert torch.allclose(freq, (joint_1 / joint_1.sum()).detach(), atol=0.015)
    assert not torch.allclose(do_1, joint_1 / joint_1.sum(), atol=0.05)  # the two differ here: the test can fail


def test_posterior_of_c_and_the_log_weight_prior_sum_over_atoms_by_hand():
    model = _hand_model(1)
    a = model.attributes
    x, code = torch.tensor([0, 1]), torch.tensor([[0.5, 0.2], [2.0, 1.0]])
    log_cxa = a.log_joint_table().detach()
    atoms = torch.distributions.MultivariateNormal(model.atoms.loc[:, 0], scale_tril=model.atoms.scale_tril[:, 0])
    expected = torch.empty(2, 2)
    for n in range(2):
        for c in range(2):
            expected[n, c] = sum(math.exp(float(log_cxa[c, x[n], k] + atoms.log_prob(code[n])[k])) for k in range(3))
    assert torch.allclose(model.posterior_c_given_code(x, code), expected / expected.sum(-1, keepdim=True), atol=1e-5)
    # log_weight's prior part: log Σ_a P(x, a) N(z; a), i.e. c summed out too
    assert torch.allclose(model._log_joint_c(x, code).logsumexp(-1), expected.sum(-1).log(), atol=1e-5)


def test_the_family_is_fitted_on_the_atom_tables_and_its_members_move_do_x():
    model = _hand_model(2)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (3000,), generator=g)
    atom = (x + torch.randint(0, 2, (3000,), generator=g)) % 3  # x and the atom associated
    family = fit_family(model.model, {"x": x, "atom": atom}, outcome="atom", restarts=1, random_directions=0,
                        entropy_targets=(1.0,), steps=200, member_steps=200, progress=False)
    low, high = family.range()
    assert family.p_do().shape[1:] == (2, 3) and float((high - low).max()) > 0.2
    member = family[0]
    member.activate()  # a member's tables drive the whole program's do(x)
    assert torch.allclose(model.attributes.interventional_y(), member.p_do.to(torch.float32), atol=1e-5)


def test_log_weight_is_the_hand_sum_and_the_family_bound_matches_each_members_own_iwae():
    from cauvade_pyro.evaluate import atom_family_iwae

    model = _hand_model(3)
    g = torch.Generator().manual_seed(1)
    image = torch.rand(4, 1, 28, 28, generator=g)
    x = torch.tensor([0, 1, 1, 0])
    loc, scale = torch.randn(4, 2, generator=g), torch.rand(4, 2, generator=g) + 0.5
    r, eps = torch.randn(4, 1, generator=g), torch.randn(4, 1, generator=g)
    z = torch.cat([r, eps], -1)
    joint = model.attributes.joint_xy().detach()
    atoms = torch.distributions.MultivariateNormal(model.atoms.loc[:, 0], scale_tril=model.atoms.scale_tril[:, 0])
    with torch.no_grad():
        expected = torch.stack([
            torch.stack([joint[x[n], a].log() + atoms.log_prob(z[n])[a] for a in range(3)]).logsumexp(0)
            + model.image.image_log_prob(image[n], x[n], r[n], eps[n])
            - torch.distributions.Normal(loc[n], scale[n]).log_prob(z[n]).sum()
            for n in range(4)])
        assert torch.allclose(model.log_weight(image, x, r, eps, loc, scale), expected, atol=1e-4)
    # the family's bound (per-atom estimates shared by every member's table) against plain Monte Carlo from each
    # atom's own Gaussian, summed with each member's table by hand
    data = {"x": x.repeat(3)[:10], "image": (torch.rand(10, 1, 28, 28, generator=g) * 255).to(torch.uint8)}
    atom = (data["x"] + torch.arange(10) % 2) % 3
    family = fit_family(model.model, {"x": data["x"], "atom": atom}, outcome="atom", restarts=1, random_directions=0,
                        entropy_targets=(1.0,), steps=50, member_steps=50, tau=1.0, progress=False)
    bounds = atom_family_iwae(model, family, data, particles=1000)
    assert len(bounds) == len(family) >= 2
    brute = _brute_force_image_given_atoms(model, data["image"].float() / 255, data["x"])  # (10, 3)
    expected = []
    for member in family:
        member.activate()
        log_xa = model.attributes.joint_xy().detach().double().log()
        expected.append(float((log_xa[data["x"]] + brute).logsumexp(-1).mean()))
    # the members' bounds spread ~0.03 nats, so a member scored with another's table would show; both sides are
    # Monte Carlo (measured disagreement ~0.003 nats)
    assert max(expected) - min(expected) > 0.02
    assert bounds == pytest.approx(expected, abs=0.006)


def _brute_force_image_given_atoms(model, image, x, draws=20_000):
    """log p(image | x, a) = log ∫ N(z; μ_a, Σ_a) p(image | x, z) dz by plain Monte Carlo from each atom, (n, A)."""
    torch.manual_seed(0)
    with torch.no_grad():
        z = model.atoms.sample(torch.arange(model.num_atoms).repeat_interleave(draws))
        z = z.view(model.num_atoms, draws, -1).transpose(0, 1)  # (draws, A, D)
        return torch.stack([
            torch.stack([model.image.image_log_prob(image[n], x[n], z[:, a, : model.r_dim], z[:, a, model.r_dim :])
                         .double().logsumexp(0) - math.log(draws) for a in range(model.num_atoms)])
            for n in range(len(x))])


def test_posterior_of_c_given_x_keeps_the_shape_of_x_in_both_latent_models():
    model = _hand_model(4)
    x = torch.tensor([[0, 1, 1], [1, 0, 1]])
    for owner in (model, model.image):
        p = owner.posterior_c_given_x(x)
        assert p.shape == (2, 3, 2)
        assert torch.allclose(p[0, 1], owner.posterior_c_given_x(torch.tensor([1]))[0])


def test_per_atom_image_likelihood_matches_brute_force_prior_sampling():
    # p(image | x, a) = ∫ N(z; μ_a, Σ_a) p(image | x, z) dz, by plain Monte Carlo from each atom's own Gaussian:
    # the product-Gaussian proposals of log_prob_image_given_atoms must converge to the same integral
    model = _hand_model(5)
    g = torch.Generator().manual_seed(2)
    image = torch.rand(3, 1, 28, 28, generator=g)
    x = torch.tensor([0, 1, 0])
    estimate = model.log_prob_image_given_atoms(image, x, particles=2000, generator=g)
    assert estimate.shape == (3, 3)
    brute = _brute_force_image_given_atoms(model, image, x)
    # atoms far apart give likelihoods nats apart: a proposal density that were off would show here
    assert (brute.max(-1).values - brute.min(-1).values).min() > 0.5
    assert torch.allclose(estimate, brute, atol=0.02)
    with pytest.raises(ValueError, match="particles must be >= 1"):
        model.log_prob_image_given_atoms(image, x, particles=0)
