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


def _default_diagram_on_cuda(net: str = "conv"):
    model = ConfoundedAttributesModel(
        AttributeMixture(4, 3, 6), ConditionalImageModel(3, 6, (3, 28, 28), net=net, eps_dim=4)
    ).cuda()
    g = torch.Generator().manual_seed(0)
    data = {"x": torch.randint(0, 3, (512,), generator=g), "y": torch.randint(0, 6, (512,), generator=g),
            "image": (torch.rand(512, 3, 28, 28, generator=g) * 255).to(torch.uint8)}
    return model, {k: v.cuda() for k, v in data.items()}


def test_training_steps_never_sync_with_the_host():
    """Batching from uint8 data on the device, the enumerated loss, backward and ClippedAdam: no sync at all."""
    import pyro

    from cauvade_pyro.inference.train import to_float_images, training_step

    model, data = _default_diagram_on_cuda()
    pyro.clear_param_store()
    optim, elbo = pyro.optim.ClippedAdam({"lr": 1e-3, "clip_norm": 10.0}), GammaEntropyELBO(gamma=1.0)
    order = torch.randperm(512).pin_memory().to("cuda", non_blocking=True)
    training_step(model.model, model.guide, elbo, optim, to_float_images({k: v[:256] for k, v in data.items()}))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = []
        for position in range(2):
            index = order[position * 256 : (position + 1) * 256]
            batch = to_float_images({k: v[index] for k, v in data.items()})
            losses.append(training_step(model.model, model.guide, elbo, optim, batch, validate=False))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(loss.device.type == "cuda" for loss in losses) and torch.isfinite(torch.stack(losses)).all()


@pytest.mark.parametrize("net", ["conv", "mlp"])
def test_bf16_fit_on_cuda_stays_close_to_fp32(net):
    import pyro

    from cauvade_pyro.inference import fit_svi, seed_everything

    model, data = _default_diagram_on_cuda(net)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    losses = {}
    for precision in ("fp32", "bf16"):
        model.load_state_dict(reference)
        generator = seed_everything(0)
        pyro.clear_param_store()
        losses[precision] = fit_svi(model.model, model.guide, data, GammaEntropyELBO(gamma=1.0), epochs=2,
                                    batch_size=128, log_every=1, progress=False, generator=generator,
                                    precision=precision)
    fp32, bf16 = torch.tensor(losses["fp32"]), torch.tensor(losses["bf16"])
    assert torch.isfinite(bf16).all() and torch.allclose(fp32, bf16, rtol=0.02)
