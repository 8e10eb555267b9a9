"""Per-constraint trajectory columns, capped at large m.

A trajectory row holds, per split, one column per constraint (``<split>_c<j>`` and
``<split>_c<j>_true``) and per group (``<split>_loss_g<g>``), and per method one column per
multiplier-like entry of its state (``lambda_<j>``, ``slack_<j>``, ``penalty_<j>``). With m in
the thousands that is tens of thousands of columns per row. Beyond
:data:`~fairbench.algorithms.base.PER_CONSTRAINT_STATE_LIMIT` entries, one family of columns is
replaced by summaries, the same for every method and path (single-seed or stacked):

- constraint values ``c`` of a split (surrogate; ``_true`` for the thresholded predictions):
  ``<split>_c_mean``, ``<split>_c_min``, ``<split>_c_violated`` (how many ``c_j > 0``) beside
  the always present ``<split>_max_violation`` (``max(0, max_j c_j)``);
- per-group losses: ``<split>_loss_g_max``, ``<split>_loss_g_min``, ``<split>_loss_g_mean``;
- a state family ``<name>_<j>`` (``lambda``, ``slack``, ...): ``<name>_max``, ``_min``,
  ``_mean``, ``_norm`` (Euclidean), ``_nonzero``
  (:func:`~fairbench.algorithms.base.constraint_state_summary`).

At or below the limit the columns are exactly the per-entry ones. ``metrics.json`` records
which form the trajectory used (:func:`columns_record`).
"""

from __future__ import annotations

import re

import numpy as np

from fairbench.algorithms.base import PER_CONSTRAINT_STATE_LIMIT, constraint_state_summary

_INDEXED = re.compile(r"^(.+)_(\d+)$")


def capped(n: int) -> bool:
    """Whether ``n`` entries are summarised instead of one column each."""
    return n > PER_CONSTRAINT_STATE_LIMIT


def constraint_columns(split: str, values: np.ndarray, suffix: str = "") -> dict[str, float]:
    """``<split>_c<j><suffix>`` per constraint, or the summaries beyond the limit."""
    if not capped(len(values)):
        return {f"{split}_c{j}{suffix}": value for j, value in enumerate(values)}
    return {f"{split}_c_mean{suffix}": float(values.mean()), f"{split}_c_min{suffix}": float(values.min()),
            f"{split}_c_violated{suffix}": int(np.count_nonzero(values > 0))}


def group_loss_columns(split: str, losses: np.ndarray) -> dict[str, float]:
    """``<split>_loss_g<g>`` per group, or the summaries beyond the limit."""
    if not capped(len(losses)):
        return {f"{split}_loss_g{g}": value for g, value in enumerate(losses)}
    return {f"{split}_loss_g_max": float(losses.max()), f"{split}_loss_g_min": float(losses.min()),
            f"{split}_loss_g_mean": float(losses.mean())}


def cap_state(state: dict) -> dict:
    """``state`` with every family ``<name>_0 .. <name>_<n-1>`` of more than the limit entries
    replaced by its summaries; other entries (and smaller families) unchanged, in order."""
    families: dict[str, list] = {}
    for key in state:
        match = _INDEXED.match(key)
        if match:
            families.setdefault(match.group(1), []).append(key)
    large = {name: keys for name, keys in families.items() if capped(len(keys))}
    if not large:
        return state
    drop = {key for keys in large.values() for key in keys}
    out = {k: v for k, v in state.items() if k not in drop}
    for name, keys in large.items():
        out.update(constraint_state_summary({name: np.array([state[k] for k in keys], dtype=float)}))
    return out


def columns_record(n_constraints: int, n_groups: int) -> dict:
    """``metrics.json``'s ``trajectory_columns``: the limit and which families were summarised."""
    return {"per_entry_limit": PER_CONSTRAINT_STATE_LIMIT,
            "constraints": "summary" if capped(n_constraints) else "per_constraint",
            "group_losses": "summary" if capped(n_groups) else "per_group"}
