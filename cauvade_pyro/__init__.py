"""cauvade-pyro: CauVaDE — families of interventional image generators from confounded observational images.

The public API: write a diagram with :func:`confounder`, fit it with :class:`GammaEntropyELBO` (γ < 0 favours
diffuse confounder clusters → the observational answer; γ > 0 sharp clusters), and sample P(· | do(x)) with
:func:`intervene`.
"""

from cauvade_pyro.inference import (
    AmortizedGuide,
    GammaEntropyELBO,
    fit,
    fit_attribute_member,
    fit_image_model,
    intervene,
    load_checkpoint,
    sample_conditional,
    sample_observational,
    save_checkpoint,
)
from cauvade_pyro.models import (
    AttributeMixture,
    ConditionalImageModel,
    ConfoundedAttributesModel,
    LatentResponseModel,
    confounder,
)

__version__ = "0.1.0"

__all__ = [
    "AmortizedGuide",
    "AttributeMixture",
    "ConditionalImageModel",
    "ConfoundedAttributesModel",
    "GammaEntropyELBO",
    "LatentResponseModel",
    "confounder",
    "fit",
    "fit_attribute_member",
    "fit_image_model",
    "intervene",
    "load_checkpoint",
    "sample_conditional",
    "sample_observational",
    "save_checkpoint",
]
