"""fairbench: benchmarking stochastic approximation algorithms for fairness-constrained training."""

__version__ = "0.1.0"
