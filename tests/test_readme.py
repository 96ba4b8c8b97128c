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
