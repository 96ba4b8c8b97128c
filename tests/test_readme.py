"""The README's examples run as written, and its tables are what the committed benchmark JSONs render to."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _run(block: str) -> dict:
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(block, str(README), "exec"), namespace)
    return namespace


def test_readme_diagram_example_runs(capsys):
    blocks = [b for b in _python_blocks() if "fit_diagram(" in b]
    assert blocks, "the README must show a complete diagram example"
    namespace = _run(blocks[0])
    draws = namespace["draws"]
    assert draws["image"].shape == (16, 3, 28, 28)
    assert "eps" in namespace["guide"].latent_shapes


def test_readme_family_example_runs(tmp_path, monkeypatch, capsys):
    blocks = [b for b in _python_blocks() if "fit_family(" in b]
    assert blocks, "the README must show fit_family"
    monkeypatch.chdir(tmp_path)  # it saves a file
    namespace = _run(blocks[0])
    family, low, high = namespace["family"], namespace["low"], namespace["high"]
    assert len(family) >= 4 and family.max_fit_gap() <= family.tau
    truth = (0.5 * (0.2 + 0.7), 0.5 * (0.4 + 0.8))  # P(y = 1 | do(x)) of the SCM the example draws from
    assert all(low[x, 1] - 1e-6 <= truth[x] <= high[x, 1] + 1e-6 for x in (0, 1))


def test_readme_family_table_is_the_committed_json():
    import json

    from benchmarks.family_suite import markdown_table

    text = README.read_text()
    table = re.search(r"<!-- family-suite-table -->\n(.*?)<!-- /family-suite-table -->", text, flags=re.S).group(1)
    results = json.loads((README.parent / "benchmarks/results/family_suite.json").read_text())
    assert table.strip() == markdown_table(results)


def test_readme_quality_table_is_the_committed_json():
    """The README's targets table is exactly what the committed benchmark JSON renders to."""
    import json

    from benchmarks.quality import markdown_table

    text = README.read_text()
    table = re.search(r"<!-- quality-table -->\n(.*?)<!-- /quality-table -->", text, flags=re.S).group(1).strip()
    command = re.search(r"python -m benchmarks\.quality --table (.*)`", text).group(1)
    columns = {}
    for title, path in re.findall(r'"?([^"=]+)=(benchmarks/results/[\w.]+\.json)"?', command):
        columns[title.strip()] = json.loads((README.parent / path).read_text())
    assert len(columns) >= 2
    assert table == markdown_table(columns)
