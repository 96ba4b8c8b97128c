"""Metrics (DESIGN §5): attribute-level distances and bounds, and an effectiveness judge never used in training."""

from cauvade_pyro.metrics.attributes import bow_graph_bounds, circular_w1, hue_histogram
from cauvade_pyro.metrics.judge import AttributeJudge, judge_cache_key, train_judge

__all__ = [
    "AttributeJudge",
    "bow_graph_bounds",
    "circular_w1",
    "hue_histogram",
    "judge_cache_key",
    "train_judge",
]
