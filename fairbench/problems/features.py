"""Compact one-hot features as the ``X`` of a :class:`~fairbench.problems.fairness.TensorSplit`.

:class:`CompactTensor` stands where a split's feature tensor stands when the data keeps its
one-hot features as level indices (:class:`~fairbench.data.compact.CompactX`). Consumers
only ever read rows: ``X[rows]`` (a torch index tensor, a numpy array or a slice) gives the
dense float32 tensor of those rows, bit for bit the rows of the dense matrix, so a model's
forward pass on them is the dense path's; ``X.numpy()`` gives the
:class:`~fairbench.data.compact.CompactX` (the numpy oracles index it the same way);
``X.to(dtype)`` converts the rows it gives. The whole dense matrix is never made.
"""

from __future__ import annotations

import numpy as np
import torch

from fairbench.data.compact import CompactX


class CompactTensor:
    """Row access to a :class:`~fairbench.data.compact.CompactX` as torch tensors of ``dtype``."""

    def __init__(self, compact: CompactX, dtype: torch.dtype = torch.float32):
        self.compact = compact
        self.dtype = dtype

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.compact.shape)

    def __len__(self) -> int:
        return len(self.compact)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, torch.Tensor):
            key = key.numpy()
        rows = torch.from_numpy(np.ascontiguousarray(self.compact[key]))
        return rows if self.dtype == torch.float32 else rows.to(self.dtype)

    def numpy(self) -> CompactX:
        return self.compact

    def to(self, dtype: torch.dtype) -> "CompactTensor":
        return CompactTensor(self.compact, dtype)
