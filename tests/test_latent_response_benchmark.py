"""benchmarks/latent_response.py at toy sizes (--quick): it runs, scores every variant, reports the target keys
from the confirmation run only, leaves unmeasured targets null, and --merge adds a second run's variants."""

import json
import math

from benchmarks.latent_response import VARIANTS, main


def test_quick_run_and_merge(tmp_path):
    out = tmp_path / "latent_response_quick.json"
    first = main(["--quick", "--variants", "baseline", "--confirm", "cluster_lr_0.05", "--out", str(out)])
    assert json.loads(out.read_text()) == first
    assert "git_sha" in first and first["quick"] is True
    row = first["explore"]["variants"]["baseline"]
    assert row["settings"]["gamma"] == -2.0 and row["settings"]["cluster_lr"] is None
    w1 = row["w1_mean"]
    for key in ("w1_images_to_observational", "w1_conditional_images_to_observational",
                "w1_heldout_images_to_observational", "w1_images_to_truth", "w1_observational_to_truth"):
        assert 0.0 <= w1[key] <= 0.5, key  # circular W1 on a circle of circumference 1 is at most 0.5
    assert 0.0 <= row["posterior_entropy_given_x"] <= row["posterior_entropy_max"] + 1e-6
    assert row["posterior_entropy_max"] == round(math.log(4), 5)
    assert row["heldout"]["elbo"] <= row["heldout"]["iwae"]
    # the target figure is the confirmation run's (fresh data and seed), not the exploration's
    confirm = first["confirm"]["variants"]["cluster_lr_0.05"]
    assert first["confirm"]["data"]["data_seed"] != first["explore"]["data"]["data_seed"]
    targets = first["targets"]
    end = targets["observational_end_w1_to_observational"]
    assert end["shapes"] == confirm["w1_mean"]["w1_images_to_observational"]
    assert targets["observational_end_w1_to_observational"]["variant"] == "cluster_lr_0.05"
    for key in ("coverage", "span", "best_member_w1_ratio", "vade_fashion_acc"):
        assert targets[key] is None
    assert targets["observational_end_w1_to_observational"]["fashion_binary"] is None

    merged = main(["--quick", "--variants", "gamma0", "--confirm", "", "--out", str(out), "--merge"])
    assert set(merged["explore"]["variants"]) == {"baseline", "gamma0"}
    assert merged["explore"]["variants"]["baseline"] == row
    assert merged["confirm"]["variants"]["cluster_lr_0.05"] == confirm
    assert len(merged["runs"]) == 2 and merged["explore"]["variants"]["gamma0"]["settings"]["gamma"] == 0.0
    assert set(VARIANTS) >= set(merged["explore"]["variants"])


def test_clustering_scores_match_by_hungarian_assignment_and_compute_nmi():
    import torch

    from benchmarks.latent_response import clustering_scores

    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
    permuted = torch.tensor([2, 2, 0, 0, 1, 1, 1, 2])  # the same partition under other names
    assert clustering_scores(labels, permuted, 3) == {"acc": 1.0, "nmi": 1.0}
    # one cluster for everything: only the largest class can be matched; no information
    lumped = clustering_scores(labels, torch.zeros(8, dtype=torch.long), 3)
    assert lumped == {"acc": 0.375, "nmi": 0.0}
    # a cluster split in two: the Hungarian matching is one-to-one, so one half counts as wrong
    split = clustering_scores(labels, torch.tensor([0, 3, 1, 1, 2, 2, 2, 0]), 4)
    assert split["acc"] == 0.875 and 0.0 < split["nmi"] < 1.0


def test_vade_mode_runs_at_toy_size_when_fashion_mnist_is_installed(tmp_path):
    import pytest

    from benchmarks.latent_response import FASHION_DIR

    if not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    out = main(["--quick", "--variants", "", "--confirm", "", "--vade", "0", "--out", str(tmp_path / "v.json")])
    fit = out["vade"]["fits"][0]
    assert fit["settings"]["K"] == 10 and fit["settings"]["num_test"] == 200
    # the best one-to-one matching of a K × K count table holds at least 1/K of the counts
    assert 0.1 <= fit["vade"]["acc"] <= 1.0 and 0.0 <= fit["vade"]["nmi"] <= 1.0
    assert out["targets"]["vade_fashion_acc"] == out["vade"]["acc_mean"] == fit["vade"]["acc"]


def test_vade_exploration_scores_held_out_training_images_and_keeps_the_reported_block(tmp_path):
    import pytest

    from benchmarks.latent_response import FASHION_DIR

    if not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    out = tmp_path / "v.json"
    reported = main(["--quick", "--variants", "", "--confirm", "", "--vade", "0", "--out", str(out)])["vade"]
    merged = main(["--quick", "--variants", "", "--confirm", "", "--vade", "1", "--vade-val", "1000",
                   "--vade-warmup-kl", "0.01", "--vade-gmm-restarts", "2", "--out", str(out), "--merge"])
    assert merged["vade"] == reported and merged["targets"]["vade_fashion_acc"] == reported["acc_mean"]
    (explored,) = merged["vade_exploration"]
    settings = explored["fits"][0]["settings"]
    assert settings["scored_on"] == "last 1000 training images (held out)" and settings["warmup_kl_weight"] == 0.01
    assert settings["gmm_restarts"] == 2 and "--vade-val 1000" in explored["command"]


def test_overlap_scm_is_a_valid_scm_unlike_the_default_and_still_confounded():
    import torch

    from benchmarks.latent_response import SCMS, build_scm, describe_scm, make_dataset
    from cauvade_pyro.datasets.scm import ConfoundedColourSCM

    default = ConfoundedColourSCM.make()
    assert build_scm("default", 3) is None
    for num_classes in (3, 2):  # the shapes and binary Fashion-MNIST
        scm = build_scm("overlap", num_classes)
        assert isinstance(scm, ConfoundedColourSCM)  # the constructor validated its tables
        for table in (scm.p_u, scm.p_x_given_u, scm.p_y_given_xu):
            assert torch.allclose(table.sum(-1), torch.ones((), dtype=torch.float64))
    scm = build_scm("overlap", 3)
    assert not torch.allclose(scm.p_y_given_xu, default.p_y_given_xu)
    # the default SCM's equations at make()'s own knobs give make()'s tables (the builder is the same model)
    from benchmarks.latent_response import overlap_scm

    same = overlap_scm(3, kappa_confounder=3.0, kappa_class=1.5, confounding=0.9, class_offset_bins=1.0)
    for name in ("p_u", "p_x_given_u", "p_y_given_xu"):
        assert torch.allclose(getattr(same, name), getattr(default, name))
    described = describe_scm(scm, "overlap")
    assert described["knobs"] == SCMS["overlap"]
    # confounded, but less than the default (W1 0.144 per x there)
    assert 0.03 < described["w1_observational_to_interventional_mean"] < describe_scm(default, "default")[
        "w1_observational_to_interventional_mean"]
    data = make_dataset("shapes", "overlap", 16, 8, 0)
    assert data.custom_scm and torch.equal(data.scm.p_y_given_xu, scm.p_y_given_xu)


def test_overlap_scm_rows_go_under_their_own_keys_and_bad_names_are_refused(tmp_path, capsys):
    import pytest

    out = tmp_path / "q.json"
    result = main(["--quick", "--variants", "baseline", "--confirm", "", "--scm", "overlap", "--out", str(out)])
    part = result["explore_shapes_overlap"]
    assert result["explore"] is None and part["data"]["scm"] == "overlap" and part["scm"]["name"] == "overlap"
    row = part["variants"]["baseline"]
    assert row["w1_ratio_to_observational_answer"] == pytest.approx(
        row["w1_mean"]["w1_images_to_truth"] / row["w1_mean"]["w1_observational_to_truth"], abs=1e-4)
    assert result["targets"]["by_part"]["explore_shapes_overlap"]["variants"]["baseline"]["ratio"] == \
        row["w1_ratio_to_observational_answer"]
    assert "explore_shapes_overlap/baseline" in result["do_vs_conditional"]
    for flag, bad in (("--scm", "bogus"), ("--dataset", "cifar")):
        with pytest.raises(SystemExit):
            main(["--quick", "--variants", "", "--confirm", "", flag, bad, "--out", str(tmp_path / "x.json")])
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.endswith("known: default, overlap" if flag == "--scm" else "known: shapes, fashion_mnist")
