r"""A discrete causal diagram from a spec: every variable a free conditional table, every confounder a cluster.

Given cardinalities, parents and confounders (each a canonical cluster c_k with K_k values and the variables it
touches), the program is

.. math::

    c_k \sim \mathrm{Categorical}(\mathrm{softmax}(π_k)), \qquad
    v \sim \mathrm{Categorical}\big(\mathrm{softmax}\, T_v[c_{k(v)}, \mathrm{pa}(v)]\big)
    \quad\text{in topological order,}

with one free logit table :math:`T_v` per variable, indexed by the confounders that touch v and by v's
parents. Observed variables are read from ``data``; the confounders are enumerated exactly. This covers the bow
graph (x ← c → y, x → y), the instrumental variable (z → x → y, c → x, y), the front door (c → x, y; x → m → y)
and diagrams with several confounders, with the free-table parameterisation (the most flexible extrapolation).

>>> diagram = TabularDiagram({"z": 2, "x": 2, "y": 2}, {"x": ["z"], "y": ["x"]}, {"c": (4, ["x", "y"])})
>>> import pyro
>>> trace = pyro.poutine.trace(diagram.model).get_trace(num_samples=3)
>>> [name for name, site in trace.nodes.items() if site["type"] == "sample" and name != "data"]
['c', 'z', 'x', 'y']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .primitives import DATA_PLATE, confounder, data_size, register_params

__all__ = ["TabularDiagram"]


class TabularDiagram(nn.Module):
    """Free conditional tables over discrete variables, with canonical confounder clusters (module docstring).

    ``cards``: variable → number of values, in a topological order (parents first);
    ``parents``: variable → its observed parents; ``confounders``: name → (K, the variables it touches).
    """

    def __init__(self, cards: Mapping[str, int], parents: Mapping[str, Sequence[str]] | None = None,
                 confounders: Mapping[str, tuple[int, Sequence[str]]] | None = None):
        super().__init__()
        unknown = sorted(set(parents or {}) - set(cards))
        if unknown:
            raise ValueError(f"parents names {unknown}, which are not variables (variables: {list(cards)})")
        parents = {name: list(parents.get(name, ())) for name in cards} if parents else {n: [] for n in cards}
        confounders = dict(confounders or {})
        order = list(cards)
        for name, pa in parents.items():
            for parent in pa:
                if parent not in cards:
                    raise ValueError(f"parent {parent!r} of {name!r} is not a variable (variables: {order})")
                if order.index(parent) >= order.index(name):
                    raise ValueError(f"list the variables parents first: {parent!r} comes after its child {name!r}")
        for c_name, (size, touched) in confounders.items():
            if int(size) < 1:
                raise ValueError(f"confounder {c_name!r}: K must be >= 1, got {size}")
            unknown = [v for v in touched if v not in cards]
            if unknown:
                raise ValueError(f"confounder {c_name!r} touches unknown variables {unknown} (variables: {order})")
        self.cards = {name: int(size) for name, size in cards.items()}
        self.parents = parents
        self.confounders = {name: (int(size), list(touched)) for name, (size, touched) in confounders.items()}
        self.pi = nn.ParameterDict({name: nn.Parameter(torch.zeros(size)) for name, (size, _) in
                                    self.confounders.items()})
        self.tables = nn.ParameterDict()
        for name, size in self.cards.items():
            shape = [k for k, touched in self.confounders.values() if name in touched]
            shape += [self.cards[p] for p in parents[name]] + [size]
            self.tables[name] = nn.Parameter(torch.zeros(shape))

    def touching(self, name: str) -> list[str]:
        """The confounders whose cluster indexes the table of ``name``."""
        return [c for c, (_, touched) in self.confounders.items() if name in touched]

    def model(self, data: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None):
        """The diagram as a Pyro program (observed variables from ``data``, confounders enumerated)."""
        data = data or {}
        register_params("tabular", self, ("pi", "tables"))
        values: dict[str, torch.Tensor] = {}
        with pyro.plate(DATA_PLATE, data_size(data, num_samples)):
            for c_name in self.confounders:
                values[c_name] = confounder(c_name, self.pi[c_name])
            for name in self.cards:
                index = tuple(values[c] for c in self.touching(name)) + tuple(values[p] for p in self.parents[name])
                table = self.tables[name]
                logits = table[index] if index else table
                values[name] = pyro.sample(name, dist.Categorical(logits=logits), obs=data.get(name))
        return values
