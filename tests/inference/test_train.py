"""The training step and loop: Pyro's SVI step without a host read per step, deferred loss checks, precision."""

import pyro
import pytest
import torch

import cauvade_pyro.inference.train as train_module
from cauvade_pyro.inference import GammaEntropyELBO, fit_svi, seed_everything
from cauvade_pyro.inference.train import training_step
from cauvade_pyro.models import AttributeMixture, ConditionalImageModel, ConfoundedAttributesModel
from cauvade_pyro.models.precision import net_autocast


def _model_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    model = ConfoundedAttributesModel(AttributeMixture(3, 3, 4), ConditionalImageModel(3, 4, (3, 28, 28), net="mlp"))
    g = torch.Generator().manual_seed(seed)
    batch = {"x": torch.randint(0, 3, (32,), generator=g), "y": torch.randint(0, 4, (32,), generator=g),
             "image": torch.rand(32, 3, 28, 28, generator=g)}
    return model, batch


def test_training_step_is_the_svi_step():
    model, batch = _model_and_batch()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    runs = []
    for use_svi in (True, False):
        model.load_state_dict(reference)
        pyro.clear_param_store()
        pyro.set_rng_seed(1)
        optim, elbo = pyro.optim.ClippedAdam({"lr": 0.01}), GammaEntropyELBO(gamma=1.5)
        svi = pyro.infer.SVI(model.model, model.guide, optim, loss=elbo)
        losses = [svi.step(batch) if use_svi else training_step(model.model, model.guide, elbo, optim, batch)
                  for _ in range(3)]
        runs.append(([float(v) for v in losses], {k: v.clone() for k, v in model.state_dict().items()}))
    (svi_losses, svi_state), (step_losses, step_state) = runs
    assert step_losses == svi_losses
    assert all(torch.equal(svi_state[k], step_state[k]) for k in svi_state)
    assert any(not torch.equal(svi_state[k], reference[k]) for k in svi_state)  # the steps did move the params


def test_losses_are_read_at_log_steps_and_equal_the_step_losses(monkeypatch):
    mixture = AttributeMixture(3, 3, 4)
    mixture.reset_parameters(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    data = {"x": torch.randint(0, 3, (50,), generator=g), "y": torch.randint(0, 4, (50,), generator=g)}
    seen = []
    original = train_module.training_step

    def recording(*args, **kwargs):
        loss = original(*args, **kwargs)
        assert torch.is_tensor(loss) and not loss.requires_grad  # handed back on the device, not as a float
        seen.append((float(loss) / 50, kwargs["validate"]))
        return loss

    monkeypatch.setattr(train_module, "training_step", recording)
    seed_everything(0)
    pyro.clear_param_store()
    losses = fit_svi(mixture.model, mixture.guide, data, GammaEntropyELBO(gamma=1.0), steps=12, lr=0.05,
                     log_every=5, progress=False)
    assert losses == [seen[i][0] for i in (0, 5, 10, 11)]
    assert [i for i, (_, validated) in enumerate(seen) if validated] == [0, 5, 10, 11]


def test_bad_log_every_and_precision_are_one_line_errors():
    mixture = AttributeMixture(2, 2, 2)
    data = {"x": torch.tensor([0, 1]), "y": torch.tensor([1, 0])}
    with pytest.raises(ValueError, match="log_every must be >= 1"):
        fit_svi(mixture.model, mixture.guide, data, GammaEntropyELBO(), steps=2, log_every=0, progress=False)
    with pytest.raises(ValueError, match=r"precision must be one of \['bf16', 'fp32'\], got 'fp8'"):
        fit_svi(mixture.model, mixture.guide, data, GammaEntropyELBO(), steps=2, precision="fp8", progress=False)


def test_bf16_autocasts_the_networks_but_not_the_sum_over_c():
    model, batch = _model_and_batch()
    x, y, image = batch["x"], batch["y"], batch["image"]
    with net_autocast(torch.bfloat16):
        loc, scale = model.image_model.encode(image, x, y)
        attribute_log_prob = model.attributes.log_prob_xy(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inner = model.image_model.encoder(image)
    assert inner.dtype == torch.bfloat16  # the nets' own products do run in bf16 under autocast
    assert loc.dtype == scale.dtype == torch.float32  # but hand float32 back
    assert torch.equal(attribute_log_prob, model.attributes.log_prob_xy(x, y))  # no network: bit-for-bit
    loc32, _ = model.image_model.encode(image, x, y)
    assert not torch.equal(loc, loc32) and torch.allclose(loc, loc32, atol=0.05)


def test_bf16_fit_runs_and_stays_close_to_fp32():
    model, batch = _model_and_batch()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    results = {}
    for precision in ("fp32", "bf16"):
        model.load_state_dict(reference)
        seed_everything(0)
        pyro.clear_param_store()
        results[precision] = fit_svi(model.model, model.guide, batch, GammaEntropyELBO(gamma=1.0), steps=6,
                                     lr=1e-3, log_every=1, progress=False, precision=precision)
    fp32, bf16 = torch.tensor(results["fp32"]), torch.tensor(results["bf16"])
    assert torch.isfinite(bf16).all() and not torch.equal(fp32, bf16)
    assert torch.allclose(fp32, bf16, rtol=0.01)


class _WouldSync(torch.overrides.TorchFunctionMode):
    """Records the calls that make a CUDA program wait for the device: reading a value back (item, tolist,
    bool, float, int, nonzero) or copying a Python number to the device (torch.tensor of non-empty data)."""

    READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero", "cpu", "numpy"}

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in self.READS:
            self.calls.append(name)
        elif func is torch.tensor:
            data = args[0] if args else kwargs.get("data")
            if not torch.is_tensor(data) and data != ():  # pyro.plate makes an empty CPU tensor: no copy
                self.calls.append(f"torch.tensor({data!r})")
        return func(*args, **kwargs)


@pytest.mark.parametrize("diagram", ["default_conv", "default_mlp", "attributes", "latent_response"])
def test_a_training_step_would_not_sync_a_gpu(diagram):
    """What tests/test_cuda.py checks with CUDA's sync debug mode, checked here on CPU by the calls made."""
    if diagram == "latent_response":
        from cauvade_pyro.models import LatentResponseModel

        model = LatentResponseModel(3, 3, (3, 28, 28), r_dim=2, eps_dim=2, net="mlp")
        g = torch.Generator().manual_seed(0)
        batch = {"x": torch.randint(0, 3, (32,), generator=g), "image": torch.rand(32, 3, 28, 28, generator=g)}
    elif diagram == "attributes":
        model = AttributeMixture(10, 3, 4)
        g = torch.Generator().manual_seed(0)
        batch = {"x": torch.randint(0, 3, (32,), generator=g), "y": torch.randint(0, 4, (32,), generator=g)}
    else:
        model, batch = _model_and_batch()
        if diagram == "default_conv":
            model = ConfoundedAttributesModel(model.attributes, ConditionalImageModel(3, 4, (3, 28, 28), net="conv"))
    optim, elbo = pyro.optim.ClippedAdam({"lr": 1e-3}), GammaEntropyELBO(gamma=1.0)
    training_step(model.model, model.guide, elbo, optim, batch)  # the first step creates the params
    with _WouldSync() as audit:
        loss = training_step(model.model, model.guide, elbo, optim, batch, validate=False)
    assert audit.calls == [], audit.calls
    with _WouldSync() as audit:  # the audit does see a read-back and a Python number sent to the device
        float(loss)
        torch.distributions.Normal(torch.zeros(3), 1.0, validate_args=False)
    assert audit.calls == ["__float__", "torch.tensor(1.0)"]


def test_kl_warmup_ramps_beta_from_zero_and_restores_it():
    """fit_image_model(kl_warmup_epochs=e) scales the ε sites by β·min(1, step/steps_in_e_epochs) at each step
    (read inside the model, as the ELBO sees it) and leaves the model's own β as it was."""
    from cauvade_pyro.inference import fit_image_model
    from cauvade_pyro.models import ConditionalImageModel

    torch.manual_seed(0)
    model = ConditionalImageModel(2, 2, (1, 28, 28), net="mlp", eps_dim=2, kl_weight=2.0)
    seen = []
    original = model.sample_image

    def spy(x, y, image):
        seen.append(model.kl_weight)
        return original(x, y, image)

    model.sample_image = spy
    data = {"x": torch.randint(2, (32,)), "y": torch.randint(2, (32,)),
            "image": torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8)}
    fit_image_model(model, data, epochs=3, batch_size=8, lr=1e-3, seed=0, progress=False, kl_warmup_epochs=2)
    # 4 steps per epoch: β ramps over the first 8 steps (one model call per step), then holds at 2.0
    assert seen == pytest.approx([2.0 * min(1.0, (step + 1) / 8) for step in range(12)])
    assert model.kl_weight == 2.0
    with pytest.raises(ValueError, match="kl_warmup_epochs must be >= 0"):
        fit_image_model(model, data, epochs=1, batch_size=8, lr=1e-3, seed=0, progress=False, kl_warmup_epochs=-1)
