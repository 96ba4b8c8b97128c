"""fit_member, the one fit wrapper, and fit_diagram's separate learning rate for tables."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from cauvade_pyro.inference import fit_diagram, fit_member
from cauvade_pyro.models import confounder


def tables(data=None, num_samples=None):
    data = data or {}
    pi = pyro.param("pi", torch.zeros(2))
    px = pyro.param("px", torch.zeros(2, 2))
    py = pyro.param("py", torch.zeros(2, 2, 2))
    with pyro.plate("data", num_samples or len(data["x"])):
        c = confounder("c", pi)
        x = pyro.sample("x", dist.Categorical(logits=px[c]), obs=data.get("x"))
        pyro.sample("y", dist.Categorical(logits=py[c, x]), obs=data.get("y"))


def data():
    x = (torch.rand(2000, generator=torch.Generator().manual_seed(0)) < 0.8).long()
    return {"x": x, "y": x.clone()}


def test_tables_learn_at_their_own_rate():
    d = data()
    p = d["x"].float().mean().item()
    entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))  # y = x: the best fit costs H(x) nats per row
    _, slow = fit_diagram(tables, d, steps=200, batch_size=None, table_lr=None, progress=False)
    pyro.clear_param_store()
    _, fast = fit_diagram(tables, d, steps=200, batch_size=None, progress=False)  # table_lr=0.05
    assert fast[-1] == pytest.approx(entropy, abs=0.01)
    assert slow[-1] > entropy + 0.3  # lr=1e-3 leaves the tables where they started


def test_fit_member_is_reproducible_and_runs_init_after_seeding():
    seen = []

    def init(generator):
        seen.append(torch.randn(1, generator=generator).item())
        with torch.no_grad():
            pyro.param("px", torch.zeros(2, 2))

    runs = [fit_member(tables, lambda data=None: None, data(), seed=3, init=init, steps=30, lr=0.05,
                       progress=False) for _ in range(2)]
    assert runs[0] == runs[1] and seen[0] == seen[1]
    with pytest.raises(ValueError, match="give a guide"):
        fit_member(tables, None, data(), seed=0, steps=1)
