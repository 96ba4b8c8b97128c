"""Tests that fail when a measurement is wrong (issue 16, item 8): each catches one deliberate one-line bug.

- the evaluation's "do(x)" rows drawn observationally instead of through ``intervene``;
- :class:`ReferenceFID` pooling the generated sets of successive calls;
- coverage with a strict comparison at the interval edges (``atol=0`` leaves nothing to hide it).

The judge's blur augmentation has its own test (tests/metrics/test_judge_blur.py).
"""

import pytest
import torch
from torch import nn

from cauvade_pyro.datasets import ConfoundedShapes
from cauvade_pyro.evaluate import evaluate_confounded_attributes
from cauvade_pyro.inference import intervene, oracle_mixture, sample_conditional, seed_everything
from cauvade_pyro.metrics import ReferenceFID, circular_w1, coverage, frechet_distance, hue_histogram
from cauvade_pyro.models import ConditionalImageModel, ConfoundedAttributesModel


class HuePainter(nn.Module):
    """A decoder whose image is one flat grey level (y + 1/2) / num_y: the image shows which y it was asked for."""

    def __init__(self, num_x: int, num_y: int):
        super().__init__()
        self.num_x, self.num_y = num_x, num_y

    def forward(self, cond: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        y = cond[..., self.num_x:].argmax(-1).to(torch.float32)
        level = (y + 0.5) / self.num_y
        logits = torch.logit(level)
        return logits[..., None, None, None].expand(*logits.shape, 3, 28, 28)


class LevelJudge:
    """Reads the hue bin painted by :class:`HuePainter` (class: always 0)."""

    def __init__(self, num_y: int):
        self.num_y = num_y

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        level = images.float().mean((1, 2, 3))
        hue = (level * self.num_y).floor().long().clamp(0, self.num_y - 1)
        return torch.zeros_like(hue), hue


@pytest.fixture(scope="module")
def oracle_evaluation():
    data = ConfoundedShapes(num_train=6000, num_test=64)
    num_x, num_y = data.num_classes, data.num_hue_bins
    attributes = oracle_mixture(data.train["u"], data.train["x"], data.train["y"], data.num_confounders, num_x, num_y)
    image_model = ConditionalImageModel(num_x, num_y)
    image_model.decoder = HuePainter(num_x, num_y)
    model = ConfoundedAttributesModel(attributes, image_model).eval()
    seed_everything(0)
    metrics, panels = evaluate_confounded_attributes(model, data, LevelJudge(num_y), num_samples=3000,
                                                     grid_samples=8)
    return data, model, metrics, panels


def test_do_x_rows_are_interventional_not_observational(oracle_evaluation):
    data, model, metrics, _ = oracle_evaluation
    positions = data.scm.bin_centres()
    model_do = model.attributes.interventional_y()
    model_obs = model.attributes.observational_y()
    for row in metrics["per_x"]:
        x = row["x"]
        sampled = torch.tensor(row["p_do_sampled"], dtype=torch.float64)
        # on the confounded default data do(x) and conditioning on x disagree by far more than sampling error
        gap = circular_w1(model_obs[x].double(), model_do[x].double(), positions)
        assert gap > 0.1
        assert circular_w1(sampled, model_do[x].double(), positions) < 0.2 * gap
        assert circular_w1(sampled, model_obs[x].double(), positions) > 0.7 * gap
        # the images read back are those of the same do(x) draws (the painter shows the sampled y)
        assert row["p_do_from_images"] == row["p_do_sampled"]


def test_do_x_rows_match_intervene_draw_for_draw(oracle_evaluation):
    _, model, metrics, panels = oracle_evaluation
    seed_everything(0)  # the evaluation's own seed: the same random stream gives the same draws
    for row in metrics["per_x"]:
        draws = intervene(model.model, {"x": row["x"]}, 3000)
        expected = hue_histogram(draws["y"], model.attributes.num_y)
        assert row["p_do_sampled"] == pytest.approx(expected.tolist(), abs=1e-5)
        assert torch.equal(panels[row["x"]]["do"], draws["image_mean"][:8])
        sample_conditional(model.model, {"x": row["x"]}, 8)  # the grid's observational draws come next


class PooledFeatures(nn.Module):
    """Mean colour of each image quadrant: 12 features, so the Fréchet distance is cheap and exact."""

    num_features = 12

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(images.float(), 2).reshape(images.shape[0], -1).double()


def test_reference_fid_of_sets_in_a_row_equals_each_computed_fresh():
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(300, 3, 28, 28, generator=generator)
    darker = 0.6 * torch.rand(300, 3, 28, 28, generator=generator)
    similar = torch.rand(300, 3, 28, 28, generator=generator)
    net = PooledFeatures()
    reference = ReferenceFID(net, real, batch_size=128)
    in_a_row = [reference.distance(darker), reference.distance(similar), reference.distance(darker)]
    fresh = [frechet_distance(net, real, images) for images in (darker, similar, darker)]
    assert in_a_row == pytest.approx(fresh, rel=1e-9, abs=1e-12)
    # the test can tell: a pooled generated set gives a different distance from the second set's own
    pooled = frechet_distance(net, real, torch.cat([darker, similar]))
    assert abs(pooled - fresh[1]) > 10 * abs(fresh[1])


def test_coverage_counts_a_truth_exactly_on_either_edge():
    low = torch.tensor([[0.2, 0.2, 0.2, 0.2]], dtype=torch.float64)
    high = torch.tensor([[0.4, 0.4, 0.2, 0.4]], dtype=torch.float64)
    truth = torch.tensor([[0.2, 0.4, 0.2, 0.4000001]], dtype=torch.float64)  # lower edge, upper edge, point, out
    result = coverage(truth, low, high, atol=0.0)
    assert result.per_cell.tolist() == [[True, True, True, False]]
    assert result.share == pytest.approx(3 / 4)


def test_latent_observational_end_accepts_a_do_row_whose_rounded_values_miss_one():
    """Rows keep P(hue | do(x)) rounded to 5 decimals; with 600 images per x their sum can miss 1 by 2e-5 (as the
    CLI's default latent-response family did), which must not stop the evaluation."""
    from cauvade_pyro.evaluate import latent_observational_end

    dataset = ConfoundedShapes(num_train=60, num_test=60, seed=0)

    class Reader:  # reads every image as class 0, hue bin 1
        def predict(self, images):
            return torch.zeros(len(images), dtype=torch.long), torch.ones(len(images), dtype=torch.long)

    class Model:
        def sample_given_x(self, x, n):
            return {"image_mean": torch.zeros(n, 3, 28, 28)}

    rounded = [round(k / 600, 5) for k in (2, 5, 8, 11, 14, 560)]
    assert abs(sum(rounded) - 1) > 1.5e-5  # the situation the CLI met (sum 0.99998)
    rows = [{"x": x, "p_do_from_images": rounded} for x in range(3)]
    latent_observational_end(Model(), dataset, Reader(), 10, rows)
    assert all(0 <= row["w1_images_to_observational"] <= 0.5 for row in rows)
