"""A NaN or inf loss stops the fit with one line (step, γ, a hint) and the last good training state stays."""

import pytest
import torch

from cauvade_pyro.inference import GammaEntropyELBO, fit_attribute_member, load_checkpoint
from cauvade_pyro.models import AttributeMixture


def _xy():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 3, (60,), generator=g), torch.randint(0, 4, (60,), generator=g)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_with_step_gamma_hint_and_keeps_the_last_state(tmp_path, monkeypatch, bad):
    original, calls = GammaEntropyELBO.differentiable_loss, {"n": 0}

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = original(self, *args, **kwargs)
        return loss + bad if calls["n"] == 13 else loss  # step 12 (0-based) blows up; read at step 14's checkpoint

    monkeypatch.setattr(GammaEntropyELBO, "differentiable_loss", poisoned)
    state = tmp_path / "train_state.pt"
    with pytest.raises(FloatingPointError) as error:
        fit_attribute_member(AttributeMixture(3, 3, 4), *_xy(), gamma=2.0, seed=0, steps=30, progress=False,
                             checkpoint_path=state, checkpoint_every=5, hint="try a lower inference.attribute_lr")
    message = str(error.value)
    assert len(message.splitlines()) == 1
    for part in ("non-finite loss", "at step 12 of 30", "γ=2", "try a lower inference.attribute_lr",
                 f"last good training state: {state} (step 10)"):
        assert part in message, message
    kept = load_checkpoint(state, kind="train_state")
    assert kept["step"] == 10 and all(bool(v.isfinite().all()) for v in kept["params"].values())


def test_an_absurd_learning_rate_is_caught_before_a_checkpoint_is_poisoned(tmp_path):
    state = tmp_path / "train_state.pt"
    mixture = AttributeMixture(3, 3, 4, y_given_xc="interaction")
    with pytest.raises(FloatingPointError, match="at step .* γ=0") as error:
        fit_attribute_member(mixture, *_xy(), gamma=0.0, seed=0, steps=200, lr=1e38, progress=False,
                             checkpoint_path=state, checkpoint_every=1)
    if state.exists():  # whatever was written before the blow-up is finite
        kept = load_checkpoint(state, kind="train_state")
        assert all(bool(v.isfinite().all()) for v in kept["params"].values())
        assert f"(step {kept['step']})" in str(error.value)
