"""Other states' full data, prepared as the training data was (``eval.states``).

A model trained on some states is evaluated on every row of states it never saw. Their rows
go through the training data's preparation, not their own:

- **groups**: assigned with the same definitions (:func:`~fairbench.data.groups.assign_groups`)
  and matched to the training groups by name (a member of a group the size rule merged
  counts in the merged group). Rows of a group the training data lacks (a group the size
  rule dropped, or ``ST`` groups of the other state) are left out and counted; a training
  group with no row in the state is listed in ``absent_groups``;
- **features**: encoded with the state's own levels and placed in the training columns by
  name (a training column the state lacks stays 0; a one-hot level the training data lacks
  has no column, so its rows get 0 in that block: counted in ``unseen_level_rows``);
- **scaling**: the training columns' mean and standard deviation
  (:attr:`~fairbench.data.prepared.PreparedData.scale`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fairbench.data.arrays import CHUNK_ROWS, scale_in_place
from fairbench.data.coding import LABEL, coding_matters, decide_coding
from fairbench.data.config import ALL_STATES, parse_config
from fairbench.data.encoding import dictionary_levels, encode_rows, plan_encoding
from fairbench.data.groups import assign_groups
from fairbench.data.prepared import PreparedData, Split
from fairbench.data.schema import SCHEMAS
from fairbench.data.sources import available_states, raw_hint, read_frame, resolve_dictionary, resolve_source
from fairbench.errors import ConfigError, DataError, check

MERGED = "merged: "


@dataclass(frozen=True)
class StateData:
    """One other state's rows: the split, and what could not be carried over."""

    state: str
    split: Split
    dropped_rows: int  # rows in no training group
    absent_groups: list[str] = field(default_factory=list)  # training groups without a row here
    unseen_level_rows: int = 0  # rows with a one-hot level the training columns lack
    source: str = ""


def training_states(cfg: Any) -> tuple[str, ...]:
    """The states the training data holds (``dataset.state``, ``all`` resolved)."""
    config = parse_config(cfg)
    return config.states if config.states is not None else available_states(config)


def other_states(cfg: Any, states: tuple[str, ...]) -> tuple[str, ...]:
    """``eval.states`` checked against the training data: ACS, no training state, data found.

    ``("all",)`` is every state of the data root but the training ones."""
    config = parse_config(cfg)
    value = ALL_STATES if states == (ALL_STATES,) else list(states)
    check(config.census == "acs" and config.source != "synthetic" and config.table is None, "eval.states", value,
          "needs ACS census data found by state (not dataset.source=synthetic, dataset.table or census=dutch)")
    trained = training_states(cfg)
    if states == (ALL_STATES,):
        chosen = tuple(s for s in available_states(config) if s not in trained)
        check(len(chosen) > 0, "eval.states", value, f"the data root holds no state besides the training ones "
              f"({', '.join(trained)})")
        return chosen
    both = [s for s in states if s in trained]
    check(not both, "eval.states", value, f"states the model trains on cannot be other states: {', '.join(both)} "
          f"(training: {', '.join(trained)})")
    for state in states:  # file metadata only: a state without data is refused here, not after training
        resolve_source(config.for_state(state))
    return tuple(states)


def load_state(cfg: Any, state: str, data: PreparedData) -> StateData:
    """``state``'s full data prepared as ``data`` was (see the module doc)."""
    if data.scale is None:
        raise DataError("eval.states needs the training columns' scaling, which this prepared data lacks")
    config = parse_config(cfg)
    one = config.for_state(state)
    resolved = resolve_source(one)
    frame = read_frame(resolved, one)
    coding = resolved.coding
    if resolved.kind == "table":
        coding, _ = decide_coding({c: frame[c].to_numpy() for c in ("MAR", "RAC1P")}, resolved.coding,
                                  resolved.where, coding_matters(config.protected, config.encoding))
    groups = assign_groups(frame, one, coding, resolved.where, raw_hint(one), allow_absent=True)
    index = training_index(data.group_names)
    mapped = np.array([index.get(name, -1) for name in groups.names], dtype=np.int64)[groups.index]
    kept = np.flatnonzero(groups.keep)[mapped >= 0]
    group = mapped[mapped >= 0]
    dropped = int(len(frame) - kept.size)
    frame = frame.iloc[kept].reset_index(drop=True)
    if len(frame) == 0:
        raise ConfigError("eval.states", state, f"no row of {resolved.where} falls in a training group "
                          f"({', '.join(data.group_names)})")
    dictionary = resolve_dictionary(one)
    schema = SCHEMAS[config.census]
    plan = plan_encoding(frame, config.protected, config.encoding, coding,
                         dictionary_levels(dictionary) if dictionary is not None else None,
                         str(dictionary) if dictionary is not None else None, schema.features, schema.numeric)
    columns = {name: i for i, name in enumerate(data.feature_names)}
    source_cols = np.array([i for i, name in enumerate(plan.names) if name in columns], dtype=np.intp)
    target_cols = np.array([columns[plan.names[i]] for i in source_cols], dtype=np.intp)
    unseen_cols = np.array([i for i, name in enumerate(plan.names) if name not in columns], dtype=np.intp)
    X = np.zeros((len(frame), len(data.feature_names)), dtype=np.float32)
    buffer = np.empty((min(CHUNK_ROWS, len(frame)), plan.width), dtype=np.float32)
    unseen = 0
    for start in range(0, len(frame), CHUNK_ROWS):
        stop = min(len(frame), start + CHUNK_ROWS)
        chunk = buffer[: stop - start]
        encode_rows(frame.iloc[start:stop], plan, chunk)
        X[start:stop][:, target_cols] = chunk[:, source_cols]
        if unseen_cols.size:
            unseen += int((chunk[:, unseen_cols] != 0).any(axis=1).sum())
    scale_in_place(X, *data.scale)
    present = set(group.tolist())
    return StateData(state=state, split=Split(X=X, y=frame[LABEL].to_numpy(dtype=np.float32), group=group),
                     dropped_rows=dropped, absent_groups=[n for g, n in enumerate(data.group_names) if g not in present],
                     unseen_level_rows=unseen, source=resolved.description)


def training_index(names: list[str]) -> dict[str, int]:
    """Group name -> training group id; the members of a merged group map to it."""
    index = {name: g for g, name in enumerate(names)}
    for g, name in enumerate(names):
        if name.startswith(MERGED):
            index.update({member: g for member in name[len(MERGED):].split(" | ")})
    return index
