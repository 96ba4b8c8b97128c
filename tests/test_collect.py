"""``cauvade_pyro.collect`` on hand-made multirun folders: coverage and span against hand sums, and its errors.

The launcher tests (tests/test_launchers.py) run it on a real multirun.
"""

import json

import pytest

from cauvade_pyro.collect import collect, family_summary, load_members, main

# One x, three hue bins: truth, sharp bounds and the observational answer of a made-up dataset.
ROW = {"x": 0, "class_name": "disc", "p_do_truth": [0.2, 0.3, 0.5], "bounds_lower": [0.1, 0.3, 0.2],
       "bounds_upper": [0.5, 0.3, 0.6], "p_observational": [0.4, 0.3, 0.3]}


def _member(gamma, seed, p_do, key="p_do_model", **extra):
    return {"gamma": gamma, "seed": seed, "K": 4, "per_x": [{**ROW, key: p_do}], **extra}


def _write(root, name, member):
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("{}")
    if member is not None:
        (folder / "metrics.json").write_text(json.dumps(member))


def test_span_is_clipped_per_cell_before_the_mean_and_also_reported_unclipped(tmp_path):
    # bin 0: range [0.1, 0.7] leaves the bounds [0.1, 0.5]: span 0.6/0.4 = 1.5, clipped to 1;
    # bin 1: zero-width bounds, no span; bin 2: range [0.3, 0.4] in [0.2, 0.6]: span 0.25.
    _write(tmp_path, "a", _member(-1.0, 0, [0.1, 0.3, 0.4], heldout={"log_p_xy": -1.25}))
    _write(tmp_path, "b", _member(2.0, 0, [0.7, 0.3, 0.3], heldout={"log_p_xy": -1.5}))
    _write(tmp_path, "c", None)  # a member that never finished
    _write(tmp_path, ".submitit/x", _member(9.0, 9, [0.0, 0.0, 1.0]))  # launcher files: ignored
    result = collect(tmp_path)
    assert result["span"] == pytest.approx((1.0 + 0.25) / 2, abs=1e-5)
    assert result["span_unclipped"] == pytest.approx((1.5 + 0.25) / 2, abs=1e-5)
    assert result["covered_per_cell"] == [[True, True, False]] and result["coverage"] == pytest.approx(2 / 3, abs=1e-5)
    assert result["fit_gap_nats"] == pytest.approx(0.25, abs=1e-5)
    assert result["unfinished"] == ["c"] and result["num_members"] == 2
    assert [r["run_dir"] for r in result["members"]] == ["a", "b"]
    assert (tmp_path / "family.json").is_file() and (tmp_path / "family.png").is_file()


def test_members_without_an_attribute_level_answer_are_read_from_their_images():
    members = [_member(0.0, s, p, key="p_do_from_images") for s, p in [(0, [0.2, 0.3, 0.5]), (1, [0.3, 0.3, 0.4])]]
    for m in members:
        m["run_dir"] = str(m["seed"])
    summary = family_summary(members)
    assert summary["source"] == "p_do_from_images" and summary["coverage"] == 1.0
    assert summary["span"] == pytest.approx((0.1 / 0.4 + 0.1 / 0.4) / 2, abs=1e-5) and "fit_gap_nats" not in summary


def test_members_of_different_datasets_are_refused_naming_both(tmp_path):
    _write(tmp_path, "a", _member(0.0, 0, [0.2, 0.3, 0.5]))
    other = _member(1.0, 0, [0.2, 0.3, 0.5])
    other["per_x"][0]["p_do_truth"] = [0.3, 0.3, 0.4]
    _write(tmp_path, "b", other)
    with pytest.raises(ValueError, match="a and b disagree on p_do_truth"):
        family_summary(load_members(tmp_path))


def test_a_folder_without_members_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no metrics.json" in err[0]
