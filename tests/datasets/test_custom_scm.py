"""A custom SCM drives the datasets (issue 16, item 9): its draws, its truth, its cache keys; a mismatch is one line."""

import pytest
import torch

from cauvade_pyro.datasets import ConfoundedColourSCM, ConfoundedShapes
from cauvade_pyro.metrics import judge_cache_key


def three_class_scm() -> ConfoundedColourSCM:
    # U decides X entirely; Y depends on U only: P(y | do(x)) is the same for every x, P(y | x) is not
    p_u = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p_x = torch.eye(3, dtype=torch.float64)
    p_y = torch.zeros(3, 3, 6, dtype=torch.float64)
    for u in range(3):
        p_y[:, u, 2 * u] = 1.0
    return ConfoundedColourSCM(p_u, p_x, p_y)


def test_the_datasets_draw_from_a_custom_scm():
    scm = three_class_scm()
    data = ConfoundedShapes(num_train=400, num_test=10, scm=scm)
    assert data.scm is scm
    assert torch.equal(data.train["x"], data.train["u"]) and torch.equal(data.train["y"], 2 * data.train["u"])
    reference = data.sample_reference(1, 300, torch.Generator().manual_seed(0))
    assert set(reference["y"].tolist()) == {0, 2, 4}  # do(x = 1) cuts U → X: every u, hence every hue
    assert torch.allclose(data.scm.interventional_y()[1, [0, 2, 4]], scm.p_u)


def test_a_custom_scm_changes_the_cache_keys_and_the_default_keeps_them():
    default = ConfoundedShapes(num_train=5, num_test=5)
    assert "scm" not in default.generating_params
    custom = ConfoundedShapes(num_train=5, num_test=5, scm=three_class_scm())
    assert judge_cache_key(custom) != judge_cache_key(default)
    other = three_class_scm()
    other.p_u.copy_(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64))
    assert judge_cache_key(ConfoundedShapes(num_train=5, num_test=5, scm=other)) != judge_cache_key(custom)


def test_a_mismatched_or_wrong_scm_is_one_line():
    with pytest.raises(ValueError, match=r"scm: its tables p_u \(3,\), p_x_given_u \(3, 3\), p_y_given_xu "
                                         r"\(3, 3, 6\) give 3 classes, 6 hue bins.*num_hue_bins=8"):
        ConfoundedShapes(num_train=5, num_test=5, num_hue_bins=8, scm=three_class_scm())
    with pytest.raises(ValueError, match="scm: must be a ConfoundedColourSCM"):
        ConfoundedShapes(num_train=5, num_test=5, scm={"p_u": [1.0]})
