"""cauvade-pyro: CauVaDE — families of interventional image generators from confounded observational images.

The public API: write a diagram with :func:`confounder`, fit it with :class:`GammaEntropyELBO` (γ < 0 favours
diffuse confounder clusters → the observational answer; γ > 0 sharp clusters), and sample P(· | do(x)) with
:func:`intervene`.

Names are resolved on first use (PEP 562), so that ``python -m cauvade_pyro.fit --help`` does not pay for
importing torch and Pyro.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "cauvade_pyro.inference": (
        "AmortizedGuide", "Family", "GammaEntropyELBO", "fit_diagram", "fit_family", "fit_attribute_member", "fit_image_model", "intervene",
        "load_checkpoint", "sample_conditional", "sample_observational", "save_checkpoint",
    ),
    "cauvade_pyro.models": (
        "AttributeMixture", "ConditionalImageModel", "ConfoundedAttributesModel", "LatentResponseModel",
        "TabularDiagram", "confounder",
    ),
    "cauvade_pyro.datasets": ("ConfoundedColourSCM", "ConfoundedShapes"),
    "cauvade_pyro.members": ("load_member",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'cauvade_pyro' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
