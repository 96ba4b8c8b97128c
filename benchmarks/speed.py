"""Speed benchmarks of CauVaDE: Pyro overhead, K scaling, γ-family cost and the default run's wall time.

    python -m benchmarks.speed              # full run (~8 min on 2 CPU cores), writes speed_cpu.json/.png
    python -m benchmarks.speed --quick      # small sizes (~2 min), for a smoke check
    python -m benchmarks.speed --quick --device cuda   # on a GPU machine: writes speed_cuda.json/.png
    python -m benchmarks.speed --only overhead --rounds 60 --out benchmarks/results/speed_cpu_overhead.json

Every comparison runs in one process and interleaves its variants (A B A B …); the figures are medians of
per-step times and ratios of medians, since absolute times on a shared machine mean little.

a. **Overhead.** One training step of the full default diagram (attribute mixture with c enumerated + image
   ELBO with reparameterised ε), γ = 1, batch 256, conv and MLP nets, variants on the *same* networks:
   ``step`` (``inference.train.training_step``: Pyro's SVI step with the loss left on the device and validation
   off, what ``fit_svi`` runs between log steps), ``step_validate`` (the same with Pyro's validation, as on a log
   step), ``svi`` (``pyro.infer.SVI.step``, a float per step) and ``hand`` (the same objective written by hand
   in PyTorch, summing over c with logsumexp, + backward + the same ``ClippedAdam``); on CUDA also ``step_bf16``
   and ``hand_bf16`` (networks under bf16 autocast). The two losses are checked to agree on one batch with the
   same ε draw.
b. **K scaling.** Step time of the attribute-level fit (full batch; SVI, hand-written, and the exact loss on cell
   counts that ``inference.attribute_objective=counts`` uses) and of the full-model step at K = 10, 100, 1000.
c. **γ-family cost.** An 8-member γ-family of the default diagram (one shared image model + 8 attribute fits)
   against 8 × one independent fit (image model + attribute fit), with each member's W1 to the true P(hue | do(x)),
   with the SVI attribute fits, the count-based ones, and the count-based ones vectorised over the members
   (``fit_attribute_family_counts``: one fit for the whole family); at small sizes (3000 images, 1 epoch)
   and, without ``--quick`` or on CUDA, at the CLI's default sizes (12k images, 5 epochs). The latent-response
   family (``inference.sweep=shared``) is ``python -m benchmarks.latent_family``.
d. **Default run.** Wall time of ``python -m cauvade_pyro.fit`` with a fresh cache (skipped with ``--quick``).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyro
import torch
import torch.nn.functional as F
from pyro.infer import SVI
from pyro.optim.clipped_adam import ClippedAdam as TorchClippedAdam

from benchmarks.provenance import git_sha
from cauvade_pyro.inference import (
    GammaEntropyELBO,
    cell_counts,
    count_objective,
    fit_attribute_family_counts,
    fit_attribute_member,
    fit_image_model,
)
from cauvade_pyro.inference.train import training_step
from cauvade_pyro.models import AttributeMixture, ConditionalImageModel, ConfoundedAttributesModel
from cauvade_pyro.models.precision import net_autocast

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("overhead", "k_scaling", "gamma_family", "default_run")
NUM_X, NUM_Y = 3, 6


# ---- the hand-written objective ------------------------------------------------------------------------------


def hand_loss(model: ConfoundedAttributesModel, batch: dict, gamma: float) -> torch.Tensor:
    """−ELBO + γ Σ_n H[p(c | x_n, y_n)] of the default diagram in plain PyTorch (c summed out by logsumexp)."""
    attributes, image_model = model.attributes, model.image_model
    x, y, image = batch["x"], batch["y"], batch["image"]
    c = torch.arange(attributes.num_clusters, device=x.device)
    log_pi = attributes.pi_logits.log_softmax(-1)                              # (K,)
    log_px = attributes.x_logits.log_softmax(-1)[:, x].T                       # (N, K)
    log_py = attributes.y_logits(x[:, None], c[None, :]).log_softmax(-1)       # (N, K, Y)
    log_py = log_py.gather(-1, y[:, None, None].expand(-1, c.numel(), 1)).squeeze(-1)
    joint = log_pi + log_px + log_py                                           # (N, K)
    log_xy = joint.logsumexp(-1)
    log_post = joint - log_xy[:, None]
    entropy = -(log_post.exp() * log_post).sum()
    # image level: q(ε | image, x, y), reparameterised, β on the ε terms as in the Pyro program
    loc, scale = image_model.encode(image, x, y)
    q = torch.distributions.Normal(loc, scale)
    eps = q.rsample()
    log_prior = (-0.5 * eps.pow(2) - 0.5 * torch.log(torch.tensor(2 * torch.pi, device=eps.device))).sum(-1)
    kl_term = image_model.kl_weight * (log_prior - q.log_prob(eps).sum(-1))
    logits = image_model.decoder(image_model.condition(x, y), eps)
    log_lik = -F.binary_cross_entropy_with_logits(logits, image, reduction="none").sum((-3, -2, -1))
    elbo = (log_xy + kl_term + log_lik).sum()
    return -elbo + gamma * entropy


def hand_attribute_loss(mixture: AttributeMixture, x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    c = torch.arange(mixture.num_clusters, device=x.device)
    log_py = mixture.y_logits(x[:, None], c[None, :]).log_softmax(-1)
    log_py = log_py.gather(-1, y[:, None, None].expand(-1, c.numel(), 1)).squeeze(-1)
    joint = mixture.pi_logits.log_softmax(-1) + mixture.x_logits.log_softmax(-1)[:, x].T + log_py
    log_xy = joint.logsumexp(-1)
    log_post = joint - log_xy[:, None]
    return -log_xy.sum() + gamma * -(log_post.exp() * log_post).sum()


# ---- timing helpers ------------------------------------------------------------------------------------------


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_info(device: torch.device) -> dict:
    """What a result JSON records about where it ran."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} cores)")
    return {"device": name, "torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version()}


def write_results(results: dict, out: Path, plot_fn, started: float) -> Path:
    """Stamp the total time, write ``out`` (JSON) and its plot beside it (PNG), and say so."""
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["git_sha"] = git_sha()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    plot_fn(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')} in {results['total_s']} s")
    return out


def interleave(variants: dict, rounds: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Run each variant's step once per round, in turn (A B A B …); returns per-step seconds."""
    for _ in range(warmup):
        for step in variants.values():
            step()
    sync_device(device)
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            sync_device(device)
            start = time.perf_counter()
            step()
            sync_device(device)
            times[name].append(time.perf_counter() - start)
    return times


def medians_ms(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: round(1e3 * statistics.median(values), 3) for name, values in times.items()}


def random_batch(n: int, device: torch.device, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "x": torch.randint(NUM_X, (n,), generator=generator).to(device),
        "y": torch.randint(NUM_Y, (n,), generator=generator).to(device),
        "image": (torch.rand(n, 3, 28, 28, generator=generator) < 0.3).float().to(device),
    }


def full_model(net: str, K: int, device: torch.device, seed: int = 0) -> ConfoundedAttributesModel:
    torch.manual_seed(seed)
    model = ConfoundedAttributesModel(
        AttributeMixture(K, NUM_X, NUM_Y), ConditionalImageModel(NUM_X, NUM_Y, (3, 28, 28), net=net, eps_dim=4)
    ).to(device)
    model.attributes.reset_parameters(torch.Generator().manual_seed(seed))
    return model.to(device)


def step_variants(model, batch, gamma: float, lr: float = 1e-3, clip_norm: float = 10.0,
                  bf16: bool = False) -> dict:
    """The training steps of part a, each on its own copy of ``model``'s parameters.

    ``step`` is what :func:`~cauvade_pyro.inference.fit_svi` runs between its log steps (validation off, loss
    left on the device); ``step_validate`` what it runs on a log step; ``svi`` Pyro's own ``SVI.step`` (a float
    per step); ``hand`` the same objective in plain PyTorch. With ``bf16`` also both with the networks under
    bf16 autocast (:mod:`cauvade_pyro.models.precision`).
    """
    pyro.clear_param_store()
    svi_model = copy.deepcopy(model)
    svi = SVI(svi_model.model, svi_model.guide, pyro.optim.ClippedAdam({"lr": lr, "clip_norm": clip_norm}),
              loss=GammaEntropyELBO(gamma=gamma))
    # each Pyro variant has its own param store: with one store, pyro.module would hand every copy the same tensors
    variants = {"svi": with_own_param_store(lambda: svi.step(batch))}

    def fit_svi_step(validate: bool, net_dtype=None):
        step_model = copy.deepcopy(model)
        optim, elbo = pyro.optim.ClippedAdam({"lr": lr, "clip_norm": clip_norm}), GammaEntropyELBO(gamma=gamma)
        return with_own_param_store(lambda: training_step(step_model.model, step_model.guide, elbo, optim, batch,
                                                          validate=validate, net_dtype=net_dtype))

    def hand_step(net_dtype=None):
        hand_model = copy.deepcopy(model)
        hand_optim = TorchClippedAdam(hand_model.parameters(), lr=lr, clip_norm=clip_norm)

        def step():
            hand_optim.zero_grad(set_to_none=True)
            with net_autocast(net_dtype):
                loss = hand_loss(hand_model, batch, gamma)
            loss.backward()
            hand_optim.step()

        return step

    variants["step"] = fit_svi_step(validate=False)
    variants["step_validate"] = fit_svi_step(validate=True)
    variants["hand"] = hand_step()
    if bf16:
        variants["step_bf16"] = fit_svi_step(validate=False, net_dtype=torch.bfloat16)
        variants["hand_bf16"] = hand_step(torch.bfloat16)
    return variants


def check_same_objective(model, batch, gamma: float) -> dict:
    """The Pyro loss and the hand-written loss at the same parameters and the same ε draw."""
    pyro.clear_param_store()
    torch.manual_seed(123)
    pyro_value = float(GammaEntropyELBO(gamma=gamma).differentiable_loss(model.model, model.guide, batch).detach())
    torch.manual_seed(123)
    hand_value = float(hand_loss(model, batch, gamma).detach())
    return {"pyro": pyro_value, "hand": hand_value, "rel_diff": abs(pyro_value - hand_value) / abs(hand_value)}


def profile_svi(model, batch, gamma: float, steps: int, top: int = 25) -> dict:
    """cProfile of ``steps`` training steps as ``fit_svi`` runs them: the functions with the largest
    cumulative time (where Pyro's time goes)."""
    variants = step_variants(model, batch, gamma)
    variants["step"]()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        variants["step"]()
    profiler.disable()
    out = {}
    for order in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(order).print_stats(top)
        lines = [line.strip() for line in stream.getvalue().splitlines() if line.strip()]
        start = next(i for i, line in enumerate(lines) if line.startswith("ncalls"))
        out[order] = lines[start : start + top + 1]
    return out


# ---- the four parts ------------------------------------------------------------------------------------------


def bench_overhead(device, rounds: int, warmup: int, batch_size: int = 256, gamma: float = 1.0) -> dict:
    out = {}
    bf16 = device.type == "cuda"  # bf16 autocast is a GPU option; on CPU it only slows the products down
    for net in ("conv", "mlp"):
        model = full_model(net, 4, device)
        batch = random_batch(batch_size, device, torch.Generator().manual_seed(1))
        check = check_same_objective(model, batch, gamma)
        times = interleave(step_variants(model, batch, gamma, bf16=bf16), rounds, warmup, device)
        med = medians_ms(times)
        out[net] = {
            "median_ms": med,
            "ratio_step_to_hand": round(med["step"] / med["hand"], 3),
            "ratio_step_validate_to_hand": round(med["step_validate"] / med["hand"], 3),
            "ratio_svi_to_hand": round(med["svi"] / med["hand"], 3),
            "same_objective": check,
            "rounds": rounds,
        }
        if bf16:
            out[net]["ratio_step_bf16_to_hand_bf16"] = round(med["step_bf16"] / med["hand_bf16"], 3)
            out[net]["ratio_step_bf16_to_step"] = round(med["step_bf16"] / med["step"], 3)
        print(f"[overhead] {net}: {med}  step/hand {out[net]['ratio_step_to_hand']:.3f}  "
              f"step_validate/hand {out[net]['ratio_step_validate_to_hand']:.3f}  "
              f"svi/hand {out[net]['ratio_svi_to_hand']:.3f}  (loss rel diff {check['rel_diff']:.1e})",
              flush=True)
    return out


def bench_k_scaling(device, rounds: int, warmup: int, num_attr: int, Ks=(10, 100, 1000), gamma: float = 1.0) -> dict:
    generator = torch.Generator().manual_seed(2)
    attr_data = {"x": torch.randint(NUM_X, (num_attr,), generator=generator).to(device),
                 "y": torch.randint(NUM_Y, (num_attr,), generator=generator).to(device)}
    attr_variants, full_variants = {}, {}
    for K in Ks:
        mixture = AttributeMixture(K, NUM_X, NUM_Y).to(device)
        mixture.reset_parameters(torch.Generator().manual_seed(0))
        mixture.to(device)
        # attribute level: the SVI step fit_attribute_member takes (own param store per K: names clash otherwise)
        attr_variants[f"svi_K{K}"] = _isolated_step(mixture.model, mixture.guide, attr_data, gamma, lr=0.05)
        optim = TorchClippedAdam(mixture.parameters(), lr=0.05, clip_norm=10.0)

        def hand_attr(mixture=mixture, optim=optim):
            optim.zero_grad(set_to_none=True)
            hand_attribute_loss(mixture, attr_data["x"], attr_data["y"], gamma).backward()
            optim.step()

        attr_variants[f"hand_K{K}"] = hand_attr
        counts = cell_counts(attr_data["x"], attr_data["y"], NUM_X, NUM_Y)
        counts_mixture = copy.deepcopy(mixture)
        counts_optim = TorchClippedAdam(counts_mixture.parameters(), lr=0.05, clip_norm=10.0)

        def counts_attr(mixture=counts_mixture, optim=counts_optim, counts=counts):
            # what fit_attribute_member(objective="counts") takes per step: the same loss on the cell counts
            optim.zero_grad(set_to_none=True)
            count_objective(mixture, counts, gamma).backward()
            optim.step()

        attr_variants[f"counts_K{K}"] = counts_attr
        model = full_model("conv", K, device)
        batch = random_batch(256, device, torch.Generator().manual_seed(3))
        full_variants[f"svi_K{K}"] = _isolated_step(model.model, model.guide, batch, gamma, lr=1e-3)
    attr_med = medians_ms(interleave(attr_variants, rounds, warmup, device))
    full_med = medians_ms(interleave(full_variants, max(3, rounds // 2), 1, device))
    k0, k1 = Ks[0], Ks[1]
    out = {
        "attribute_level": {"num_data": num_attr, "median_ms": attr_med,
                            f"ratio_svi_K{k1}_to_K{k0}": round(attr_med[f"svi_K{k1}"] / attr_med[f"svi_K{k0}"], 3),
                            f"ratio_svi_K{Ks[-1]}_to_K{k0}": round(attr_med[f"svi_K{Ks[-1]}"] / attr_med[f"svi_K{k0}"], 3),
                            f"ratio_counts_K{k1}_to_K{k0}": round(attr_med[f"counts_K{k1}"] / attr_med[f"counts_K{k0}"], 3),
                            f"ratio_counts_K{Ks[-1]}_to_K{k0}": round(attr_med[f"counts_K{Ks[-1]}"] / attr_med[f"counts_K{k0}"], 3)},
        "full_model_conv_batch256": {"median_ms": full_med,
                                     f"ratio_svi_K{k1}_to_K{k0}": round(full_med[f"svi_K{k1}"] / full_med[f"svi_K{k0}"], 3),
                                     f"ratio_svi_K{Ks[-1]}_to_K{k0}": round(full_med[f"svi_K{Ks[-1]}"] / full_med[f"svi_K{k0}"], 3)},
        "gamma": gamma,
    }
    print(f"[K scaling] attribute level: {attr_med}\n[K scaling] full model: {full_med}", flush=True)
    return out


def with_own_param_store(step):
    """``step`` run with a Pyro param store of its own, so models with the same site names can be interleaved."""
    store = pyro.get_param_store()
    own = {"_params": {}, "_param_to_name": {}, "_constraints": {}}

    def isolated():
        saved = {key: getattr(store, key) for key in own}
        for key, value in own.items():
            setattr(store, key, value)
        try:
            return step()
        finally:
            for key, value in saved.items():
                setattr(store, key, value)

    return isolated


def _isolated_step(model, guide, data, gamma: float, lr: float):
    """The training step ``fit_svi`` takes between log steps, with its own Pyro param store."""
    optim, elbo = pyro.optim.ClippedAdam({"lr": lr, "clip_norm": 10.0}), GammaEntropyELBO(gamma=gamma)
    return with_own_param_store(lambda: training_step(model, guide, elbo, optim, data, validate=False))


def bench_gamma_family(device, num_train: int, image_epochs: int, attribute_steps: int, independent: int,
                       gammas=(-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0), seed: int = 0,
                       objective: str = "pyro") -> dict:
    from cauvade_pyro.datasets import ConfoundedShapes
    from cauvade_pyro.metrics import circular_w1

    dataset = ConfoundedShapes(num_train=num_train, num_test=100)
    train = {k: dataset.train[k].to(device) for k in ("x", "y", "image")}
    truth = dataset.scm.interventional_y()
    settings = {"epochs": image_epochs, "batch_size": 256, "lr": 2e-3, "seed": 0, "progress": False}

    def image_fit():
        model = ConditionalImageModel(dataset.num_classes, dataset.num_hue_bins, dataset.image_shape,
                                      net="conv", eps_dim=4).to(device)
        fit_image_model(model, train, **settings)
        return model

    vectorised = objective == "counts_vectorised"  # every member in one fit_attribute_family_counts

    def w1_to_truth(mixture):
        p_do = mixture.interventional_y().detach().cpu()
        return [circular_w1(p_do[x].numpy(), truth[x].numpy()) for x in range(dataset.num_classes)]

    def attribute_fit(gamma):
        mixture = AttributeMixture(4, dataset.num_classes, dataset.num_hue_bins).to(device)
        fit_attribute_member(mixture, train["x"], train["y"], gamma=gamma, seed=seed, steps=attribute_steps,
                             progress=False, objective="counts" if vectorised else objective)
        return w1_to_truth(mixture)

    def family_fit():
        if not vectorised:
            return {g: attribute_fit(g) for g in gammas}
        mixtures = [AttributeMixture(4, dataset.num_classes, dataset.num_hue_bins).to(device) for _ in gammas]
        counts = cell_counts(train["x"], train["y"], dataset.num_classes, dataset.num_hue_bins)
        fit_attribute_family_counts(mixtures, counts, gammas=list(gammas), seeds=[seed] * len(gammas),
                                    steps=attribute_steps, progress=False)
        return {g: w1_to_truth(m) for g, m in zip(gammas, mixtures)}

    sync_device(device)
    start = time.perf_counter()
    image_fit()
    shared_w1 = family_fit()
    sync_device(device)
    shared_s = time.perf_counter() - start

    independent_s, independent_w1 = [], {}
    for gamma in [gammas[0], gammas[-1], gammas[len(gammas) // 2]][:independent]:
        start = time.perf_counter()
        image_fit()
        independent_w1[gamma] = attribute_fit(gamma)
        sync_device(device)
        independent_s.append(time.perf_counter() - start)
    one_fit = statistics.median(independent_s)
    same = all(independent_w1[g] == shared_w1[g] for g in independent_w1)
    out = {
        "sizes": {"num_train": num_train, "image_epochs": image_epochs, "attribute_steps": attribute_steps,
                  "members": len(gammas), "net": "conv", "K": 4, "attribute_objective": objective},
        "shared_family_s": round(shared_s, 2),
        "one_independent_fit_s": round(one_fit, 2),
        "independent_fits_timed": len(independent_s),
        "eight_independent_fits_s (8 x one)": round(len(gammas) * one_fit, 2),
        "ratio_family_to_one_fit": round(shared_s / one_fit, 3),
        "ratio_family_to_independent_family": round(shared_s / (len(gammas) * one_fit), 3),
        "w1_to_truth_per_x": {f"{g:g}": [round(v, 5) for v in w] for g, w in shared_w1.items()},
        "w1_independent_per_x": {f"{g:g}": [round(v, 5) for v in w] for g, w in independent_w1.items()},
        "independent_equal_shared": same,
    }
    print(f"[γ-family, {objective}] shared {shared_s:.1f} s, one independent fit {one_fit:.1f} s, "
          f"ratio to one fit {out['ratio_family_to_one_fit']:.2f}, same answers: {same}", flush=True)
    return out


def bench_default_run(device: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, CAUVADE_CACHE=str(Path(tmp) / "cache"))
        command = [sys.executable, "-m", "cauvade_pyro.fit", f"device={device}", "progress=false",
                   f"hydra.run.dir={Path(tmp) / 'run'}"]
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        metrics_path = Path(tmp) / "run" / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    out = {
        "command": "CAUVADE_CACHE=$(mktemp -d) python -m cauvade_pyro.fit " + " ".join(command[3:-1]),
        "wall_s": round(wall, 1), "returncode": result.returncode,
        "w1_mean": metrics.get("w1_mean"), "effectiveness": metrics.get("effectiveness"),
        "diversity": metrics.get("diversity"),
    }
    if result.returncode != 0:
        out["stderr_tail"] = result.stderr[-2000:]
    print(f"[default run] {wall:.1f} s (rc {result.returncode})", flush=True)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars, labels, targets = [], [], []
    for net, target in (("conv", 1.05), ("mlp", 1.15)):
        if net in results.get("overhead", {}):
            row = results["overhead"][net]
            bars += [row["ratio_step_to_hand"], row["ratio_svi_to_hand"]]
            labels += [f"{net}\nstep/hand", f"{net}\nSVI.step/hand"]
            targets += [target, target]
    for level in ("attribute_level", "full_model_conv_batch256"):
        row = results.get("k_scaling", {}).get(level)
        if row:
            key = next(k for k in row if k.startswith("ratio_svi_K100"))
            bars.append(row[key])
            labels.append(f"K100/K10\n{'attr' if level == 'attribute_level' else 'full'}")
            targets.append(1.3)
    row = results.get("k_scaling", {}).get("attribute_level", {})
    if "ratio_counts_K100_to_K10" in row:
        bars.append(row["ratio_counts_K100_to_K10"])
        labels.append("K100/K10\nattr counts")
        targets.append(1.3)
    for key, label in (("gamma_family", "8-member\nfamily/1 fit"), ("gamma_family_counts", "family/1 fit\ncounts"),
                       ("gamma_family_counts_vectorised", "family/1 fit\nvectorised"),
                       ("gamma_family_pyro_default_sizes", "family/1 fit\n12k, 5 ep"),
                       ("gamma_family_counts_default_sizes", "family/1 fit\ncounts 12k"),
                       ("gamma_family_counts_vectorised_default_sizes", "family/1 fit\nvect. 12k")):
        if key in results:
            bars.append(results[key]["ratio_family_to_one_fit"])
            labels.append(label)
            targets.append(2.5)
    fig, ax = plt.subplots(figsize=(1.1 * len(bars) + 1.5, 3.2))
    ax.bar(range(len(bars)), bars, color=["tab:green" if b <= t else "tab:red" for b, t in zip(bars, targets)])
    ax.scatter(range(len(bars)), targets, marker="_", s=400, color="black", zorder=3, label="target")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(bars)), labels, fontsize=7)
    ax.set_ylabel("ratio (median times)")
    ax.set_title(f"cauvade-pyro speed ({results['machine']['device']})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~2 min on 2 CPU cores)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--skip-default-run", action="store_true", help="do not time python -m cauvade_pyro.fit")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/speed_<device>.json)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of {','.join(PARTS)} (default: all)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the overhead comparison (default 30)")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        parser.error(f"--only: unknown part(s) {unknown}; choose from {','.join(PARTS)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but CUDA is not available")
    started = time.perf_counter()
    quick = args.quick
    results = {
        "command": "python -m benchmarks.speed " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(device),
        "quick": quick,
    }
    gpu = device.type == "cuda"  # a GPU step takes milliseconds: full rounds even with --quick
    if "overhead" in parts:
        rounds = args.rounds or (8 if quick and not gpu else 30)
        results["overhead"] = bench_overhead(device, rounds=rounds, warmup=2 if quick else 3)
        model = full_model("mlp", 4, device)
        batch = random_batch(256, device, torch.Generator().manual_seed(1))
        results["overhead"]["svi_profile_mlp"] = profile_svi(model, batch, 1.0, steps=5 if quick else 20)
    if "k_scaling" in parts:
        results["k_scaling"] = bench_k_scaling(device, rounds=6 if quick and not gpu else 12,
                                               warmup=1 if quick else 2, num_attr=3000)
    if "gamma_family" in parts:
        for objective, key in (("pyro", "gamma_family"), ("counts", "gamma_family_counts"),
                               ("counts_vectorised", "gamma_family_counts_vectorised")):
            results[key] = bench_gamma_family(device, num_train=1000 if quick else 3000, image_epochs=1,
                                              attribute_steps=100 if quick else 600, independent=1 if quick else 2,
                                              objective=objective)
        if gpu or not quick:  # the default diagram at the CLI's default sizes (12k images, 5 epochs)
            for objective in ("pyro", "counts", "counts_vectorised"):
                results[f"gamma_family_{objective}_default_sizes"] = bench_gamma_family(
                    device, num_train=12000, image_epochs=5, attribute_steps=600, independent=1, objective=objective)
    if "default_run" in parts and not (quick or args.skip_default_run):
        results["default_run"] = bench_default_run(str(device))
    tag = "cuda" if device.type == "cuda" else "cpu"
    write_results(results, Path(args.out) if args.out else RESULTS / f"speed_{tag}{'_quick' if quick else ''}.json",
                  plot, started)
    return results


if __name__ == "__main__":
    main()
