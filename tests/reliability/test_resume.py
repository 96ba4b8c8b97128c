"""Resume in-process: a fit interrupted after a training state was written continues bit-for-bit on CPU."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import cauvade_pyro.inference.train as train_module
from cauvade_pyro.inference import GammaEntropyELBO, fit_attribute_member, fit_svi, load_checkpoint, seed_everything
from cauvade_pyro.models import AttributeMixture


class Interrupt(Exception):
    pass


class TinyImageModel(torch.nn.Module):
    """A stand-in for the image model with the same moving parts (a module, a latent ε, an amortized guide), small."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.decoder = torch.nn.Linear(2 + 3, 16)
        self.encoder = torch.nn.Linear(16, 4)

    def model(self, data):
        pyro.module("tiny", self)
        with pyro.plate("data", len(data["x"])):
            eps = pyro.sample("eps", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            cond = torch.cat([eps, torch.nn.functional.one_hot(data["y"], 3).float()], -1)
            pyro.sample("image", dist.Bernoulli(logits=self.decoder(cond)).to_event(1), obs=data["image"])

    def guide(self, data):
        pyro.module("tiny", self)
        loc, log_scale = self.encoder(data["image"]).chunk(2, -1)
        with pyro.plate("data", len(data["x"])):
            pyro.sample("eps", dist.Normal(loc, log_scale.exp()).to_event(1))


def _tiny_fit(data, **kwargs):
    tiny = TinyImageModel()
    generator = seed_everything(0)
    pyro.clear_param_store()
    losses = fit_svi(tiny.model, tiny.guide, data, GammaEntropyELBO(0.0), epochs=4, batch_size=16, lr=1e-2,
                     generator=generator, progress=False, **kwargs)
    return tiny, losses


def _interrupt_after(monkeypatch, calls: int):
    """Make the `calls`-th training step raise, as a kill would stop the process there."""
    original, count = train_module.training_step, {"n": 0}

    def step(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            raise Interrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "training_step", step)


def test_resumed_minibatch_fit_equals_uninterrupted_run(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    data = {"x": torch.zeros(64, dtype=torch.long), "y": torch.randint(0, 3, (64,), generator=g),
            "image": torch.randint(0, 2, (64, 16), generator=g).float()}
    reference, reference_losses = _tiny_fit(data, log_every=1)  # 16 steps, data reshuffled every 4

    state = tmp_path / "image.partial"
    _interrupt_after(monkeypatch, 11)  # mid epoch 3, after the state of step 9
    with pytest.raises(Interrupt):
        _tiny_fit(data, log_every=1, checkpoint_path=state, checkpoint_every=3)
    monkeypatch.undo()
    assert load_checkpoint(state, kind="train_state")["step"] == 9

    resumed, losses = _tiny_fit(data, log_every=1, checkpoint_path=state, checkpoint_every=3, resume_from=state)
    assert losses == reference_losses
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert load_checkpoint(state, kind="train_state")["step"] == 16


def test_resumed_attribute_member_equals_uninterrupted_run(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 3, (100,), generator=g), torch.randint(0, 4, (100,), generator=g)
    kwargs = dict(gamma=1.0, seed=5, steps=16, lr=0.05, progress=False)
    reference = AttributeMixture(3, 3, 4)
    fit_attribute_member(reference, x, y, **kwargs)

    state = tmp_path / "train_state.pt"
    resumed = AttributeMixture(3, 3, 4)
    _interrupt_after(monkeypatch, 13)
    with pytest.raises(Interrupt):
        fit_attribute_member(resumed, x, y, checkpoint_path=state, checkpoint_every=5, **kwargs)
    monkeypatch.undo()
    resumed = AttributeMixture(3, 3, 4)
    pyro.clear_param_store()
    fit_attribute_member(resumed, x, y, checkpoint_path=state, checkpoint_every=5, resume_from=state, **kwargs)
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_resume_refuses_a_state_written_for_another_config(tmp_path):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 3, (50,), generator=g), torch.randint(0, 4, (50,), generator=g)
    state = tmp_path / "train_state.pt"
    fit_attribute_member(AttributeMixture(3, 3, 4), x, y, gamma=0.0, seed=0, steps=5, progress=False,
                         checkpoint_path=state, fingerprint={"model": {"K": 3}})
    with pytest.raises(ValueError, match=r"different configuration \(model.K: 3 → 5\)"):
        fit_attribute_member(AttributeMixture(5, 3, 4), x, y, gamma=0.0, seed=0, steps=5, progress=False,
                             resume_from=state, fingerprint={"model": {"K": 5}})
    with pytest.raises(ValueError, match="param .* has shape"):  # no fingerprint given: the shapes still catch it
        fit_attribute_member(AttributeMixture(5, 3, 4), x, y, gamma=0.0, seed=0, steps=5, progress=False,
                             resume_from=state)
