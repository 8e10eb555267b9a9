"""fairbench: benchmarking stochastic approximation algorithms for fairness-constrained training."""

from pathlib import Path

__version__ = "0.1.0"  # the one statement of the version (pyproject.toml reads it)

# The Hydra config tree ships inside the package (the top-level ``conf`` of a checkout is a
# link to it), so a wheel, an sdist and an editable install all find the same files.
CONF_DIR = Path(__file__).resolve().parent / "conf"
