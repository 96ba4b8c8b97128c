"""Smoke runs of ``python -m cauvade_pyro.fit`` with tiny configs (in the style of Pyro's test_examples.py)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cauvade_pyro.inference import intervene
from cauvade_pyro.members import load_member

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "dataset.num_train=600",
    "dataset.num_test=150",
    "inference.image_epochs=1",
    "inference.attribute_steps=10",
    "eval.num_samples=30",
    "eval.grid_samples=4",
    "eval.judge_images=300",
    "eval.judge_epochs=1",
    "progress=false",
]


def run_fit(args, tmp_path, cwd=REPO, timeout=600):
    env = {**os.environ, "CAUVADE_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "cauvade_pyro.fit", *args],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout,
    )


def test_tiny_fit_writes_checkpoint_metrics_and_grids(tmp_path):
    run_dir = tmp_path / "run"
    # The counts objective and the ex-post ε mixture here; the sweep test below runs the default Pyro SVI path
    # and N(0, I).
    result = run_fit([*TINY, "inference.gamma=1.5", "seed=3", "inference.attribute_objective=counts",
                      "model.image.eps_prior_components=3", f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("checkpoint.pt", "metrics.json", "samples.png", "effect.png"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["gamma"], metrics["seed"], metrics["K"]) == (1.5, 3, 4)
    for key in ("heldout", "posterior_entropy", "effectiveness", "per_x", "w1_mean"):
        assert key in metrics
    row = metrics["per_x"][0]
    for key in ("p_do_sampled", "p_do_from_images", "p_observational", "p_do_truth", "bounds_lower",
                "bounds_upper", "w1_sampled_to_truth", "w1_observational_to_truth"):
        assert key in row
    assert "cauvade-pyro fit: γ=1.5 seed=3" in result.stdout
    # the within-bin W1 is printed beside its reference-vs-reference floor, a different number of the same kind
    spread = metrics["diversity"]
    assert 0 < spread["within_bin_hue_w1_reference_floor"] < spread["within_bin_hue_w1"]
    assert f"reference vs reference {spread['within_bin_hue_w1_reference_floor']:.3f}" in result.stdout
    member = load_member(run_dir / "checkpoint.pt")
    assert member.image_model.eps_prior_fitted  # the mixture was fitted, cached and reloaded
    draws = intervene(member.model, {"x": 2}, num_samples=8)
    assert torch.equal(draws["x"], torch.full((8,), 2)) and draws["image_mean"].shape == (8, 3, 28, 28)


def test_gamma_sweep_writes_one_folder_per_member_and_shares_the_image_model(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_fit(["-m", *TINY, "inference.gamma=-1,2", "seed=0", f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = sorted(sweep_dir.glob("*/metrics.json"))
    assert len(metrics) == 2
    assert {json.loads(p.read_text())["gamma"] for p in metrics} == {-1.0, 2.0}
    image_models = {json.loads(p.read_text())["image_model"] for p in metrics}
    assert len(image_models) == 1 and len(list((tmp_path / "cache" / "image_models").glob("*.pt"))) == 1


def test_latent_response_diagram_runs(tmp_path):
    run_dir = tmp_path / "run"
    result = run_fit([*TINY, "model=latent_response", "model.warmup_epochs=1", "model.image.eps_prior_components=2",
                      f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "metrics.json").is_file() and (run_dir / "samples.png").is_file()
    from cauvade_pyro.inference import load_checkpoint

    state = load_checkpoint(run_dir / "checkpoint.pt", kind="latent_response_member")["state_dict"]
    assert bool(state["eps_noise.is_fitted"]) and state["eps_noise.loc"].shape == (3, 2, 4)  # 3 shapes, 2 parts


def test_latent_response_shared_sweep_trains_the_base_once_and_fine_tunes_each_member(tmp_path):
    sweep_dir = tmp_path / "sweep"
    tiny = [arg for arg in TINY if not arg.startswith(("dataset.num_train", "inference.attribute_steps"))]
    result = run_fit(["-m", *tiny, "dataset.num_train=300", "model=latent_response", "model.warmup_epochs=1",
                      "inference.sweep=shared", "inference.batch_size=64", "inference.gamma=-1,2", "seed=0",
                      "model.image.eps_prior_components=2",  # the base holds unfitted ε tables, each member fits its own
                      f"hydra.sweep.dir={sweep_dir}",
                      "hydra.sweep.subdir=${hydra.job.num}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]
    assert len(metrics) == 2 and {m["gamma"] for m in metrics} == {-1.0, 2.0}
    assert {m["sweep"] for m in metrics} == {"shared"} and {m["member_epochs"] for m in metrics} == {1}
    bases = list((tmp_path / "cache" / "latent_bases").glob("latent-*.pt"))
    assert len(bases) == 1 and {m["base"] for m in metrics} == {str(bases[0])}
    logs = "".join(p.read_text() for p in sweep_dir.glob("*/fit.log"))
    assert logs.count("(trained)") == 1 and logs.count("(loaded from cache)") == 1, logs
    states = [torch.load(p, weights_only=True)["state_dict"] for p in sorted(sweep_dir.glob("*/checkpoint.pt"))]
    # each member is fine-tuned at its own γ (4 steps: the first Adam step alone is lr·sign(grad) for any γ)
    assert not torch.equal(states[0]["r_loc"], states[1]["r_loc"])
    assert all(bool(state["eps_noise.is_fitted"]) for state in states)


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.K=0", "model.K"),
        ("inference.gamma=nan", "inference.gamma"),
        ("inference.gamma=inf", "inference.gamma"),
        ("inference.batch_size=0", "inference.batch_size"),
        ("inference.attribute_lr=-1", "inference.attribute_lr"),
    ],
)
def test_nonsense_config_fails_at_start_up_with_one_line(tmp_path, override, key):
    result = run_fit([override, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], result.stderr
    assert not (tmp_path / "cache").exists(), "nothing may be built before the config is checked"


@pytest.mark.parametrize("where", ["repo", "elsewhere"])
def test_help_works_from_any_directory(tmp_path, where):
    cwd = REPO if where == "repo" else tmp_path
    result = run_fit(["--help"], tmp_path, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "inference" in result.stdout and "gamma" in result.stdout


def test_family_sweep_fits_the_attribute_family_in_one_run(tmp_path):
    run_dir = tmp_path / "family"
    # τ is checked on 20 % of the training rows: enough of them that the family is not cut to its restarts
    args = [a for a in TINY if not a.startswith("dataset.num_train")] + [
        "dataset.num_train=3000", "inference.sweep=family", "model.y_given_xc=table",
        "inference.family.steps=150", "inference.family.member_steps=150", "inference.family.restarts=2",
        "inference.family.entropy_targets=[1.0,0.0]", "inference.family.random_directions=1",
        f"hydra.run.dir={run_dir}"]
    result = run_fit(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("family.pt", "family.png", "metrics.json", "samples.png"):
        assert (run_dir / name).is_file(), name
    family = json.loads((run_dir / "metrics.json").read_text())["family"]
    assert family["members"] == len(family["member_scores"]) >= 4
    assert family["max_fit_gap_nats"] <= family["tau"]
    assert 0.0 <= family["coverage"] <= 1.0 and family["span"] > 0.2
    assert "family:" in result.stdout


def test_latent_response_family_sweep_scores_every_member_from_its_images(tmp_path):
    run_dir = tmp_path / "run"
    result = run_fit([*TINY, "model=latent_response", "model.warmup_epochs=1", "inference.sweep=family",
                      "model.response_atoms=4", "inference.family.steps=40", "inference.family.member_steps=40",
                      f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("family.pt", "family.png", "family_samples.png", "checkpoint.pt", "samples.png", "metrics.json"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    family = metrics["family"]
    scores = family["member_scores"]
    assert len(scores) == family["members"] >= 2 and metrics["response_atoms"]["atoms"] == 4
    for member in scores:  # every member read from its own images, with its held-out likelihood
        assert len(member["p_do_from_images"]) == 3 and math.isfinite(member["heldout_iwae"])
    # the member evaluated in full is the diffuse end of the dial (the largest cluster-posterior entropy), and its
    # tables are the ones checkpoint.pt holds and metrics.json describes
    diffuse = max(scores, key=lambda m: m["entropy"])["label"]
    assert family["evaluated_member"] == diffuse
    from cauvade_pyro.inference import load_checkpoint

    saved = load_checkpoint(run_dir / "checkpoint.pt", kind="latent_response_atoms")
    members = torch.load(run_dir / "family.pt", weights_only=True)["members"]
    member = next(m for m in members if m["label"] == diffuse)
    assert saved["member"] == diffuse and member["state"]
    for name, value in member["state"].items():  # the member's tables, by their path in the model
        assert torch.allclose(saved["state_dict"][member["module_paths"][name]], value), name
    assert "posterior_entropy" in metrics and "x_flip_follows" in metrics["effectiveness"]
    assert "family: " in result.stdout and "coverage of the truth" in result.stdout


def test_latent_response_family_sweep_refuses_a_bad_number_of_atoms(tmp_path):
    result = run_fit([*TINY, "model=latent_response", "inference.sweep=family", "model.response_atoms=1"], tmp_path)
    assert result.returncode == 2 and "model.response_atoms must be an integer >= 2, got 1" in result.stderr
