"""The latent-response diagram's metrics (cauvade_pyro.evaluate): numbers checked against hand computations.

- p(c | x, r) and its entropy against a hand-written Bayes rule on a 2-cluster model;
- the log-weight of the IWAE bound against Pyro's own log-densities of the program and the guide;
- IWAE with k particles ≥ the ELBO, growing with k, and converging to the exact log p(x, image) on a model
  whose decoder ignores (r, ε) (there log p(x, image) = log Σ_c π_c p(x | c) + log p(image) exactly);
- the x-flip scores 1.0 on a decoder that obeys x and chance (1/|X|) on one that ignores it (with a warning).
"""

import math

import pytest
import torch
from pyro import poutine
from torch import nn

from cauvade_pyro.evaluate import (
    chance_warnings,
    latent_effectiveness,
    latent_heldout_bounds,
    latent_posterior_entropies,
)
from cauvade_pyro.models import LatentResponseModel


def tiny(num_clusters=2, num_x=3, r_dim=1, eps_dim=1) -> LatentResponseModel:
    torch.manual_seed(0)
    return LatentResponseModel(num_clusters, num_x, (1, 28, 28), r_dim=r_dim, eps_dim=eps_dim, net="mlp")


def set_tables(model, pi, px_given_c, loc, scale):
    with torch.no_grad():
        model.pi_logits.copy_(torch.tensor(pi).log())
        model.x_logits.copy_(torch.tensor(px_given_c).log())
        model.r_loc.copy_(torch.tensor(loc)[..., None])
        model.r_log_scale.copy_(torch.tensor(scale).log()[..., None])


def normal_pdf(v, m, s):
    return math.exp(-0.5 * ((v - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def test_posterior_entropy_equals_a_hand_computation():
    model = tiny(num_x=2)
    pi, px = [0.3, 0.7], [[0.8, 0.2], [0.4, 0.6]]
    loc, scale = [[-1.0, 0.5], [1.0, 2.0]], [[1.0, 0.5], [2.0, 1.0]]
    set_tables(model, pi, px, loc, scale)
    xs, rs = [0, 1, 1, 0], [0.3, -0.7, 1.9, -2.5]

    def hand_entropy(x, r):
        joint = [pi[c] * px[c][x] * normal_pdf(r, loc[c][x], scale[c][x]) for c in range(2)]
        post = [j / sum(joint) for j in joint]
        return -sum(p * math.log(p) for p in post)

    def hand_entropy_given_x(x):
        joint = [pi[c] * px[c][x] for c in range(2)]
        return -sum(j / sum(joint) * math.log(j / sum(joint)) for j in joint)

    # the metric reads r at the guide's mean: fix the encoder's output
    model.encode = lambda image, x: (torch.tensor(rs)[:, None].expand(len(xs), 2).clone(), torch.ones(len(xs), 2))
    data = {"x": torch.tensor(xs), "image": torch.zeros(len(xs), 1, 28, 28, dtype=torch.uint8)}
    out = latent_posterior_entropies(model, data)
    expected = sum(hand_entropy(x, r) for x, r in zip(xs, rs)) / len(xs)
    assert out["posterior_entropy"] == pytest.approx(expected, abs=1e-5)
    assert out["posterior_entropy_given_x"] == pytest.approx(sum(map(hand_entropy_given_x, xs)) / len(xs), abs=1e-5)
    assert out["posterior_entropy_max"] == pytest.approx(math.log(2), abs=1e-5)
    # clusters alike in p(x | c) and μ, σ: p(c | x, r) = π whatever x and r
    set_tables(model, pi, [[0.5, 0.5], [0.5, 0.5]], [[0.0, 0.0]] * 2, [[1.0, 1.0]] * 2)
    h_pi = -sum(p * math.log(p) for p in pi)
    out = latent_posterior_entropies(model, data)
    assert out["posterior_entropy"] == pytest.approx(h_pi, abs=1e-5)
    assert out["posterior_entropy_given_x"] == pytest.approx(h_pi, abs=1e-5)


def test_log_weight_matches_pyro_log_densities():
    model = tiny(num_clusters=3, num_x=3, r_dim=2, eps_dim=2)
    with torch.no_grad():
        for p in (model.pi_logits, model.x_logits, model.r_loc, model.r_log_scale):
            p.normal_(0.0, 0.5)
    n = 5
    image = torch.rand(n, 1, 28, 28)
    x = torch.tensor([0, 1, 2, 1, 0])
    loc, scale = model.encode(image, x)
    z = loc + scale * torch.randn(n, 4)
    r, eps = z[:, :2], z[:, 2:]
    mine = model.log_weight(image, x, r, eps, loc, scale)
    # Pyro: log p(c, x, r, ε, image) per cluster value (c observed), summed out by hand; log q from the guide
    data = {"x": x, "image": image}
    per_c = []
    for c in range(3):
        conditioned = poutine.condition(model.model, {"c": torch.full((n,), c), "r": r, "eps": eps})
        trace = poutine.trace(conditioned).get_trace(data)
        trace.compute_log_prob()
        per_c.append(sum(site["log_prob"] for site in trace.nodes.values() if site["type"] == "sample"))
    guide = poutine.trace(poutine.condition(model.guide, {"r": r, "eps": eps})).get_trace(data)
    guide.compute_log_prob()
    log_q = sum(site["log_prob"] for site in guide.nodes.values() if site["type"] == "sample")
    expected = torch.stack(per_c).logsumexp(0) - log_q
    assert torch.allclose(mine, expected, atol=1e-3, rtol=1e-5)


class ConstantDecoder(nn.Module):
    """Logits that ignore (x, r, ε): log p(image | x, r, ε) = log p(image)."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.linspace(-2, 2, 28 * 28).view(1, 1, 28, 28))

    def forward(self, cond, eps):
        return self.logits.expand(cond.shape[0], 1, 28, 28)


def test_iwae_is_above_the_elbo_grows_with_k_and_reaches_the_exact_likelihood():
    model = tiny(num_clusters=2, num_x=3, r_dim=2, eps_dim=2)
    model.decoder = ConstantDecoder()
    with torch.no_grad():
        model.pi_logits.copy_(torch.tensor([0.2, 0.8]).log())
        model.x_logits.copy_(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]).log())
        model.r_loc.normal_(0.0, 1.5)
    g = torch.Generator().manual_seed(0)
    data = {"x": torch.randint(0, 3, (40,), generator=g),
            "image": (torch.rand(40, 1, 28, 28, generator=g) < 0.5).to(torch.uint8) * 255}
    # exact: log Σ_c π_c p(x | c) + log Bernoulli(image | logits), r and ε integrate out
    log_px = (model.pi_logits.log_softmax(-1)[:, None] + model.x_logits.log_softmax(-1)).logsumexp(0)[data["x"]]
    pixels = data["image"].float() / 255
    log_image = torch.distributions.Bernoulli(logits=model.decoder.logits).log_prob(pixels).sum((-1, -2, -3))
    exact = float((log_px + log_image).mean().detach())
    bounds = {k: latent_heldout_bounds(model, data, particles=k) for k in (1, 8, 64, 2000)}
    assert bounds[1]["iwae"] == pytest.approx(bounds[1]["elbo"], abs=2e-3)
    iwae = [bounds[k]["iwae"] for k in (1, 8, 64, 2000)]
    assert iwae == sorted(iwae) and iwae[-1] - iwae[0] > 0.5  # the untrained guide leaves a visible gap
    assert all(b["elbo"] <= b["iwae"] for b in bounds.values())
    assert all(b["iwae"] <= exact + 0.01 for b in bounds.values())
    assert bounds[2000]["iwae"] == pytest.approx(exact, abs=0.1)
    assert bounds[1]["elbo"] < exact - 0.5


class ShapeDecoder(nn.Module):
    """Writes a one-hot 'shape' into the first pixels: of x (obedient) or always of class 0 (ignores x)."""

    def __init__(self, num_x: int, obey: bool):
        super().__init__()
        self.num_x, self.obey = num_x, obey
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, cond, eps):
        onehot = cond[:, : self.num_x] if self.obey else torch.nn.functional.one_hot(
            torch.zeros(cond.shape[0], dtype=torch.long), self.num_x).float()
        logits = torch.full((cond.shape[0], 1, 28 * 28), -5.0)
        logits[:, 0, : self.num_x] = 10 * onehot - 5
        return logits.view(-1, 1, 28, 28)


class PixelJudge:
    """Reads the 'shape' as the argmax of the first num_x pixels; the 'hue' as 0."""

    def __init__(self, num_x):
        self.num_x = num_x

    def predict(self, images):
        flat = images.reshape(images.shape[0], -1)
        return flat[:, : self.num_x].argmax(-1), torch.zeros(images.shape[0], dtype=torch.long)


@pytest.mark.parametrize("obey", [True, False])
def test_x_flip_follows_an_obedient_decoder_and_is_at_chance_when_the_decoder_ignores_x(obey):
    num_x = 3
    model = tiny(num_x=num_x)
    model.decoder = ShapeDecoder(num_x, obey)
    g = torch.Generator().manual_seed(1)
    n = 900
    data = {"x": torch.arange(n) % num_x, "y": torch.zeros(n, dtype=torch.long),
            "image": torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)}
    effect = latent_effectiveness(model, PixelJudge(num_x), data, max_images=n)
    if obey:
        assert effect["x_flip_follows"] == 1.0 and effect["reconstruction_shape"] == 1.0
        assert chance_warnings(effect, num_x, 1) == []
    else:
        assert effect["x_flip_follows"] == pytest.approx(1 / num_x, abs=0.06)
        assert effect["reconstruction_shape"] == pytest.approx(1 / num_x, abs=0.01)
        assert chance_warnings(effect, num_x, 1)[0].startswith("effectiveness x_flip_follows")
    assert effect["x_flip_keeps_hue"] == 1.0  # this judge reads hue 0 everywhere, the labels are 0
    # the real images are noise, whose first pixels say nothing of x: the judge reads them at chance
    assert effect["judge_reads_real_shape"] == pytest.approx(1 / num_x, abs=0.06)


def test_sample_given_x_draws_the_clusters_as_rejection_sampling_of_the_program_does():
    from cauvade_pyro.inference import sample_conditional

    model = tiny(num_clusters=3, num_x=2)
    with torch.no_grad():
        model.pi_logits.copy_(torch.tensor([0.5, 0.3, 0.2]).log())
        model.x_logits.copy_(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]).log())
    n = 4000
    direct = model.sample_given_x(1, n)
    rejection = sample_conditional(model.model, {"x": 1}, n)
    expected = torch.tensor([0.5 * 0.1, 0.3 * 0.8, 0.2 * 0.5])
    expected = expected / expected.sum()  # p(c | x = 1), far from π
    for draws in (direct, rejection):
        freq = torch.bincount(draws["c"], minlength=3).float() / n
        assert torch.allclose(freq, expected, atol=0.03)
    assert direct["image_mean"].shape == (n, 1, 28, 28)
    # r given c: N(μ[c, 1], σ[c, 1])
    c0 = direct["c"] == 1
    assert float(direct["r"][c0].mean()) == pytest.approx(float(model.r_loc[1, 1, 0].detach()), abs=0.1)


def test_evaluate_latent_response_reports_what_the_default_diagram_reports():
    from cauvade_pyro.datasets import ConfoundedShapes
    from cauvade_pyro.evaluate import evaluate_latent_response
    from cauvade_pyro.metrics import circular_w1

    dataset = ConfoundedShapes(num_train=16, num_test=40)
    torch.manual_seed(0)
    model = LatentResponseModel(2, 3, (3, 28, 28), r_dim=1, eps_dim=1, net="mlp").eval()
    judge = PixelJudge(3)  # hue 0 for every image
    judge.parameters = lambda: iter([torch.zeros(())])
    metrics, _ = evaluate_latent_response(model, dataset, judge, num_samples=20, grid_samples=2, iwae_particles=4)
    for key in ("heldout", "posterior_entropy", "posterior_entropy_given_x", "posterior_entropy_max",
                "effectiveness", "warnings", "per_x", "w1_mean"):
        assert key in metrics, key
    assert metrics["heldout"]["iwae_particles"] == 4 and metrics["heldout"]["images"] == 40
    assert metrics["heldout"]["elbo"] <= metrics["heldout"]["iwae"]
    assert set(metrics["effectiveness"]) >= {"x_flip_follows", "x_flip_keeps_hue", "reconstruction_shape",
                                             "reconstruction_hue", "do_x_shape_accuracy"}
    observational = dataset.scm.observational_y_given_x().float()
    point = torch.tensor([1.0, 0, 0, 0, 0, 0])  # what this judge reads from any set of images
    for row in metrics["per_x"]:
        x = row["x"]
        read = (row["p_do_from_images"], row["p_conditional_from_images"], row["p_heldout_from_images"])
        assert all(p == point.tolist() for p in read)
        expected = circular_w1(point, observational[x], dataset.scm.bin_centres())
        for key in ("w1_images_to_observational", "w1_conditional_images_to_observational",
                    "w1_heldout_images_to_observational"):
            assert row[key] == pytest.approx(expected, abs=1e-5)
        assert row["w1_images_to_heldout_images"] == 0.0
