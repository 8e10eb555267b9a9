"""The data stage: ACSIncome rows in, standardised group-stratified splits out.

Public API (the contract other stages rely on)::

    load_dataset(cfg) -> PreparedData   # cfg: the `dataset` config group
    PreparedData(train, val, test: Split, feature_names, group_names, synthetic, source)
    Split(X: float32 (n, d), y: float32 (n,), group: int64 (n,))
    data_root(root=None) -> Path        # dataset.root, else $FAIRBENCH_DATA_DIR, else user cache

Rows come from raw folktables PUMS files, a preprocessed ACSIncome table, or an embedded
synthetic generator (the offline default); see :mod:`fairbench.data.sources`. Everything
the user can get wrong raises :class:`fairbench.errors.ConfigError` or
:class:`fairbench.errors.DataError` with a one-line message.
"""

from fairbench.data.loader import load_dataset
from fairbench.data.paths import data_root
from fairbench.data.prepared import PreparedData, Split

__all__ = ["PreparedData", "Split", "data_root", "load_dataset"]
