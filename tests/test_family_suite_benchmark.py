"""benchmarks/family_suite.py runs end to end at tiny size and writes the documented JSON schema."""

import json

from benchmarks.family_suite import main, markdown_table


def test_family_suite_quick(tmp_path):
    out = tmp_path / "suite.json"
    main(["--quick", "--cases", "iv", "shapes", "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["git_sha"] and set(results["cases"]) == {"iv", "shapes"}
    for case in results["cases"].values():
        for key in ("coverage", "span", "max_fit_gap_nats", "members", "family_seconds", "one_member_seconds"):
            assert key in case
        assert 0.0 <= case["coverage"] <= 1.0 and 0.0 <= case["span"] <= 1.0
        assert case["members"] >= 2
    assert "gamma_grid" in results["cases"]["shapes"]
    assert (tmp_path / "suite.png").is_file()
    assert markdown_table(results).count("\n") == 3
