"""Every ``>>>`` example in the package's docstrings runs and gives what it shows."""

import doctest
import importlib
import pkgutil

import pytest

import cauvade_pyro
import cauvade_pyro.inference
import cauvade_pyro.models


def _modules() -> list[str]:
    # models/ and inference/ live outside cauvade_pyro/ on disk (package-dir), so walk each package.
    names = set()
    for package in (cauvade_pyro, cauvade_pyro.models, cauvade_pyro.inference):
        names.add(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if not info.name.startswith("cauvade_pyro.conf"):
                names.add(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
