"""Constraint families and forms: values, names and Jacobian maps."""

import numpy as np
import pytest
import torch

from fairbench.errors import ConfigError
import configs

NAMES3 = ["a", "b", "c"]


def test_two_groups_signed_is_the_papers_pair_of_constraints():
    bound = configs.constraint_spec(delta=0.1).bind(np.array([0.7, 0.3]), ["w", "nw"])
    c = bound.values(np.array([0.5, 0.2]))
    np.testing.assert_allclose(c, [0.3 - 0.1, -0.3 - 0.1])
    assert bound.names == ["+(L[w]-L[nw])", "-(L[w]-L[nw])"]


def test_vs_all_with_two_groups_equals_pairs():
    p = np.array([0.8, 0.2])
    a = configs.constraint_spec(family="vs_all").bind(p, ["x", "y"])
    b = configs.constraint_spec(family="pairs").bind(p, ["x", "y"])
    np.testing.assert_array_equal(a.matrix, b.matrix)


def test_pairs_three_groups_abs():
    bound = configs.constraint_spec(delta=0.05, form="abs").bind(np.full(3, 1 / 3), NAMES3)
    s = np.array([0.1, 0.4, 0.2])
    np.testing.assert_allclose(bound.values(s), [0.3 - 0.05, 0.1 - 0.05, 0.2 - 0.05])
    assert bound.n_constraints == 3


def test_vs_all_uses_population_mean_from_shares():
    pi = np.array([0.5, 0.3, 0.2])
    bound = configs.constraint_spec(delta=0.0 + 1e-9, family="vs_all").bind(pi, NAMES3)
    s = np.array([1.0, 2.0, 4.0])
    population = pi @ s
    np.testing.assert_allclose(bound.values(s)[:3], s - population - 1e-9)
    assert bound.names[0] == "+(L[a]-L)"


def test_jacobian_map_matches_finite_differences():
    for form in ("signed", "abs"):
        bound = configs.constraint_spec(delta=0.01, form=form).bind(np.array([0.2, 0.5, 0.3]), NAMES3)
        s = np.array([0.3, 0.9, 0.5])
        jm, eps = bound.jacobian_map(s), 1e-6
        fd = np.stack([(bound.values(s + eps * e) - bound.values(s - eps * e)) / (2 * eps) for e in np.eye(3)], 1)
        np.testing.assert_allclose(jm, fd, atol=1e-6)


def test_values_work_on_torch_tensors_with_the_same_formula():
    bound = configs.constraint_spec(delta=0.02, form="abs").bind(np.full(3, 1 / 3), NAMES3)
    s = np.array([0.3, 0.1, 0.6])
    t = bound.values(torch.tensor(s), torch.tensor(bound.matrix))
    np.testing.assert_allclose(t.numpy(), bound.values(s))


@pytest.mark.parametrize("kwargs,key", [
    ({"delta": 0}, "problem.delta"), ({"delta": -1}, "problem.delta"), ({"delta": "x"}, "problem.delta"),
    ({"family": "triples"}, "problem.family"), ({"form": "square"}, "problem.form"),
])
def test_bad_spec_names_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        configs.constraint_spec(**kwargs)
