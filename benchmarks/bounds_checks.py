"""Bounds checked against published numbers and identified values (issue 11); writes ``bounds_checks.json``.

Three checks:

- ``vitamin_a``: LP bounds (:mod:`cauvade_pyro.bounds`) on the Sommer et al. vitamin A trial against Balke & Pearl
  (1997): ACE ∈ [−0.1946, 0.0054], P(y=1 | do(x=1)) ∈ [0.7990, 0.9990], P(y=1 | do(x=0)) = 0.9936.
- ``front_door``: hidden c → x, y; x → m → y, data from a known SCM. P(y | do x) is identified by the front-door
  formula Σ_m P(m | x) Σ_x' P(y | x', m) P(x'); its sampling SE comes from a multinomial bootstrap of the counts.
  Every member of the family (:func:`cauvade_pyro.inference.fit_family` on the tabular diagram, τ = 0.005) and
  the NUTS posterior mean (:func:`cauvade_pyro.bayes_bounds.fit_posterior`, Dirichlet tables) are compared with
  it. For comparison, fixed-γ fits without a fit tolerance (``fit_diagram``, γ ∈ {−1, 0, 0.01, 0.1} × seeds
  {0, 1}; P(y | do x) exact by enumeration, :func:`~cauvade_pyro.bayes_bounds.exact_p_do`) are reported too: a
  fixed γ can land on the observational answer, which fits worse here and which τ would reject.
- ``bayes_vs_lp_iv``: instrumental-variable data from a known SCM at growing n; NUTS on the canonical IV program
  (c ∈ 16 response types, Dirichlet prior on their weights); ``width_ratio`` = (max − min of the draws of
  P(y=1 | do(x=1))) / (LP upper − LP lower on the same data).

Run ``OMP_NUM_THREADS=1 python -m benchmarks.bounds_checks`` (``--smoke`` for a seconds-long run that writes
nothing unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from benchmarks.provenance import git_sha
from cauvade_pyro.bayes_bounds import exact_log_lik, exact_p_do, fit_posterior
from cauvade_pyro.bounds import DiscreteDiagram, ace, lp_bounds, p_do, p_do_bounds
from cauvade_pyro.inference import fit_diagram, fit_family
from cauvade_pyro.models import TabularDiagram
from cauvade_pyro.models import confounder

RESULTS = Path(__file__).resolve().parent / "results"
VITAMIN_A = {(0, 0, 0): 74, (0, 0, 1): 11514, (1, 0, 0): 34, (1, 0, 1): 2385, (1, 1, 0): 12, (1, 1, 1): 9663}
PUBLISHED = {"ace_lower": -0.1946, "ace_upper": 0.0054, "p_do_x1_lower": 0.7990, "p_do_x1_upper": 0.9990,
             "p_do_x0_lower": 0.9936, "p_do_x0_upper": 0.9936}
IV = DiscreteDiagram(cards={"z": 2, "x": 2, "y": 2}, parents={"x": ["z"], "y": ["x"]}, confounded=[{"x", "y"}])

# front-door SCM (c -> x, y; x -> m -> y)
FD_PI = np.array([0.6, 0.4])
FD_PX = np.array([[0.8, 0.2], [0.3, 0.7]])  # [c, x]
FD_PM = np.array([[0.75, 0.25], [0.2, 0.8]])  # [x, m]
FD_PY = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.6, 0.4], [0.1, 0.9]]])  # [m, c, y]
# IV SCM (z -> x -> y, c -> x, y), three latent states
IV_PZ = np.array([0.5, 0.5])
IV_PI = np.array([0.5, 0.3, 0.2])
IV_PX = np.array([[[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], [[0.3, 0.7], [0.1, 0.9], [0.05, 0.95]]])  # [z, c, x]
IV_PY = np.array([[[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]], [[0.5, 0.5], [0.2, 0.8], [0.1, 0.9]]])  # [x, c, y]


def vitamin_a_check() -> dict[str, float]:
    counts = np.zeros((2, 2, 2))
    for cell, n in VITAMIN_A.items():
        counts[cell] = n
    p = counts / counts.sum()
    out = {}
    for key, query in (("ace", ace("y", "x")), ("p_do_x1", p_do("y", 1, "x", 1)), ("p_do_x0", p_do("y", 1, "x", 0))):
        out[f"{key}_lower"], out[f"{key}_upper"] = lp_bounds(IV, p, query)
    out["max_abs_error_to_published"] = max(abs(out[k] - v) for k, v in PUBLISHED.items())
    return out


# ---------------------------------------------------------------------------------------------- front door
def sample_front_door(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.choice(2, n, p=FD_PI)
    x = (rng.random(n) < FD_PX[c, 1]).astype(np.int64)
    m = (rng.random(n) < FD_PM[x, 1]).astype(np.int64)
    y = (rng.random(n) < FD_PY[m, c, 1]).astype(np.int64)
    return {"x": x, "m": m, "y": y}


def front_door_truth() -> np.ndarray:
    return np.einsum("c,xm,mcy->xy", FD_PI, FD_PM, FD_PY)


def front_door_formula(joint: np.ndarray) -> np.ndarray:
    """P(y | do x) = Σ_m P(m | x) Σ_x' P(y | x', m) P(x') from a joint table P(x, m, y): (|X|, |Y|)."""
    p_x = joint.sum(axis=(1, 2))
    p_m_x = joint.sum(axis=2) / p_x[:, None]
    p_y_xm = joint / joint.sum(axis=2, keepdims=True)
    return np.einsum("xm,ame,a->xe", p_m_x, p_y_xm, p_x)


def bootstrap_se(counts: np.ndarray, statistic, reps: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(counts.sum())
    draws = [statistic(rng.multinomial(n, counts.ravel() / n).reshape(counts.shape) / n) for _ in range(reps)]
    return np.std(draws, axis=0, ddof=1)


def tabular_program(diagram: DiscreteDiagram, K: int = 2, alpha: float | None = None):
    """A Pyro program of ``diagram`` with one confounder c (K states) feeding every variable of its confounded
    component: tables ``pyro.param`` logits (a γ-member, ``alpha=None``) or Dirichlet(alpha) sample sites."""
    if len(diagram.confounded) != 1:
        raise ValueError("tabular_program: one confounded set (one latent c) only")
    shapes = {v: tuple(diagram.cards[p] for p in diagram.pa(v)) + ((K,) if v in diagram.component else ())
              for v in diagram.order}

    def model(data=None, num_samples=None):
        data = data or {}
        if alpha is None:
            pi = pyro.param("pi_logits", lambda: torch.randn(K))
            tables = {v: pyro.param(f"{v}_logits", lambda v=v: torch.randn(*shapes[v], diagram.cards[v]))
                      for v in diagram.order}
        else:
            pi = pyro.sample("pi", dist.Dirichlet(torch.full((K,), alpha))).log()
            tables = {v: pyro.sample(f"p_{v}", dist.Dirichlet(torch.full((*shapes[v], diagram.cards[v]), alpha))
                                     .to_event(len(shapes[v]))).log() for v in diagram.order}
        values = {}
        with pyro.plate("data", num_samples or len(next(iter(data.values())))):
            c = confounder("c", pi)
            for v in diagram.order:
                index = tuple(values[p] for p in diagram.pa(v)) + ((c,) if v in diagram.component else ())
                values[v] = pyro.sample(v, dist.Categorical(logits=tables[v][index]), obs=data.get(v))

    return model


def front_door_member_model(K: int = 2):
    """The tabular front-door diagram with learned (``pyro.param``) logits: what a γ-member fits."""

    def model(data=None, num_samples=None):
        data = data or {}
        pi = pyro.param("pi_logits", lambda: torch.randn(K))
        x_logits = pyro.param("x_logits", lambda: torch.randn(K, 2))
        m_logits = pyro.param("m_logits", lambda: torch.randn(2, 2))
        y_logits = pyro.param("y_logits", lambda: torch.randn(2, K, 2))
        with pyro.plate("data", num_samples or len(data["x"])):
            c = confounder("c", pi)
            x = pyro.sample("x", dist.Categorical(logits=x_logits[c]), obs=data.get("x"))
            m = pyro.sample("m", dist.Categorical(logits=m_logits[x]), obs=data.get("m"))
            pyro.sample("y", dist.Categorical(logits=y_logits[m, c]), obs=data.get("y"))

    return model


def front_door_bayes_model(K: int = 2, alpha: float = 1.0):
    """The same diagram with Dirichlet(alpha) priors on its tables: what NUTS samples."""

    def model(data=None, num_samples=None):
        data = data or {}
        pi = pyro.sample("pi", dist.Dirichlet(torch.full((K,), alpha)))
        p_x = pyro.sample("p_x", dist.Dirichlet(torch.full((K, 2), alpha)).to_event(1))
        p_m = pyro.sample("p_m", dist.Dirichlet(torch.full((2, 2), alpha)).to_event(1))
        p_y = pyro.sample("p_y", dist.Dirichlet(torch.full((2, K, 2), alpha)).to_event(2))
        with pyro.plate("data", num_samples or len(data["x"])):
            c = confounder("c", pi.log())
            x = pyro.sample("x", dist.Categorical(p_x[c]), obs=data.get("x"))
            m = pyro.sample("m", dist.Categorical(p_m[x]), obs=data.get("m"))
            pyro.sample("y", dist.Categorical(p_y[m, c]), obs=data.get("y"))

    return model


def front_door_check(n: int, gammas, seeds, steps: int, nuts: tuple[int, int], tree_depth: int,
                     family_options: dict | None = None) -> dict:
    arrays = sample_front_door(n, seed=123)
    counts = np.zeros((2, 2, 2))
    np.add.at(counts, (arrays["x"], arrays["m"], arrays["y"]), 1)
    formula = front_door_formula(counts / n)
    se = bootstrap_se(counts, front_door_formula)
    data = {k: torch.as_tensor(v) for k, v in arrays.items()}
    # The family: fit_family on the tabular front-door diagram, every member within τ of the best held-out fit
    by_tau = {}
    for tau in (0.005, 0.002):  # the default τ, and one near this N's resolution (2 N τ = 16 against χ²₁)
        diagram = TabularDiagram({"x": 2, "m": 2, "y": 2}, {"m": ["x"], "y": ["m"]}, {"c": (2, ["x", "y"])})
        family = fit_family(diagram.model, data, treatment="x", outcome="y", tau=tau, seed=0, progress=False,
                            **(family_options or {}))
        errors = np.abs(family.p_do().numpy() - formula[None])
        by_tau[str(tau)] = {"members": len(family), "dropped": family.dropped, "max_abs_error": float(errors.max()),
                            "max_error_in_se": float((errors / se[None]).max()),
                            "within_3se": bool((errors <= 3 * se[None]).all())}
        if tau == 0.005:
            default_family, family_errors = family, errors
    family = default_family
    # Fixed-γ fits for comparison (no fit tolerance: a fit that lands on the observational answer is kept here)
    members = []
    for gamma, seed in itertools.product(gammas, seeds):
        model = front_door_member_model()
        fit_diagram(model, data, gamma=gamma, steps=steps, batch_size=None, lr=0.05, seed=seed, progress=False)
        value = torch.stack([exact_p_do(model, {"x": i}, "y") for i in range(2)]).numpy()
        members.append({"gamma": gamma, "seed": seed, "p_do": value.tolist(),
                        "mean_log_lik": float(exact_log_lik(model, data).mean()),
                         "max_abs_error": float(np.abs(value - formula).max()),
                         "max_error_in_se": float((np.abs(value - formula) / se).max())})
    model = front_door_bayes_model()
    post = fit_posterior(model, data, num_samples=nuts[0], warmup_steps=nuts[1], seed=0, max_tree_depth=tree_depth)
    draws = post.p_do("x", "y", 2).numpy()
    mean = draws.mean(axis=0)
    family_err = float(family_errors.max())
    bayes_err = float(np.abs(mean - formula).max())
    return {
        "n": n, "front_door_formula": formula.tolist(), "saturated_mean_log_lik": float(
            (counts[counts > 0] * np.log(counts[counts > 0] / n)).sum() / n), "truth": front_door_truth().tolist(),
        "sampling_se": float(se.max()), "sampling_se_per_cell": se.tolist(),
        "family_max_abs_error": family_err, "family_within_3se": bool((family_errors <= 3 * se[None]).all()),
        "family_members": len(family), "family_dropped": family.dropped, "family_tau": family.tau,
        "family_max_error_in_se": float((family_errors / se[None]).max()), "family_by_tau": by_tau,
        "fixed_gamma_max_abs_error": max(m["max_abs_error"] for m in members),
        "fixed_gamma_within_3se": bool(all(m["max_error_in_se"] <= 3 for m in members)),
        "bayes_max_abs_error": bayes_err, "bayes_within_3se": bool((np.abs(mean - formula) <= 3 * se).all()),
        "bayes_posterior_sd": draws.std(axis=0).tolist(), "bayes_wall_s": post.wall_time_s,
        "formula_vs_truth_max_abs": float(np.abs(formula - front_door_truth()).max()),
        "members": members,
    }


# ---------------------------------------------------------------------------------------------- IV
def sample_iv(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.choice(2, n, p=IV_PZ)
    c = rng.choice(3, n, p=IV_PI)
    x = (rng.random(n) < IV_PX[z, c, 1]).astype(np.int64)
    y = (rng.random(n) < IV_PY[x, c, 1]).astype(np.int64)
    return {"z": z, "x": x, "y": y}


def iv_truth() -> np.ndarray:
    return np.einsum("c,xcy->xy", IV_PI, IV_PY)


def canonical_iv_model(alpha: float = 1.0):
    """The IV diagram in canonical form: c ∈ 16 (x-, y-) response types with Dirichlet(alpha) weights, x and y
    deterministic given (z, c) and (x, c); z has its own Dirichlet prior."""
    funcs = list(itertools.product(range(2), repeat=2))  # f(parent = 0), f(parent = 1)
    fx = torch.zeros(16, 2, 2)
    fy = torch.zeros(16, 2, 2)
    for t in range(16):
        for v in range(2):
            fx[t, v, funcs[t // 4][v]] = 1.0
            fy[t, v, funcs[t % 4][v]] = 1.0

    def model(data=None, num_samples=None):
        data = data or {}
        p_z = pyro.sample("p_z", dist.Dirichlet(torch.ones(2)))
        pi = pyro.sample("pi", dist.Dirichlet(torch.full((16,), alpha)))
        with pyro.plate("data", num_samples or len(data["x"])):
            z = pyro.sample("z", dist.Categorical(p_z), obs=data.get("z"))
            c = confounder("c", pi.log())
            x = pyro.sample("x", dist.Categorical(fx[c, z]), obs=data.get("x"))
            pyro.sample("y", dist.Categorical(fy[c, x]), obs=data.get("y"))

    return model


def bayes_vs_lp_iv(ns, nuts: tuple[int, int], tree_depth: int) -> dict:
    truth = iv_truth()
    true_joint = np.einsum("z,c,zcx,xcy->zxy", IV_PZ, IV_PI, IV_PX, IV_PY)
    true_lo, true_hi = p_do_bounds(IV, true_joint, "x", "y")
    out = {"n": [], "width_ratio": [], "lp_lower": [], "lp_upper": [], "draw_min": [], "draw_max": [],
           "credible_95": [], "truth": float(truth[1, 1]),
           "lp_on_truth": [float(true_lo[1, 1]), float(true_hi[1, 1])], "wall_s": [], "n_eff_min": []}
    for n in ns:
        arrays = sample_iv(n, seed=n)
        counts = np.zeros((2, 2, 2))
        np.add.at(counts, (arrays["z"], arrays["x"], arrays["y"]), 1)
        try:
            lo, hi = lp_bounds(IV, counts / n, p_do("y", 1, "x", 1))
        except ValueError:  # the empirical table may break the IV inequalities at small n
            lo, hi = float("nan"), float("nan")
        post = fit_posterior(canonical_iv_model(), {k: torch.as_tensor(v) for k, v in arrays.items()},
                             num_samples=nuts[0], warmup_steps=nuts[1], seed=0, max_tree_depth=tree_depth)
        fy1 = torch.tensor([[f[1] for f in itertools.product(range(2), repeat=2)][t % 4] for t in range(16)],
                           dtype=torch.float64)
        draws = (post.samples["pi"].to(torch.float64) * fy1).sum(-1).numpy()  # P(y=1 | do x=1) = Σ_t π_t [f_y,t(1) = 1]
        out["n"].append(n)
        out["lp_lower"].append(lo)
        out["lp_upper"].append(hi)
        out["draw_min"].append(float(draws.min()))
        out["draw_max"].append(float(draws.max()))
        out["credible_95"].append([float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))])
        out["width_ratio"].append(float((draws.max() - draws.min()) / (hi - lo)))
        out["wall_s"].append(post.wall_time_s)
        out["n_eff_min"].append(float(min(v["n_eff"].min() for v in post.diagnostics.values() if "n_eff" in v)))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; writes only with --out")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start, sha = time.perf_counter(), git_sha()  # the commit of the code this run imports, not of the tree at its end
    if args.smoke:
        fd = front_door_check(2000, gammas=(0.0, 0.1), seeds=(0,), steps=200, nuts=(30, 30), tree_depth=4,
                              family_options={"restarts": 1, "entropy_targets": (1.0,), "random_directions": 1,
                                              "steps": 150, "member_steps": 100})
        iv = bayes_vs_lp_iv((2000,), nuts=(30, 30), tree_depth=4)
    else:
        fd = front_door_check(5000, gammas=(-1.0, 0.0, 0.01, 0.1), seeds=(0, 1), steps=1500, nuts=(400, 300),
                              tree_depth=6)
        iv = bayes_vs_lp_iv((500, 5000, 50000), nuts=(400, 300), tree_depth=8)
    result = {"git_sha": sha, "smoke": args.smoke, "vitamin_a": vitamin_a_check(), "front_door": fd,
              "bayes_vs_lp_iv": iv, "wall_s": time.perf_counter() - start}
    out = args.out if args.out is not None else (None if args.smoke else RESULTS / "bounds_checks.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("vitamin_a",)}, indent=1))
    print({k: fd[k] for k in ("family_max_abs_error", "bayes_max_abs_error", "sampling_se", "family_within_3se",
                              "bayes_within_3se")})
    print({k: iv[k] for k in ("n", "width_ratio", "lp_lower", "lp_upper", "draw_min", "draw_max")})
    return result


if __name__ == "__main__":
    main()
