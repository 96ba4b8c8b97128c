"""Evaluation of one family member against the dataset's ground-truth SCM (what goes into ``metrics.json``).

Per value x of the treatment, with the true P(y | do(x)) = Σ_u P(u) P(y | x, u):

- the model's P(hue bin | do(x)), from the sampled attribute y of ``intervene(model, {"x": x})`` and as read
  back from the generated images by an independent judge (never used in a training loss);
- the observational P(hue bin | x); W1 on the hue circle (POT) from each to the truth;
- the sharp bow-graph bounds P(x, y) ≤ P(y | do(x)) ≤ P(x, y) + 1 − P(x).

Effectiveness: held-out images are encoded to ε and decoded with x (or y) changed; the judge reads whether
the shape (or hue) follows. do(x) samples are judged for their shape. Their within-bin hue spread is read from
the pixels against as many reference images (:mod:`cauvade_pyro.metrics.hue`; bin widths, a point mass at the
bin centre scores 0.125). Images are the means of the image likelihood at sampled (y, ε), not pixel draws.
"""

from __future__ import annotations

import torch

from cauvade_pyro.inference import intervene, sample_conditional
from cauvade_pyro.inference.family import heldout_image_elbo
from cauvade_pyro.inference.train import to_float_images
from cauvade_pyro.metrics import bow_graph_bounds, circular_w1, hue_histogram
from cauvade_pyro.metrics.hue import within_bin_hue_w1


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


def _rounded(values: torch.Tensor) -> list:
    return [round(float(v), 5) for v in values.flatten()] if values.dim() <= 1 else [_rounded(v) for v in values]


@torch.no_grad()
def effectiveness(image_model, judge, data: dict, max_images: int = 1000) -> dict:
    """Share of decoded held-out codes whose shape (hue) follows a changed x (y), as read by ``judge``.

    An image model without a y condition (``num_y == 1``: the cVAE of p(image | x)) is decoded with y = 0 and
    gets the x flip and the shape of its reconstructions only.
    """
    batch = to_float_images({k: v[:max_images] for k, v in data.items() if k in ("x", "y", "image")})
    x, y = batch["x"], batch["y"]
    share = lambda a, b: round(float((a.cpu() == b.cpu()).float().mean()), 4)  # noqa: E731
    new_x = (x + torch.randint_like(x, 1, image_model.num_x)) % image_model.num_x
    if image_model.num_y < 2:
        zeros = torch.zeros_like(y)
        eps, _ = image_model.encode(batch["image"], x, zeros)
        shape_after_x, _ = judge.predict(image_model.decode(new_x, zeros, eps))
        shape_recon, _ = judge.predict(image_model.decode(x, zeros, eps))
        return {"x_flip_follows": share(shape_after_x, new_x), "reconstruction_shape": share(shape_recon, x)}
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
    }


@torch.no_grad()
def interventional_images(model, dataset, judge, num_samples: int, grid_samples: int) -> tuple[list[dict], dict]:
    """Per x: the judge's reading of do(x) images against the truth, and the sample-grid panels.

    Returns one row per x (hue distribution read from the images, observational answer, truth, bounds, W1s,
    shape accuracy) and, per x, the observational, do(x) and reference images. Each row also carries the
    sampled ``y`` of the do(x) draws under ``"_draws"`` for diagrams that label y.
    """
    scm, num_y = dataset.scm, dataset.num_hue_bins
    positions = scm.bin_centres()
    truth, observational = scm.interventional_y().float(), scm.observational_y_given_x().float()
    lower, upper = bow_graph_bounds(scm.joint_xy())
    rows, panels = [], {}
    for x in range(dataset.num_classes):
        draws = intervene(model.model, {"x": x}, num_samples)
        shape_pred, hue_pred = judge.predict(draws["image_mean"])
        p_images = hue_histogram(hue_pred.cpu(), num_y)
        # within-bin hue spread read from the pixels (no judge), against as many reference images
        spread_reference = dataset.sample_reference(x, num_samples, torch.Generator().manual_seed(10_000 + x))
        within_bin = within_bin_hue_w1(draws["image_mean"].cpu(), spread_reference["image"], num_y)["w1"]
        rows.append({
            "x": x,
            "class_name": dataset.class_names[x],
            "p_do_from_images": _rounded(p_images),
            "p_observational": _rounded(observational[x]),
            "p_do_truth": _rounded(truth[x]),
            "bounds_lower": _rounded(lower[x]),
            "bounds_upper": _rounded(upper[x]),
            "w1_images_to_truth": round(circular_w1(p_images, truth[x], positions), 5),
            "w1_observational_to_truth": round(circular_w1(observational[x], truth[x], positions), 5),
            "do_x_shape_accuracy": round(float((shape_pred.cpu() == x).float().mean()), 4),
            "within_bin_hue_w1": round(within_bin, 5) if within_bin == within_bin else None,  # NaN: no hue read
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
    return {key: round(sum(row[key] for row in rows) / len(rows), 5) for key in keys}


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
    }
    return metrics, panels


@torch.no_grad()
def evaluate_latent_response(model, dataset, judge, num_samples: int, grid_samples: int) -> tuple[dict, dict]:
    """Metrics of a latent-response member: its response is read back from the images only."""
    per_x, panels = interventional_images(model, dataset, judge, num_samples, grid_samples)
    for row in per_x:
        row.pop("_draws")
    metrics = {
        "per_x": per_x,
        "w1_mean": _means(per_x, ("w1_images_to_truth", "w1_observational_to_truth")),
        "effectiveness": _means(per_x, ["do_x_shape_accuracy"]),
    }
    return metrics, panels
