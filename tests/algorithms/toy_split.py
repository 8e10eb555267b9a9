"""The small two-group training split the kernel and variant tests train on (400 rows, 9
features, about 35 % in group 1, labels tied to feature 0 and the group)."""

from __future__ import annotations

import numpy as np

import configs
from fairbench.problems.fairness import TensorSplit


def toy_split(n: int = 400, d: int = 9, seed: int = 0) -> TensorSplit:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    group = (rng.random(n) < 0.35).astype(np.int64)
    y = (X[:, 0] + 0.9 * group + rng.normal(size=n) > 0.3).astype(np.float32)
    return TensorSplit.from_arrays(X, y, group)


def split_and_constraints(delta: float):
    """:func:`toy_split` and the loss-gap constraints at ``delta``, bound to its group shares."""
    split = toy_split()
    props = np.bincount(split.group.numpy(), minlength=2) / len(split.y)
    return split, configs.constraint_spec(delta=delta).bind(props, ["a", "b"])
