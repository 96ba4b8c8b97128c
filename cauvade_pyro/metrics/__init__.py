"""Metrics (docs/design.md §6): attribute-level distances and bounds, an effectiveness judge never used in training,
Fréchet distance in a domain feature space, and family-level coverage, span and diversity."""

from cauvade_pyro.metrics.attributes import bow_graph_bounds, circular_w1, hue_histogram
from cauvade_pyro.metrics.family import (
    Coverage,
    Span,
    coverage,
    diversity,
    family_range,
    hue_entropy,
    span,
)
from cauvade_pyro.metrics.fid import (
    FEATURE_NET_SEED,
    DomainFeatureNet,
    extract_features,
    feature_net_cache_key,
    ReferenceFID,
    frechet_distance,
    inception_feature_net,
    mean_pairwise_distance,
    train_feature_net,
)
from cauvade_pyro.metrics.judge import AttributeJudge, judge_cache_key, train_judge

__all__ = [
    "FEATURE_NET_SEED",
    "AttributeJudge",
    "Coverage",
    "DomainFeatureNet",
    "Span",
    "bow_graph_bounds",
    "circular_w1",
    "coverage",
    "diversity",
    "extract_features",
    "family_range",
    "feature_net_cache_key",
    "ReferenceFID",
    "frechet_distance",
    "hue_entropy",
    "hue_histogram",
    "inception_feature_net",
    "judge_cache_key",
    "mean_pairwise_distance",
    "span",
    "train_feature_net",
    "train_judge",
]
