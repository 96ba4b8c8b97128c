r"""Ground-truth structural causal model of the confounded colour benchmark (docs/design.md §5).

Variables: a hidden confounder :math:`U \in \{0..M-1\}`, the class of the base image
:math:`X \in \{0..N_X-1\}` and the hue bin :math:`Y \in \{0..N_Y-1\}`; the image is the base image of
class X coloured with a hue inside bin Y. The SCM is

.. math::

    U \sim P(U) = \mathrm{Uniform}\{0..M-1\}, \qquad
    P(X = x \mid U = u) = \frac{1 - s}{N_X} + s\,[x = u \bmod N_X],

    P(Y = y \mid X = x, U = u) \propto
        \exp\big(\kappa_U \cos(\theta_y - \phi_u) + \kappa_X \cos(\theta_y - \psi_x)\big),

with :math:`\theta_y = 2\pi (y + 1/2) / N_Y` the centre angle of hue bin y, :math:`\phi_u` the confounder's
preferred hue (spread evenly around the circle, starting at bin 0) and :math:`\psi_x` the class's preferred hue
(spread evenly, shifted by one bin so that the causal effect of X is not aligned with U's). The log-probability
is *additive* in x and u, so an additive-in-(x, c) model class contains the truth. The strength of confounding
is :math:`s \in [0, 1]`: at :math:`s = 0`, :math:`X \perp U` and :math:`P(y \mid do(x)) = P(y \mid x)`.

Observational and interventional queries:

.. math::

    P(y \mid x) = \frac{\sum_u P(u) P(x \mid u) P(y \mid x, u)}{\sum_u P(u) P(x \mid u)}, \qquad
    P(y \mid do(x)) = \sum_u P(u)\, P(y \mid x, u).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch

__all__ = ["ConfoundedColourSCM", "sample_categorical"]

# Concentrations of the von-Mises-like hue logits. U's is the larger one, so that U's clusters are well
# separated in hue (a mixture model can find them); X's is large enough to be a visible true effect. At the
# default confounding (0.9) these give a circular W1 of about 0.14 between P(y | x) and P(y | do(x)) per x.
_KAPPA_CONFOUNDER = 3.0
_KAPPA_CLASS = 1.5


def sample_categorical(probs: torch.Tensor, n: int | None, generator: torch.Generator | None) -> torch.Tensor:
    """Draw categorical indices by inverse-CDF sampling, deterministic given ``generator``.

    ``probs`` is (K,) (then ``n`` draws) or (n, K) (one draw per row, ``n`` ignored).

    >>> g = torch.Generator().manual_seed(0)
    >>> sample_categorical(torch.tensor([0.0, 1.0, 0.0]), 4, g).tolist()
    [1, 1, 1, 1]
    """
    probs = probs.to(torch.float64)
    if probs.dim() == 1:
        if n is None:
            raise ValueError("n: required when probs is one-dimensional")
        probs = probs.expand(n, -1)
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[..., -1:]
    uniforms = torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64)
    # right=True: a uniform exactly on a CDF step belongs to the next category, so zero-probability
    # categories (flat CDF) are never drawn.
    index = torch.searchsorted(cdf, uniforms, right=True).squeeze(-1)
    return index.clamp_(max=probs.shape[-1] - 1)


@dataclass
class ConfoundedColourSCM:
    """Tabular ground truth: ``p_u`` (M,), ``p_x_given_u`` (M, NX), ``p_y_given_xu`` (NX, M, NY), float64.

    Tables given directly are checked on construction (one-line ``ValueError``): shapes that agree, finite
    non-negative entries and distributions that sum to one over their last axis. ``p_y_given_xu`` is indexed
    ``[x, u, y]``: a table laid out ``[u, x, y]`` is refused when M != NX, but when M = NX the two layouts have
    the same shape and cannot be told apart; index such a table as ``[x, u, y]`` (``table.transpose(0, 1)``).

    >>> ConfoundedColourSCM(torch.tensor([0.5, 0.5]), torch.eye(2), torch.ones(2, 2, 3))
    Traceback (most recent call last):
    ...
    ValueError: p_y_given_xu: each row P(Y | x, u) must sum to 1 (a distribution), but sums range over [3, 3]; normalise it: p / p.sum(-1, keepdim=True)

    >>> scm = ConfoundedColourSCM.make(confounding=0.0)
    >>> bool(torch.allclose(scm.observational_y_given_x(), scm.interventional_y(), atol=1e-12))
    True
    >>> scm.sample(5, torch.Generator().manual_seed(0))["y"].shape
    torch.Size([5])
    """

    p_u: torch.Tensor
    p_x_given_u: torch.Tensor
    p_y_given_xu: torch.Tensor

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        for name in ("p_u", "p_x_given_u", "p_y_given_xu"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise ValueError(f"{name}: must be a floating-point torch.Tensor of probabilities, got {type(value).__name__}"
                                 f"{'' if not isinstance(value, torch.Tensor) else ' of dtype ' + str(value.dtype)}")
        p_u, p_x, p_y = self.p_u, self.p_x_given_u, self.p_y_given_xu
        if p_u.dim() != 1 or p_x.dim() != 2 or p_y.dim() != 3:
            raise ValueError(f"tables: expected p_u (M,), p_x_given_u (M, NX), p_y_given_xu (NX, M, NY), got shapes "
                             f"{tuple(p_u.shape)}, {tuple(p_x.shape)}, {tuple(p_y.shape)}")
        m, nx = p_x.shape
        if p_u.shape[0] != m:
            raise ValueError(f"p_x_given_u: has {m} rows (one per u), but p_u has {p_u.shape[0]} confounder values")
        if tuple(p_y.shape[:2]) != (nx, m):
            layout = " (laid out [u, x, y]: pass p_y_given_xu.transpose(0, 1))" if tuple(p_y.shape[:2]) == (m, nx) else ""
            raise ValueError(f"p_y_given_xu: expected shape (NX, M, NY) = ({nx}, {m}, NY), indexed [x, u, y], got "
                             f"{tuple(p_y.shape)}{layout}")
        for name, table, what in (("p_u", p_u, "P(U)"), ("p_x_given_u", p_x, "P(X | u)"), ("p_y_given_xu", p_y, "P(Y | x, u)")):
            if not bool(table.isfinite().all()) or bool((table < 0).any()):
                raise ValueError(f"{name}: entries must be finite and >= 0 (probabilities)")
            sums = table.sum(-1)
            tolerance = 1e-6 if table.dtype == torch.float64 else 1e-4
            if not bool(((sums - 1).abs() <= tolerance).all()):
                rows = "" if table.dim() == 1 else "each row "
                raise ValueError(f"{name}: {rows}{what} must sum to 1 (a distribution), but sums range over "
                                 f"[{float(sums.min()):.4g}, {float(sums.max()):.4g}]; normalise it: p / p.sum(-1, keepdim=True)")

    @classmethod
    def make(
        cls,
        num_classes: int = 3,
        num_hue_bins: int = 6,
        num_confounders: int = 3,
        confounding: float = 0.9,
    ) -> "ConfoundedColourSCM":
        """Build the benchmark SCM (see the module docstring for the equations)."""
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes: must be an int >= 2, got {num_classes!r}")
        if not isinstance(num_hue_bins, int) or num_hue_bins < 2:
            raise ValueError(f"num_hue_bins: must be an int >= 2, got {num_hue_bins!r}")
        if not isinstance(num_confounders, int) or num_confounders < 1:
            raise ValueError(f"num_confounders: must be an int >= 1, got {num_confounders!r}")
        if not isinstance(confounding, (int, float)) or not 0.0 <= float(confounding) <= 1.0:
            raise ValueError(f"confounding: must be a number in [0, 1], got {confounding!r}")
        s = float(confounding)
        dtype = torch.float64

        p_u = torch.full((num_confounders,), 1.0 / num_confounders, dtype=dtype)
        preferred_class = torch.arange(num_confounders) % num_classes
        p_x_given_u = (1.0 - s) / num_classes + s * torch.nn.functional.one_hot(
            preferred_class, num_classes
        ).to(dtype)

        bin_angle = 2 * math.pi * (torch.arange(num_hue_bins, dtype=dtype) + 0.5) / num_hue_bins
        first_bin = bin_angle[0]
        confounder_angle = first_bin + 2 * math.pi * torch.arange(num_confounders, dtype=dtype) / num_confounders
        one_bin = 2 * math.pi / num_hue_bins
        class_angle = first_bin + one_bin + 2 * math.pi * torch.arange(num_classes, dtype=dtype) / num_classes
        # logits[x, u, y]: additive in x and u.
        logits = _KAPPA_CONFOUNDER * torch.cos(bin_angle[None, None, :] - confounder_angle[None, :, None]) + (
            _KAPPA_CLASS * torch.cos(bin_angle[None, None, :] - class_angle[:, None, None])
        )
        p_y_given_xu = torch.softmax(logits, dim=-1)
        return cls(p_u=p_u, p_x_given_u=p_x_given_u, p_y_given_xu=p_y_given_xu)

    # ------------------------------------------------------------------ sizes
    @property
    def num_confounders(self) -> int:
        return self.p_u.shape[0]

    @property
    def num_classes(self) -> int:
        return self.p_x_given_u.shape[1]

    @property
    def num_hue_bins(self) -> int:
        return self.p_y_given_xu.shape[2]

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Observational draws: U ~ P(U), X ~ P(X | U), Y ~ P(Y | X, U). Returns LongTensors ``u, x, y``."""
        n = _check_count(n)
        u = sample_categorical(self.p_u, n, generator)
        x = sample_categorical(self.p_x_given_u[u], None, generator)
        y = sample_categorical(self.p_y_given_xu[x, u], None, generator)
        return {"u": u, "x": x, "y": y}

    def sample_interventional(
        self, x: int, n: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Unconfounded reference for do(X = x): U ~ P(U), Y ~ P(Y | x, U). Returns LongTensors ``u, x, y``."""
        return self._sample_given_x(x, n, lambda x: self.p_u, generator)

    def sample_conditional(
        self, x: int, n: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Observational draws given X = x: U ~ P(U | x), Y ~ P(Y | x, U). Returns LongTensors ``u, x, y``."""

        def p_u_given_x(x: int) -> torch.Tensor:
            joint = self.p_u * self.p_x_given_u[:, x]
            return joint / joint.sum()

        return self._sample_given_x(x, n, p_u_given_x, generator)

    def _sample_given_x(self, x: int, n: int, p_u, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """U ~ p_u(x) (a table of U for the checked x), then Y ~ P(Y | x, U): what do(x) and conditioning on x
        share; they differ only in the law of U."""
        n = _check_count(n)
        x = self._check_class(x)
        u = sample_categorical(p_u(x), n, generator)
        y = sample_categorical(self.p_y_given_xu[x, u], None, generator)
        return {"u": u, "x": torch.full((n,), x, dtype=torch.long), "y": y}

    # ------------------------------------------------------------------ exact queries
    def p_x(self) -> torch.Tensor:
        """P(x) = Σ_u P(u) P(x | u), shape (NX,)."""
        return self.p_u @ self.p_x_given_u

    def joint_xy(self) -> torch.Tensor:
        """P(x, y) = Σ_u P(u) P(x | u) P(y | x, u), shape (NX, NY)."""
        return torch.einsum("u,ux,xuy->xy", self.p_u, self.p_x_given_u, self.p_y_given_xu)

    def observational_y_given_x(self) -> torch.Tensor:
        """P(y | x), shape (NX, NY); rows sum to one."""
        joint = self.joint_xy()
        return joint / joint.sum(dim=1, keepdim=True)

    def interventional_y(self) -> torch.Tensor:
        """P(y | do(x)) = Σ_u P(u) P(y | x, u), shape (NX, NY); row x is the law under do(X = x)."""
        return torch.einsum("u,xuy->xy", self.p_u, self.p_y_given_xu)

    def bin_centres(self) -> torch.Tensor:
        """Hue in [0, 1) of each bin centre, shape (NY,)."""
        return (torch.arange(self.num_hue_bins, dtype=torch.float64) + 0.5) / self.num_hue_bins

    # ------------------------------------------------------------------ helpers
    def _check_class(self, x: int) -> int:
        if isinstance(x, torch.Tensor):
            if x.numel() != 1:
                raise ValueError(f"x: must be a single class index, got shape {tuple(x.shape)}")
            x = int(x.item())
        try:
            index = operator.index(x)  # accepts Python and NumPy ints, refuses floats
        except TypeError:
            raise ValueError(f"x: must be an int in [0, {self.num_classes - 1}], got {x!r}") from None
        if not 0 <= index < self.num_classes:
            raise ValueError(f"x: must be an int in [0, {self.num_classes - 1}], got {x!r}")
        return index


def _check_count(n: int) -> int:
    try:
        count = operator.index(n)
    except TypeError:
        raise ValueError(f"n: must be a positive int, got {n!r}") from None
    if count < 1:
        raise ValueError(f"n: must be a positive int, got {n!r}")
    return count
