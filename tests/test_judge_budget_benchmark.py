"""``python -m benchmarks.judge_budget`` on small shapes: each budget's judge is scored on real test images."""

import json

import pytest

from benchmarks import judge_budget


def test_judge_budget_reads_real_images_per_budget(tmp_path):
    out = tmp_path / "judge.json"
    assert judge_budget.main(["--out", str(out), "--budgets", "256x1,8000x3", "--num-images", "300",
                              "--threads", "1", "dataset.num_train=600", "dataset.num_test=300",
                              f"cache_dir={tmp_path}"]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["judge_images"], r["judge_epochs"]) for r in rows] == [(256, 1), (8000, 3)]
    assert result["num_real_images"] == 300
    best = max(rows, key=lambda r: r["real_shape_read_right"])
    assert result["best_budget"] == {"judge_images": best["judge_images"], "judge_epochs": best["judge_epochs"]}
    # a judge of 256 images and one epoch reads the shapes at about chance; the default budget reads them all
    assert rows[0]["real_shape_read_right"] < 0.9
    assert rows[1]["real_shape_read_right"] >= 0.95 and rows[1]["real_hue_read_right"] >= 0.95


def test_judge_budget_refuses_a_bad_budget_and_an_unknown_key(capsys):
    assert judge_budget.main(["inference.gama=2"]) == 2
    assert "inference.gama" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        judge_budget.main(["--budgets", "many"])
    assert error.value.code == 2
