"""Small convex problems with closed-form KKT points, for known-answer tests of algorithms.

Every problem is a (possibly stochastic) constrained least-squares problem

    min_x  f(x) = (1/n) sum_i 1/2 ||A x - y - e_i||^2      s.t.  c(x) <= 0

over a float64 vector, served by :class:`~fairbench.problems.callable.CallableOracle` so that
any fairbench algorithm runs on it unchanged. The noise rows ``e_i`` have mean zero (exactly,
within every group), hence ``f(x) = 1/2 ||A x - y||^2 + const`` and the KKT point (solution
``x_star`` and multipliers ``lam_star``) does not depend on the noise:

- ``noise=0`` (default): deterministic, one data row; use ``batch_size=1, per_group=1``.
- ``noise>0``: ``n_rows`` rows in two equal groups (rows alternate between groups), each
  sampled gradient is ``A^T (A x - y - mean_{i in batch} e_i)``: unbiased with variance
  ``~ noise^2 / batch``.
- ``constraint_noise>0`` adds zero-mean row noise ``d_i`` (m values per row, mean zero within
  each group) to the sampled constraint values, so the constraints are stochastic too; the
  Jacobian stays exact. A balanced batch (equal rows per group) is then unbiased.

Problems (factories return a :class:`KnownProblem`):

- :func:`halfspace` ``active=True``: project ``a = (2, 1)`` onto ``x1 + x2 <= 1``;
  ``x* = (1, 0)``, ``lam* = 1``.  ``active=False``: the bound is 4, ``x* = a``, ``lam* = 0``.
- :func:`ball`: project ``a = (3, 4)`` onto ``||x||^2 - 1 <= 0``; ``x* = (0.6, 0.8)``,
  ``lam* = (||a|| - r) / (2 r) = 2``.
- :func:`least_squares_two`: a 2-D least-squares problem with one active and one inactive
  constraint (the inactive one is violated at the unconstrained minimiser); derivation there.

:func:`synthetic_fairness_oracle` builds a small :class:`~fairbench.problems.fairness.FairnessOracle`
(float32 linear logit model on generated data, two groups with different base rates), for
tests that need the census code path (torch autograd, float32, ``custom_grad``) without data.

Usage::

    from known_problems import halfspace
    p = halfspace(active=True, noise=0.5)
    oracle = p.oracle(seed=0)                 # a fresh oracle starting at p.x0
    ...run an algorithm...
    assert p.distance(oracle.x) < 2e-2
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import torch
from torch import nn

from fairbench.problems.callable import CallableOracle
from fairbench.problems.fairness import FairnessOracle, TensorSplit
import configs

N_ROWS = 2000  # rows of a stochastic problem (two groups of 1000)


@dataclass(frozen=True)
class KnownProblem:
    """A constrained least-squares problem with a known KKT point.

    ``constraint`` maps ``x`` to ``(c(x), J(x))`` of the noise-free constraints. ``x_star``
    and ``lam_star`` are the KKT point; ``x_unconstrained`` is the minimiser of ``f`` alone.
    """

    name: str
    A: np.ndarray
    y: np.ndarray
    constraint: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    n_constraints: int
    x0: np.ndarray
    x_star: np.ndarray
    lam_star: np.ndarray
    noise: float = 0.0
    constraint_noise: float = 0.0
    n_rows: int = 1
    noise_seed: int = 12345

    @property
    def x_unconstrained(self) -> np.ndarray:
        return np.linalg.lstsq(self.A, self.y, rcond=None)[0]

    @property
    def groups(self) -> np.ndarray:
        return np.arange(self.n_rows) % 2 if self.n_rows > 1 else np.zeros(1, dtype=np.int64)

    def _zero_mean_rows(self, width: int, scale: float, stream: int) -> np.ndarray:
        """``(n_rows, width)`` noise with mean exactly zero within each group."""
        if scale == 0 or self.n_rows == 1:
            return np.zeros((self.n_rows, width))
        rng = np.random.default_rng([self.noise_seed, stream])
        e = scale * rng.standard_normal((self.n_rows, width))
        for g in np.unique(self.groups):
            e[self.groups == g] -= e[self.groups == g].mean(axis=0)
        return e

    def f(self, x: np.ndarray) -> float:
        """Noise-free objective ``1/2 ||A x - y||^2`` (the true ``f`` up to a constant)."""
        r = self.A @ x - self.y
        return 0.5 * float(r @ r)

    def c(self, x: np.ndarray) -> np.ndarray:
        """Noise-free constraint values."""
        return self.constraint(x)[0]

    def distance(self, x: np.ndarray) -> float:
        """``||x - x_star||_2``."""
        return float(np.linalg.norm(np.asarray(x, dtype=float) - self.x_star))

    def oracle(self, seed: int = 0, x0: np.ndarray | None = None, constrained: bool = True) -> CallableOracle:
        """A fresh oracle (sampling streams from ``seed``) starting at ``x0`` (default ``self.x0``).

        ``constrained=False`` gives the same objective without constraints.
        """
        A, y, constraint = self.A, self.y, self.constraint
        E = self._zero_mean_rows(len(y), self.noise, stream=0)
        E_sq = np.einsum("ij,ij->i", E, E)
        D = self._zero_mean_rows(self.n_constraints, self.constraint_noise, stream=1)
        noisy_f, noisy_c = self.noise > 0 and self.n_rows > 1, self.constraint_noise > 0 and self.n_rows > 1

        # (written for speed: these run several times per iteration of every test)
        def objective(x, rows):
            r = A @ x - y
            if not noisy_f:
                return 0.5 * float(r @ r), A.T @ r
            e = E[rows].sum(axis=0) / len(rows)  # mean noise of the batch
            # mean_i 1/2 ||r - e_i||^2 = 1/2 (||r||^2 - 2 r.e + mean_i ||e_i||^2)
            f = 0.5 * float(r @ r - 2.0 * (r @ e) + E_sq[rows].sum() / len(rows))
            return f, A.T @ (r - e)

        def constraints(x, rows):
            c, J = constraint(x)
            return (c + D[rows].sum(axis=0) / len(rows) if noisy_c else c), J

        return CallableOracle(
            x0=self.x0 if x0 is None else x0,
            objective=objective,
            constraints=constraints if constrained else None,
            n_constraints=self.n_constraints if constrained else 0,
            n_rows=self.n_rows,
            groups=self.groups,
            seed=seed,
        )


def _rows(noise: float, constraint_noise: float, n_rows: int | None) -> int:
    if n_rows is not None:
        return n_rows
    return N_ROWS if (noise > 0 or constraint_noise > 0) else 1


def halfspace(active: bool = True, noise: float = 0.0, constraint_noise: float = 0.0,
              n_rows: int | None = None) -> KnownProblem:
    """Project ``a = (2, 1)`` onto the half-space ``w.x <= b`` with ``w = (1, 1)``.

    KKT: ``x - a + lam w = 0``, ``lam (w.x - b) = 0``, ``lam >= 0``. If ``w.a > b`` (active,
    ``b = 1``): ``x* = a - ((w.a - b)/||w||^2) w = (1, 0)``, ``lam* = (w.a - b)/||w||^2 = 1``.
    Otherwise (inactive, ``b = 4``): ``x* = a``, ``lam* = 0`` (and ``c(x*) = -1``).
    """
    a, w = np.array([2.0, 1.0]), np.array([1.0, 1.0])
    b = 1.0 if active else 4.0
    t = max(w @ a - b, 0.0) / (w @ w)
    return KnownProblem(
        name=f"halfspace_{'active' if active else 'inactive'}",
        A=np.eye(2), y=a,
        constraint=lambda x: (np.array([w @ x - b]), w[None, :].copy()),
        n_constraints=1,
        x0=np.zeros(2),
        x_star=a - t * w, lam_star=np.array([t]),
        noise=noise, constraint_noise=constraint_noise, n_rows=_rows(noise, constraint_noise, n_rows),
    )


def ball(noise: float = 0.0, constraint_noise: float = 0.0, n_rows: int | None = None) -> KnownProblem:
    """Project ``a = (3, 4)`` onto the ball ``||x||^2 - r^2 <= 0``, ``r = 1``.

    KKT: ``x - a + 2 lam x = 0`` gives ``x = a / (1 + 2 lam)``; the constraint is active since
    ``||a|| = 5 > r``, so ``||a|| / (1 + 2 lam) = r``: ``lam* = (||a|| - r)/(2 r) = 2`` and
    ``x* = r a / ||a|| = (0.6, 0.8)``.
    """
    a, r = np.array([3.0, 4.0]), 1.0
    norm_a = float(np.linalg.norm(a))
    return KnownProblem(
        name="ball",
        A=np.eye(2), y=a,
        constraint=lambda x: (np.array([x @ x - r * r]), 2.0 * x[None, :]),
        n_constraints=1,
        x0=np.zeros(2),
        x_star=r * a / norm_a, lam_star=np.array([(norm_a - r) / (2 * r)]),
        noise=noise, constraint_noise=constraint_noise, n_rows=_rows(noise, constraint_noise, n_rows),
    )


def least_squares_two(noise: float = 0.0, constraint_noise: float = 0.0, n_rows: int | None = None) -> KnownProblem:
    """``min 1/2 ||A x - y||^2  s.t.  c1 = x1 + x2 - 1 <= 0,  c2 = x2 - 1.5 <= 0``.

    With ``A = diag(1, 2)`` and ``y = (3, 4)``: ``H = A^T A = diag(1, 4)``, and the unconstrained
    minimiser ``x_u = H^{-1} A^T y = (3, 2)`` violates both constraints (c1 = 4, c2 = 0.5).

    Guess the active set {c1}. Stationarity ``H x - A^T y + lam1 w1 = 0`` (``w1 = (1, 1)``) gives
    ``x = x_u - lam1 H^{-1} w1``; the active constraint ``w1.x = 1`` gives
    ``lam1 = (w1.x_u - 1) / (w1^T H^{-1} w1) = 4 / (1 + 1/4) = 16/5 = 3.2`` and
    ``x* = (3, 2) - 3.2 (1, 1/4) = (-0.2, 1.2)``.
    Check the guess: ``lam1 > 0``; ``c1(x*) = 0``; ``c2(x*) = 1.2 - 1.5 = -0.3 < 0`` so ``lam2 = 0``
    (complementarity holds). The problem is convex, so this KKT point is the unique solution:
    ``x* = (-0.2, 1.2)``, ``lam* = (3.2, 0)``.
    """
    A, y = np.diag([1.0, 2.0]), np.array([3.0, 4.0])
    W, b = np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([1.0, 1.5])
    return KnownProblem(
        name="least_squares_two",
        A=A, y=y,
        constraint=lambda x: (W @ x - b, W.copy()),
        n_constraints=2,
        x0=np.zeros(2),
        x_star=np.array([-0.2, 1.2]), lam_star=np.array([3.2, 0.0]),
        noise=noise, constraint_noise=constraint_noise, n_rows=_rows(noise, constraint_noise, n_rows),
    )


def all_problems(noise: float = 0.0, constraint_noise: float = 0.0) -> list[KnownProblem]:
    """The four problems, with the given noise levels."""
    return [
        halfspace(True, noise, constraint_noise),
        halfspace(False, noise, constraint_noise),
        ball(noise, constraint_noise),
        least_squares_two(noise, constraint_noise),
    ]


def kkt_residual(p: KnownProblem, x: np.ndarray, lam: np.ndarray) -> float:
    """Max of stationarity, primal feasibility, dual feasibility and complementarity residuals."""
    c, J = p.constraint(x)
    grad = p.A.T @ (p.A @ x - p.y) + J.T @ lam
    return float(max(np.abs(grad).max(), np.maximum(c, 0).max(), np.maximum(-lam, 0).max(), np.abs(lam * c).max()))


class LinearLogit(nn.Linear):
    """``d -> 1`` linear model returning one logit per row (shape ``(N,)``)."""

    def __init__(self, n_features: int):
        super().__init__(n_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x).squeeze(-1)


def synthetic_split(n: int = 600, n_features: int = 3, seed: int = 0) -> TensorSplit:
    """Generated rows: group 1 (about 40 %) has feature 0 shifted down by 1, and the label is
    ``x0 + noise > 0.5``, so base rates (and an unconstrained model's positive rates and
    losses) differ between groups."""
    rng = np.random.default_rng(seed)
    group = (rng.random(n) < 0.4).astype(np.int64)
    X = rng.standard_normal((n, n_features))
    X[:, 0] += 1.0 * (group == 0)
    y = (X[:, 0] + 0.5 * rng.standard_normal(n) > 0.5).astype(np.float32)
    return TensorSplit.from_arrays(X, y, group)


def synthetic_fairness_oracle(seed: int = 0, constrained: bool = True, delta: float = 0.02,
                              split: TensorSplit | None = None) -> FairnessOracle:
    """A float32 :class:`FairnessOracle` over :func:`synthetic_split` with a :class:`LinearLogit`
    model initialised from ``torch.manual_seed(seed)``; ``constrained`` adds the signed loss-gap
    constraints ``+-(L_0 - L_1) - delta <= 0`` (two constraints)."""
    split = synthetic_split() if split is None else split
    torch.manual_seed(seed)
    model = LinearLogit(split.X.shape[1])
    group = split.group.numpy()
    proportions = np.bincount(group, minlength=2) / len(group)
    bound = configs.constraint_spec(delta=delta).bind(proportions, ["g0", "g1"]) if constrained else None
    return FairnessOracle(model, split, 2, bound, seed)


def one_torch_thread():
    """Generator for a pytest fixture: run torch single-threaded (tiny models are much faster,
    and timings stable, on a busy machine), restoring the previous setting afterwards::

        one_thread = pytest.fixture(autouse=True, scope="module")(one_torch_thread)
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
