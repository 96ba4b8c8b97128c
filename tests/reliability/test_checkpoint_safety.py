"""Safe checkpoints: atomic writes, weights_only loads, one-line errors for foreign, torn or mismatched files."""

import os
import pickle

import pytest
import torch
from hydra import compose, initialize_config_module

from cauvade_pyro.inference import load_checkpoint, save_checkpoint
from cauvade_pyro.members import (
    build_attributes, build_image_model, image_model_key, load_member, load_state, save_member,
)
from cauvade_pyro.models import ConfoundedAttributesModel


def _one_line(error):
    return len(str(error.value).splitlines()) == 1


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"kind": "train_state", "step": 1, "weights": torch.ones(3)})
    original = torch.save

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip")  # the process dies in the middle of writing
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"kind": "train_state", "step": 2, "weights": torch.zeros(3)})
    monkeypatch.setattr(torch, "save", original)
    payload = load_checkpoint(path, kind="train_state")
    assert payload["step"] == 1 and torch.equal(payload["weights"], torch.ones(3))
    assert os.listdir(tmp_path) == ["state.pt"], "the temporary file is removed"


def test_truncated_file_is_one_line(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"kind": "member", "weights": torch.randn(1000)})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="is not a readable cauvade-pyro checkpoint") as error:
        load_checkpoint(path, kind="member")
    assert _one_line(error)


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n", b"\x89PNG\r\n\x1a\n0000"])
def test_non_checkpoint_file_is_one_line(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="cauvade-pyro checkpoint") as error:
        load_checkpoint(path)
    assert _one_line(error)


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, save in [("torch.pt", lambda obj, f: torch.save(obj, f)), ("pickle.pt", pickle.dump)]:
        with open(name, "wb") as handle:
            save({"format_version": 1, "kind": "member", "evil": Payload()}, handle)
        with pytest.raises(ValueError, match="not a readable cauvade-pyro checkpoint") as error:
            load_checkpoint(name)
        assert _one_line(error)
    assert not (tmp_path / "PWNED").exists()


def test_other_torch_files_and_kinds_are_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"linear.weight": torch.ones(2, 2)}, path)  # a plain state dict from someone else
    with pytest.raises(ValueError, match="is not a cauvade-pyro checkpoint"):
        load_checkpoint(path)
    save_checkpoint(path, {"kind": "image_model"})
    with pytest.raises(ValueError, match="holds a 'image_model' checkpoint, expected 'member'"):
        load_checkpoint(path, kind="member")


def _cfg(*overrides):
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        return compose(config_name="config", overrides=["model.image.net=mlp", *overrides])


def _member(tmp_path, cfg):
    image_model = build_image_model(cfg, 3, 6, (3, 28, 28))
    image_path = tmp_path / "image.pt"
    save_checkpoint(image_path, {"kind": "image_model", "key": image_model_key(cfg),
                                 "state_dict": image_model.state_dict()})
    model = ConfoundedAttributesModel(build_attributes(cfg, 3, 6), image_model)
    return save_member(tmp_path / "checkpoint.pt", cfg, model, image_path)


@pytest.mark.parametrize(
    "overrides, difference",
    [
        (["model.K=8"], "model.K: 4 → 8"),
        (["model=latent_response"], "model.diagram: confounded_attributes → latent_response"),
        (["model.image.channels=1"], "model.image.channels: 3 → 1"),
        (["model.image.size=32"], "model.image.size: 28 → 32"),
    ],
)
def test_member_loaded_into_another_config_says_what_differs(tmp_path, overrides, difference):
    path = _member(tmp_path, _cfg())
    assert load_member(path, expect=_cfg()).attributes.num_clusters == 4
    with pytest.raises(ValueError, match="member checkpoint was written for a different configuration") as error:
        load_member(path, expect=_cfg(*overrides))
    assert difference in str(error.value) and _one_line(error)


def test_weights_of_another_shape_are_one_line(tmp_path):
    small, large = build_attributes(_cfg(), 3, 6), build_attributes(_cfg("model.K=8"), 3, 6)
    with pytest.raises(ValueError, match=r"'pi_logits' has shape \(8,\) in the checkpoint, \(4,\) here") as error:
        load_state(small, large.state_dict(), "image.pt")
    assert _one_line(error)
