"""``python -m benchmarks.family_reach`` on small shapes: the closest member per x against the observational answer."""

import json

import pytest

from benchmarks import family_reach


def test_family_reach_scores_every_member_against_the_truth(tmp_path):
    out = tmp_path / "reach.json"
    assert family_reach.main(["--out", str(out), "dataset.num_train=1500", "inference.family.restarts=1",
                              "inference.family.random_directions=1", "inference.family.steps=200",
                              "inference.family.member_steps=100"]) == 0
    result = json.loads(out.read_text())
    assert result["git_sha"] and result["members"] == len(result["kinds"]) >= 2
    closest, average = result["w1_closest_member_per_x"], result["closest_on_average"]["w1_per_x"]
    assert len(closest) == len(average) == len(result["w1_observational_per_x"]) == 3
    # the closest member of each x can be no farther than the one member closest on average
    assert all(c <= a + 1e-9 for c, a in zip(closest, average))
    assert result["confounded_x"] == [0, 1, 2] and len(result["w1_per_member"]) == result["members"]
    confounded = result["closest_on_worst_confounded_x"]
    assert confounded["w1_max_confounded"] == pytest.approx(
        min(max(row[x] for x in result["confounded_x"]) for row in result["w1_per_member"]), abs=1e-4)
    worst = result["closest_on_worst_x"]
    assert worst["w1_max"] <= max(average) + 1e-9 and worst["w1_max"] == pytest.approx(max(worst["w1_per_x"]))
    assert result["w1_observational_per_x"] == pytest.approx([0.1439] * 3, abs=1e-3)  # the shapes' SCM
    assert 0 <= result["coverage"] <= 1 and 0 <= result["span"] <= 1


def test_family_reach_refuses_an_unknown_key_in_one_line(capsys):
    assert family_reach.main(["inference.gama=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "inference.gama" in err and len(err.splitlines()) == 1
