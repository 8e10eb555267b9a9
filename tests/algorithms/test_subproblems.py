"""Ghost's subproblems: the exact (closed-form) solvers against tight OSQP / HiGHS, degenerate cases,
statuses, the roles of rho and lam in kappa, and the LP fallback."""

from __future__ import annotations

import numpy as np
import pytest

from fairbench.algorithms import subproblem_pair as pair
from fairbench.algorithms import subproblems as sub
from fairbench.algorithms.subproblems import dispatch as sub_dispatch
from fairbench.algorithms.subproblems import lp as sub_lp
from fairbench.algorithms.subproblems import qp_exact as sub_qp_exact
from fairbench.algorithms.subproblems import small as sub_small
from fairbench.algorithms.subproblems import (
    EXACT_MAX_M,
    GhostSubproblems,
    OSQPDirection,
    direction_qp_active_set,
    direction_qp_exact,
    feasibility_level,
    level_lp,
    level_lp_exact,
    level_lp_highs,
)
from fairbench.backends.oracles import compiled_available

NO_NUMBA = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")
QP_ATOL = 1e-8   # exact vs OSQP (eps 1e-11, polished) on the direction; observed <= 5e-11
LP_ATOL = 1e-9   # exact vs HiGHS (feasibility tolerances 1e-10) on t*; observed <= 3e-16
KKT_ATOL = 1e-10  # the exact QP's own KKT residuals


@pytest.fixture
def tight_osqp():
    return OSQPDirection(eps_abs=1e-11, eps_rel=1e-11, max_iter=400000, polishing=True)


def random_instance(rng, m, n):
    g = rng.normal(size=n) * rng.choice([0.1, 1.0, 10.0])
    J = rng.normal(size=(m, n))
    c = rng.normal(size=m)
    rho, lam = rng.uniform(0.05, 2.0), rng.uniform(0.0, 1.0)
    tau, beta = rng.uniform(0.3, 3.0), float(rng.choice([0.05, 0.3, 1.0, 10.0]))
    return g, c, J, rho, lam, tau, beta


def assert_kkt(g, c, J, kappa, tau, beta, res):
    """The exact solution satisfies the QP's KKT conditions by itself (no reference solver)."""
    b = kappa - c
    u, d = res.u, res.d
    assert np.all(u >= 0)
    np.testing.assert_allclose(d, np.clip(-(g + u @ J) / tau, -beta, beta), atol=KKT_ATOL)
    slack = J @ d - b
    assert np.all(slack <= KKT_ATOL * (1 + np.abs(J) @ np.abs(d) + np.abs(b)))
    assert np.all(np.abs(u * slack) <= KKT_ATOL * (1 + u) * (1 + np.abs(J) @ np.abs(d) + np.abs(b)))


def test_random_instances_agree_with_osqp_and_highs(tight_osqp):
    """240 random instances, m in {1, 2}, n in 2..50, box from 0.05 (mostly binding) to 10:
    same status, directions within 1e-8, t* within 1e-9, and the exact QP meets its KKT conditions."""
    rng = np.random.default_rng(2024)
    seen = {"solved": 0, "infeasible": 0}
    for _ in range(240):
        m, n = int(rng.integers(1, 3)), int(rng.integers(2, 51))
        g, c, J, rho, lam, tau, beta = random_instance(rng, m, n)
        t_exact, t_highs = level_lp_exact(c, J, rho), level_lp_highs(c, J, rho)
        assert abs(t_exact - t_highs) <= LP_ATOL
        kappa, _ = feasibility_level(c, J, rho=rho, lam=lam)
        exact = direction_qp_exact(g, c, J, kappa, tau=tau, beta=beta)
        ref = tight_osqp.solve(g, c, J, kappa, tau=tau, beta=beta)
        assert exact.status == ref.status
        seen[exact.status] += 1
        if exact.ok:
            np.testing.assert_allclose(exact.d, ref.d, atol=QP_ATOL, rtol=0)
            assert_kkt(g, c, J, kappa, tau, beta, exact)
    # beta < rho makes some QPs infeasible: both kinds were exercised
    assert seen["solved"] > 150 and seen["infeasible"] > 5


@pytest.mark.parametrize("m", [3, 4])
def test_small_m_above_two_agrees(tight_osqp, m):
    """The support enumeration also covers m = 3, 4 (LP through HiGHS there)."""
    rng = np.random.default_rng(m)
    for _ in range(30):
        g, c, J, rho, lam, tau, beta = random_instance(rng, m, int(rng.integers(2, 30)))
        kappa, lp = feasibility_level(c, J, rho=rho, lam=lam)
        assert not lp.fallback
        exact = direction_qp_exact(g, c, J, kappa, tau=tau, beta=beta)
        ref = tight_osqp.solve(g, c, J, kappa, tau=tau, beta=beta)
        assert exact.status == ref.status
        if exact.ok:
            np.testing.assert_allclose(exact.d, ref.d, atol=QP_ATOL, rtol=0)


# -- degenerate QPs -------------------------------------------------------------------------


def compare(osqp_solver, g, c, J, kappa, tau, beta, expect="solved"):
    exact = direction_qp_exact(g, c, J, kappa, tau=tau, beta=beta)
    ref = osqp_solver.solve(g, c, J, kappa, tau=tau, beta=beta)
    assert exact.status == ref.status == expect
    if expect != "solved":
        return exact
    np.testing.assert_allclose(exact.d, ref.d, atol=QP_ATOL, rtol=0)
    assert_kkt(g, c, J, kappa, tau, beta, exact)
    return exact


def test_box_binding(tight_osqp):
    """Tiny box: most coordinates sit on +-beta, with and without the constraint active."""
    rng = np.random.default_rng(1)
    n = 30
    g, J = rng.normal(size=n) * 5, rng.normal(size=(2, n))
    for c in (np.array([-1.0, -1.0]), np.array([0.05, 0.02])):
        res = compare(tight_osqp, g, c, J, 0.0, 1.0, 0.01)
        assert np.mean(np.abs(np.abs(res.d) - 0.01) < 1e-12) > 0.5


@pytest.mark.parametrize("alpha", [2.5, 1.0, -1.0, -0.3])
def test_parallel_constraint_rows(tight_osqp, alpha):
    """J_2 = alpha J_1: the 2x2 system of the two-constraint support is singular.

    c = (0.4, 0.4 alpha): the same hyperplane twice (alpha > 0) or a zero-width slab (alpha < 0);
    c = (0.3, -0.5): one constraint binds; c = (1, 2): feasible for alpha > 0, an empty slab
    (infeasible) for alpha < 0.
    """
    rng = np.random.default_rng(7)
    n = 12
    g, j = rng.normal(size=n), rng.normal(size=n)
    J = np.stack([j, alpha * j])
    compare(tight_osqp, g, np.array([0.4, 0.4 * alpha]), J, 0.0, 1.0, 10.0)
    compare(tight_osqp, g, np.array([0.3, -0.5]), J, 0.0, 1.0, 10.0)
    compare(tight_osqp, g, np.array([1.0, 2.0]), J, 0.0, 1.0, 10.0, "solved" if alpha > 0 else "infeasible")


def test_equality_slab(tight_osqp):
    """J_2 = -J_1 and c_2 = -c_1: the two constraints pin J_1 d to one value (zero-width slab)."""
    rng = np.random.default_rng(3)
    n = 8
    g, j = rng.normal(size=n), rng.normal(size=n)
    for c1 in (0.7, -0.7):
        compare(tight_osqp, g, np.array([c1, -c1]), np.stack([j, -j]), 0.0, 1.0, 10.0)


def test_two_constraints_active_with_box_binding(tight_osqp):
    """Both constraints active and some coordinates on the box: the full 2x2 + box case."""
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(60):
        n = int(rng.integers(3, 15))
        g, J = rng.normal(size=n) * 3, rng.normal(size=(2, n))
        c = np.abs(rng.normal(size=2)) * 0.5
        kappa, _ = feasibility_level(c, J, rho=0.3, lam=0.5)  # rho <= beta: feasible
        res = compare(tight_osqp, g, c, J, kappa, 1.0, 0.5)
        hits += bool(np.all(res.u > 1e-9) and np.any(np.abs(np.abs(res.d) - 0.5) < 1e-12))
    assert hits >= 5


def test_zero_jacobian_row(tight_osqp):
    """A constraint with zero gradient: satisfied iff c <= kappa, otherwise infeasible."""
    g = np.array([1.0, -2.0, 0.5])
    J = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    compare(tight_osqp, g, np.array([-0.1, 0.5]), J, 0.0, 1.0, 10.0)
    exact = direction_qp_exact(g, np.array([0.1, 0.5]), J, 0.0, tau=1.0, beta=10.0)
    assert exact.status == "infeasible" and exact.d is None


@pytest.mark.parametrize("case", ["m1", "both_feasible_alone", "parallel_slab"])
def test_infeasible_qp_is_reported_by_both(tight_osqp, case):
    """Infeasible QPs are reported as such (never a zero direction) by both solvers."""
    n = 4
    g = np.array([0.3, -0.2, 0.1, 0.0])
    if case == "m1":  # 2 + sum(d) <= 0 with |d| <= 0.1
        c, J, beta = np.array([2.0]), np.ones((1, n)), 0.1
    elif case == "both_feasible_alone":  # d1 >= 0.5 and d1 + d2 <= -1.5 with |d| <= 1
        c, J, beta = np.array([0.5, 1.5]), np.array([[-1.0, 0, 0, 0], [1.0, 1.0, 0, 0]]), 1.0
    else:  # J d <= -1 and -J d <= -1
        c, J, beta = np.array([1.0, 1.0]), np.array([[1.0, 1.0, 0, 0], [-1.0, -1.0, 0, 0]]), 10.0
    exact = direction_qp_exact(g, c, J, 0.0, tau=1.0, beta=beta)
    ref = tight_osqp.solve(g, c, J, 0.0, tau=1.0, beta=beta)
    assert exact.status == "infeasible" and exact.d is None and not exact.ok
    assert ref.status == "infeasible" and ref.d is None and not ref.ok


def test_nonfinite_input_fails():
    g = np.array([np.nan, 1.0])
    for solver in (direction_qp_exact, OSQPDirection().solve):
        res = solver(g, np.array([0.1]), np.ones((1, 2)), 0.0, tau=1.0, beta=1.0)
        assert res.status == "failed" and not res.ok


def test_unconstrained_point_returned_when_feasible():
    g = np.array([0.5, -30.0])
    res = direction_qp_exact(g, np.array([-1.0]), np.array([[1.0, 0.0]]), 0.0, tau=2.0, beta=10.0)
    np.testing.assert_array_equal(res.d, [-0.25, 10.0])
    np.testing.assert_array_equal(res.u, [0.0])


def test_too_many_constraints_for_exact():
    with pytest.raises(ValueError, match="OSQP"):
        direction_qp_exact(np.zeros(3), np.zeros(EXACT_MAX_M + 1), np.zeros((EXACT_MAX_M + 1, 3)), 0.0,
                           tau=1.0, beta=1.0)
    # the wrapper hands such QPs to OSQP instead
    rng = np.random.default_rng(0)
    m = EXACT_MAX_M + 1
    res = GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0).solve(
        rng.normal(size=6), -np.ones(m), rng.normal(size=(m, 6)))
    assert res.qp.ok and not res.lp.fallback


# -- the LP and kappa -----------------------------------------------------------------------


def test_lp_closed_form_degenerate_cases():
    """m = 2 weighted-median form: J_2 = J_1 (no breakpoints), J_2 = -J_1 (all at s = 1/2),
    t* = 0 (restorable), m = 1, m = 0."""
    rng = np.random.default_rng(5)
    j = rng.normal(size=20)
    for J in (np.stack([j, j]), np.stack([j, -j]), np.stack([j, 2 * j])):
        for c in (np.array([3.0, 1.0]), np.array([1.0, 3.0]), np.array([2.0, 2.0]), np.array([-1.0, 0.1])):
            for rho in (0.01, 0.3):
                assert abs(level_lp_exact(c, J, rho) - level_lp_highs(c, J, rho)) <= LP_ATOL
    assert level_lp_exact([2.0], [[1.0, -1.0]], 0.5) == pytest.approx(1.0)
    assert level_lp_exact([2.0], [[1.0, -1.0]], 5.0) == 0.0
    assert level_lp_exact(np.zeros(0), np.zeros((0, 3)), 1.0) == 0.0


def test_kappa_uses_rho_as_radius_and_lam_as_weight():
    """c = 1, J = (1, 1): t* = max(0, 1 - 2 rho). rho = 0.8, lam = 0.5 gives kappa = 0.5; the
    paper's swap (radius 0.5, weight 0.8) would give 0.2 * 1 + 0.8 * 0 = 0.2."""
    c, J = np.array([1.0]), np.array([[1.0, 1.0]])
    for method in ("exact", "highs"):
        kappa, lp = feasibility_level(c, J, rho=0.8, lam=0.5, method=method)
        assert lp.t == pytest.approx(0.0, abs=1e-12) and kappa == pytest.approx(0.5)
        swapped, _ = feasibility_level(c, J, rho=0.5, lam=0.8, method=method)
        assert swapped == pytest.approx(0.2)
    # a t* > 0 case: c = 1, J = (0.25, 0.25): t* = 1 - 0.5 rho
    kappa, lp = feasibility_level(c, 0.25 * J, rho=0.8, lam=0.5)
    assert lp.t == pytest.approx(0.6) and kappa == pytest.approx(0.5 * 1 + 0.5 * 0.6)
    res = GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0).solve(np.zeros(2), c, J)
    assert res.kappa == pytest.approx(0.5)


def test_lp_fallback_is_rho_and_reported(monkeypatch):
    monkeypatch.setattr(sub_lp, "level_lp_exact", lambda *a: None)
    monkeypatch.setattr(sub_lp, "level_lp_highs", lambda *a: None)
    lp = level_lp(np.array([1.0, 2.0]), np.ones((2, 3)), 0.8)
    assert lp.fallback and lp.status == "fallback" and lp.t == 0.8
    kappa, lp = feasibility_level(np.array([1.0, 2.0]), np.ones((2, 3)), rho=0.8, lam=0.5)
    assert lp.fallback and kappa == pytest.approx(0.5 * 2.0 + 0.5 * 0.8)


def test_lp_nonfinite_falls_back():
    lp = level_lp(np.array([np.inf]), np.ones((1, 2)), 0.3)
    assert lp.fallback and lp.t == 0.3


# -- the OSQP path --------------------------------------------------------------------------


def test_osqp_object_is_reused_while_the_shape_is_fixed(tight_osqp):
    """One OSQP object per (m, n): later calls update values (and tau) in place and still solve
    the new data correctly; a new shape builds a new object."""
    rng = np.random.default_rng(9)
    first = None
    for i in range(6):
        g, J, c = rng.normal(size=10), rng.normal(size=(2, 10)), rng.normal(size=2)
        tau = 1.0 if i < 3 else 2.0
        res = tight_osqp.solve(g, c, J, 0.1, tau=tau, beta=1.0)
        first = first or tight_osqp._solver
        assert tight_osqp._solver is first
        np.testing.assert_allclose(res.d, direction_qp_exact(g, c, J, 0.1, tau=tau, beta=1.0).d, atol=QP_ATOL)
    tight_osqp.solve(rng.normal(size=11), np.zeros(2), rng.normal(size=(2, 11)), 0.1, tau=1.0, beta=1.0)
    assert tight_osqp._solver is not first


def test_osqp_failure_is_reported():
    """An iteration cap OSQP cannot meet gives a failed status, not a direction."""
    rng = np.random.default_rng(4)
    solver = OSQPDirection(eps_abs=1e-12, eps_rel=1e-12, max_iter=1, polishing=False)
    res = solver.solve(rng.normal(size=20), np.array([0.5, 0.5]), rng.normal(size=(2, 20)), 0.0, tau=1.0, beta=0.1)
    assert res.status == "failed" and res.d is None and not res.ok


def test_wrapper_paths_agree():
    rng = np.random.default_rng(12)
    exact = GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0)
    osqp = GhostSubproblems("osqp", rho=0.8, lam=0.5, tau=1.0, beta=10.0,
                            osqp_settings=dict(eps_abs=1e-10, eps_rel=1e-10, max_iter=100000, polishing=True))
    for _ in range(10):
        g, J, c = rng.normal(size=15), rng.normal(size=(2, 15)), rng.normal(size=2) * 0.3
        a, b = exact.solve(g, c, J), osqp.solve(g, c, J)
        assert a.kappa == pytest.approx(b.kappa, abs=LP_ATOL)
        np.testing.assert_allclose(a.qp.d, b.qp.d, atol=1e-7)
    with pytest.raises(ValueError):
        GhostSubproblems("cvxpy", rho=0.8, lam=0.5, tau=1.0, beta=10.0)


def test_box_free_pass_and_dual_enumeration_agree(monkeypatch):
    """The R^m box-free pass and the general dual enumeration give the same direction: on
    instances where no bound is active the general path (pass disabled) must reproduce it."""
    rng = np.random.default_rng(21)
    solved = []
    for _ in range(60):
        m, n = int(rng.integers(1, 4)), int(rng.integers(2, 40))
        g, J, c = rng.normal(size=n) * 0.1, rng.normal(size=(m, n)), rng.normal(size=m)
        kappa, _ = feasibility_level(c, J, rho=0.5, lam=0.5)
        solved.append((g, c, J, kappa, direction_qp_exact(g, c, J, kappa, tau=1.0, beta=10.0)))
    monkeypatch.setattr(sub_qp_exact, "_qp_box_free", lambda *a: None)
    for g, c, J, kappa, res in solved:
        assert res.ok
        np.testing.assert_allclose(direction_qp_exact(g, c, J, kappa, tau=1.0, beta=10.0).d, res.d, atol=1e-10)


# -- general m: the active-set QP and the certified LP ---------------------------------------


def general_instance(rng, m, n, layout, beta=None):
    """A random instance with ``m`` constraints. Layouts: ``plain`` (dense random rows),
    ``signed`` (``J = [A; -A]``, the census signed family), ``signed_diffs`` (``A`` the pair
    differences of a few group rows, so ``J`` has low rank as on the census task)."""
    h = m // 2
    if layout == "plain":
        J = rng.normal(size=(m, n))
    else:
        if layout == "signed":
            A = rng.normal(size=(h, n))
        else:
            groups = int(rng.integers(2, 6))
            pairs = [(a, b) for a in range(groups) for b in range(a + 1, groups)]
            D = np.zeros((h, groups))
            for r in range(h):
                a, b = pairs[r % len(pairs)]
                D[r, a], D[r, b] = 1.0, -1.0
            A = D @ rng.normal(size=(groups, n))
        J = np.vstack([A, -A])
    g = rng.normal(size=n) * rng.choice([0.1, 1.0, 10.0])
    c = rng.normal(size=m) * rng.choice([0.1, 1.0])
    if layout != "plain" and rng.random() < 0.6:
        c[h:] = -c[:h] - np.abs(rng.normal(size=h)) * 0.1  # c_- = -c_+ - 2 delta, as on the census task
    rho, lam = float(np.exp(rng.uniform(np.log(0.002), np.log(2.0)))), rng.uniform(0.0, 1.0)
    tau = rng.uniform(0.3, 3.0)
    if beta is None and rng.random() < 0.25:  # beta < rho, kappa near t*: often infeasible
        rho, lam, beta = rng.uniform(1.0, 2.0), rng.uniform(0.9, 1.0), 0.001
    beta = float(rng.choice([0.05, 0.3, 1.0, 10.0])) if beta is None else beta
    return g, c, J, rho, lam, tau, beta


def test_general_m_agrees_with_osqp_and_highs(tight_osqp):
    """m in {6, 10, 20, 40}, n in 5..200, three layouts, box from 0.05 (binding) to 10: the exact
    LP agrees with HiGHS on the primal (1e-9) and certifies itself (never handed to HiGHS),
    the active-set QP has OSQP's status and direction (1e-8) and meets its own KKT conditions.
    Every case (box binding or not, infeasible, t* = 0 or > 0) occurs in every layout."""
    rng = np.random.default_rng(31)
    osqp_failures = 0
    for layout in ("plain", "signed", "signed_diffs"):
        seen = {"box": 0, "free": 0, "infeasible": 0, "lp_zero": 0, "lp_positive": 0}
        for _ in range(45):
            m, n = int(rng.choice([6, 10, 20, 40])), int(rng.integers(5, 201))
            g, c, J, rho, lam, tau, beta = general_instance(rng, m, n, layout)
            t_exact, t_highs = level_lp_exact(c, J, rho), level_lp_highs(c, J, rho)
            assert t_exact is not None and abs(t_exact - t_highs) <= LP_ATOL
            seen["lp_positive" if t_exact > 0 else "lp_zero"] += 1
            kappa, lp = feasibility_level(c, J, rho=rho, lam=lam)
            exact = direction_qp_exact(g, c, J, kappa, tau=tau, beta=beta)
            ref = tight_osqp.solve(g, c, J, kappa, tau=tau, beta=beta)
            if ref.status == "failed":  # tight OSQP sometimes stalls on rank-deficient rows
                osqp_failures += 1
                assert exact.ok
                assert_kkt(g, c, J, kappa, tau, beta, exact)
                continue
            assert exact.status == ref.status, (layout, m, n)
            if exact.ok:
                np.testing.assert_allclose(exact.d, ref.d, atol=QP_ATOL, rtol=0)
                assert_kkt(g, c, J, kappa, tau, beta, exact)
                seen["box" if np.any(np.abs(np.abs(exact.d) - beta) < 1e-12) else "free"] += 1
            else:
                assert exact.status == "infeasible" and exact.d is None
                seen["infeasible"] += 1
        assert min(seen.values()) >= 2, (layout, seen)
    assert osqp_failures <= 2


def test_active_set_matches_enumeration_for_small_m():
    """For m <= 4 the general active-set QP reproduces the support enumeration (1e-10)."""
    rng = np.random.default_rng(41)
    for _ in range(80):
        m, n = int(rng.integers(1, 5)), int(rng.integers(2, 40))
        g, c, J, rho, lam, tau, beta = random_instance(rng, m, n)
        kappa, _ = feasibility_level(c, J, rho=rho, lam=lam)
        a = direction_qp_exact(g, c, J, kappa, tau=tau, beta=beta)
        b = direction_qp_active_set(g, c, J, kappa, tau=tau, beta=beta)
        assert a.status == b.status
        if a.ok:
            np.testing.assert_allclose(b.d, a.d, atol=1e-10, rtol=0)


@pytest.mark.parametrize("design", ["duplicate", "zero_row", "equality_slab", "low_rank", "sparse"])
def test_general_m_degenerate_rows(tight_osqp, design):
    """Degenerate constraint sets at m = 8..24: repeated / scaled rows, a zero row, zero-width
    slabs (J_- = -J_+, c_- = -c_+), rank 3, mostly-zero rows. Same status as OSQP, same
    direction, own KKT conditions, and the LP against HiGHS."""
    rng = np.random.default_rng(["duplicate", "zero_row", "equality_slab", "low_rank", "sparse"].index(design) + 50)
    for _ in range(12):
        m, n = int(rng.integers(8, 25)), int(rng.integers(5, 80))
        J, c = rng.normal(size=(m, n)), rng.normal(size=m) * 0.5
        if design == "duplicate":
            J[1], J[2] = J[0], -2.0 * J[0]
        elif design == "zero_row":
            J[0] = 0.0
            c[0] = -abs(c[0])
        elif design == "equality_slab":
            h = m // 2
            J[h:2 * h], c[h:2 * h] = -J[:h], -c[:h]
        elif design == "low_rank":
            J = rng.normal(size=(m, 3)) @ rng.normal(size=(3, n))
        else:
            J *= rng.random(size=J.shape) < 0.1
        g, tau, beta = rng.normal(size=n), 1.0, float(rng.choice([0.1, 10.0]))
        rho = float(rng.choice([0.01, 0.5]))
        assert abs(level_lp_exact(c, J, rho) - level_lp_highs(c, J, rho)) <= LP_ATOL
        kappa, _ = feasibility_level(c, J, rho=rho, lam=0.5)
        exact = direction_qp_exact(g, c, J, kappa, tau=tau, beta=beta)
        ref = tight_osqp.solve(g, c, J, kappa, tau=tau, beta=beta)
        assert exact.status == ref.status
        if exact.ok:
            np.testing.assert_allclose(exact.d, ref.d, atol=QP_ATOL, rtol=0)
            assert_kkt(g, c, J, kappa, tau, beta, exact)


@pytest.mark.parametrize("case", ["empty_slab", "box_too_small", "conflicting_rows"])
def test_general_m_infeasible_qp_is_reported(tight_osqp, case):
    """m = 6 infeasible QPs: a slab with c_+ + c_- > 0 at kappa = 0 (J d <= -c_+ and
    -J d <= -c_-), a box too small to meet a constraint, two rows pointing the same way whose
    half-spaces are disjoint from a third. Both solvers say infeasible, no direction."""
    rng = np.random.default_rng(5)
    n = 10
    A = rng.normal(size=(3, n))
    J, c, beta = np.vstack([A, -A]), -np.ones(6), 10.0
    if case == "empty_slab":
        c[0], c[3] = 0.6, -0.5
    elif case == "box_too_small":
        c[0], beta = 5.0 * np.abs(A[0]).sum(), 1.0
    else:
        J[1] = -J[0]
        c[0], c[1] = 1.0, 1.0  # J_0 d <= -1 and -J_0 d <= -1
    exact = direction_qp_exact(rng.normal(size=n), c, J, 0.0, tau=1.0, beta=beta)
    ref = tight_osqp.solve(rng.normal(size=n), c, J, 0.0, tau=1.0, beta=beta)
    assert exact.status == ref.status == "infeasible" and exact.d is None


def census_like(rng, n=2753, m=20, groups=5, consistent=False):
    """Experiment 2's shape: 5 groups, all 10 pairs, signed (m = 20), n = 2,753 parameters,
    J built in float32 (rank 4 plus float32 rounding, as from the oracle), g ~ N(0, 0.01^2),
    c_+ ~ N(0, 0.02^2), c_- = -c_+ - 0.1. ``groups``: G groups, m = G (G - 1); ``consistent``:
    c_+ the pair differences of group statistics s ~ N(0, 0.02^2) minus 0.05 (as on the task)."""
    pairs = [(a, b) for a in range(groups) for b in range(a + 1, groups)]
    D = np.zeros((len(pairs), groups), dtype=np.float32)
    for r, (a, b) in enumerate(pairs):
        D[r, a], D[r, b] = 1.0, -1.0
    A = D @ (rng.normal(size=(groups, n)) * 0.01).astype(np.float32)
    J = np.vstack([A, -A]).astype(np.float64)
    c = D.astype(np.float64) @ (rng.normal(size=groups) * 0.02) - 0.05 if consistent else rng.normal(size=len(pairs)) * 0.02
    return rng.normal(size=n) * 0.01, np.concatenate([c, -c - 0.1]), J


def test_census_scale_exact_path_without_fallbacks(tight_osqp):
    """m = 20, n = 2,753 (rank-deficient J): the wrapper's exact path certifies the LP and the
    QP itself (no HiGHS / OSQP hand-over), within 1e-8 of tight OSQP; and with beta = 0.02
    (box binding) too."""
    rng = np.random.default_rng(2753)
    for beta in (10.0, 0.02):
        wrapper = GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=beta)
        for _ in range(2):
            g, c, J = census_like(rng)
            res = wrapper.solve(g, c, J)
            assert res.lp.t == pytest.approx(level_lp_highs(c, J, 0.8), abs=LP_ATOL)
            ref = tight_osqp.solve(g, c, J, res.kappa, tau=1.0, beta=beta)
            assert res.qp.status == ref.status == "solved"
            np.testing.assert_allclose(res.qp.d, ref.d, atol=QP_ATOL, rtol=0)
            assert_kkt(g, c, J, res.kappa, 1.0, beta, res.qp)
        assert wrapper.fallbacks == {"lp_highs": 0, "qp_osqp": 0}


@pytest.mark.parametrize("groups", [10, 18])
def test_hundreds_of_constraints_stay_on_the_exact_path(tight_osqp, groups):
    """m = 90 and 306 signed pair constraints (rank G - 1), n = 600: the active-set dual methods
    (above the former limit of 64, which sent such QPs to OSQP and the LP to HiGHS at about a
    second each) certify the LP and the QP without a hand-over; the QP meets its KKT conditions
    and, at m = 90, equals tight OSQP within 1e-8 and the LP HiGHS."""
    rng = np.random.default_rng(groups)
    wrapper = GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0)
    g, c, J = census_like(rng, n=600, groups=groups, consistent=True)
    assert len(c) == groups * (groups - 1) <= EXACT_MAX_M
    res = wrapper.solve(g, c, J)
    assert res.qp.status == "solved" and wrapper.fallbacks == {"lp_highs": 0, "qp_osqp": 0}
    assert_kkt(g, c, J, res.kappa, 1.0, 10.0, res.qp)
    if groups == 10:
        assert res.lp.t == pytest.approx(level_lp_highs(c, J, 0.8), abs=LP_ATOL)
        ref = tight_osqp.solve(g, c, J, res.kappa, tau=1.0, beta=10.0)
        np.testing.assert_allclose(res.qp.d, ref.d, atol=QP_ATOL, rtol=0)


def test_lp_signed_pairs_dual_degenerate():
    """Signed pairs with c_+ + c_- > 0: t* is often a pair's (c_+ + c_-)/2, where J^T mu = 0
    and every reduced cost vanishes (the simplex alone stalls there). Certified, = HiGHS."""
    rng = np.random.default_rng(17)
    hits = 0
    for _ in range(30):
        h, n = int(rng.choice([3, 5, 10, 20])), int(rng.integers(5, 150))
        A = rng.normal(size=(h, n))
        J, c = np.vstack([A, -A]), rng.normal(size=2 * h) * rng.choice([1.0, 10.0])
        rho = float(rng.choice([0.01, 0.1, 0.5]))
        t = level_lp_exact(c, J, rho)
        assert t is not None and abs(t - level_lp_highs(c, J, rho)) <= LP_ATOL
        hits += t > 0 and abs(t - 0.5 * float(np.max(c[:h] + c[h:]))) < 1e-12
    assert hits >= 5


def test_wrapper_counts_general_m_fallbacks(monkeypatch):
    """If the general exact methods cannot certify, the wrapper hands the LP to HiGHS and the
    QP to OSQP and counts both; the answers are still used."""
    rng = np.random.default_rng(8)
    g, c, J, *_ = general_instance(rng, 10, 30, "signed", beta=10.0)
    monkeypatch.setattr(sub_dispatch, "_level_lp_general", lambda *a, **k: None)
    for module in (sub_dispatch, sub_qp_exact):  # the active-set QP's callers
        monkeypatch.setattr(module, "_qp_active_set", lambda *a, **k: sub.QPResult(None, "failed"))
    wrapper = GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0,
                               osqp_settings=dict(eps_abs=1e-10, eps_rel=1e-10, max_iter=100000, polishing=True))
    res = wrapper.solve(g, c, J)
    assert res.qp.ok and not res.lp.fallback
    assert wrapper.fallbacks == {"lp_highs": 1, "qp_osqp": 1}
    assert wrapper.qp(g, c, J, res.kappa).ok and wrapper.fallbacks["qp_osqp"] == 2


# -- m <= 2: the straight-line path against the general code ---------------------------------

SAME_RTOL = 1e-12  # the m <= 2 path vs the general path: directions and multipliers (relative)


def small_instance(rng, layout, n, dtype):
    """An ``m <= 2`` instance of one row layout: ``signed`` (``J_2 = -J_1``, c = (s, -s) - delta, as
    the census constraints), ``general``, ``parallel`` (``J_2 = alpha J_1``), ``zero_row``, ``m1``.
    J has exact zeros (dead units) and is built in ``dtype`` before it is negated."""
    a = rng.normal(size=n) * rng.choice([0.01, 1.0])
    a[rng.random(n) < 0.4] = 0.0
    g = rng.normal(size=n) * rng.choice([0.01, 1.0, 30.0])
    scale = rng.choice([0.01, 1.0, 100.0])  # 100: t* > 0 and, with a small box, infeasible QPs
    if layout == "signed":
        a = a.astype(dtype)
        J = np.stack([a, -a])
        s, delta = rng.normal() * scale, abs(rng.normal()) * 0.05
        c = np.array([s - delta, -s - delta])
    else:
        second = {"general": rng.normal(size=n), "parallel": rng.choice([2.5, -0.3]) * a,
                  "zero_row": np.zeros(n), "m1": None}[layout]
        J = (a[None] if second is None else np.stack([second, a] if layout == "zero_row" else [a, second]))
        c = rng.normal(size=J.shape[0]) * scale
    return g.astype(dtype), c.astype(dtype), J.astype(dtype)


@pytest.fixture(params=["python", pytest.param("compiled", marks=NO_NUMBA)])
def small_path(request):
    """The m <= 2 path under test: :func:`_solve_small` in Python, or its compiled form
    (``GhostSubproblems(compiled=True)``, Ghost's on a compiled oracle)."""
    return request.param


def solve_small(g, c, J, rho, lam, tau, beta, path="python"):
    """The m <= 2 path's answer (None if it declined), by ``path``."""
    if path == "python":
        return sub_small._solve_small(g, c, J, rho, lam, tau, beta)
    wrapper = GhostSubproblems("exact", rho=rho, lam=lam, tau=tau, beta=beta, compiled=True)
    return wrapper._small(g, c, J, rho, lam, tau, beta)


def solve_both(g, c, J, rho=0.8, lam=0.5, tau=1.0, beta=10.0, path="python"):
    """``(fast, general)``: the m <= 2 path's answer (None if it declined) and the wrapper's with
    that path switched off (the general code: _level_lp_small / HiGHS, then _qp_exact)."""
    assert sub_small._is_small_problem(g, c, J)
    fast = solve_small(g, c, J, rho, lam, tau, beta, path)
    wrapper = GhostSubproblems("exact", rho=rho, lam=lam, tau=tau, beta=beta)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sub_dispatch, "_is_small_problem", lambda *a: False)
        general = wrapper.solve(g, c, J)
    return fast, general


def assert_same_answer(fast, general):
    """Same level (bitwise), LP status, QP status; d and u within SAME_RTOL of their scale."""
    assert fast.kappa == general.kappa and fast.lp.t == general.lp.t and fast.lp.status == general.lp.status
    assert fast.qp.status == general.qp.status
    if general.qp.d is None:
        assert fast.qp.d is None
        return
    for x, y in ((fast.qp.d, general.qp.d), (fast.qp.u, general.qp.u)):
        assert x.shape == y.shape and x.dtype == y.dtype == np.float64
        assert np.abs(x - y).max() <= SAME_RTOL * np.abs(y).max()  # u = 0: exactly 0


@pytest.mark.parametrize("layout", ["signed", "general", "parallel", "zero_row", "m1"])
def test_small_path_matches_general_path(layout, small_path):
    """Random m <= 2 instances of every row layout, float32 and float64, tau = 1 and not, boxes
    from binding (0.05) to loose: the straight-line path gives the general path's answer, and
    box-free solutions, bound-active ones, t* > 0 and infeasible QPs all occur."""
    rng = np.random.default_rng(["signed", "general", "parallel", "zero_row", "m1"].index(layout))
    seen = {"box_free": 0, "box": 0, "t>0": 0, "infeasible": 0}
    for i in range(150):
        dtype = (np.float32, np.float64)[i % 2]
        g, c, J = small_instance(rng, layout, int(rng.integers(1, 60)), dtype)
        rho, lam = float(rng.choice([0.05, 0.8])), float(rng.uniform(0.0, 1.0))
        tau, beta = float(rng.choice([1.0, 0.7, 3.0])), float(rng.choice([0.05, 1.0, 10.0, 1e3]))
        fast, general = solve_both(g, c, J, rho, lam, tau, beta, path=small_path)
        assert_same_answer(fast, general)
        seen["t>0"] += fast.lp.t > 0
        seen["infeasible"] += fast.qp.status == "infeasible"
        if fast.qp.ok:
            seen["box" if np.abs(fast.qp.d).max() >= beta else "box_free"] += 1
    assert min(seen.values()) >= 3, seen


def test_small_path_census_shape(small_path):
    """The census case at its size: a signed float32 pair, n = 2,753, c = (s, -s) - delta; with the
    box loose (beta = 10: the closed form) and binding (beta = 0.002: the general dual method; rho <=
    beta keeps the QP feasible), and with rho small enough that the L1 norm (not its L2 bound)
    decides t*."""
    rng = np.random.default_rng(2753)
    for beta, rho in ((10.0, 0.8), (0.002, 0.001), (10.0, 1e-4)):
        for _ in range(10):
            a = (rng.normal(size=2753) * 0.003).astype(np.float32)
            a[rng.random(2753) < 0.4] = 0.0
            s = rng.normal() * 0.03
            g, c, J = (rng.normal(size=2753) * 0.01).astype(np.float32), np.float32([s - 0.035, -s - 0.035]), np.stack([a, -a])
            fast, general = solve_both(g, c, J, rho=rho, beta=beta, path=small_path)
            assert fast is not None and fast.qp.ok
            assert_same_answer(fast, general)


def test_small_path_degenerate_cases(small_path):
    """Zero rows (both, and the signed pair of zeros), c exactly 0, c on the LP's edge for m = 1,
    far infeasible c, a gradient that puts everything on the box, and n = 1."""
    rng = np.random.default_rng(99)
    n = 7
    a, g = rng.normal(size=n), rng.normal(size=n)
    cases = [
        (g, np.array([0.0, 0.0]), np.zeros((2, n))),
        (g, np.array([0.3, -0.1]), np.zeros((2, n))),  # a violated constraint with no gradient: infeasible
        (g, np.array([-0.3, -0.1]), np.stack([np.zeros(n), -np.zeros(n)])),
        (g, np.array([0.0, 0.0]), np.stack([a, -a])),
        (g, np.array([0.8 * np.abs(a).sum()]), a[None]),  # t* = 0 exactly at the edge
        (g, np.array([0.8 * np.sqrt(a @ a)]), a[None]),  # at the L2 bound: the L1 norm decides
        (g, np.array([50.0, -60.0]), np.stack([a, -a])),  # t* > 0, QP infeasible (beta < rho)
        (g, np.array([50.0, 3.0]), np.stack([a, rng.normal(size=n)])),
        (g * 1e4, np.array([0.1, -0.2]), np.stack([a, -a])),  # every coordinate on the box
        (np.array([2.0]), np.array([0.5, -0.5]), np.array([[1.0], [-1.0]])),
    ]
    for g_, c, J in cases:
        fast, general = solve_both(g_, c, J, beta=0.5, path=small_path)
        assert fast is not None
        assert_same_answer(fast, general)
    # c_1 - t* = rho ||J_1||_1, so with lam = 1, b_1 = -rho ||J_1||_1 < -beta ||J_1||_1: infeasible
    fast, general = solve_both(*cases[6], lam=1.0, beta=0.5, path=small_path)
    assert_same_answer(fast, general)
    assert fast.qp.status == "infeasible"


@pytest.mark.parametrize("where", ["g", "c", "J0", "J1"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_small_path_leaves_nonfinite_data_to_the_general_code(where, value, small_path):
    """NaN / inf anywhere: the straight-line path declines, so the wrapper reports what the general
    code reports (a failed QP; the LP's fallback unless only g is not finite), for a signed pair
    and for a general one."""
    rng = np.random.default_rng(1)
    for signed in (True, False):
        g, a = rng.normal(size=9).astype(np.float32), rng.normal(size=9).astype(np.float32)
        J = np.stack([a, -a if signed else rng.normal(size=9).astype(np.float32)])
        c = np.float32([0.1, -0.2])
        {"g": g, "c": c, "J0": J[0], "J1": J[1]}[where][0] = value
        fast, general = solve_both(g, c, J, path=small_path)
        assert fast is None and general.qp.status == "failed" and general.lp.fallback == (where != "g")
        res = GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0,
                               compiled=small_path == "compiled").solve(g, c, J)
        assert res.qp.status == "failed" and res.lp == general.lp


@NO_NUMBA
def test_compiled_small_path_is_the_python_one(monkeypatch):
    """The compiled m <= 2 path against :func:`_solve_small` on the random instances of every
    layout: the same level, t* and statuses bit for bit, d and u to 1e-12 of their scale (its dots
    sum in another order) and mostly bit for bit; every outcome of its kernel occurs (solved
    box-free, box or no support left to the dual method, LP left to the Python path, non-finite
    data), and float16 data takes the Python path."""
    from fairbench.backends.compiled import ghost_subproblems as kernels

    outcomes, kernel = [], kernels.pair_pass
    monkeypatch.setattr(kernels, "pair_pass", lambda *a: (r := kernel(*a), outcomes.append(r[0]))[0])
    rng = np.random.default_rng(12)
    identical = compared = 0
    for layout in ["signed", "general", "parallel", "zero_row", "m1"]:
        for i in range(120):
            g, c, J = small_instance(rng, layout, int(rng.integers(1, 60)), (np.float32, np.float64)[i % 2])
            if i % 40 == 0:
                g[0] = np.nan
            rho, lam = float(rng.choice([0.05, 0.8])), float(rng.uniform(0.0, 1.0))
            tau, beta = float(rng.choice([1.0, 0.7, 3.0])), float(rng.choice([0.05, 1.0, 10.0, 1e3]))
            python = sub_small._solve_small(g, c, J, rho, lam, tau, beta)
            compiled = solve_small(g, c, J, rho, lam, tau, beta, "compiled")
            assert (python is None) == (compiled is None)
            if python is not None:
                assert_same_answer(compiled, python)
                if python.qp.d is not None:
                    compared += 1
                    identical += np.array_equal(compiled.qp.d, python.qp.d)
    assert {pair.PAIR_SOLVED, pair.PAIR_BOX_OR_NO_SUPPORT, pair.PAIR_PYTHON_PATH, pair.PAIR_NOT_FINITE} <= set(outcomes)
    assert identical >= 0.8 * compared
    n_calls = len(outcomes)
    g, c, J = small_instance(rng, "signed", 20, np.float32)
    half = solve_small(g.astype(np.float16), c, J.astype(np.float16), 0.8, 0.5, 1.0, 10.0, "compiled")
    assert len(outcomes) == n_calls and half is not None


@NO_NUMBA
def test_compiled_small_path_is_cached_with_its_source():
    """The compiled closed form and every function it compiles are defined in subproblem_pair.py,
    with the tolerances they read: numba's disk cache is keyed on the file that defines a
    function, so an edit there (to the kernel, _box_free_pair or the tolerances) recompiles it."""
    from fairbench.backends.compiled import ghost_subproblems as kernels

    assert kernels.pair_pass.py_func is pair._pair_pass
    for function in (pair._pair_pass, pair._pair_dots, pair._pair_is_signed, pair._box_free_pair):
        assert function.__module__ == pair.__name__


def test_signed_pair_detection():
    """``_is_signed_pair`` is ``array_equal(J[1], -J[0])``: zeros of either sign on either row,
    subnormals, infinities; one ulp off, or a NaN, is not a pair."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        a = rng.normal(size=12).astype(dtype)
        a[:4] = 0.0
        tiny = np.finfo(dtype).smallest_subnormal
        inf = a.copy()
        inf[5] = np.inf
        pairs = [np.stack([a, -a]), np.stack([a, np.where(a == 0, 0.0, -a).astype(dtype)]),
                 np.stack([np.where(a == 0, -0.0, a), np.where(a == 0, -0.0, -a)]).astype(dtype),
                 np.stack([np.full(3, tiny, dtype), np.full(3, -tiny, dtype)]), np.stack([inf, -inf])]
        off = np.stack([a, -a])
        off[1, 7] = np.nextafter(off[1, 7], dtype(np.inf))
        nan = np.stack([a, -a])
        nan[:, 2] = np.nan
        for J in pairs:
            assert np.array_equal(J[1], -J[0]) and sub_small._is_signed_pair(J)
        for J in (off, nan, np.stack([a, a]), np.stack([np.full(3, 2 * tiny, dtype), np.full(3, -tiny, dtype)])):
            assert not np.array_equal(J[1], -J[0]) and not sub_small._is_signed_pair(J)


def test_wrapper_takes_the_small_path(monkeypatch):
    """GhostSubproblems.solve answers m <= 2 float arrays through the straight-line path (and only
    falls through to the general code when it declines)."""
    answered = []
    small = sub_small._solve_small
    monkeypatch.setattr(sub_dispatch, "_solve_small", lambda *a: answered.append(small(*a)) or answered[-1])
    rng = np.random.default_rng(3)
    g, c, J = small_instance(rng, "signed", 40, np.float32)
    res = GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0).solve(g, c, J)
    assert len(answered) == 1 and answered[0] is res
    # lists, other shapes, m > 2 and the osqp solver do not take it
    GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0).solve(list(g), list(c), J.tolist())
    GhostSubproblems("exact", rho=0.8, lam=0.5, tau=1.0, beta=10.0).solve(g, c, J.ravel())
    GhostSubproblems("osqp", rho=0.8, lam=0.5, tau=1.0, beta=10.0).solve(g, c, J)
    assert len(answered) == 1
