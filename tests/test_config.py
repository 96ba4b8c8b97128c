"""inference.sweep, inference.member_epochs and inference.precision: checked at start-up, one line naming the key."""

import pytest
from hydra import compose, initialize_config_module

from cauvade_pyro.config import ConfigError, validate_config


def composed(*overrides):
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["inference.sweep=both"], "inference.sweep=both is not available for model=latent_response (its sweeps: "
                                   "independent, shared, family"),
        (["inference.sweep=family", "model.response_atoms=one"], "model.response_atoms must be an integer >= 2, "
                                                                 "got 'one'"),
        (["inference.sweep=family", "model.response_atoms=20000"], "model.response_atoms (20000) must not exceed "
                                                                   "dataset.num_train (12000)"),
        (["inference.member_epochs=0"], "inference.member_epochs must be an integer >= 1, got 0"),
        (["inference.member_epochs=1.5"], "inference.member_epochs must be an integer >= 1, got 1.5"),
        (["inference.member_epochs=many"], "inference.member_epochs must be a number"),
    ],
)
def test_bad_sweep_settings_are_one_line(overrides, expected):
    with pytest.raises(ConfigError) as error:
        validate_config(composed("model=latent_response", *overrides))
    assert len(str(error.value).splitlines()) == 1 and expected in str(error.value), error.value


@pytest.mark.parametrize("model", ["latent_response", "confounded_attributes"])
def test_shared_sweep_is_accepted_on_both_diagrams(model):
    cfg = composed(f"model={model}", "inference.sweep=shared", "inference.member_epochs=3")
    validate_config(cfg)
    assert composed().inference.sweep == "independent" and composed().inference.member_epochs == 1


def test_precision_is_checked_and_keys_only_what_it_changes():
    from cauvade_pyro.members import fit_fingerprint, image_model_key, latent_base_key

    with pytest.raises(ConfigError, match=r"^inference.precision must be one of \('fp32', 'bf16'\), got 'fp16'$"):
        validate_config(composed("inference.precision=fp16"))
    fp32, bf16 = composed(), composed("inference.precision=bf16")
    validate_config(bf16)
    assert fp32.inference.precision == "fp32"
    # a bf16-trained image model or base is another cached model; fp32 keys are those from before the option
    assert image_model_key(fp32) != image_model_key(bf16)
    assert latent_base_key(fp32) != latent_base_key(bf16)
    assert "precision" not in fit_fingerprint(fp32)["inference"]
    assert fit_fingerprint(bf16)["inference"]["precision"] == "bf16"
