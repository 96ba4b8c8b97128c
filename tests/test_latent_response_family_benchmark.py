"""benchmarks/latent_response_family.py at toy sizes (--quick): it trains once per seed, fits and scores one family
per number of atoms, reports the target keys from the confirmation seed at the candidate number of atoms, and
--merge adds atoms to a part (retraining its base; each row keeps its own run)."""

import json

from benchmarks.latent_response_family import CANDIDATE_ATOMS, CONFIRM_SEED, main, table


def test_quick_run_scores_every_member_and_merges(tmp_path):
    out = tmp_path / "family_quick.json"
    first = main(["--quick", "--atoms", f"2,{CANDIDATE_ATOMS}", "--seeds", f"0,{CONFIRM_SEED}", "--out", str(out)])
    assert json.loads(out.read_text()) == first and "git_sha" in first
    assert set(first["parts"]) == {"shapes/n64/seed0", f"shapes/n64/seed{CONFIRM_SEED}"}
    row = first["parts"][f"shapes/n64/seed{CONFIRM_SEED}"]["by_atoms"][str(CANDIDATE_ATOMS)]
    assert row["atoms"]["atoms"] == CANDIDATE_ATOMS and len(row["member_scores"]) == row["members"] >= 1
    for member in row["member_scores"]:
        assert len(member["p_do_from_images"]) == 3 and abs(sum(member["p_do_from_images"][0]) - 1) < 1e-3
    assert 0.0 <= row["coverage"] <= 1.0 and 0.0 <= row["span"] <= 1.0
    # the IWAE gap at every particle count asked for; the largest is the reported one
    assert list(row["heldout_iwae_max_gap_by_particles"]) == ["1", "2"] and row["heldout_iwae_particles"] == 2
    assert row["heldout_iwae_draws"] == "per atom" and f"| {row['heldout_iwae_max_gap']:.4f} (2/atom; 1/atom: " in table(first)
    assert row["heldout_iwae_max_gap_by_particles"]["2"] == row["heldout_iwae_max_gap"] >= 0.0
    # the target keys are the confirmation seed's, not the exploration's
    assert first["targets"]["by_data"]["shapes/n64"]["coverage"] == row["coverage"]
    assert first["targets"]["atoms"] == CANDIDATE_ATOMS

    merged = main(["--quick", "--atoms", "3", "--seeds", str(CONFIRM_SEED), "--out", str(out), "--merge"])
    assert set(merged["parts"][f"shapes/n64/seed{CONFIRM_SEED}"]["by_atoms"]) == {"2", str(CANDIDATE_ATOMS), "3"}
    assert merged["parts"]["shapes/n64/seed0"] == first["parts"]["shapes/n64/seed0"] and len(merged["runs"]) == 2
    rows = merged["parts"][f"shapes/n64/seed{CONFIRM_SEED}"]["by_atoms"]
    assert "--merge" in rows["3"]["run"]["command"] and "--merge" not in rows["2"]["run"]["command"]
    assert f"| shapes/n64/seed{CONFIRM_SEED} | 3 |" in table(merged)
    # a row from before the gap was measured at several particle counts (8 encoder draws) renders as such
    old = {**rows["3"], "heldout_iwae_max_gap": 0.048}
    del old["heldout_iwae_max_gap_by_particles"], old["heldout_iwae_particles"], old["heldout_iwae_draws"]
    assert "| 0.0480 (8) |" in table({"parts": {"old/n1/seed0": {"by_atoms": {"24": old}}}})
