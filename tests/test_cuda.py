"""CUDA path (marked ``cuda``; skipped where no CUDA device is present)."""

import pytest
import torch

from cauvade_pyro.inference import GammaEntropyELBO, intervene, resolve_device
from cauvade_pyro.models import AttributeMixture, ConditionalImageModel, ConfoundedAttributesModel

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_auto_device_picks_cuda():
    assert resolve_device("auto").type == "cuda"


@pytest.mark.parametrize("y_given_xc", ["additive", "interaction", "table"])
def test_loss_and_intervention_run_on_cuda(y_given_xc):
    model = ConfoundedAttributesModel(
        AttributeMixture(4, 3, 6, y_given_xc=y_given_xc), ConditionalImageModel(3, 6, (3, 28, 28), eps_dim=4)
    ).cuda()
    data = {"x": torch.tensor([0, 1, 2], device="cuda"), "y": torch.tensor([5, 0, 3], device="cuda"),
            "image": torch.rand(3, 3, 28, 28, device="cuda")}
    loss = GammaEntropyELBO(gamma=1.0).differentiable_loss(model.model, model.guide, data)
    loss.backward()
    assert loss.device.type == "cuda" and torch.isfinite(loss)
    draws = intervene(model.model, {"x": 1}, num_samples=5)
    assert draws["image_mean"].device.type == "cuda" and bool((draws["x"] == 1).all())
    assert model.attributes.interventional_y().device.type == "cuda"
