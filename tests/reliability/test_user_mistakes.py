"""A user's own diagram: every mistake in the table below is a one-line ValueError naming its cause and fix.

Three tiny user diagrams as a new user writes them from the README (an instrumental variable z -> x, a
mediator x -> m -> y, two confounders c1, c2), each with a 3x4x4 image decoded from (x, y). Every row is one
mistake and the regex its message must match; ``c_hint`` says whether the message may blame a network that
receives the confounder c (only when that is the cause). docs/diagram_mistakes.md shows the same table.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.nn.functional import one_hot

import cauvade_pyro.inference.train as train
from cauvade_pyro.datasets import ConfoundedColourSCM
from cauvade_pyro.inference import fit_diagram, intervene
from cauvade_pyro.models import check_data, confounder

K, NZ, NX, NY, C, P, N = 2, 2, 2, 3, 3, 4, 8
C_HINT = "network that receives the confounder c"


def _image(decoder, x, y, data, c=None):
    parts = [one_hot(x, NX), one_hot(y, NY)] + ([one_hot(c, K)] if c is not None else [])
    shape = torch.broadcast_shapes(*(part.shape[:-1] for part in parts))
    cond = torch.cat([part.expand(shape + part.shape[-1:]) for part in parts], -1).float()
    logits = decoder(cond).reshape(shape + (C, P, P))
    pyro.sample("image", dist.Bernoulli(logits=logits, validate_args=False).to_event(3), obs=data.get("image"))


def iv(plate="data", decoder_takes_c=False, observe_y=True, extra_plate=False):
    """Instrument z -> x -> y, the confounder c -> x, y; the image from (x, y)."""
    decoder = nn.Linear(NX + NY + (K if decoder_takes_c else 0), C * P * P)

    def model(data=None, num_samples=None):
        data = data or {}
        pyro.module("decoder", decoder)
        pi = pyro.param("pi", torch.zeros(K))
        x_logits = pyro.param("x_logits", torch.zeros(K, NZ, NX))
        y_logits = pyro.param("y_logits", torch.zeros(K, NX, NY))
        with pyro.plate(plate, num_samples or len(data["x"])):
            c = confounder("c", pi)
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(NZ)), obs=data.get("z"))
            x = pyro.sample("x", dist.Categorical(logits=x_logits[c, z]), obs=data.get("x"))
            y = pyro.sample("y", dist.Categorical(logits=y_logits[c, x]), obs=data.get("y") if observe_y else None)
            if extra_plate:
                with pyro.plate("pixels", 2):
                    pyro.sample("noise", dist.Normal(0.0, 1.0))
            _image(decoder, x, y, data, c if decoder_takes_c else None)

    return model


def mediator():
    """x -> m (real) -> y, the confounder c -> x, y; the image from (x, y)."""
    decoder = nn.Linear(NX + NY, C * P * P)

    def model(data=None, num_samples=None):
        data = data or {}
        pyro.module("decoder", decoder)
        pi = pyro.param("pi", torch.zeros(K))
        x_logits = pyro.param("x_logits", torch.zeros(K, NX))
        m_loc = pyro.param("m_loc", torch.zeros(NX))
        y_m = pyro.param("y_m", torch.zeros(NY))
        y_c = pyro.param("y_c", torch.zeros(K, NY))
        with pyro.plate("data", num_samples or len(data["x"])):
            c = confounder("c", pi)
            x = pyro.sample("x", dist.Categorical(logits=x_logits[c]), obs=data.get("x"))
            m = pyro.sample("m", dist.Normal(m_loc[x], 1.0), obs=data.get("m"))
            y = pyro.sample("y", dist.Categorical(logits=m[..., None] * y_m + y_c[c]), obs=data.get("y"))
            _image(decoder, x, y, data)

    return model


def two_confounders():
    """c1 -> x, y and c2 -> y; the image from (x, y)."""
    decoder = nn.Linear(NX + NY, C * P * P)

    def model(data=None, num_samples=None):
        data = data or {}
        pyro.module("decoder", decoder)
        pi1, pi2 = pyro.param("pi1", torch.zeros(K)), pyro.param("pi2", torch.zeros(K))
        x_logits = pyro.param("x_logits", torch.zeros(K, NX))
        y_logits = pyro.param("y_logits", torch.zeros(K, NX, NY))
        y_c2 = pyro.param("y_c2", torch.zeros(K, NY))
        with pyro.plate("data", num_samples or len(data["x"])):
            c1, c2 = confounder("c1", pi1), confounder("c2", pi2)
            x = pyro.sample("x", dist.Categorical(logits=x_logits[c1]), obs=data.get("x"))
            y = pyro.sample("y", dist.Categorical(logits=y_logits[c1, x] + y_c2[c2]), obs=data.get("y"))
            _image(decoder, x, y, data)

    return model


def broken_without_c():
    """A bug that has nothing to do with c: the decoder input has the wrong width."""
    decoder = nn.Linear(5, C * P * P)

    def model(data=None, num_samples=None):
        data = data or {}
        pyro.module("decoder", decoder)
        with pyro.plate("data", num_samples or len(data["x"])):
            c = confounder("c", torch.zeros(K))
            x = pyro.sample("x", dist.Categorical(logits=torch.zeros(K, NX)[c]), obs=data.get("x"))
            logits = decoder(one_hot(x, NX).float()).reshape(x.shape + (C, P, P))  # 2 inputs into a 5-input layer
            pyro.sample("image", dist.Bernoulli(logits=logits, validate_args=False).to_event(3), obs=data.get("image"))

    return model


def breaks_under_enumeration():
    """torch.cat does not broadcast: fine on the data, broken once c carries its enumeration dimension."""

    def model(data=None, num_samples=None):
        data = data or {}
        with pyro.plate("data", num_samples or len(data["x"])):
            c = confounder("c", torch.zeros(K))
            x = pyro.sample("x", dist.Categorical(logits=torch.zeros(K, NX)[c]), obs=data.get("x"))
            cond = torch.cat([one_hot(x, NX), one_hot(c, K)], -1).float()
            pyro.sample("image", dist.Bernoulli(logits=cond.sum(-1)).to_event(0), obs=data.get("x").float())

    return model


def no_confounder():
    def model(data=None, num_samples=None):
        data = data or {}
        with pyro.plate("data", num_samples or len(data["x"])):
            c = pyro.sample("c", dist.Categorical(logits=torch.zeros(K)))
            pyro.sample("x", dist.Categorical(logits=torch.zeros(K, NX)[c]), obs=data.get("x"))

    return model


def data(keys=("x", "y", "image"), n=N, **changes):
    g = torch.Generator().manual_seed(0)
    full = {
        "z": torch.randint(0, NZ, (n,), generator=g),
        "x": torch.randint(0, NX, (n,), generator=g),
        "m": torch.randn(n, generator=g),
        "y": torch.randint(0, NY, (n,), generator=g),
        "image": torch.randint(0, 256, (n, C, P, P), generator=g, dtype=torch.uint8),
    }
    out = {key: full[key] for key in keys}
    for key, value in changes.items():
        if value is None:
            out.pop(key)
        else:
            out[key] = value(out) if callable(value) else value
    return out


IV_KEYS = ("z", "x", "y", "image")
MEDIATOR_KEYS = ("x", "m", "y", "image")

# (id, model factory, data, fit kwargs, message regex, c_hint)
FIT_MISTAKES = [
    ("float-labels", iv, lambda: data(IV_KEYS, x=lambda d: d["x"].float()),
     r"^data\['x'\] holds torch.float32 values but site 'x' is categorical \(0\.\.1\): pass integer class indices, "
     r"e\.g\. data\['x'\]\.long\(\)$", False),
    ("bool-labels", two_confounders, lambda: data(x=lambda d: d["x"].bool()),
     r"^data\['x'\] holds torch.bool values but site 'x' is categorical", False),
    ("label-out-of-range", mediator, lambda: data(MEDIATOR_KEYS, x=lambda d: d["x"] + 4),
     r"^data\['x'\] holds labels 4\.\.5 but site 'x' takes 0\.\.1: relabel", False),
    ("missing-x", iv, lambda: data(IV_KEYS, x=None),
     r"^the data has no key 'x' for the diagram's site 'x' \(a discrete site.*: add data\['x'\]$", False),
    ("missing-y", two_confounders, lambda: data(y=None),
     r"^the data has no key 'y' for the diagram's site 'y'.*: add data\['y'\]$", False),
    ("missing-instrument", iv, lambda: data(("x", "y", "image")),
     r"^the data has no key 'z' for the diagram's site 'z'", False),
    ("image-key-typo", mediator, lambda: data(MEDIATOR_KEYS, img=lambda d: d["image"], image=None),
     r"^the data has no key 'image' for the diagram's site 'image' \(an image site.*\); data\['img'\] is unused: "
     r"rename data\['img'\] to data\['image'\]$", False),
    ("plate-not-data", lambda: iv(plate="batch"), lambda: data(IV_KEYS),
     r"^the diagram has no plate named 'data'; its sites sit in plate 'batch' \(a plate, not a site\): name the "
     r"per-datapoint plate pyro\.plate\('data', n\)", False),
    ("nested-plate", lambda: iv(extra_plate=True), lambda: data(IV_KEYS),
     r"^site 'noise' sits in 2 nested plates \['data', 'pixels'\] but the fit allows max_plate_nesting=1", False),
    ("y-one-shorter", iv, lambda: data(IV_KEYS, y=lambda d: d["y"][:-1]),
     rf"^data\['y'\] has {N - 1} rows but data\['z'\] has {N}: every value needs one row per datapoint", False),
    ("list-not-tensor", mediator, lambda: data(MEDIATOR_KEYS, m=lambda d: d["m"].tolist()),
     r"^data\['m'\] is a list: pass a torch\.Tensor", False),
    ("nan-in-real-site", mediator, lambda: data(MEDIATOR_KEYS, m=lambda d: d["m"].index_fill(0, torch.tensor([2]), math.nan)),
     r"^data\['m'\] holds NaN or infinite values", False),
    ("y-not-observed", lambda: iv(observe_y=False), lambda: data(IV_KEYS),
     r"^site 'y' is sampled, not observed, although data\['y'\] is given: pass obs=data\.get\('y'\)", False),
    ("channels-last", iv, lambda: data(IV_KEYS, image=lambda d: d["image"].permute(0, 2, 3, 1).contiguous()),
     r"^data\['image'\] has shape \(8, 4, 4, 3\), channels last; site 'image' takes \(3, 4, 4\), channels first: "
     r"pass data\['image'\]\.permute\(0, 3, 1, 2\)$", False),
    ("image-size", two_confounders, lambda: data(image=lambda d: torch.zeros(N, C, 6, 6, dtype=torch.uint8)),
     r"^data\['image'\] holds 3x6x6 images but the diagram's site 'image' makes 3x4x4 \(its decoder's output\): "
     r"resize the images or build the decoder for 6x6$", False),
    ("int64-images", iv, lambda: data(IV_KEYS, image=lambda d: d["image"].long()),
     r"^data\['image'\] holds torch\.int64 images: store images as torch\.uint8 \(0\.\.255\) or as floats in \[0, 1\]",
     False),
    ("float-0-255-images", mediator, lambda: data(MEDIATOR_KEYS, image=lambda d: d["image"].float()),
     r"^data\['image'\] holds float pixels in \[\d+, 2\d\d\]: images must be uint8 \(0\.\.255\) or floats in \[0, 1\]; "
     r"divide by 255", False),
    ("no-steps-nor-epochs", iv, lambda: data(IV_KEYS),
     r"^fit_diagram: give the length of the fit, steps=\.\.\. \(SVI steps\) or epochs=\.\.\.", False),
    ("no-confounder", no_confounder, lambda: data(("x",)),
     r"^the diagram has no confounder site \(its sample sites are \['c', 'x'\]\)", False),
    ("bug-unrelated-to-c", broken_without_c, lambda: data(("x", "image")),
     r"^the diagram fails on the first rows of the data \(RuntimeError: mat1 and mat2 shapes cannot be multiplied.*\), "
     r"traced without enumerating the confounder, so c is not the cause", False),
    ("decoder-takes-c", lambda: iv(decoder_takes_c=True), lambda: data(IV_KEYS),
     r"^site 'image' \(an image, event shape \(3, 4, 4\)\) depends on the confounder 'c': the decoder must not take 'c'",
     False),
    ("breaks-under-enumeration", breaks_under_enumeration, lambda: data(("x",)),
     r"^the diagram fails when its confounder is enumerated \(RuntimeError: .*\); a common cause is a " + C_HINT, True),
]


@pytest.fixture()
def no_training(monkeypatch):
    """Every mistake must be refused before the first SVI step."""

    def refuse(*args, **kwargs):
        raise AssertionError("fit_svi was reached: the mistake was not caught before training")

    monkeypatch.setattr(train, "fit_svi", refuse)


@pytest.mark.parametrize("make_model, make_data, pattern, c_hint", [row[1:] for row in FIT_MISTAKES],
                         ids=[row[0] for row in FIT_MISTAKES])
def test_fit_mistake_is_named_before_training(no_training, make_model, make_data, pattern, c_hint):
    length = {} if "give the length" in pattern else {"steps": 2}
    with pytest.raises(ValueError) as caught:
        fit_diagram(make_model(), make_data(), batch_size=None, progress=False, **length)
    message = str(caught.value)
    assert "\n" not in message, message
    assert (C_HINT in message) == c_hint, message
    assert re.search(pattern, message), f"{message!r} does not match {pattern!r}"


def test_unused_data_key_is_a_warning_naming_it(no_training):
    """Refusing would be wrong (the built-in data sets carry the true confounder u): warn and ignore it."""
    with pytest.warns(UserWarning, match=r"data keys \['u'\] are not read by the diagram and are ignored"):
        with pytest.raises(AssertionError, match="fit_svi was reached"):
            fit_diagram(iv(), data(IV_KEYS, u=lambda d: torch.zeros(N, dtype=torch.long)), steps=1, progress=False)


def test_numpy_arrays_are_converted():
    arrays = {key: value.numpy() for key, value in data(MEDIATOR_KEYS, m=lambda d: d["m"].double()).items()}
    checked = check_data(mediator(), arrays)
    assert all(isinstance(value, torch.Tensor) for value in checked.values())
    assert checked["m"].dtype == torch.float32 and checked["x"].dtype == torch.int64 and checked["image"].dtype == torch.uint8
    assert torch.equal(checked["x"], data(MEDIATOR_KEYS)["x"])


def test_checks_leave_param_store_and_rng_alone():
    model, batch = iv(), data(IV_KEYS)
    pyro.clear_param_store()
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    check_data(model, batch)
    assert list(pyro.get_param_store().keys()) == []
    assert torch.equal(torch.rand(1), expected)


# (id, interventions, message regex) for intervene on the IV diagram after a fit
INTERVENE_MISTAKES = [
    ("x=1.5", {"x": 1.5}, r"^intervene: value 1\.5 for the discrete site 'x' is not a whole number \(it would be "
                          r"truncated\); pass one of the integers 0\.\.1$"),
    ("x=2.9", {"x": 2.9}, r"^intervene: value 2\.9 for the discrete site 'x' is not a whole number"),
    ("x=-0.5", {"x": -0.5}, r"^intervene: value -0\.5 for the discrete site 'x' is not a whole number"),
    ("x=True", {"x": True}, r"^intervene: value True for site 'x' is a bool; pass the class index as an int"),
    ("x=nan", {"x": math.nan}, r"^intervene: value nan for site 'x' is not a finite real number"),
    ("x='1'", {"x": "1"}, r"^intervene: value '1' for site 'x' is a string; pass a number or a tensor"),
    ("x=5", {"x": 5}, r"^intervene: value for site 'x' is outside the site's support"),
    ("do(c)", {"c": 1}, r"^intervene: site 'c' is the diagram's confounder, a learned cluster label .*; intervene on "
                        r"an attribute such as 'x'$"),
    ("do(image)", {"image": torch.zeros(C, P, P)}, r"^intervene: site 'image' is an image \(event shape \(3, 4, 4\)\) site"),
    ("unknown-site", {"shape": 1}, r"^intervene: the model has no sample site 'shape'; its sites are \['c', 'image', "
                                   r"'x', 'y', 'z'\]$"),
]


@pytest.fixture(scope="module")
def fitted_iv():
    pyro.clear_param_store()
    model = iv()
    fit_diagram(model, data(IV_KEYS), steps=1, batch_size=None, progress=False)
    return model, {name: value.detach().clone() for name, value in pyro.get_param_store().items()}


def _restore(params):
    pyro.clear_param_store()
    for name, value in params.items():
        pyro.param(name, value.clone())


@pytest.mark.parametrize("interventions, pattern", [row[1:] for row in INTERVENE_MISTAKES],
                         ids=[row[0] for row in INTERVENE_MISTAKES])
def test_intervene_mistake_is_named(fitted_iv, interventions, pattern):
    model, params = fitted_iv
    _restore(params)
    with pytest.raises(ValueError, match=pattern) as caught:
        intervene(model, interventions, num_samples=4)
    assert "\n" not in str(caught.value)


def test_intervene_refuses_params_that_were_never_fitted(fitted_iv):
    model, params = fitted_iv
    pyro.clear_param_store()
    with pytest.raises(ValueError, match=r"^intervene: the model's params \['pi', 'x_logits', 'y_logits'\] are not in "
                                         r"Pyro's param store, so they would be drawn from their initial values"):
        intervene(model, {"x": 1}, num_samples=4)
    assert list(pyro.get_param_store().keys()) == [], "a refused call leaves the param store as it was"
    _restore(params)
    draws = intervene(model, {"x": 1.0}, num_samples=4)  # fitted: accepted, and a whole float is fine
    assert draws["x"].tolist() == [1, 1, 1, 1]


def test_intervene_accepts_module_parameters_with_an_empty_store():
    """Parameters registered with pyro.module carry their own fitted values."""
    layer = nn.Linear(1, NY)

    def model(data=None, num_samples=None):
        pyro.module("layer", layer)
        with pyro.plate("data", num_samples):
            c = confounder("c", torch.zeros(K))
            x = pyro.sample("x", dist.Categorical(logits=torch.zeros(K, NX)[c]))
            pyro.sample("y", dist.Categorical(logits=layer(x[..., None].float())))

    pyro.clear_param_store()
    assert intervene(model, {"x": 0}, num_samples=3)["x"].tolist() == [0, 0, 0]


SCM = ConfoundedColourSCM.make(num_classes=2, num_hue_bins=4, num_confounders=3)
SCM_MISTAKES = [
    ("unnormalised-p_u", lambda: (SCM.p_u * 3, SCM.p_x_given_u, SCM.p_y_given_xu),
     r"^p_u: P\(U\) must sum to 1 \(a distribution\), but sums range over \[3, 3\]; normalise it"),
    ("unnormalised-p_x", lambda: (SCM.p_u, SCM.p_x_given_u + 0.1, SCM.p_y_given_xu),
     r"^p_x_given_u: each row P\(X \| u\) must sum to 1"),
    ("unnormalised-p_y", lambda: (SCM.p_u, SCM.p_x_given_u, SCM.p_y_given_xu.exp()),
     r"^p_y_given_xu: each row P\(Y \| x, u\) must sum to 1"),
    ("negative", lambda: (SCM.p_u, SCM.p_x_given_u * torch.tensor([2.0, -1.0], dtype=torch.float64), SCM.p_y_given_xu),
     r"^p_x_given_u: entries must be finite and >= 0"),
    ("p_y-laid-out-u-x-y", lambda: (SCM.p_u, SCM.p_x_given_u, SCM.p_y_given_xu.transpose(0, 1)),
     r"^p_y_given_xu: expected shape \(NX, M, NY\) = \(2, 3, NY\), indexed \[x, u, y\], got \(3, 2, 4\) \(laid out "
     r"\[u, x, y\]: pass p_y_given_xu\.transpose\(0, 1\)\)$"),
    ("p_x-rows-vs-p_u", lambda: (SCM.p_u[:2] / SCM.p_u[:2].sum(), SCM.p_x_given_u, SCM.p_y_given_xu),
     r"^p_x_given_u: has 3 rows \(one per u\), but p_u has 2 confounder values$"),
]


@pytest.mark.parametrize("make_tables, pattern", [row[1:] for row in SCM_MISTAKES], ids=[row[0] for row in SCM_MISTAKES])
def test_scm_table_mistake_is_named_on_construction(make_tables, pattern):
    with pytest.raises(ValueError, match=pattern):
        ConfoundedColourSCM(*make_tables())


@pytest.mark.parametrize("make_model, keys", [(iv, IV_KEYS), (mediator, MEDIATOR_KEYS), (two_confounders, ("x", "y", "image"))],
                         ids=["iv", "mediator", "two-confounders"])
def test_a_normal_small_fit_prints_no_warning(make_model, keys):
    model = make_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, losses = fit_diagram(model, data(keys), steps=2, batch_size=4, progress=False)
        draws = intervene(model, {"x": 1}, num_samples=4)
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    assert draws["image"].shape == (4, C, P, P)
    assert [str(w.message) for w in caught] == []


def test_fit_directed_member_prints_no_warning():
    from cauvade_pyro.inference import cell_counts, fit_directed_member, mean_nll
    from cauvade_pyro.models import AttributeMixture

    sample = SCM.sample(200, torch.Generator().manual_seed(0))
    counts = cell_counts(sample["x"], sample["y"], 2, 4)
    mixture = AttributeMixture(K, 2, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        best = float(mean_nll(mixture, counts).detach())
        result = fit_directed_member(mixture, counts, (0, 1), 1, best_nll=best, steps=5)
    assert 0.0 <= result["p_do"] <= 1.0
    assert [str(w.message) for w in caught] == []


def test_numpy_arrays_reach_a_fit():
    arrays = {key: value.numpy() for key, value in data(IV_KEYS).items()}
    _, losses = fit_diagram(iv(), arrays, steps=1, batch_size=None, progress=False)
    assert len(losses) == 1 and np.isfinite(losses[0])
