"""Smoke check of benchmarks/speed.py: its hand-written loss is the CauVaDE objective, and its steps run."""

import pytest
import torch

from benchmarks.speed import check_same_objective, full_model, hand_attribute_loss, interleave, random_batch, step_variants
from cauvade_pyro.inference import GammaEntropyELBO
from cauvade_pyro.models import AttributeMixture


@pytest.mark.parametrize("net", ["conv", "mlp"])
def test_hand_loss_equals_pyro_loss(net):
    model = full_model(net, 3, torch.device("cpu"))
    batch = random_batch(8, torch.device("cpu"), torch.Generator().manual_seed(0))
    check = check_same_objective(model, batch, gamma=1.5)
    assert check["rel_diff"] < 1e-5, check
    times = interleave(step_variants(model, batch, gamma=1.5, bf16=True), rounds=1, warmup=0,
                       device=torch.device("cpu"))
    assert set(times) == {"svi", "step", "step_validate", "hand", "step_bf16", "hand_bf16"}


def test_hand_attribute_loss_equals_pyro_loss():
    mixture = AttributeMixture(5, 3, 6)
    mixture.reset_parameters(torch.Generator().manual_seed(1))
    x, y = torch.tensor([0, 1, 2, 2]), torch.tensor([5, 0, 3, 3])
    pyro_loss = GammaEntropyELBO(gamma=-2.0).differentiable_loss(mixture.model, mixture.guide, {"x": x, "y": y})
    assert torch.allclose(pyro_loss, hand_attribute_loss(mixture, x, y, -2.0), rtol=1e-5)


def test_k_scaling_runs_every_variant():
    from benchmarks.speed import bench_k_scaling

    out = bench_k_scaling(torch.device("cpu"), rounds=1, warmup=0, num_attr=40, Ks=(2, 3))
    assert set(out["attribute_level"]["median_ms"]) == {f"{v}_K{k}" for v in ("svi", "hand", "counts") for k in (2, 3)}
    assert out["attribute_level"]["ratio_counts_K3_to_K2"] > 0


def test_vectorised_gamma_family_gives_the_independent_fits_answers():
    from benchmarks.speed import bench_gamma_family

    out = bench_gamma_family(torch.device("cpu"), num_train=200, image_epochs=1, attribute_steps=20, independent=1,
                             gammas=(-1.0, 0.0, 2.0), objective="counts_vectorised")
    assert out["independent_equal_shared"] and len(out["w1_to_truth_per_x"]) == 3


def test_only_some_parts_and_bad_parts(tmp_path, capsys):
    import json

    from benchmarks.speed import main

    out = tmp_path / "speed.json"
    results = main(["--quick", "--only", "overhead", "--rounds", "1", "--out", str(out)])
    assert set(results) >= {"overhead"} and not {"k_scaling", "gamma_family", "default_run"} & set(results)
    assert json.loads(out.read_text())["overhead"]["mlp"]["rounds"] == 1 and out.with_suffix(".png").is_file()
    with pytest.raises(SystemExit):
        main(["--only", "overhead,speedup"])
    assert "unknown part(s) ['speedup']" in capsys.readouterr().err
