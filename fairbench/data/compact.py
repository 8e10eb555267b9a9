"""One-hot features kept as level indices: :class:`CompactX`, rows densified on demand.

A one-hot column ``j`` standardised on the training split is ``x_j = (e_j - mu_j) / s_j``
with ``e_j`` in {0, 1}, so it takes one of two float32 values, ``off_j = f32((0 - mu_j) / s_j)``
or ``on_j = f32((1 - mu_j) / s_j)``, and in each categorical column's block of levels exactly
one column is on. A row is therefore known from one level index per categorical column
(``codes``, int16: the all-states ACSIncome matrix has about ten entries per row against
811 dense columns) and its standardised numeric columns (``numeric``, float32). The
all-states one-hot data takes about 20 MB this way instead of 2.9 GB.

``X[rows]`` writes the rows out densely: ``off`` broadcast, ``on`` at each block's level,
the numeric values in their columns. Every entry is the float32 the dense preparation
(:mod:`fairbench.data.arrays`) stores, bit for bit: the statistics are the same reductions
over the same float64 column blocks (:func:`~fairbench.data.arrays.column_statistics`), and
each value is the same ``f32((x - mu) / s)`` of float64 operands. So every consumer that
reads rows (a minibatch, an evaluation chunk) sees the dense matrix's rows without it ever
existing whole; consumers need only row indexing (and ``np.asarray`` for a dense copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from fairbench.data.arrays import BLOCK_BYTES, column_statistics
from fairbench.data.encoding import Plan, level_positions

_F32 = np.dtype(np.float32)


@dataclass(frozen=True, eq=False)
class CompactX:
    """Standardised one-hot features of ``n`` rows and ``d`` columns as level indices.

    codes : (n, c) int16 or int32, the level of each categorical column (its position in the
        column's block).
    numeric : (n, k) float32, the standardised numeric columns.
    starts : (c,) int64, the first column of each categorical block.
    numeric_columns : (k,) int64, the columns of the numeric features.
    off, on : (d,) float32, each column's value when its indicator is 0 or 1 (numeric
        columns: unused).
    """

    codes: np.ndarray
    numeric: np.ndarray
    starts: np.ndarray
    numeric_columns: np.ndarray
    off: np.ndarray
    on: np.ndarray

    ndim = 2
    dtype = _F32

    def __post_init__(self) -> None:
        n = self.codes.shape[0]
        if (self.codes.ndim != 2 or self.codes.dtype.kind != "i" or self.numeric.dtype != _F32
                or self.numeric.shape[0] != n or self.off.dtype != _F32 or self.on.shape != self.off.shape
                or self.starts.shape != (self.codes.shape[1],)
                or self.numeric_columns.shape != (self.numeric.shape[1],)):
            raise ValueError("CompactX: codes (n, c) integer, numeric (n, k) float32, starts (c,), "
                             "numeric_columns (k,), off and on (d,) float32")

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.codes.shape[0]), int(self.off.shape[0]))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.codes, self.numeric, self.starts, self.numeric_columns, self.off, self.on))

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, key) -> np.ndarray:
        """Dense float32 rows: ``key`` a slice or integer array of rows (any shape: the result
        has shape ``key.shape + (d,)``), or a tuple whose first entry selects rows and the
        rest index the dense rows."""
        if isinstance(key, tuple):
            return self[key[0]][(slice(None),) + key[1:]]
        if isinstance(key, slice):
            return self._dense(self.codes[key], self.numeric[key])
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        flat = index.reshape(-1)
        return self._dense(self.codes[flat], self.numeric[flat]).reshape(index.shape + (self.shape[1],))

    def _dense(self, codes: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        out = np.empty((codes.shape[0], self.shape[1]), dtype=_F32)
        out[:] = self.off
        if codes.size:
            columns = codes.astype(np.int64) + self.starts
            out[np.arange(codes.shape[0])[:, None], columns] = self.on[columns]
        out[:, self.numeric_columns] = numeric
        return out

    def take(self, rows: np.ndarray | slice) -> "CompactX":
        """The rows ``rows`` (an integer array or a slice), still compact."""
        return CompactX(self.codes[rows], self.numeric[rows], self.starts, self.numeric_columns, self.off, self.on)

    def dense(self) -> np.ndarray:
        """The whole dense float32 matrix (for small data and tests)."""
        return self[:]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.dense()
        return out if dtype is None else out.astype(dtype)


def is_compact(plan: Plan) -> bool:
    """Whether features encoded by ``plan`` are kept compact: one-hot with a categorical column."""
    return bool(plan.levels)


def encode_compact(frame: pd.DataFrame, plan: Plan, indices: list[np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """``(starts, numeric_columns, [(codes, raw numeric float32) per split])`` of ``frame``'s
    rows ``indices[s]`` (the numeric values not yet standardised)."""
    categorical = [c for c in plan.columns if c in plan.levels]
    numeric = [c for c in plan.columns if c not in plan.levels]
    starts, numeric_columns, start = [], [], 0
    for column in plan.columns:
        if column in plan.levels:
            starts.append(start)
            start += len(plan.levels[column])
        else:
            numeric_columns.append(start)
            start += 1
    widest = max(len(plan.levels[c]) for c in categorical)
    code_type = np.int16 if widest <= np.iinfo(np.int16).max else np.int32
    codes = np.empty((len(frame), len(categorical)), dtype=code_type)
    for i, column in enumerate(categorical):
        codes[:, i] = level_positions(column, frame[column].to_numpy(dtype=np.float64), plan)
    values = np.empty((len(frame), len(numeric)), dtype=_F32)
    for i, column in enumerate(numeric):
        values[:, i] = frame[column].to_numpy(dtype=np.float64)  # (rounded to float32, as the dense array)
    parts = [(codes[rows], values[rows]) for rows in indices]
    return np.array(starts, dtype=np.int64), np.array(numeric_columns, dtype=np.int64), parts


def standardise_compact(plan: Plan, starts: np.ndarray, numeric_columns: np.ndarray,
                        parts: list[tuple[np.ndarray, np.ndarray]], block_bytes: int = BLOCK_BYTES
                        ) -> tuple[np.ndarray, np.ndarray, list[CompactX]]:
    """``(mean, std, [CompactX per split])``: the training split's column statistics (those
    :func:`~fairbench.data.arrays.standardise_in_place` computes on the dense arrays) and the
    standardised compact splits."""
    codes, raw = parts[0]
    n, d = codes.shape[0], plan.width
    block_of = np.full(d, -1, dtype=np.int64)  # each column's categorical block (-1: numeric)
    for c, column in enumerate(c for c in plan.columns if c in plan.levels):
        block_of[starts[c]:starts[c] + len(plan.levels[column])] = c

    def raw_block(first: int, stop: int) -> np.ndarray:
        block = np.zeros((n, stop - first))
        for i, column in enumerate(numeric_columns):
            if first <= column < stop:
                block[:, column - first] = raw[:, i]
        for c in np.unique(block_of[first:stop]):
            if c < 0:
                continue
            columns = codes[:, c].astype(np.int64) + starts[c]
            inside = np.flatnonzero((columns >= first) & (columns < stop))
            block[inside, columns[inside] - first] = 1.0
        return block

    mean, std = column_statistics(n, d, raw_block, block_bytes)
    off = ((0.0 - mean) / std).astype(_F32)
    on = ((1.0 - mean) / std).astype(_F32)
    off[numeric_columns] = on[numeric_columns] = 0.0
    mu, sd = mean[numeric_columns], std[numeric_columns]
    out = [CompactX(c, ((v.astype(np.float64) - mu) / sd).astype(_F32), starts, numeric_columns, off, on)
           for c, v in parts]
    return mean, std, out
