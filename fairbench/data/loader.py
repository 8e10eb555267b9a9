"""``load_dataset``: config in, standardised train/val/test arrays out.

The steps, each in its own module: validate the config (:mod:`.config`), find the input
(:mod:`.sources`), consult the cache (:mod:`.cache`), read the rows, assign protected
groups (:mod:`.groups`), encode features (:mod:`.encoding`), split by group and
standardise on train (:mod:`.split`), and check that both label classes occur wherever the
metrics need them (:mod:`.labels`). Finding the input only touches file metadata, so a
cache hit never parses a census file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fairbench.data import cache
from fairbench.data.coding import LABEL, coding_matters, decide_coding
from fairbench.data.config import DatasetConfig, parse_config
from fairbench.data.encoding import encode
from fairbench.data.groups import assign_groups
from fairbench.data.labels import check_both_classes
from fairbench.data.prepared import PreparedData, Split
from fairbench.data.sources import (ResolvedSource, file_identity, raw_hint, read_frame,
                                    resolve_dictionary, resolve_source)
from fairbench.data.split import standardise, stratified_split


def load_dataset(cfg: Any) -> PreparedData:
    """Build (or load from cache) the dataset described by the ``dataset`` config group.

    Raises ConfigError for invalid settings and DataError for missing or unusable data.
    """
    config = parse_config(cfg)
    resolved = resolve_source(config)
    dictionary = resolve_dictionary(config)
    key = None
    if config.cache:
        key = cache.cache_key({
            "config": config.identity(), "input": resolved.identity(),
            "dictionary": file_identity(dictionary) if dictionary is not None else None,
        })
        cached = cache.load(key)
        if cached is not None:
            check_both_classes(cached, resolved.where)  # (an entry stored before this check)
            return cached
    data = build(config, resolved, dictionary)
    check_both_classes(data, resolved.where)
    if key is not None:
        cache.store(key, data)
    return data


def build(config: DatasetConfig, resolved: ResolvedSource, dictionary: Path | None) -> PreparedData:
    """Read, group, encode, split and standardise (no cache involved)."""
    frame = read_frame(resolved, config)
    coding, coding_note = resolved.coding, ""
    if resolved.kind == "table":
        coding, coding_note = decide_coding(
            {c: frame[c].to_numpy() for c in ("MAR", "RAC1P")}, resolved.coding, resolved.where,
            coding_matters(config.protected, config.encoding))
    groups = assign_groups(frame, config, coding, resolved.where, raw_hint(config))
    frame = frame.loc[groups.keep].reset_index(drop=True)
    encoded = encode(frame, config.protected, config.encoding, coding, dictionary)
    y = frame[LABEL].to_numpy(dtype=np.float32)
    indices = stratified_split(groups.index, y, config.split.fractions, config.split.seed,
                               groups.names)
    scaled = standardise(*(encoded.X[i] for i in indices))
    train, val, test = (Split(X=x, y=y[i], group=groups.index[i])
                        for x, i in zip(scaled, indices))
    description = resolved.description + (f" ({coding_note})" if coding_note else "")
    notes = [description, groups.note, encoded.note]
    return PreparedData(train=train, val=val, test=test, feature_names=encoded.names,
                        group_names=groups.names, synthetic=resolved.kind == "synthetic",
                        source="; ".join(n for n in notes if n))
