"""``python -m benchmarks.quality --quick`` end to end (tiny shapes), and its argument errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import quality


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    cache = tmp_path_factory.mktemp("cache")
    code = quality.main(["--quick", "--out", str(out), "--no-progress", f"cache_dir={cache}"])
    assert code == 0
    return out, json.loads((out / "quick_shapes.json").read_text())


def test_quick_writes_the_json_and_the_plots(quick_result):
    out, result = quick_result
    for suffix in ("p_do_vs_gamma", "fid_vs_gamma", "samples"):
        assert (out / f"quick_shapes_{suffix}.png").stat().st_size > 10_000
    assert len(result["members"]) == 6 * 3  # at least 6 γ values (negative to large positive) × 3 seeds
    assert min(result["config"]["gammas"]) < 0 < max(result["config"]["gammas"])
    num_x, num_y = len(result["truth"]["p_do"]), len(result["truth"]["p_do"][0])
    assert len(result["directed_members"]) == 2 * num_x * num_y
    assert set(result["targets"]) >= {"fid_selected_member_le_half_cvae", "fid_observational_end_le_cvae",
                                      "coverage_ge_95pct", "within_bin_hue_w1_le_0.05"}
    assert result["git_sha"] and result["fid"]["per_gamma_mean_over_seeds"]
    # the cVAE's β is its own, chosen on the validation reference among its candidates, and reported as chosen
    selection = result["baselines"]["cvae"]["selection"]
    assert [c["scale"] for c in selection["candidates"]] == [1.0, 4.0]
    chosen = min(selection["candidates"], key=lambda c: c["fid_validation_mean"])
    assert selection["kl_weight"] == chosen["kl_weight"]
    assert result["fid"]["cvae_mean"] == pytest.approx(chosen["fid_test_mean"], abs=1e-4)
    # real observational images are scored against the test reference like any model of P(image | x)
    assert result["fid"]["observational_data_mean"] > result["fid"]["reference_floor_mean"]
    # two reference sets of one law differ a little, far less than a point mass at the bin centre (0.125)
    assert 0 < result["diversity"]["within_bin_hue_w1_reference_floor"] < 0.06


def test_quick_family_metrics_are_consistent(quick_result):
    _, result = quick_result
    family = result["family"]
    # Span is clipped per cell to the bounds: at most 1 in every cell, never above the unclipped mean.
    for label in ("gamma_seed", "bounds_reachable_check"):
        assert all(v is None or v <= 1 + 1e-9 for row in family[label]["span_per_cell"] for v in row)
        assert family[label]["span_mean"] <= family[label]["span_mean_unclipped"] + 1e-9
    infeasible = sum(not d["feasible"] for d in result["directed_members"])
    assert family["bounds_reachable_check"]["infeasible_dropped"] == infeasible
    # γ ≤ -1 drives the clusters alike: P(y | do(x)) is then the observational P(y | x) of the data.
    for member in result["members"]:
        if member["gamma"] <= -1:
            assert member["posterior_entropy"] == pytest.approx(1.3863, abs=2e-3)  # log K, K = 4
    # Every directed member stays within its fit tolerance (on the training counts).
    tolerance = result["config"]["directed_tolerance_nats"]
    for member in result["directed_members"]:
        assert not member["feasible"] or member["nll_gap"] <= tolerance
    # The two reference sets are far closer to each other than any generator trained 2 epochs is to them.
    assert result["fid"]["reference_floor_mean"] < result["fid"]["selected_member_test"]


def test_quick_fid_is_computed_per_x_for_every_model(quick_result):
    _, result = quick_result
    num_x = len(result["truth"]["p_do"])
    for member in result["members"]:
        assert len(member["per_x"]) == num_x and all(row["fid"] >= 0 for row in member["per_x"])
    assert len(result["baselines"]["cvae"]["per_x"]) == num_x
    assert len(result["fid"]["oracle_per_x"]) == num_x
    assert len(result["fid"]["oracle_fitted_per_x"]) == num_x


def test_quick_oracle_is_the_true_attribute_level(quick_result):
    """The oracle isolates the image model: its P(y | do(x)) is the data set's truth exactly; the table mixture
    fitted with U observed is reported beside it, off by its estimation error."""
    _, result = quick_result
    truth = np.asarray(result["truth"]["p_do"])
    assert np.asarray(result["baselines"]["oracle"]["p_do"]) == pytest.approx(truth, abs=2e-5)  # both rounded to 5 decimals
    assert max(result["baselines"]["oracle"]["w1_model_to_truth"]) < 1e-4
    assert np.abs(np.asarray(result["baselines"]["oracle_fitted"]["p_do"]) - truth).max() > 1e-4


@pytest.mark.parametrize("argv, message", [
    (["--gammas", "a,b"], "--gammas"),
    (["--quick", "--dataset", "mnist"], "--quick"),
    (["--cvae-kl-scales", "1,1"], "every scale must differ"),
    (["--cvae-kl-scales", "0,1"], "positive number"),
])
def test_bad_arguments_are_one_line_errors(argv, message):
    run = subprocess.run([sys.executable, "-m", "benchmarks.quality", *argv], capture_output=True, text=True)
    assert run.returncode == 2 and message in run.stderr


def test_bad_override_is_a_one_line_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "benchmarks.quality", "--quick", "--out", str(tmp_path),
                          "inference.gama=2"], capture_output=True, text=True)
    assert run.returncode == 2
    assert "inference.gama" in run.stderr and len(run.stderr.strip().splitlines()) == 1
