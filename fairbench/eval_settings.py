"""The ``eval`` settings: a subsample for the trajectory's log points, and other states.

``eval.subsample`` (rows per split, ``null`` = all) makes every log point of the trajectory
evaluate a fixed, group-stratified subsample of each split instead of the whole split; the
final metrics (and the trajectory's last row) are always on the full splits. The subsample
of a split is drawn once per run from the data's split seed (``dataset.split.seed``), so it
is the same rows for every log point and every seed of the run:

- each group keeps its share: group g of n_g rows (n rows in the split, R = ``subsample``)
  gets ``floor(R n_g / n)`` rows, and the rows left over go to the groups with the largest
  remainders (Hamilton's method), so the shares sum to R;
- every group keeps at least :data:`MIN_GROUP_ROWS` rows (all of a smaller group), so a
  subsample may hold a few more than R rows; a split of at most R rows is evaluated whole;
- within a group the rows are drawn uniformly without replacement and kept in row order.

``eval.optimality`` (true by default) logs the optimality columns (:mod:`fairbench.optimality`:
one full-batch gradient of the training split per log point); ``false`` leaves them out, for
runs where logging time matters more.

``eval.states`` (a state code, a list, or ``all``; ``null`` = none) names states the model
did not train on: the final model is evaluated on each one's full data
(:mod:`fairbench.shift`). ``all`` means every state of the data root but the training ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from fairbench.data.compact import CompactX
from fairbench.data.paths import STATE_FIPS
from fairbench.errors import check, check_positive
from fairbench.problems.fairness import TensorSplit

#: the fewest rows a group keeps in a subsample (all of its rows when it has fewer)
MIN_GROUP_ROWS = 10
KEYS = ("subsample", "states", "optimality")
ALL = "all"


@dataclass(frozen=True)
class EvalSettings:
    """``subsample``: rows per split at log points (None: all); ``states``: the other
    states' codes (None: no shift evaluation; ``("all",)``: every state not trained on)."""

    subsample: int | None
    states: tuple[str, ...] | None
    optimality: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"subsample": self.subsample,
                "states": None if self.states is None else (ALL if self.states == (ALL,) else list(self.states)),
                "optimality": self.optimality}


def parse_eval(cfg: Any) -> EvalSettings:
    """The run's ``eval`` group, checked; a bad value raises a one-line ConfigError."""
    node = cfg.get("eval") if hasattr(cfg, "get") else None
    node = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    check(isinstance(node, Mapping), "eval", node, f"a mapping with keys {', '.join(KEYS)}")
    for key in node:
        check(key in KEYS, f"eval.{key}", node[key], f"not a key of eval (keys: {', '.join(KEYS)})")
    optimality = node.get("optimality", True)
    check(isinstance(optimality, bool), "eval.optimality", optimality, "true or false")
    subsample = node.get("subsample")
    if subsample is not None:
        check_positive("eval.subsample", subsample, integer=True)
        subsample = int(subsample)
    return EvalSettings(subsample, _states(node.get("states")), optimality)


def _states(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    accepted = f"null, {ALL}, a state code or a non-empty list of distinct codes (codes: {', '.join(STATE_FIPS)})"
    if value == ALL:
        return (ALL,)
    codes = [value] if isinstance(value, str) else value
    check(isinstance(codes, (list, tuple)) and len(codes) > 0
          and all(isinstance(c, str) and c in STATE_FIPS for c in codes)
          and len(set(codes)) == len(codes), "eval.states", value, accepted)
    return tuple(codes)


def subsample_rows(group: np.ndarray, n_groups: int, rows: int, seed: int, split_index: int) -> np.ndarray | None:
    """Sorted row indices of the stratified subsample of a split with groups ``group`` (see
    the module doc), or ``None`` when the split has at most ``rows`` rows (it is used whole).

    ``seed`` is the data's split seed and ``split_index`` the split's position (train 0, val
    1, test 2): each split has its own stream, the same for every run of that data."""
    n = group.size
    if n <= rows:
        return None
    counts = np.bincount(group, minlength=n_groups)
    quota = counts * rows / n
    take = np.floor(quota).astype(np.int64)
    left = rows - int(take.sum())
    if left > 0:
        take[np.argsort(-(quota - take), kind="stable")[:left]] += 1
    take = np.minimum(counts, np.maximum(take, np.minimum(counts, MIN_GROUP_ROWS)))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4, split_index)))
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    chosen = [rng.choice(order[starts[g]:starts[g + 1]], size=int(take[g]), replace=False)
              for g in range(n_groups) if take[g] > 0]
    return np.sort(np.concatenate(chosen))


def subsample_splits(splits: dict, n_groups: int, rows: int, seed: int) -> dict:
    """Each split's stratified subsample of ``rows`` rows (a split of at most ``rows`` rows
    whole), as new :class:`~fairbench.problems.fairness.TensorSplit` copies: the log points
    never touch the rest of the split's rows."""
    out = {}
    for i, (name, split) in enumerate(splits.items()):
        chosen = subsample_rows(split.group.numpy(), n_groups, rows, seed, i)
        X = split.X.numpy()  # (compact one-hot features stay compact)
        out[name] = split if chosen is None else TensorSplit.from_arrays(
            X.take(chosen) if isinstance(X, CompactX) else X[chosen], split.y.numpy()[chosen],
            split.group.numpy()[chosen])
    return out
