"""Algorithms: one class per file, built by Hydra from ``conf/algo/<name>.yaml``."""

from fairbench.algorithms.base import Algorithm

__all__ = ["Algorithm"]
