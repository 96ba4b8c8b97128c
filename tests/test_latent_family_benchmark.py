"""Smoke check of benchmarks/latent_family.py at toy sizes: it runs, times both arms and scores every member."""

import pytest
import torch

from benchmarks.latent_family import bench_latent_family


def test_bench_latent_family_runs_at_toy_sizes():
    out = bench_latent_family(torch.device("cpu"), num_train=64, warmup_epochs=1, image_epochs=1, member_epochs=1,
                              gammas=(0.0, 2.0, 4.0), independent=2, num_test=32, num_samples=16, judge_images=128,
                              judge_epochs=1, batch_size=32)
    assert len(out["shared_members_s"]) == 3 and len(out["independent_fits_s"]) == 2
    # the reported seconds are rounded to 0.01 s; the ratio is of the unrounded times
    ratio = out["shared_family_s"] / out["one_independent_fit_s (median)"]
    assert out["ratio_family_to_one_fit"] == pytest.approx(ratio, rel=0.05)
    w1 = out["w1_images_to_truth"]
    assert set(w1["shared"]) == {"0", "2", "4"} and set(w1["independent"]) == {"0", "4"}
    assert all(0.0 <= row["mean"] <= 3.2 for row in [*w1["shared"].values(), *w1["independent"].values()])
    assert out["family"]["independent"]["gammas"] == [0.0, 4.0]
    assert 0.0 <= out["family"]["shared_all"]["coverage"] <= 1.0
