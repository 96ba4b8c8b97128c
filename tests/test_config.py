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


def test_compose_config_checks_keys_and_values_like_the_cli():
    from cauvade_pyro.config import compose_config

    assert compose_config(["inference.gamma=2.0"]).inference.gamma == 2.0
    with pytest.raises(ConfigError, match=r"^unknown config key 'inference.gama'"):
        compose_config(["inference.gama=2.0"])
    with pytest.raises(ConfigError, match=r"^inference.member_epochs must be an integer >= 1, got 0$"):
        compose_config(["inference.member_epochs=0"])


def test_a_dataset_sets_the_default_decoder_and_the_key_holds_the_resolved_one():
    from cauvade_pyro.config import compose_config
    from cauvade_pyro.members import fit_fingerprint, image_model_key

    shapes, conv = compose_config([]), compose_config(["model.image.net=conv"])
    assert shapes.model.image.net == "mlp" and conv.model.image.net == "conv"
    assert compose_config(["dataset=fashion_mnist"]).model.image.net == "conv"
    assert compose_config(["model=latent_response"]).model.image.net == "conv"
    # the dataset's default is no part of the data: only the resolved decoder tells the cached models apart
    assert image_model_key(shapes) != image_model_key(conv)
    conv.dataset.image_net = "anything"
    assert image_model_key(conv) == image_model_key(compose_config(["model.image.net=conv"]))
    assert "image_net" not in fit_fingerprint(shapes)["dataset"]
