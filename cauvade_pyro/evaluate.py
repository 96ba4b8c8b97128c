"""Evaluation of one family member against the dataset's ground-truth SCM (what goes into ``metrics.json``).

Per value x of the treatment, with the true P(y | do(x)) = Σ_u P(u) P(y | x, u):

- the model's P(hue bin | do(x)), from the sampled attribute y of ``intervene(model, {"x": x})`` and as read
  back from the generated images by an independent judge (never used in a training loss);
- the observational P(hue bin | x); W1 on the hue circle (POT) from each to the truth;
- the sharp bow-graph bounds P(x, y) ≤ P(y | do(x)) ≤ P(x, y) + 1 − P(x).

Effectiveness: held-out images are encoded to ε and decoded with x (or y) changed; the judge reads whether
the shape (or hue) follows. do(x) samples are judged for their shape. Their within-bin hue spread is read from
the pixels against as many reference images (:mod:`cauvade_pyro.metrics.hue`; bin widths, a point mass at the
bin centre scores 0.125). Where a class groups several base labels (Fashion-MNIST or MNIST with a binary X) the
sub-class mix of the do(x) images is compared with the reference's by a sub-class reader trained on real images
(:mod:`cauvade_pyro.metrics.subclass`; TV distance, never in a loss). Images are the means of the image
likelihood at sampled (y, ε), not pixel draws.
"""

from __future__ import annotations

from typing import Any

import torch

from cauvade_pyro.inference import intervene, sample_conditional
from cauvade_pyro.inference.family import heldout_image_elbo
from cauvade_pyro.inference.train import to_float_images
from cauvade_pyro.metrics import bow_graph_bounds, circular_w1, hue_histogram
from cauvade_pyro.metrics.hue import within_bin_hue_w1
from cauvade_pyro.metrics.subclass import SubclassReader, has_subclasses, subclass_mix, train_subclass_reader


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


def _rounded(values: torch.Tensor) -> list:
    return [round(float(v), 5) for v in values.flatten()] if values.dim() <= 1 else [_rounded(v) for v in values]


@torch.no_grad()
def judge_reads_real(judge, data: dict, max_images: int = 1000) -> dict:
    """The shares of the first ``max_images`` real images of ``data`` whose x (``shape``) and y (``hue``) ``judge``
    reads right: the most a judge that misreads real images can vouch for in a flip."""
    batch = to_float_images({k: v[:max_images] for k, v in data.items() if k in ("x", "y", "image")})
    shape, hue = judge.predict(batch["image"])
    return {"shape": round(float((shape.cpu() == batch["x"].cpu()).float().mean()), 4),
            "hue": round(float((hue.cpu() == batch["y"].cpu()).float().mean()), 4)}


@torch.no_grad()
def effectiveness(image_model, judge, data: dict, max_images: int = 1000) -> dict:
    """Share of decoded held-out codes whose shape (hue) follows a changed x (y), as read by ``judge``.

    An image model without a y condition (``num_y == 1``: the cVAE of p(image | x)) is decoded with y = 0 and
    gets the x flip and the shape of its reconstructions only. ``judge_reads_real_shape`` is the share of the
    real images themselves whose x the judge reads right: what a judge that misreads real images can vouch for.
    """
    batch = to_float_images({k: v[:max_images] for k, v in data.items() if k in ("x", "y", "image")})
    x, y = batch["x"], batch["y"]
    share = lambda a, b: round(float((a.cpu() == b.cpu()).float().mean()), 4)  # noqa: E731
    real = {"judge_reads_real_shape": judge_reads_real(judge, batch, max_images)["shape"]}  # batch: already float
    new_x = (x + torch.randint_like(x, 1, image_model.num_x)) % image_model.num_x
    if image_model.num_y < 2:
        zeros = torch.zeros_like(y)
        eps, _ = image_model.encode(batch["image"], x, zeros)
        shape_after_x, _ = judge.predict(image_model.decode(new_x, zeros, eps))
        shape_recon, _ = judge.predict(image_model.decode(x, zeros, eps))
        return {"x_flip_follows": share(shape_after_x, new_x), "reconstruction_shape": share(shape_recon, x), **real}
    eps, _ = image_model.encode(batch["image"], x, y)
    new_y = (y + torch.randint_like(y, 1, image_model.num_y)) % image_model.num_y
    shape_after_x, hue_after_x = judge.predict(image_model.decode(new_x, y, eps))
    shape_after_y, hue_after_y = judge.predict(image_model.decode(x, new_y, eps))
    shape_recon, hue_recon = judge.predict(image_model.decode(x, y, eps))
    return {
        "x_flip_follows": share(shape_after_x, new_x),
        "x_flip_keeps_hue": share(hue_after_x, y),
        "y_flip_follows": share(hue_after_y, new_y),
        "y_flip_keeps_shape": share(shape_after_y, x),
        "reconstruction_shape": share(shape_recon, x),
        "reconstruction_hue": share(hue_recon, y),
        **real,
    }


def default_subclass_reader(dataset, judge):
    """The sub-class reader for ``dataset`` (None when its classes have no sub-classes), on the judge's device and
    cached beside the judge (``judge.cache_dir``, set by :func:`~cauvade_pyro.metrics.train_judge`)."""
    if not has_subclasses(dataset):
        return None
    return train_subclass_reader(dataset, device=next(judge.parameters()).device,
                                 cache_dir=getattr(judge, "cache_dir", None))


@torch.no_grad()
def read_images(images: torch.Tensor, x: int, dataset: Any, judge: Any, reference_images: torch.Tensor, *,
                subclass_reader: SubclassReader | None = None,
                reference_histogram: torch.Tensor | None = None) -> dict[str, Any]:
    """What the judge and the pixels say about generated images of class x, against reference images of class x.

    ``images``: float (n, 3, H, W) in [0, 1], meant as draws of do(X = x) (any device); ``reference_images``: images
    of the unconfounded reference for do(X = x) (``dataset.sample_reference``; uint8 or float in [0, 1]).
    ``judge.predict`` reads each image's (class, hue bin); ``dataset`` gives the SCM and the number of hue bins.
    Returns, unrounded:

    - ``judge_class``, ``judge_hue``: the judge's reads (LongTensors on the CPU);
    - ``p_do_from_images``: the histogram of the judge's hue bins (float64, shape (num_hue_bins,));
    - ``w1_images_to_truth``, ``w1_images_to_observational``: W1 on the hue circle from it to the true
      P(y | do(x)) and to the observational P(y | x);
    - ``class_accuracy``: share of the images the judge reads as class x;
    - ``within_bin_hue_w1``: W1 of the within-bin hue positions against the reference's, read from the pixels
      without the judge (bin widths; NaN when no image has a hue; :func:`~cauvade_pyro.metrics.hue.within_bin_hue_w1`)
      and ``hue_unreadable``, the share of the images with no hue;
    - ``subclass``: the sub-class mix read by ``subclass_reader`` against the reference's
      (:func:`~cauvade_pyro.metrics.subclass.subclass_mix`: ``tv``, ``generated``, ``reference``, ``labels``;
      from ``reference_histogram`` when given, else from ``reference_images``); None without a reader.
    """
    scm, num_y = dataset.scm, dataset.num_hue_bins
    class_pred, hue_pred = judge.predict(images)
    class_pred, hue_pred = class_pred.cpu(), hue_pred.cpu()
    p_images = hue_histogram(hue_pred, num_y)
    positions = scm.bin_centres()
    truth, observational = scm.interventional_y().float(), scm.observational_y_given_x().float()
    images = images.cpu()
    spread = within_bin_hue_w1(images, reference_images, num_y)
    mix = None
    if subclass_reader is not None:
        mix = subclass_mix(subclass_reader, images, reference_images, x, reference_histogram=reference_histogram)
    return {
        "judge_class": class_pred,
        "judge_hue": hue_pred,
        "p_do_from_images": p_images,
        "w1_images_to_truth": circular_w1(p_images, truth[x], positions),
        "w1_images_to_observational": circular_w1(p_images, observational[x], positions),
        "class_accuracy": float((class_pred == x).float().mean()),
        "within_bin_hue_w1": spread["w1"],
        "hue_unreadable": spread["unreadable_generated"],
        "subclass": mix,
    }


@torch.no_grad()
def interventional_images(model, dataset, judge, num_samples: int, grid_samples: int,
                          subclass_reader="auto") -> tuple[list[dict], dict]:
    """Per x: the judge's reading of do(x) images against the truth, and the sample-grid panels.

    Returns one row per x (hue distribution read from the images, observational answer, truth, bounds, W1s,
    shape accuracy, within-bin hue W1, sub-class mix; the read-outs of :func:`read_images` against as many
    reference images, drawn with seed 10 000 + x, rounded to 5 decimals, the accuracy to 4) and, per x, the
    observational, do(x) and reference images. Each row also carries the sampled ``y`` of the do(x) draws under ``"_draws"`` for diagrams that
    label y. ``subclass_tv`` is the TV distance between the sub-class mix of the do(x) images and of as many
    reference images, both read by ``subclass_reader`` (:mod:`cauvade_pyro.metrics.subclass`; ``"auto"``:
    :func:`default_subclass_reader`); None for datasets without sub-classes.
    """
    scm = dataset.scm
    reader = default_subclass_reader(dataset, judge) if subclass_reader == "auto" else subclass_reader
    positions = scm.bin_centres()
    truth, observational = scm.interventional_y().float(), scm.observational_y_given_x().float()
    lower, upper = bow_graph_bounds(scm.joint_xy())
    rows, panels = [], {}
    for x in range(dataset.num_classes):
        draws = intervene(model.model, {"x": x}, num_samples)
        # the judge's reading, the within-bin hue spread and the sub-class mix, against as many reference images
        spread_reference = dataset.sample_reference(x, num_samples, torch.Generator().manual_seed(10_000 + x))
        read = read_images(draws["image_mean"], x, dataset, judge, spread_reference["image"], subclass_reader=reader)
        within_bin, mix = read["within_bin_hue_w1"], read["subclass"]
        floor = within_bin_floor(dataset, x, spread_reference["image"])
        rows.append({
            "x": x,
            "class_name": dataset.class_names[x],
            "p_do_from_images": _rounded(read["p_do_from_images"]),
            "p_observational": _rounded(observational[x]),
            "p_do_truth": _rounded(truth[x]),
            "bounds_lower": _rounded(lower[x]),
            "bounds_upper": _rounded(upper[x]),
            "w1_images_to_truth": round(read["w1_images_to_truth"], 5),
            "w1_observational_to_truth": round(circular_w1(observational[x], truth[x], positions), 5),
            "do_x_shape_accuracy": round(read["class_accuracy"], 4),
            "within_bin_hue_w1": round(within_bin, 5) if within_bin == within_bin else None,  # NaN: no hue read
            "within_bin_hue_w1_reference_floor": round(floor, 5) if floor == floor else None,
            "subclass_tv": None if mix is None else round(mix["tv"], 5),
            "subclass_mix": None if mix is None else {k: mix[k] for k in ("labels", "generated", "reference")},
            "_draws": draws,
        })
        conditional = sample_conditional(model.model, {"x": x}, grid_samples)
        reference = dataset.sample_reference(x, grid_samples, torch.Generator().manual_seed(x))
        panels[x] = {
            "observational": conditional["image_mean"].cpu(),
            "do": draws["image_mean"][:grid_samples].cpu(),
            "reference": reference["image"].float().div(255),
        }
    return rows, panels


def within_bin_floor(dataset: Any, x: int, reference_images: torch.Tensor) -> float:
    """The within-bin hue W1 that a perfect generator of do(X = x) would score against ``reference_images``.

    A second, independent reference set of the same size (seed 20 000 + x; the test reference uses 10 000 + x)
    read against the first: the W1 between two finite samples of one law is not 0, and at 1000 images per x,
    split over the hue bins, it is about 0.02 bin widths. A generated set's ``within_bin_hue_w1`` is read beside
    it, as an FID is read beside its reference-vs-reference floor. NaN when neither set has a hue.

    >>> from cauvade_pyro.datasets import ConfoundedShapes
    >>> data = ConfoundedShapes(num_train=10, num_test=10, seed=0)
    >>> reference = data.sample_reference(0, 1000, torch.Generator().manual_seed(10_000))["image"]
    >>> 0.0 < within_bin_floor(data, 0, reference) < 0.05
    True
    """
    second = dataset.sample_reference(x, len(reference_images), torch.Generator().manual_seed(20_000 + x))
    return within_bin_hue_w1(second["image"], reference_images, dataset.num_hue_bins)["w1"]


class ReferenceEvaluator:
    """Per-x FID (validation and test references), hue read-outs, W1 and diversity of generated do(x) images.

    The quality benchmark's scorer (``benchmarks/quality.py``). The FIDs (against ``feature_net``, a
    :class:`~cauvade_pyro.metrics.ReferenceFID` per set) and the feature-space diversity are added here; the
    judge's hue histogram, its W1s, the class accuracy, the within-bin hue W1 and the sub-class mix are the CLI's
    read-outs, :func:`read_images` against the test reference (the same images as the CLI's: seed 10 000 + x),
    under the key names ``do_class_accuracy``, ``hue_unreadable``, ``subclass_tv``, ``subclass_generated``.

    Three independent reference sets per x: *validation* (the best member is chosen on it), *test* (every
    reported FID is against it) and a second test-sized set for the reference-vs-reference floor. Two more per x
    are drawn *observationally* (Y ~ P(Y | x), ``dataset.sample_conditional``): what a model of P(image | x)
    should reproduce, so the observational end and the cVAE are also compared there, before causality enters.
    """

    def __init__(self, dataset, judge, feature_net, num_samples: int, subclass_reader=None):
        from cauvade_pyro.metrics import ReferenceFID
        from cauvade_pyro.metrics.subclass import total_variation

        self.dataset, self.judge, self.features, self.n = dataset, judge, feature_net, num_samples
        self.subclass_reader = subclass_reader
        # per x: the sub-class mix the reader reads off the test reference, the reader's accuracy on it (its true
        # base labels are known), and the TV between the test and the floor reference sets (sampling noise)
        self.subclass_reference, self.subclass_reader_accuracy, self.subclass_floor = {}, [], []
        self.scm = dataset.scm
        self.positions = self.scm.bin_centres()
        self.truth = self.scm.interventional_y().float()
        self.observational = self.scm.observational_y_given_x().float()
        self.lower, self.upper = bow_graph_bounds(self.scm.joint_xy())
        self.reference, self.validation_fid, self.test_fid, self.fid_floor = {}, {}, {}, []
        self.observational_fid, self.observational_fid_floor = {}, []
        self.within_bin_floor, self.observational_data_fid = [], []
        for x in range(dataset.num_classes):
            draws = {name: dataset.sample_reference(x, num_samples, torch.Generator().manual_seed(offset + x))
                     for name, offset in (("test", 10_000), ("floor", 20_000), ("validation", 30_000))}
            sets = {name: draw["image"].float().div(255) for name, draw in draws.items()}
            self.reference[x] = sets["test"]
            if subclass_reader is not None:
                reads = subclass_reader.read(sets["test"], x)
                truth = torch.tensor([subclass_reader.groups[x].index(int(label)) for label in draws["test"]["label"]])
                self.subclass_reader_accuracy.append(float((reads == truth).float().mean()))
                self.subclass_reference[x] = subclass_reader.histogram(sets["test"], x)
                self.subclass_floor.append(total_variation(subclass_reader.histogram(sets["floor"], x),
                                                           self.subclass_reference[x]))
            # the reference's features are computed once here, not once per model compared
            self.test_fid[x] = ReferenceFID(feature_net, sets["test"])
            self.validation_fid[x] = ReferenceFID(feature_net, sets["validation"])
            # Two independent reference sets of the same size: the FID a perfect generator would get.
            self.fid_floor.append(self.test_fid[x].distance(sets["floor"]))
            # the same two sets, read for their within-bin hue: the sampling floor of that W1 at this size
            self.within_bin_floor.append(within_bin_floor(dataset, x, sets["test"]))
            conditional = [dataset.sample_conditional(x, num_samples, torch.Generator().manual_seed(offset + x))
                           ["image"].float().div(255) for offset in (40_000, 50_000)]
            self.observational_fid[x] = ReferenceFID(feature_net, conditional[0])
            self.observational_fid_floor.append(self.observational_fid[x].distance(conditional[1]))
            # real observational images against the unconfounded test reference: what a perfect model of
            # P(image | x), the question the observational end and the cVAE answer, scores there
            self.observational_data_fid.append(self.test_fid[x].distance(conditional[1]))

    def images(self, x: int, images, sampled_y=None) -> dict:
        """One row of per-x read-outs of generated images of class x: the FIDs against the test, validation and
        observational references and the feature-space diversity here; the judge's hue histogram, its W1s, the
        class accuracy, the within-bin hue W1 and the sub-class mix from :func:`read_images`
        against the test reference (the sub-class mix against its precomputed histogram)."""
        from cauvade_pyro.metrics import diversity

        read = read_images(images, x, self.dataset, self.judge, self.reference[x],
                           subclass_reader=self.subclass_reader, reference_histogram=self.subclass_reference.get(x))
        hue_pred, mix = read["judge_hue"], read["subclass"]
        with torch.no_grad():
            feats = self.features(images.to(next(self.features.parameters()).device))
        row = {
            "fid": self.test_fid[x].distance(images),
            "fid_validation": self.validation_fid[x].distance(images),
            "fid_observational": self.observational_fid[x].distance(images),
            "p_do_from_images": _rounded(read["p_do_from_images"]),
            "w1_images_to_truth": read["w1_images_to_truth"],
            "w1_images_to_observational": read["w1_images_to_observational"],
            "do_class_accuracy": read["class_accuracy"],
            "within_bin_hue_w1": read["within_bin_hue_w1"],
            "hue_unreadable": read["hue_unreadable"],
            "subclass_tv": None if mix is None else mix["tv"],
            "subclass_generated": None if mix is None else mix["generated"],
            **diversity(hue_pred, self.dataset.num_hue_bins, feats),
        }
        if sampled_y is not None:
            p_sampled = hue_histogram(sampled_y.cpu(), self.dataset.num_hue_bins)
            row["w1_sampled_to_truth"] = circular_w1(p_sampled, self.truth[x], self.positions)
            # the hue each do(x) image was asked for (its sampled y) against the hue the judge reads off it
            row["do_hue_accuracy"] = float((hue_pred == sampled_y.cpu()).float().mean())
        return row


def chance_warnings(effect: dict, num_x: int, num_y: int, margin: float = 0.15) -> list[str]:
    """One line per flip whose share followed lies within ``margin`` of chance (1/|X| for x, 1/|Y| for y).

    A fit whose decoder ignores x or y (e.g. an image model that draws all-black images) still finishes; this
    says so in ``metrics.json`` and in the printed summary instead.

    >>> chance_warnings({"x_flip_follows": 0.34, "y_flip_follows": 0.95}, 3, 6)
    ['effectiveness x_flip_follows 0.34 is near chance (0.33): the decoder ignores x']
    """
    lines = []
    for key, levels, name in (("x_flip_follows", num_x, "x"), ("y_flip_follows", num_y, "y")):
        if key in effect and effect[key] < 1.0 / levels + margin:
            lines.append(f"effectiveness {key} {effect[key]:.2f} is near chance ({1.0 / levels:.2f}): "
                         f"the decoder ignores {name}")
    return lines


def _means(rows: list[dict], keys) -> dict:
    """Mean over the rows of each key, over the rows that have a value (None where none has)."""
    out = {}
    for key in keys:
        values = [row[key] for row in rows if row.get(key) is not None]
        out[key] = round(sum(values) / len(values), 5) if values else None
    return out


@torch.no_grad()
def evaluate_confounded_attributes(model, dataset, judge, num_samples: int, grid_samples: int) -> tuple[dict, dict]:
    """Metrics of a confounded-attributes member, and the image panels for the sample grids."""
    attributes, image_model, scm = model.attributes, model.image_model, dataset.scm
    positions, truth = scm.bin_centres(), scm.interventional_y().float()
    model_do = attributes.interventional_y().cpu()
    per_x, panels = interventional_images(model, dataset, judge, num_samples, grid_samples)
    for row in per_x:
        x, draws = row["x"], row.pop("_draws")
        p_sampled = hue_histogram(draws["y"].cpu(), dataset.num_hue_bins)
        row.update({
            "p_do_model": _rounded(model_do[x]),
            "p_do_sampled": _rounded(p_sampled),
            "w1_model_to_truth": round(circular_w1(model_do[x], truth[x], positions), 5),
            "w1_sampled_to_truth": round(circular_w1(p_sampled, truth[x], positions), 5),
        })
    device = next(model.parameters()).device
    test = {k: v.to(device) for k, v in dataset.test.items()}
    log_p_xy = attributes.log_prob_xy(test["x"], test["y"]).mean().item()
    image_elbo = heldout_image_elbo(image_model, test)
    effect = effectiveness(image_model, judge, test)
    effect["do_x_shape_accuracy"] = _means(per_x, ["do_x_shape_accuracy"])["do_x_shape_accuracy"]
    metrics = {
        "heldout": {
            "log_p_xy": round(log_p_xy, 5),
            "image_elbo": round(image_elbo, 3),
            "elbo": round(log_p_xy + image_elbo, 3),
        },
        "posterior_entropy": round(_entropy(attributes.posterior_c(test["x"], test["y"])).mean().item(), 5),
        "effectiveness": effect,
        "warnings": chance_warnings(effect, image_model.num_x, image_model.num_y),
        "per_x": per_x,
        "w1_mean": _means(per_x, ("w1_model_to_truth", "w1_sampled_to_truth", "w1_images_to_truth",
                                  "w1_observational_to_truth")),
        "diversity": diversity_means(per_x),
    }
    return metrics, panels


def diversity_means(per_x: list[dict]) -> dict:
    """Means over x of the within-bin hue W1 of the do(x) images, its reference-vs-reference floor
    (:func:`within_bin_floor`) and the sub-class TV of the do(x) images (None where not read).

    >>> rows = [{"within_bin_hue_w1": 0.1, "within_bin_hue_w1_reference_floor": 0.02, "subclass_tv": None},
    ...         {"within_bin_hue_w1": 0.2, "within_bin_hue_w1_reference_floor": 0.01, "subclass_tv": None}]
    >>> diversity_means(rows)
    {'within_bin_hue_w1': 0.15, 'within_bin_hue_w1_reference_floor': 0.015, 'subclass_tv': None}
    """
    out = {}
    for key in ("within_bin_hue_w1", "within_bin_hue_w1_reference_floor", "subclass_tv"):
        values = [row[key] for row in per_x if row.get(key) is not None]
        out[key] = round(sum(values) / len(values), 5) if values else None
    return out


@torch.no_grad()
def evaluate_latent_response(model, dataset, judge, num_samples: int, grid_samples: int, *,
                             iwae_particles: int = 8, heldout_images: int = 500) -> tuple[dict, dict]:
    """Metrics of a latent-response member: its response is read back from the images only.

    Beyond the per-x rows of :func:`interventional_images`: the observational end (the model's own P(hue | x)
    read from its conditional images, the judge's reading of real held-out images of class x, and W1 from
    each and from the do(x) images to the dataset's observational P(hue | x)); the held-out ELBO and IWAE bound
    of log p(x, image) per image (:func:`latent_heldout_bounds`); the cluster-posterior entropies
    (:func:`latent_posterior_entropies`); every effectiveness flip (:func:`latent_effectiveness`). The held-out
    quantities use the first ``heldout_images`` test images.
    """
    per_x, panels = interventional_images(model, dataset, judge, num_samples, grid_samples)
    for row in per_x:
        row.pop("_draws")
    latent_observational_end(model, dataset, judge, num_samples, per_x)
    device = next(model.parameters()).device
    test = {k: dataset.test[k][:heldout_images].to(device) for k in ("x", "y", "image")}
    heldout = latent_heldout_bounds(model, test, particles=iwae_particles)
    entropies = latent_posterior_entropies(model, test)
    effect = latent_effectiveness(model, judge, test)
    effect["do_x_shape_accuracy"] = _means(per_x, ["do_x_shape_accuracy"])["do_x_shape_accuracy"]
    metrics = {
        "heldout": heldout,
        **entropies,
        "effectiveness": effect,
        "warnings": chance_warnings(effect, model.num_x, 1),
        "per_x": per_x,
        "w1_mean": _means(per_x, ("w1_images_to_truth", "w1_observational_to_truth", "w1_images_to_observational",
                                  "w1_conditional_images_to_observational", "w1_heldout_images_to_observational",
                                  "w1_images_to_heldout_images")),
        "diversity": diversity_means(per_x),
    }
    return metrics, panels


@torch.no_grad()
def latent_observational_end(model, dataset, judge, num_samples: int, per_x: list[dict]) -> list[dict]:
    """Add the observational-end comparison to each row of ``per_x`` (in place; also returned).

    Per x: ``p_conditional_from_images`` (the judge's reading of the model's own observational images, drawn
    given x: c ~ p(c | x), ``model.sample_given_x``), ``p_heldout_from_images`` (the judge's reading of the real
    held-out images of class x: the judge's floor), and W1 on the hue circle from the do(x) images
    (``p_do_from_images``), from the conditional images and from the held-out images to the dataset's
    observational P(hue | x), and from the do(x) images to the held-out images' reading
    (``w1_images_to_heldout_images``: judge errors cancel). When p(c | x) = π, or the clusters' r-distributions
    agree, do(x) and conditioning on x draw the same images.
    """
    scm, num_y = dataset.scm, dataset.num_hue_bins
    positions, observational = scm.bin_centres(), scm.observational_y_given_x().float()
    test = dataset.test
    _, heldout_hue = judge.predict(test["image"].float().div(255))
    for row in per_x:
        x = row["x"]
        _, hue = judge.predict(model.sample_given_x(x, num_samples)["image_mean"])
        p_conditional = hue_histogram(hue.cpu(), num_y)
        of_x = test["x"].cpu() == x
        # a test split without an image of class x (a tiny num_test) has no held-out reading for it: None, not a crash
        p_heldout = hue_histogram(heldout_hue[of_x], num_y) if bool(of_x.any()) else None
        p_do = torch.tensor(row["p_do_from_images"], dtype=torch.float64)
        p_do = p_do / p_do.sum()  # the row holds values rounded to 5 decimals: their sum may miss 1 by ~1e-5
        row.update({
            "p_conditional_from_images": _rounded(p_conditional),
            "p_heldout_from_images": None if p_heldout is None else _rounded(p_heldout),
            "w1_images_to_observational": round(circular_w1(p_do, observational[x], positions), 5),
            "w1_conditional_images_to_observational": round(circular_w1(p_conditional, observational[x], positions),
                                                            5),
            "w1_heldout_images_to_observational": None if p_heldout is None else round(
                circular_w1(p_heldout, observational[x], positions), 5),
            "w1_images_to_heldout_images": None if p_heldout is None else round(
                circular_w1(p_do, p_heldout, positions), 5),
        })
    return per_x


@torch.no_grad()
def latent_heldout_bounds(model, data: dict, particles: int = 8, batch_size: int = 128, seed: int = 0) -> dict:
    """Held-out bounds on log p(x, image) per image of a latent-response model (c summed out exactly, β = 1).

    ``elbo``: the mean over the ``particles`` guide draws of log p(x, r, ε, image) − log q(r, ε | image, x);
    ``iwae``: the IWAE bound log (1/k) Σ_k w_k with k = ``particles`` on the same draws (≥ ``elbo``, and
    tighter as k grows). Draws from a generator seeded with ``seed``.
    """
    if particles < 1:
        raise ValueError(f"particles must be >= 1, got {particles}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    elbo, iwae, count = 0.0, 0.0, len(data["x"])
    for start in range(0, count, batch_size):
        batch = to_float_images({k: data[k][start : start + batch_size] for k in ("x", "image")})
        loc, scale = model.encode(batch["image"], batch["x"])
        z = loc + scale * torch.randn((particles, *loc.shape), generator=generator, device=device, dtype=loc.dtype)
        log_w = model.log_weight(batch["image"], batch["x"], z[..., : model.r_dim], z[..., model.r_dim :], loc, scale)
        elbo += float(log_w.mean(0).sum())
        iwae += float((log_w.logsumexp(0) - torch.tensor(float(particles)).log().item()).sum())
    return {"elbo": round(elbo / count, 3), "iwae": round(iwae / count, 3), "iwae_particles": particles,
            "images": count, "what": "nats per held-out image, of log p(x, image); elbo = mean log-weight, "
                                     "iwae = log-mean-exp of the iwae_particles log-weights"}


@torch.no_grad()
def latent_posterior_entropies(model, data: dict, batch_size: int = 512) -> dict:
    """Mean cluster-posterior entropies on held-out images, in nats.

    ``posterior_entropy``: H[p(c | x, ẑ)] at the guide's mean code ẑ (for the latent-response model p(c | x, r̂),
    ε not depending on c; the posterior the γ-term weighs);
    ``posterior_entropy_given_x``: H[p(c | x)] (0 … log K; at log K, conditioning on x weighs the clusters by π
    as do(x) does); ``posterior_entropy_max``: log K.
    """
    given_xr, given_x, count = 0.0, 0.0, len(data["x"])
    for start in range(0, count, batch_size):
        batch = to_float_images({k: data[k][start : start + batch_size] for k in ("x", "image")})
        code = model.encode(batch["image"], batch["x"])[0]
        given_xr += float(_entropy(model.posterior_c_given_code(batch["x"], code)).sum())
        given_x += float(_entropy(model.posterior_c_given_x(batch["x"])).sum())
    return {"posterior_entropy": round(given_xr / count, 5), "posterior_entropy_given_x": round(given_x / count, 5),
            "posterior_entropy_max": round(torch.tensor(float(model.num_clusters)).log().item(), 5)}


@torch.no_grad()
def latent_effectiveness(model, judge, data: dict, max_images: int = 1000, seed: int = 0) -> dict:
    """Share of held-out codes (r̂, ε̂ at the guide's mean) whose decoded shape follows a changed x, and keeps its
    hue bin (the label y, never seen by the model), as read by ``judge``; and the reconstructions' shape and hue.
    The new x is uniform over the other classes (generator seeded with ``seed``)."""
    batch = to_float_images({k: v[:max_images] for k, v in data.items() if k in ("x", "y", "image")})
    x, y = batch["x"], batch["y"]
    generator = torch.Generator(device=x.device).manual_seed(seed)
    shift = torch.randint(1, model.num_x, x.shape, generator=generator, device=x.device)
    new_x = (x + shift) % model.num_x
    loc, _ = model.encode(batch["image"], x)
    r, eps = loc[..., : model.r_dim], loc[..., model.r_dim :]
    shape_after_x, hue_after_x = judge.predict(model.decode(new_x, r, eps))
    shape_recon, hue_recon = judge.predict(model.decode(x, r, eps))
    share = lambda a, b: round(float((a.cpu() == b.cpu()).float().mean()), 4)  # noqa: E731
    return {
        "x_flip_follows": share(shape_after_x, new_x),
        "x_flip_keeps_hue": share(hue_after_x, y),
        "reconstruction_shape": share(shape_recon, x),
        "reconstruction_hue": share(hue_recon, y),
        "judge_reads_real_shape": judge_reads_real(judge, batch, max_images)["shape"],
    }


@torch.no_grad()
def atom_hue_table(model, judge, num_bins: int, images_per_atom: int) -> torch.Tensor:
    """P_judge(hue bin | x, atom): the judge's reading of ``images_per_atom`` images decoded with x from codes drawn
    from each atom of an :class:`~cauvade_pyro.models.AtomResponseModel`, shape (X, A, num_bins).

    Every member of a response-atom family shares the decoder and the atoms, so its do(x) images are the mixture
    Σ_a P(a | do(x)) · (images of atom a with x), and the judge's P(hue | do(x)) of a member is exactly
    Σ_a P(a | do(x)) P_judge(hue | x, a): one table read from images serves every member, without per-member
    sampling noise."""
    device = model.attributes.pi_logits.device
    rows = []
    for x in range(model.num_x):
        per_atom = []
        for atom in range(model.num_atoms):
            z = model.atoms.sample(torch.full((images_per_atom,), atom, dtype=torch.long, device=device))
            xs = torch.full((images_per_atom,), x, dtype=torch.long, device=device)
            _, hue = judge.predict(model.decode(xs, z[:, : model.r_dim], z[:, model.r_dim :]))
            per_atom.append(hue_histogram(hue.cpu(), num_bins))
        rows.append(torch.stack(per_atom))
    return torch.stack(rows)


@torch.no_grad()
def atom_family_iwae(model, family, data: dict, particles: int = 8, batch_size: int = 128, seed: int = 0) -> list[float]:
    """A held-out importance-sampled bound of log p(x, image) per image of every member of a response-atom family.

    Members differ only in their (x, atom) table, so log p(x, image) = log Σ_a P(x, a) p(image | x, a) with one
    p(image | x, a) for all of them: it is estimated once per image and atom, with ``particles`` draws per atom
    (:meth:`~cauvade_pyro.models.AtomResponseModel.log_prob_image_given_atoms`: proposals inside each atom), and
    each member's table is summed against the same estimates. The estimate of p(x, image) is unbiased, so its
    log is a lower bound in expectation, like an IWAE bound; the estimator's own slack is nearly the same for every
    member, because the draws are (docs/latent_response.md measures the gap against the particle count).
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    parts = []  # per batch: (x, log p̂(image | x, a) of shape (n, A))
    for start in range(0, len(data["x"]), batch_size):
        batch = to_float_images({k: data[k][start : start + batch_size].to(device) for k in ("x", "image")})
        parts.append((batch["x"], model.log_prob_image_given_atoms(batch["image"], batch["x"], particles, generator)))
    bounds = []
    for member in family:
        member.activate()
        log_xa = model.attributes.joint_xy().detach().double().clamp_min(1e-300).log()  # (X, A)
        total = sum(float((log_xa[x] + log_image).logsumexp(-1).sum()) for x, log_image in parts)
        bounds.append(total / len(data["x"]))
    return bounds


@torch.no_grad()
def score_attribute_family(family, scm) -> dict:
    """A family of the default diagram's attribute level against the SCM's truth, at the attribute level.

    ``w1``: (members, X) float64, the hue-circle W1 of each member's exact P(y | do(x)) to the true P(y | do(x));
    ``coverage``: share of the true cells inside the members' range; ``span``: that range over the sharp bow-graph
    bounds, clipped per cell, mean over cells (both unrounded); with ``truth``, ``lower`` and ``upper``. The CLI's
    ``inference.sweep=family`` and ``benchmarks/family_reach.py`` score with it.
    """
    from cauvade_pyro.metrics.family import coverage, span

    truth = scm.interventional_y().float()
    lower, upper = bow_graph_bounds(scm.joint_xy())
    low, high = family.range()
    positions = scm.bin_centres()
    w1 = torch.tensor([[circular_w1(m.p_do[x], truth[x], positions) for x in range(len(truth))] for m in family],
                      dtype=torch.float64)
    return {"truth": truth, "lower": lower, "upper": upper, "w1": w1,
            "coverage": coverage(truth, low, high, atol=1e-6).share, "span": span(low, high, lower, upper).clipped_mean}


def evaluate_atom_family(model, family, dataset, judge, *, images_per_atom: int = 400, iwae_particles: int = 8,
                         heldout_images: int = 500) -> dict:
    """Every member of a response-atom family (:class:`~cauvade_pyro.models.AtomResponseModel`), read from images
    only, and what the family covers.

    Per member: P(hue | do(x)) = Σ_a P(a | do(x)) P_judge(hue | x, a) with the judge's reading of
    ``images_per_atom`` images per (x, atom) (:func:`atom_hue_table`), its mean W1 (hue circle) to the true
    P(hue | do(x)) and to the observational P(hue | x), and the held-out IWAE bound of log p(x, image) per image
    (:func:`atom_family_iwae`, the first ``heldout_images`` test images). The family: coverage of the true cells by
    the members' range (``coverage``), its span of the sharp bounds clipped per cell (``span``) and counted only
    inside them (``span_inside_bounds``); ``best_member_w1_ratio``: the smallest member W1 to the truth over the
    observational answer's (chosen knowing the truth: it says that the family holds such a member, not which one a
    user would pick); the diffuse end, the member with the largest mean cluster-posterior entropy (the entropy
    dial's f = 1), and its W1 to the observational P(hue | x); the largest held-out IWAE gap to the best member.

    Why per-atom draws, 8 per atom by default: an estimate from the base's encoder q(z | image, x) alone, which
    none of the members' priors p(x, z) = Σ_a P(x, a) N(z; μ_a, Σ_a) was trained with, falls short of
    log p(x, image) by an amount that differs from member to member. Measured on the shapes (12 000 images,
    24 atoms, 70 members, 2000 test images, docs/latent_response.md), the largest gap between members was 0.050 nats
    per image with 8 encoder draws, 0.0058 with 64 and 0.0050 with 256 (1078 s); with draws inside each atom it is
    0.0081 at 2 per atom, 0.0065 at 4 and 0.0050 at 8 (267 s, 192 decoder passes per image at 24 atoms).
    Leaves the last member active.
    """
    from cauvade_pyro.metrics.family import coverage, family_range, span, span_within_bounds

    scm, num_bins = dataset.scm, dataset.num_hue_bins
    positions = scm.bin_centres()
    truth, observational = scm.interventional_y().float(), scm.observational_y_given_x().float()
    lower, upper = bow_graph_bounds(scm.joint_xy())
    hue_given_atom = atom_hue_table(model, judge, num_bins, images_per_atom)  # (X, A, bins)
    test = {k: dataset.test[k][:heldout_images] for k in ("x", "image")}
    iwae = atom_family_iwae(model, family, test, particles=iwae_particles)
    mean_w1 = lambda p, q: sum(circular_w1(p[x], q[x], positions) for x in range(len(p))) / len(p)  # noqa: E731
    observational_to_truth = mean_w1(observational, truth)
    members, values = [], []
    for member, bound in zip(family, iwae):
        weights = member.p_do.double()
        weights = weights / weights.sum(-1, keepdim=True)  # the member's rows, summing to 1 in float64
        p_do = torch.einsum("xa,xab->xb", weights, hue_given_atom.double())
        values.append(p_do)
        members.append({
            "kind": member.kind, "label": member.label, "gamma": round(member.gamma, 6),
            "entropy": round(member.entropy, 6), "heldout_nll_atoms": round(member.heldout_nll, 6),
            "p_do_atoms": _rounded(member.p_do), "p_do_from_images": _rounded(p_do),
            "w1_images_to_truth": round(mean_w1(p_do, truth), 5),
            "w1_images_to_observational": round(mean_w1(p_do, observational), 5),
            "heldout_iwae": round(bound, 3),
        })
    low, high = family_range(torch.stack(values).double())
    best = min(members, key=lambda m: m["w1_images_to_truth"])
    diffuse = max(members, key=lambda m: m["entropy"])
    best_iwae = max(iwae)  # the gap from the unrounded bounds: τ is 0.005
    return {
        "coverage": round(coverage(truth, low, high, atol=1e-6).share, 4),
        "span": round(span(low, high, lower, upper).clipped_mean, 4),
        "span_inside_bounds": round(span_within_bounds(low, high, lower, upper).mean, 4),
        "best_member_w1_ratio": round(best["w1_images_to_truth"] / max(observational_to_truth, 1e-12), 4),
        "best_member": best["label"],
        "w1_observational_to_truth": round(observational_to_truth, 5),
        "diffuse_end": diffuse["label"],
        "diffuse_end_w1_to_observational": diffuse["w1_images_to_observational"],
        "heldout_iwae_best": round(best_iwae, 3),
        "heldout_iwae_max_gap": round(best_iwae - min(iwae), 5),
        "heldout_iwae_particles": iwae_particles,
        "heldout_iwae_draws": "per atom",  # rows from before 2026-12-04 drew that many from the encoder, shared
        "heldout_iwae_images": len(test["x"]),
        "images_per_atom": images_per_atom,
        "hue_given_atom_from_images": _rounded(hue_given_atom),
        "range_from_images": {"low": _rounded(low), "high": _rounded(high)},
        "bounds": {"lower": _rounded(lower), "upper": _rounded(upper)},
        "p_do_truth": _rounded(truth),
        "member_scores": members,
    }
