"""Inference for CauVaDE diagrams (imported as ``cauvade_pyro.inference``): the γ-entropy ELBO, amortized
guides, training loops, families of members for any discrete diagram (fit_family), initialisation, checkpoints and interventional sampling."""

from .checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from .counts import (
    cell_counts,
    count_objective,
    fit_attribute_counts,
    fit_attribute_family_counts,
    fit_directed_member,
    mean_nll,
    oracle_mixture,
    table_mixture,
)
from .elbo import GammaEntropyELBO
from .eps_prior import fit_eps_prior
from .exact import enumerate_data, interventional_table, mean_loglik
from .spanning import Family, Member, fit_family
from .family import fit_attribute_member, fit_image_model, heldout_image_elbo
from .guides import AmortizedGuide, latent_sites
from .init import init_latent_response
from .latent_family import base_state, fine_tune_member, fit_latent_base, warm_start
from .latent_prior import refit_latent_prior
from .response_atoms import encode_means, fit_response_atoms
from .intervene import intervene, sample_conditional, sample_observational
from .train import fit_diagram, fit_member, fit_svi, resolve_device, seed_everything, to_float_images
from .loglik import attribute_loglik, iwae_image_loglik, table_loglik

__all__ = [
    "Family",
    "Member",
    "enumerate_data",
    "fit_family",
    "interventional_table",
    "mean_loglik",
    "AmortizedGuide",
    "base_state",
    "fine_tune_member",
    "fit_latent_base",
    "refit_latent_prior",
    "encode_means",
    "fit_response_atoms",
    "warm_start",
    "FORMAT_VERSION",
    "GammaEntropyELBO",
    "cell_counts",
    "count_objective",
    "fit_attribute_counts",
    "fit_attribute_family_counts",
    "fit_directed_member",
    "mean_nll",
    "oracle_mixture",
    "table_mixture",
    "fit_diagram",
    "fit_member",
    "fit_attribute_member",
    "fit_eps_prior",
    "fit_image_model",
    "fit_svi",
    "heldout_image_elbo",
    "init_latent_response",
    "intervene",
    "latent_sites",
    "load_checkpoint",
    "resolve_device",
    "sample_conditional",
    "sample_observational",
    "save_checkpoint",
    "seed_everything",
    "to_float_images",
    "attribute_loglik",
    "iwae_image_loglik",
    "table_loglik",
]
