"""Causal diagrams as Pyro programs, and their neural likelihood networks (imported as ``cauvade_pyro.models``)."""

from .checks import check_data
from .confounded_attributes import (
    LIKELIHOODS,
    Y_PARAMETERIZATIONS,
    AttributeMixture,
    ConditionalImageModel,
    ConfoundedAttributesModel,
)
from .latent_response import LatentResponseModel
from .response_atoms import AtomResponseModel
from .nets import ConvDecoder, ConvEncoder, FiLM, GaussianHead, MLPDecoder, MLPEncoder, make_decoder, make_encoder
from .tabular import TabularDiagram
from .primitives import DATA_PLATE, confounder, data_size, is_confounder

__all__ = [
    "AtomResponseModel",
    "AttributeMixture",
    "ConditionalImageModel",
    "ConfoundedAttributesModel",
    "ConvDecoder",
    "ConvEncoder",
    "DATA_PLATE",
    "FiLM",
    "GaussianHead",
    "LIKELIHOODS",
    "LatentResponseModel",
    "MLPDecoder",
    "MLPEncoder",
    "TabularDiagram",
    "Y_PARAMETERIZATIONS",
    "check_data",
    "confounder",
    "data_size",
    "is_confounder",
    "make_decoder",
    "make_encoder",
]
