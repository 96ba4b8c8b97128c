"""models/ and inference/ live at the top level but import as cauvade_pyro.models and cauvade_pyro.inference."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = (
    "import cauvade_pyro, cauvade_pyro.models as m, cauvade_pyro.inference as i, pathlib; "
    "assert pathlib.Path(m.__file__).parent.name == 'models', m.__file__; "
    "assert pathlib.Path(i.__file__).parent.name == 'inference', i.__file__; "
    "import cauvade_pyro.fit; "  # the Hydra app module must not shadow a public function of the same name
    "from cauvade_pyro import confounder, intervene, GammaEntropyELBO, fit_diagram; "
    "assert callable(fit_diagram) and not isinstance(fit_diagram, type(pathlib)); print('ok')"
)


@pytest.mark.parametrize("where", ["repo", "elsewhere"])
def test_imports_from_any_directory(tmp_path, where):
    cwd = REPO if where == "repo" else tmp_path
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_bare_top_level_names_are_not_installed(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('models') is None and u.find_spec('inference') is None)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True"
