"""The quality benchmark's protocol cannot flatter (issue 16, item 2), checked on hand-made records:
selection on the validation reference, scores on the test reference; span clipped per cell; infeasible
directed members dropped and counted, and kept out of the family's coverage."""

import argparse
from types import SimpleNamespace

import pytest
import torch

from benchmarks.quality import (choose_cvae, clipped_span, diversity_summary, family_metrics, fid_summary,
                                target_checks)


def member(gamma, seed, test, validation, w1=0.1, observational=None):
    observational = test if observational is None else observational
    return {"gamma": gamma, "seed": seed, "fid_mean": test, "fid_validation_mean": validation,
            "fid_observational_mean": observational, "within_bin_hue_w1": w1,
            "per_x": [{"w1_images_to_observational": 0.01}]}


@pytest.fixture
def records():
    members = [
        member(-1.0, 0, 9.0, 9.0, observational=3.0), member(-1.0, 1, 11.0, 11.0, observational=5.0),
        member(0.0, 0, 6.0, 8.0), member(0.0, 1, 10.0, 8.5),
        member(2.0, 0, 3.0, 7.0),  # best on the test set, but not on validation
        member(2.0, 1, 5.0, 4.0),  # best on validation: the one selected
    ]
    base = {"cvae_rows": [{"fid": 10.0, "fid_observational": 6.0, "w1_images_to_observational": 0.2},
                          {"fid": 12.0, "fid_observational": 8.0, "w1_images_to_observational": 0.3}],
            "oracle_rows": [{"fid": 2.0, "fid_observational": 20.0}, {"fid": 2.0, "fid_observational": 20.0}]}
    ctx = {"evaluator": SimpleNamespace(fid_floor=[0.5, 0.7], observational_fid_floor=[0.4, 0.6],
                                        observational_data_fid=[9.0, 13.0])}
    return members, base, ctx


def test_member_and_gamma_are_selected_on_validation_and_scored_on_test(records):
    members, base, ctx = records
    fid = fid_summary(ctx, members, base)
    assert (fid["selected_member"]["gamma"], fid["selected_member"]["seed"]) == (2.0, 1)
    assert fid["selected_member_test"] == 5.0  # its test FID, not the best test FID (3.0) of any member
    assert fid["selected_gamma"] == {"gamma": 2.0, "validation_mean": 5.5, "test_mean": 4.0}
    assert fid["per_gamma_mean_over_seeds"] == {"-1.0": 10.0, "0.0": 8.0, "2.0": 4.0}
    assert fid["observational_end_mean"] == 10.0 and fid["cvae_mean"] == 11.0
    assert fid["best_gamma0_seed_test"] == 6.0 and fid["reference_floor_mean"] == pytest.approx(0.6)
    assert fid["observational_data_mean"] == 11.0  # the real observational images' own, beside the models'
    # the observational-reference block averages only the γ ≤ −1 members, each model on its own key
    observational = fid["observational_reference"]
    assert observational["observational_end_mean"] == 4.0 and observational["cvae_mean"] == 7.0
    assert observational["oracle_mean"] == 20.0 and observational["reference_floor_mean"] == pytest.approx(0.5)
    assert observational["w1_images_to_observational"]["cvae_mean"] == pytest.approx(0.25)


def test_targets_compare_the_selected_member_and_means(records):
    members, base, ctx = records
    # 0.5 × cVAE = 4.5: the selected member's test FID (5.0) misses it, though its validation FID (4.0) and
    # the best test FID of any member (3.0) would pass
    for row in base["cvae_rows"]:
        row["fid"] = 9.0
    fid = fid_summary(ctx, members, base)
    family = {"gamma_seed": {"coverage": 1.0, "span_mean": 0.6}}
    effect = {"x_flip_follows": 0.95, "y_flip_follows": 0.95, "do_x_class_accuracy": 0.95}
    targets = target_checks(fid, family, {"within_bin_hue_w1": 0.1}, effect, {"max_gap_nats": 0.0}, effect)
    assert targets["cvae_is_a_fair_baseline"]
    assert not targets["fid_selected_member_le_half_cvae"]
    assert targets["fid_selected_member_below_best_gamma0_seed"]  # 5.0 < 6.0
    assert targets["fid_selected_gamma_mean_below_gamma0_mean"]  # per-γ test means: 4.0 < 8.0
    assert targets["fid_observational_end_le_cvae"] is False  # 10.0 > 9.0
    # against the observational images the observational end (mean 4.0) beats the cVAE (7.0)
    assert targets["fid_observational_end_le_cvae_observational_reference"] is True
    assert not targets["within_bin_hue_w1_le_0.05"]
    # a cVAE that does not follow x is no baseline: beating it counts for nothing, however large the margin
    for row in base["cvae_rows"]:
        row["fid"] = 100.0
    weak = target_checks(fid_summary(ctx, members, base), family, {"within_bin_hue_w1": 0.1}, effect,
                         {"max_gap_nats": 0.0}, {"x_flip_follows": 0.59, "do_x_class_accuracy": 0.95})
    assert not weak["cvae_is_a_fair_baseline"]
    assert not weak["fid_selected_member_le_half_cvae"] and not weak["fid_observational_end_le_cvae"]
    assert not weak["fid_observational_end_le_cvae_observational_reference"]
    fair = target_checks(fid_summary(ctx, members, base), family, {"within_bin_hue_w1": 0.1}, effect,
                         {"max_gap_nats": 0.0}, effect)
    assert fair["fid_selected_member_le_half_cvae"] and fair["fid_observational_end_le_cvae"]
    # a cVAE whose β was chosen on validation among several is a fair baseline whatever its x flip
    tuned = target_checks(fid_summary(ctx, members, base), family, {"within_bin_hue_w1": 0.1}, effect,
                          {"max_gap_nats": 0.0}, {"x_flip_follows": 0.59, "do_x_class_accuracy": 0.95},
                          cvae_tuned=True)
    assert tuned["cvae_is_a_fair_baseline"] and tuned["fid_selected_member_le_half_cvae"]
    # ... but not if its do(x) images do not show the class they were drawn for, tuned or not
    for tuned_or_not in (True, False):
        wrong_class = target_checks(fid_summary(ctx, members, base), family, {"within_bin_hue_w1": 0.1}, effect,
                                    {"max_gap_nats": 0.0}, {"x_flip_follows": 0.95, "do_x_class_accuracy": 0.57},
                                    cvae_tuned=tuned_or_not)
        assert not wrong_class["cvae_is_a_fair_baseline"]
        assert not wrong_class["fid_selected_member_le_half_cvae"]


def test_span_is_clipped_per_cell():
    lower = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    upper = torch.tensor([[0.4, 0.4]], dtype=torch.float64)
    low = torch.tensor([[-0.1, 0.1]], dtype=torch.float64)  # first cell overshoots both bounds, second half
    high = torch.tensor([[0.5, 0.3]], dtype=torch.float64)
    clipped, raw = clipped_span(low, high, lower, upper)
    assert clipped.per_cell[0].tolist() == pytest.approx([1.0, 0.5])
    assert clipped.mean == pytest.approx(0.75) and raw.mean == pytest.approx(1.0)


def test_infeasible_directed_members_are_dropped_counted_and_kept_out_of_coverage():
    truth = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
    evaluator = SimpleNamespace(truth=truth, lower=torch.tensor([[0.1, 0.5]]), upper=torch.tensor([[0.5, 0.9]]))
    members = [{"p_do": [[0.2, 0.8]], "seed": 0}, {"p_do": [[0.25, 0.75]], "seed": 1}]
    directed = [{"p_do": [[0.45, 0.55]], "feasible": True}, {"p_do": [[0.6, 0.4]], "feasible": False}]
    args = argparse.Namespace(span_seeds=0)
    metrics = family_metrics({"evaluator": evaluator}, args, members, directed)
    assert metrics["gamma_seed"]["members"] == 2 and metrics["gamma_seed"]["coverage"] == 0.0
    check = metrics["bounds_reachable_check"]
    assert check["infeasible_dropped"] == 1 and check["members"] == 1
    assert check["max"] == [[0.45, 0.55]]  # the infeasible member's 0.6 is not in the range
    assert "not the family's coverage" in check["note"]


def test_subclass_mix_is_averaged_over_members_and_x_apart_from_the_baselines():
    def rows(tvs):
        return [{"subclass_tv": tv, "within_bin_hue_w1": 0.1, "hue_entropy": 1.0} for tv in tvs]

    members = [{**member(0.0, 0, 1.0, 1.0), "per_x": rows([0.1, 0.3])},
               {**member(2.0, 0, 1.0, 1.0), "per_x": rows([0.5, 0.7])}]
    base = {"cvae_rows": rows([0.6, 0.6]), "oracle_rows": rows([0.05, 0.15])}
    evaluator = SimpleNamespace(subclass_reader=SimpleNamespace(groups=((0, 2), (5, 7))), subclass_floor=[0.01, 0.03],
                                within_bin_floor=[0.02, 0.04],
                                subclass_reader_accuracy=[0.7, 0.9],
                                subclass_reference={0: torch.tensor([0.5, 0.5]), 1: torch.tensor([0.4, 0.6])})
    div = diversity_summary(members, base, evaluator)
    assert div["subclass_tv"] == pytest.approx(0.4)
    assert div["subclass_tv_per_gamma"] == {"0.0": pytest.approx(0.2), "2.0": pytest.approx(0.6)}
    assert div["subclass_members_per_x"] == [pytest.approx(0.3), pytest.approx(0.5)]
    assert div["subclass_tv_cvae"] == pytest.approx(0.6) and div["subclass_tv_oracle"] == pytest.approx(0.1)
    assert div["subclass_tv_reference_floor_per_x"] == [0.01, 0.03]
    # the within-bin W1's floor is the reference sets' own, never the members' or a baseline's
    assert div["within_bin_hue_w1_reference_floor"] == pytest.approx(0.03)
    assert div["within_bin_hue_w1_reference_floor_per_x"] == [0.02, 0.04]
    # a dataset without sub-classes (the shapes): no reader, no figure
    shapes = SimpleNamespace(subclass_reader=None, within_bin_floor=[0.02, 0.04])
    assert diversity_summary(members, base, shapes)["subclass_tv"] is None


def test_the_table_never_counts_a_win_over_an_unfair_cvae():
    """A JSON from before the fair-baseline check (no key) is read from the cVAE's own x flip."""
    import json
    from pathlib import Path

    from benchmarks.quality import markdown_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/results/fashion_mnist.json"
    result = json.loads(path.read_text())
    assert result["targets"]["fid_selected_member_le_half_cvae"]
    fair_row = markdown_table({"run": result}).splitlines()[2]
    result["targets"].pop("cvae_is_a_fair_baseline", None)
    result["baselines"]["cvae"].pop("selection", None)  # as before the cVAE chose its own β
    result["effectiveness"]["cvae"]["x_flip_follows"] = 0.5
    unfair_row = markdown_table({"run": result}).splitlines()[2]
    assert "no fair baseline" not in fair_row and "cVAE 2142.8 (its β 0.5, chosen on validation of 3) ✓" in fair_row
    assert "(its x flip 0.50: no fair baseline) ✗" in unfair_row and "observational end 2048.2 ✗" in unfair_row
    result["effectiveness"]["cvae"]["do_x_class_accuracy"] = 0.57
    wrong_class_row = markdown_table({"run": result}).splitlines()[2]
    assert "(its do(x) images show their class in 0.57: no fair baseline) ✗" in wrong_class_row


def test_the_cvae_beta_is_chosen_on_validation_not_on_test():
    """The candidate best on the test reference loses to the one best on validation."""
    def rows(validation, test):
        return [{"fid_validation": validation, "fid": test}] * 2

    scored = [({"kl_weight": 0.5}, rows(30.0, 10.0)), ({"kl_weight": 2.0}, rows(20.0, 25.0)),
              ({"kl_weight": 8.0}, rows(40.0, 5.0))]
    chosen, chosen_rows = choose_cvae(scored)
    assert chosen["kl_weight"] == 2.0 and chosen_rows[0]["fid"] == 25.0
    # a candidate that failed on validation (no finite FID) ranks last, wherever it comes
    failed = ({"kl_weight": 0.1}, [{"fid_validation": float("nan"), "fid": 1.0}] * 2)
    assert choose_cvae([failed, *scored])[0]["kl_weight"] == 2.0
