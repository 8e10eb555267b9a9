"""``load_dataset``: config in, standardised train/val/test arrays out.

The steps, each in its own module: validate the config (:mod:`.config`), find the inputs
(:mod:`.sources`: one per ACS state, or the Dutch census file), consult the cache
(:mod:`.cache`), read the rows of each input and pool them, assign protected groups
(:mod:`.groups`), split by group (:mod:`.split`), apply the size rule (:mod:`.sizes`),
encode the features straight into float32 split arrays (one-hot features: as level
indices, :mod:`.compact`) and standardise them on train (:mod:`.encoding`, :mod:`.arrays`),
and check that both label classes occur wherever the metrics need them (:mod:`.labels`). Finding the inputs only touches file metadata, so a
cache hit never parses a census file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from fairbench.errors import DataError
from fairbench.data import cache
from fairbench.data.arrays import encode_splits, standardise_in_place
from fairbench.data.compact import encode_compact, is_compact, standardise_compact
from fairbench.data.coding import LABEL, RAW, coding_matters, decide_coding
from fairbench.data.config import DatasetConfig, parse_config
from fairbench.data.dutch import read_dutch
from fairbench.data.encoding import dictionary_levels, plan_encoding
from fairbench.data.groups import STATE_CODES, assign_groups
from fairbench.data.labels import check_both_classes
from fairbench.data.prepared import PreparedData, Split
from fairbench.data.schema import SCHEMAS, STATE_COLUMN
from fairbench.data.sizes import Sized, apply_size_rule, counts_per_split
from fairbench.data.sources import (ResolvedSource, file_identity, raw_hint, read_frame,
                                    resolve_dictionary, resolve_sources)
from fairbench.data.split import SPLIT_NAMES, stratified_split


def load_dataset(cfg: Any) -> PreparedData:
    """Build (or load from cache) the dataset described by the ``dataset`` config group.

    Raises ConfigError for invalid settings and DataError for missing or unusable data.
    """
    config = parse_config(cfg)
    sources = resolve_sources(config)
    dictionary = resolve_dictionary(config) if config.census == "acs" else None
    where = describe_where(sources)
    key = None
    if config.cache:
        inputs = [s.identity() for s in sources]
        key = cache.cache_key({
            "config": config.identity(), "input": inputs[0] if len(inputs) == 1 else inputs,
            "dictionary": file_identity(dictionary) if dictionary is not None else None,
        })
        cached = cache.load(key)
        if cached is not None:
            check_both_classes(cached, where)  # (an entry stored before this check)
            return cached
    data = build(config, sources, dictionary)
    check_both_classes(data, where)
    if key is not None:
        cache.store(key, data)
    return data


def describe_where(sources: list[ResolvedSource]) -> str:
    """How error messages name the data: its file, or the states and their folder."""
    if len(sources) == 1:
        return sources[0].where
    return (f"the tables of {len(sources)} states ({', '.join(s.state for s in sources)}) "
            f"under {Path(*_common_parts([s.path for s in sources]))}")


def _common_parts(paths: list[Path]) -> tuple[str, ...]:
    parts = paths[0].parent.parts
    for path in paths[1:]:
        other = path.parent.parts
        n = next((i for i, (a, b) in enumerate(zip(parts, other)) if a != b), min(len(parts), len(other)))
        parts = parts[:n]
    return parts or ("/",)


def build(config: DatasetConfig, sources: list[ResolvedSource], dictionary: Path | None) -> PreparedData:
    """Read, group, split, apply the size rule, encode and standardise (no cache involved)."""
    frame, coding, notes, levels, origin = read_inputs(config, sources, dictionary)
    where = describe_where(sources)
    hint = raw_hint(config.for_state(sources[0].state)) if config.census == "acs" else ""
    groups = assign_groups(frame, config, coding, where, hint)
    frame = frame.loc[groups.keep].reset_index(drop=True)
    y = frame[LABEL].to_numpy(dtype=np.float32)
    indices = stratified_split(groups.index, y, config.split.fractions, config.split.seed,
                               groups.names, allow_empty=config.min_group_rows > 0)
    sized = apply_size_rule(groups.index, groups.names, indices, config.min_group_rows,
                            config.small_groups, y)
    schema = SCHEMAS[config.census]
    plan = plan_encoding(frame, config.protected, config.encoding, coding, levels, origin,
                         schema.features, schema.numeric)
    if is_compact(plan):  # one-hot: level indices, rows made dense where they are read
        starts, numeric_columns, parts = encode_compact(frame, plan, sized.indices)
        mean, std, arrays = standardise_compact(plan, starts, numeric_columns, parts)
    else:
        arrays = encode_splits(frame, plan, sized.indices)
        mean, std = standardise_in_place(*arrays)
    train, val, test = (Split(X=x, y=y[i], group=sized.group[i])
                        for x, i in zip(arrays, sized.indices))
    dropped = "; ".join(f"{name} ({rows} rows)" for name, rows in sized.dropped.items())
    one_class = "; ".join(f"{name}: {why}" for name, why in sized.one_class.items())
    notes += [groups.note, plan.note,
              f"groups below dataset.min_group_rows={config.min_group_rows} dropped: {dropped}"
              if dropped else "",
              f"of these, without both label classes in every split: {one_class}" if one_class else ""]
    return PreparedData(train=train, val=val, test=test, feature_names=plan.names,
                        group_names=sized.names, synthetic=sources[0].kind == "synthetic",
                        source="; ".join(n for n in notes if n),
                        rows=row_counts(frame, sized, config.census == "acs"), scale=(mean, std))


def read_inputs(config: DatasetConfig, sources: list[ResolvedSource], dictionary: Path | None
                ) -> tuple[pd.DataFrame, str, list[str], dict[str, np.ndarray] | None, str | None]:
    """The pooled rows of every input, their coding, notes, and the one-hot levels known
    from a dictionary or file header (with where they come from), if any."""
    import pandas as pd

    if config.census != "acs":
        frame, levels = read_dutch(sources[0].path)
        return frame, RAW, [sources[0].description], levels, str(sources[0].path)
    frames, codings, notes = [], [], []
    for resolved in sources:
        frame = read_frame(resolved, config)
        coding, coding_note = resolved.coding, ""
        if resolved.kind == "table":
            coding, coding_note = decide_coding(
                {c: frame[c].to_numpy() for c in ("MAR", "RAC1P")}, resolved.coding,
                resolved.where, coding_matters(config.protected, config.encoding))
        frames.append(frame)
        codings.append(coding)
        notes.append(resolved.description + (f" ({coding_note})" if coding_note else ""))
    if len(set(codings)) > 1 and coding_matters(config.protected, config.encoding):
        mixed = ", ".join(f"{s.state} {c}" for s, c in zip(sources, codings))
        raise DataError(f"the states' data use different codings ({mixed}), which would give "
                        f"one column different meanings; use states of one coding or set "
                        f"dataset.table_coding")
    if len(frames) > 1:
        notes = [f"{len(frames)} states pooled: " + "; ".join(notes)]
    pooled = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    levels = dictionary_levels(dictionary) if dictionary is not None else None
    return pooled, codings[0], notes, levels, str(dictionary) if dictionary is not None else None


def row_counts(frame: pd.DataFrame, sized: Sized, by_state: bool) -> dict[str, Any]:
    """Rows per state (ACS) and per group in each split, and the dropped groups' rows."""
    rows: dict[str, Any] = {}
    if by_state:
        kept = np.sort(np.concatenate(sized.indices))
        fips = frame[STATE_COLUMN].to_numpy()[kept].astype(np.int64)
        codes, counts = np.unique(fips, return_counts=True)
        rows["per_state"] = {STATE_CODES[int(c)]: int(n) for c, n in zip(codes, counts)}
    counts = counts_per_split(sized.group, sized.indices, len(sized.names))
    rows["per_group"] = {name: dict(zip(SPLIT_NAMES, map(int, row)))
                         for name, row in zip(sized.names, counts)}
    rows["dropped_groups"] = dict(sized.dropped)
    if sized.one_class:  # (absent when none: the size rule then drops only small groups)
        rows["dropped_one_class"] = dict(sized.one_class)
    return rows
