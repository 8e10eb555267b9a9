"""Compact one-hot features (fairbench/data/compact.py) give the dense matrix's trajectories on
every oracle path: the same job on one-hot data, once with the features kept as level indices
(the default for one-hot encodings) and once with the dense float32 split arrays, writes the
same trajectory, metrics and scores, bit for bit (only the timing columns differ)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fairbench.data.loader as loader
from fairbench.backends.oracles import compiled_available
from fairbench.cli import compose_job
from fairbench.data import load_dataset
from fairbench.data.compact import CompactX
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.features import CompactTensor
from fairbench.runner import run

COMMON = ["dataset.encoding=onehot", "dataset.cache=false", "budget.iterations=60", "budget.epochs=null",
          "log_every=20", "progress=false"]
NO_NUMBA = pytest.mark.skipif(not compiled_available(), reason="numba is not installed (the fast extra)")

# (method, oracle path, seeds): the autograd, numpy and compiled oracles, one model and a stack
# of two (where the method stacks), the numpy/compiled passes each method uses (SGD's objective,
# SSL-ALM's fused Lagrangian and values, Ghost's halves, SGD-Fairret's custom gradient), and the
# evaluation on a subsample with the optimality columns
CASES = [
    ("sgd", "off", "[0]", ()), ("ssl_alm", "off", "[0]", ("eval.subsample=300",)),
    ("sgd", "numpy", "[0,1]", ()), ("ssl_alm", "numpy", "[0,1]", ()), ("ghost", "numpy", "[0]", ()),
    ("sgd_fairret", "numpy", "[0]", ()),
    pytest.param("sgd", "compiled", "[0]", (), marks=NO_NUMBA),
    pytest.param("ssl_alm", "compiled", "[0,1]", (), marks=NO_NUMBA),
    pytest.param("ssl_alm", "compiled", "[0]", ("stack_seeds=off",), marks=NO_NUMBA),
    pytest.param("ghost", "compiled", "[0]", (), marks=NO_NUMBA),
    pytest.param("sgd_fairret", "compiled", "[0]", (), marks=NO_NUMBA),
    pytest.param("alm", "compiled", "[0]", (), marks=NO_NUMBA),
]


def rows_of(path: Path) -> list[dict]:
    with path.open() as fh:
        return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in csv.DictReader(fh)]


@pytest.mark.parametrize(("algo", "fast_path", "seeds", "extra"), CASES)
def test_compact_features_give_the_dense_trajectories(tmp_path, monkeypatch, algo, fast_path, seeds, extra):
    overrides = [*COMMON, f"algo={algo}", f"problem.fast_path={fast_path}", f"seeds={seeds}", *extra]
    run(compose_job(overrides), tmp_path / "compact")
    with monkeypatch.context() as patch:
        patch.setattr(loader, "is_compact", lambda plan: False)  # the dense float32 split arrays
        run(compose_job(overrides), tmp_path / "dense")
    for seed in json.loads(seeds):
        a, b = tmp_path / "compact" / f"seed_{seed}", tmp_path / "dense" / f"seed_{seed}"
        assert rows_of(a / "trajectory.csv") == rows_of(b / "trajectory.csv")
        ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
        assert ma["splits"] == mb["splits"] and ma["oracle_path"] == mb["oracle_path"]
        assert ma["oracle_path"].startswith({"off": "autograd"}.get(fast_path, fast_path))
        for split in ("train", "val", "test"):
            sa, sb = np.load(a / f"scores_{split}.npz"), np.load(b / f"scores_{split}.npz")
            for key in sa.files:
                assert sa[key].tobytes() == sb[key].tobytes()


def test_compact_rows_are_the_dense_rows_as_tensors(tmp_path) -> None:
    data = load_dataset({"source": "synthetic", "n_rows": 2000, "encoding": "onehot", "protected": ["RAC1P"],
                         "cache": False})
    X = data.train.X
    assert isinstance(X, CompactX) and X.codes.dtype == np.int16
    dense = np.asarray(X)
    split = TensorSplit.from_arrays(X, data.train.y, data.train.group)
    assert isinstance(split.X, CompactTensor) and split.X.shape == torch.Size(dense.shape)
    rows = torch.tensor([5, 0, 5, 17])
    assert split.X[rows].dtype == torch.float32 and split.X[rows].numpy().tobytes() == dense[[5, 0, 5, 17]].tobytes()
    assert split.X[3:9].numpy().tobytes() == dense[3:9].tobytes()
    assert split.X.to(torch.float64)[rows].dtype == torch.float64
    assert X[np.array([[1, 2], [3, 4]])].shape == (2, 2, dense.shape[1])
    assert X[np.array([1, 2]), 3:5].tobytes() == dense[[1, 2], 3:5].tobytes()
    assert np.asarray(X.take(np.array([4, 2]))).tobytes() == dense[[4, 2]].tobytes()
