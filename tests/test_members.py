"""The shared γ = 0 base of a latent-response family (cauvade_pyro.members.shared_latent_base): trained once,
cached under a key of everything that determines it, loaded by later members."""

import pytest
import torch
from hydra import compose, initialize_config_module

from cauvade_pyro.fit import build_dataset
from cauvade_pyro.members import fit_fingerprint, latent_base_key, shared_latent_base

TINY = ["model=latent_response", "model.image.net=mlp", "model.warmup_epochs=1", "dataset.num_train=64",
        "dataset.num_test=16", "inference.image_epochs=1", "inference.batch_size=16", "inference.sweep=shared",
        "progress=false"]


def config(tmp_path, *overrides):
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        return compose(config_name="config", overrides=[*TINY, f"cache_dir={tmp_path / 'cache'}", *overrides])


def test_base_is_trained_once_and_loaded_by_later_members(tmp_path):
    cfg = config(tmp_path, "inference.gamma=2", "seed=1")
    dataset = build_dataset(cfg)
    first, path, trained = shared_latent_base(cfg, dataset, torch.device("cpu"), progress=False)
    assert trained and path.is_file() and path.parent.name == "latent_bases"
    assert not path.with_name(path.name + ".partial").exists()
    written = path.stat().st_mtime_ns
    other_member = config(tmp_path, "inference.gamma=-1", "seed=4", "inference.member_epochs=3")
    second, second_path, trained = shared_latent_base(other_member, dataset, torch.device("cpu"), progress=False)
    assert not trained and second_path == path and path.stat().st_mtime_ns == written
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_base_key_follows_what_determines_the_base(tmp_path):
    key = latent_base_key(config(tmp_path))
    # γ, the member seed, member_epochs, the device and the dataset's location do not change the base
    for same in (["inference.gamma=3"], ["seed=7"], ["inference.member_epochs=4"], ["device=cpu"],
                 ["torch_threads=1"]):
        assert latent_base_key(config(tmp_path, *same)) == key, same
    for other in (["inference.image_epochs=2"], ["inference.image_seed=1"], ["inference.image_lr=0.001"],
                  ["inference.batch_size=32"], ["inference.clip_norm=5"], ["model.K=3"], ["model.r_dim=3"],
                  ["model.warmup_epochs=2"], ["model.image.eps_dim=2"], ["dataset.seed=1"],
                  ["dataset.num_train=65"]):
        assert latent_base_key(config(tmp_path, *other)) != key, other


def test_sweep_keys_enter_the_resume_fingerprint_only_for_a_shared_sweep(tmp_path):
    shared = fit_fingerprint(config(tmp_path))
    assert shared["inference"]["sweep"] == "shared" and shared["inference"]["member_epochs"] == 1
    independent = fit_fingerprint(config(tmp_path, "inference.sweep=independent", "inference.member_epochs=5"))
    assert "sweep" not in independent["inference"] and "member_epochs" not in independent["inference"]


def test_a_cached_base_of_another_shape_is_refused_in_one_line(tmp_path):
    from cauvade_pyro.inference import save_checkpoint

    cfg = config(tmp_path)
    path = tmp_path / "cache" / "latent_bases" / f"latent-{latent_base_key(cfg)}.pt"
    save_checkpoint(path, {"kind": "image_model", "key": latent_base_key(cfg), "state_dict": {}})
    with pytest.raises(ValueError, match="expected 'latent_response_base'"):
        shared_latent_base(cfg, build_dataset(cfg), torch.device("cpu"), progress=False)


# ---- a custom SCM enters the keys of the shared image model, the cVAE and the latent base -----------------
IMAGE_TINY = ["model.image.net=mlp", "dataset.num_train=64", "dataset.num_test=16", "inference.image_epochs=1",
              "inference.batch_size=16", "progress=false"]


def image_config(tmp_path):
    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        return compose(config_name="config", overrides=[*IMAGE_TINY, f"cache_dir={tmp_path / 'cache'}"])


def shapes(cfg, scm=None):
    from cauvade_pyro.datasets import ConfoundedShapes

    return ConfoundedShapes(num_train=int(cfg.dataset.num_train), num_test=int(cfg.dataset.num_test), scm=scm)


def test_keys_see_a_custom_scm_and_keep_the_default_ones(tmp_path):
    from cauvade_pyro.datasets import ConfoundedColourSCM
    from cauvade_pyro.members import image_model_key

    cfg = image_config(tmp_path)
    strong, weak = ConfoundedColourSCM.make(confounding=0.9), ConfoundedColourSCM.make(confounding=0.5)
    tables = (weak.p_u.clone(), weak.p_x_given_u.clone(), weak.p_y_given_xu.clone())
    same_as_weak = ConfoundedColourSCM(*tables)  # equal tables, another object
    for key in (image_model_key, latent_base_key):
        # the default SCM adds nothing: the key of a member checkpoint written from the config alone still matches
        assert key(cfg, shapes(cfg)) == key(cfg)
        # a custom SCM equal to the default one is still named by its tables (the config does not describe it)
        assert key(cfg, shapes(cfg, strong)) != key(cfg)
        assert key(cfg, shapes(cfg, weak)) != key(cfg, shapes(cfg, strong))
        assert key(cfg, shapes(cfg, weak)) == key(cfg, shapes(cfg, same_as_weak))


def test_the_eps_mixture_enters_the_image_key_only_when_asked_for(tmp_path):
    from omegaconf import open_dict

    from cauvade_pyro.members import fit_fingerprint, image_model_key

    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        def cfg(*extra):
            return compose(config_name="config", overrides=[*IMAGE_TINY, f"cache_dir={tmp_path}", *extra])

        default, zero, four = cfg(), cfg("model.image.eps_prior_components=0"), cfg("model.image.eps_prior_components=4")
        before_the_option = cfg("model.image.eps_prior_components=0")
    with open_dict(before_the_option):
        del before_the_option.model.image["eps_prior_components"]
        del before_the_option.model.image["eps_prior_given"]
    assert default.model.image.eps_prior_components == 5 and default.model.image.eps_prior_given == "xy"
    # keys and resume states written before the option stay valid: 0 components is not part of them
    assert image_model_key(zero) == image_model_key(before_the_option)
    assert len({image_model_key(zero), image_model_key(four), image_model_key(default)}) == 3
    assert not {"eps_prior_components", "eps_prior_given"} & set(fit_fingerprint(zero)["model"]["image"])
    assert fit_fingerprint(zero) == fit_fingerprint(before_the_option)
    assert fit_fingerprint(four)["model"]["image"]["eps_prior_components"] == 4


def test_eps_film_enters_the_image_key_only_when_not_none(tmp_path):
    from omegaconf import open_dict

    from cauvade_pyro.members import fit_fingerprint, image_model_key

    with initialize_config_module(config_module="cauvade_pyro.conf", version_base="1.3"):
        def cfg(*extra):
            return compose(config_name="config", overrides=[*IMAGE_TINY, f"cache_dir={tmp_path}", *extra])

        plain, last, before_the_option = cfg(), cfg("model.image.eps_film=last"), cfg()
    with open_dict(before_the_option):
        del before_the_option.model.image["eps_film"]
    assert image_model_key(plain) == image_model_key(before_the_option) != image_model_key(last)
    # training states written before the option still resume
    assert fit_fingerprint(plain) == fit_fingerprint(before_the_option) != fit_fingerprint(last)


def test_a_changed_scm_never_reuses_a_cached_image_model_or_cvae(tmp_path):
    from cauvade_pyro.datasets import ConfoundedColourSCM
    from cauvade_pyro.members import shared_image_model

    cfg = image_config(tmp_path)
    cpu = torch.device("cpu")
    weak = ConfoundedColourSCM.make(confounding=0.5)
    other = ConfoundedColourSCM.make(confounding=0.2)
    for condition_on_y in (True, False):  # the image model and the cVAE p(image | x)
        _, first, trained = shared_image_model(cfg, shapes(cfg, weak), cpu, False, condition_on_y)
        assert trained
        _, second, trained = shared_image_model(cfg, shapes(cfg, other), cpu, False, condition_on_y)
        assert trained and second != first  # another SCM: trained afresh, not the stale file
        same = ConfoundedColourSCM(weak.p_u.clone(), weak.p_x_given_u.clone(), weak.p_y_given_xu.clone())
        _, third, trained = shared_image_model(cfg, shapes(cfg, same), cpu, False, condition_on_y)
        assert not trained and third == first  # the same tables: loaded


def test_a_member_fitted_on_a_custom_scm_reloads_with_its_own_image_model(tmp_path):
    from cauvade_pyro.datasets import ConfoundedColourSCM
    from cauvade_pyro.members import build_attributes, load_member, save_member, shared_image_model
    from cauvade_pyro.models import ConfoundedAttributesModel

    cfg = image_config(tmp_path)
    data = shapes(cfg, ConfoundedColourSCM.make(confounding=0.5))
    image_model, image_path, _ = shared_image_model(cfg, data, torch.device("cpu"), False, True)
    attributes = build_attributes(cfg, data.num_classes, data.num_hue_bins)
    member = ConfoundedAttributesModel(attributes, image_model)
    saved = save_member(tmp_path / "member.pt", cfg, member, image_path, data)
    loaded = load_member(saved)
    for name, value in member.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    # written without the dataset, the member points at the default SCM's key: reloading refuses the SCM's file
    stale = save_member(tmp_path / "stale.pt", cfg, member, image_path)
    with pytest.raises(ValueError, match="is not the image model this member was fitted with"):
        load_member(stale)
