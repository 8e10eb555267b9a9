"""Encoded rows straight into the three float32 split arrays, standardised in place.

A one-hot matrix of every shared state is large (about 900,000 rows x 811 columns: 2.9 GB in
float32, twice that in float64), so it is never built whole and then indexed per split:
each split's float32 array is allocated once, rows are encoded in chunks of
:data:`CHUNK_ROWS` (float32: every encoded value is an integer code or 0/1, exact) and
written to their place in their split, and the training mean and standard deviation are
computed over column blocks in float64. Each column's statistics are the same reduction
over the same float64 values as on the whole matrix (``mean(axis=0)``, population
``std(axis=0)``: the sum runs over rows for every column alike, whatever the block width,
which is kept at two columns or more), and each entry is then scaled as
``float32((x - mean) / std)`` in float64, so the arrays equal, bit for bit, those of
scaling the float64 matrix at once (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from fairbench.data.encoding import Plan, encode_rows

CHUNK_ROWS = 16384
BLOCK_BYTES = 64 * 2**20  # float64 bytes of one column block of the training split


def encode_splits(frame: pd.DataFrame, plan: Plan, indices: list[np.ndarray],
                  chunk_rows: int = CHUNK_ROWS) -> list[np.ndarray]:
    """The encoded rows of each split (``indices``: sorted row numbers of ``frame``; rows in
    no split are skipped), as float32 arrays allocated once."""
    n = len(frame)
    split_of = np.full(n, -1, dtype=np.int8)
    position = np.zeros(n, dtype=np.int64)
    for s, rows in enumerate(indices):
        split_of[rows] = s
        position[rows] = np.arange(rows.size)
    out = [np.empty((rows.size, plan.width), dtype=np.float32) for rows in indices]
    buffer = np.empty((min(chunk_rows, max(n, 1)), plan.width), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        chunk = buffer[: stop - start]
        encode_rows(frame.iloc[start:stop], plan, chunk)
        for s, target in enumerate(out):
            mask = split_of[start:stop] == s
            target[position[start:stop][mask]] = chunk[mask]
    return out


def standardise_in_place(train: np.ndarray, *others: np.ndarray,
                         block_bytes: int = BLOCK_BYTES, chunk_rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Scale float32 ``train`` and ``others`` in place by the training columns' mean and
    population standard deviation (constant columns left unscaled); return that mean and
    standard deviation (float64), which :func:`scale_in_place` applies to other rows."""
    n, d = train.shape
    mean, std = column_statistics(n, d, lambda start, stop: train[:, start:stop].astype(np.float64), block_bytes)
    for array in (train, *others):
        scale_in_place(array, mean, std, chunk_rows)
    return mean, std


def column_statistics(n: int, d: int, block: Callable[[int, int], np.ndarray],
                      block_bytes: int = BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """The mean and population standard deviation (constant columns: 1) of the ``d`` columns
    of an ``n``-row matrix, read as float64 column blocks ``block(start, stop)`` (n, stop -
    start), C-ordered, of about ``block_bytes`` each and never of one column."""
    mean, std = np.zeros(d), np.ones(d)
    width = max(2, block_bytes // max(1, 8 * n))
    start = 0
    while start < d:
        stop = min(d, start + width)
        if d - stop == 1:  # no one-column block: its reduction could be ordered differently
            stop = d
        values = np.ascontiguousarray(block(start, stop))
        mean[start:stop] = values.mean(axis=0)
        std[start:stop] = values.std(axis=0)
        start = stop
    std[std == 0] = 1.0
    return mean, std


def scale_in_place(array: np.ndarray, mean: np.ndarray, std: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> None:
    """``array = float32((array - mean) / std)`` in float64, chunk by chunk."""
    for first in range(0, array.shape[0], chunk_rows):
        rows = slice(first, first + chunk_rows)
        array[rows] = ((array[rows].astype(np.float64) - mean) / std).astype(np.float32)
