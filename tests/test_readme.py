"""The README's diagram example is complete and runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_diagram_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README must show a complete diagram example"
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    draws = namespace["draws"]
    assert draws["image"].shape == (16, 3, 28, 28)
    assert "eps" in namespace["guide"].latent_shapes


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
