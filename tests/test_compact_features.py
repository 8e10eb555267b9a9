"""Compact one-hot features (fairbench/data/compact.py) give the dense matrix's trajectories on
every oracle path: the same job on one-hot data, once with the features kept as level indices
(the default for one-hot encodings) and once with the dense float32 split arrays, writes the
same trajectory, metrics and scores, bit for bit (only the timing columns differ) when the
evaluation and the optimality pass make compact rows dense (``mlp_rows.LOOKUP`` off); with
their lookup first layer (the default) the training is the same bit for bit and the evaluated
numbers agree to float32 rounding."""

import copy
import csv
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fairbench.data.loader as loader
import fairbench.problems.mlp_rows as mlp_rows
from fairbench import checkpoint
from fairbench.api import build_algorithm
from fairbench.backends.oracles import compiled_available
from fairbench.cli import compose_job
from fairbench.data import load_dataset
from fairbench.data.compact import CompactX
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.features import CompactTensor
from fairbench.runner import prepare, run
from fairbench.training import setup_group, shared_data, shared_ids

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
    with monkeypatch.context() as patch:
        patch.setattr(mlp_rows, "LOOKUP", False)  # evaluation and optimality read dense rows
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


# training state: the same bit for bit whether the evaluation reads compact rows by lookup or not
TRAINING_COLUMNS = ("iteration", "epoch", "samples", "grad_evals", "lambda_", "slack_", "n_dual_resets")


@pytest.mark.parametrize(("algo", "fast_path", "extra"), [
    ("ssl_alm", "numpy", ("eval.subsample=300",)), ("sgd", "off", ()),
    pytest.param("ssl_alm", "compiled", ("problem=demographic_parity",), marks=NO_NUMBA)])
def test_the_lookup_evaluation_gives_the_dense_numbers_to_rounding(tmp_path, monkeypatch, algo, fast_path, extra):
    """With the lookup first layer (the default), the evaluated columns, metrics and scores of
    compact features agree with the dense arrays' to float32 rounding; the training is the same."""
    overrides = [*COMMON, f"algo={algo}", f"problem.fast_path={fast_path}", "seeds=[0]", *extra]
    run(compose_job(overrides), tmp_path / "compact")
    with monkeypatch.context() as patch:
        patch.setattr(loader, "is_compact", lambda plan: False)
        run(compose_job(overrides), tmp_path / "dense")
    a, b = tmp_path / "compact" / "seed_0", tmp_path / "dense" / "seed_0"
    ra, rb = rows_of(a / "trajectory.csv"), rows_of(b / "trajectory.csv")
    assert len(ra) == len(rb) == 4 and ra[0].keys() == rb[0].keys()
    differ = 0
    for x, y in zip(ra, rb):
        for key in x:
            if key.startswith(TRAINING_COLUMNS):
                assert x[key] == y[key], key
            elif x[key] != y[key]:
                differ += 1
                np.testing.assert_allclose(float(x[key]), float(y[key]), rtol=2e-5, atol=1e-6, err_msg=key)
    assert differ  # (the lookup sums in another order: were every number equal, the dense path ran)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["splits"].keys() == mb["splits"].keys()
    for split in ("train", "val", "test"):
        sa, sb = np.load(a / f"scores_{split}.npz"), np.load(b / f"scores_{split}.npz")
        for key in sa.files:
            np.testing.assert_allclose(sa[key], sb[key], rtol=1e-5, atol=1e-6)


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


@pytest.mark.parametrize("fast_path", ["off", "numpy", pytest.param("compiled", marks=NO_NUMBA)])
def test_checkpoints_and_the_warm_up_copy_share_the_compact_features(tmp_path, fast_path) -> None:
    def setup():
        cfg = compose_job(["progress=false", "algo=ssl_alm", f"problem.fast_path={fast_path}", "dataset.encoding=onehot",
                           "dataset.n_rows=600", "dataset.cache=false"])
        ctx = prepare(cfg, tmp_path)
        algo = build_algorithm(cfg.algo)
        setup_group(ctx, [0], algo)
        return ctx, algo

    ctx, algo = setup()
    features = ctx.data.train.X
    assert isinstance(features, CompactX)
    memo = {id(module): module for module in list(sys.modules.values())}  # as training.warm_up copies
    shadow = copy.deepcopy(algo, {**memo, **shared_data(ctx, algo)})
    held = shadow.oracle.train.X.numpy() if fast_path == "off" else shadow.oracle._X
    assert held is features
    for _ in range(5):
        algo.step()
    saved = pickle.dumps(checkpoint.capture(algo, shared_ids(ctx)))
    assert features.codes.tobytes() not in saved
    expected = [algo.step() or algo.oracle.x.tobytes() for _ in range(5)]
    ctx_b, algo_b = setup()
    checkpoint.restore(algo_b, pickle.loads(saved))
    assert [algo_b.step() or algo_b.oracle.x.tobytes() for _ in range(5)] == expected
