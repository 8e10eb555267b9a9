"""Checkpoints of the algorithm's and oracle's state (fairbench.checkpoint): restored into a
fresh setup, every method on every oracle path, stacked or not, continues bit for bit."""

import pickle

import numpy as np
import pytest
import torch

from fairbench import checkpoint
from fairbench.api import algorithm_names, build_algorithm
from fairbench.backends.oracles import compiled_available, oracle_path
from fairbench.backends.variants import can_stack_method
from fairbench.cli import compose_job
from fairbench.runner import prepare
from fairbench.training import setup_group, shared_ids

NO_NUMBA = pytest.mark.skipif(not compiled_available(), reason="numba not installed")
PATHS = ["off", "numpy", pytest.param("compiled", marks=NO_NUMBA)]


def group(tmp_path, algo: str, fast_path: str, seeds: list[int], *overrides: str):
    cfg = compose_job(["progress=false", f"algo={algo}", f"problem.fast_path={fast_path}", *overrides])
    ctx = prepare(cfg, tmp_path)
    algo = build_algorithm(cfg.algo)
    setup_group(ctx, seeds, algo)
    return ctx, algo


def flat(snapshot, path=()):
    """Every saved leaf of a snapshot by path: arrays as bytes with dtype and shape."""
    leaves = {}
    if isinstance(snapshot, checkpoint._Object):
        leaves[path] = snapshot.cls
        for key, entry in snapshot.attributes.items():
            leaves.update(flat(entry, path + (key,)))
    elif isinstance(snapshot, checkpoint._Container):
        items = snapshot.items.items() if snapshot.cls is dict else enumerate(snapshot.items)
        for key, entry in items:
            leaves.update(flat(entry, path + (key,)))
    elif isinstance(snapshot, (checkpoint._Array, checkpoint._Tensor)):
        value = snapshot.value if isinstance(snapshot, checkpoint._Array) else snapshot.value.numpy()
        leaves[path] = (value.dtype.str, value.shape, value.tobytes())
    elif isinstance(snapshot, checkpoint._RandomState):
        leaves[path] = repr(snapshot.state)
    elif isinstance(snapshot, checkpoint._Alias):
        leaves[path] = ("alias", snapshot.path)
    elif snapshot is not checkpoint.SKIP:
        leaves[path] = (type(snapshot), repr(snapshot))
    return leaves


def steps(algo, n: int) -> list[bytes]:
    """``n`` steps; the parameters after each, as bytes."""
    out = []
    for _ in range(n):
        algo.step()
        out.append(np.asarray(algo.oracle.x).tobytes())
    return out


def stacks(algo: str, path) -> bool:
    """Whether ``algo`` trains stacked seeds on ``path`` (every fast path, for a method that can)."""
    name = path.values[0] if hasattr(path, "values") else path
    return name != "off" and can_stack_method(type(build_algorithm(compose_job([f"algo={algo}"]).algo)))


CASES = [(algo, path, stacked) for algo in algorithm_names() for path in PATHS
         for stacked in (False, True) if not stacked or stacks(algo, path)]


@pytest.mark.parametrize("algo,fast_path,stacked", CASES)
def test_restored_state_continues_bit_for_bit(tmp_path, algo, fast_path, stacked):
    """N steps, capture (pickled, as in a file), M more steps; a fresh setup restored from the
    capture makes the same M steps: the same parameters after each, and at the end the same
    state everywhere (multipliers, counters, sampler positions, random streams)."""
    path = fast_path.values[0] if hasattr(fast_path, "values") else fast_path
    seeds = [3, 4, 5] if stacked else [3]
    # small batches and a short epoch, so that the M steps cross an epoch's end (new permutations)
    ctx, algo_a = group(tmp_path, algo, path, seeds, "dataset.n_rows=400")
    assert oracle_path(algo_a.oracle).startswith(path if path != "off" else "autograd") or path == "off"
    shared = shared_ids(ctx)
    baseline = checkpoint.arrays(checkpoint.capture(algo_a, shared))
    steps(algo_a, 37)
    saved = pickle.loads(pickle.dumps(checkpoint.capture(algo_a, shared, baseline)))
    expected = steps(algo_a, 45)

    ctx_b, algo_b = group(tmp_path, algo, path, seeds, "dataset.n_rows=400")
    restored = checkpoint.restore(algo_b, saved)
    assert restored is algo_b
    x_before = algo_b.oracle.x
    assert steps(algo_b, 45) == expected
    assert algo_b.oracle.x is x_before  # restored in place: views of it stay valid
    assert flat(checkpoint.capture(algo_b, shared_ids(ctx_b))) == flat(checkpoint.capture(algo_a, shared))


def test_oracle_x_stays_the_models_parameters(tmp_path):
    """``oracle.x`` is restored in place, so the torch model the evaluation uses follows."""
    ctx, algo = group(tmp_path, "sgd", "numpy", [0])
    steps(algo, 5)
    saved = checkpoint.capture(algo, shared_ids(ctx))
    ctx2, fresh = group(tmp_path, "sgd", "numpy", [0])
    checkpoint.restore(fresh, saved)
    model = fresh.oracle.model
    flat_params = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    np.testing.assert_array_equal(flat_params, algo.oracle.x)


def test_unchanged_arrays_are_not_saved(tmp_path):
    """Arrays equal to a fresh setup's (the training data's derived arrays) are left out."""
    ctx, algo = group(tmp_path, "ssl_alm", "numpy", [0])
    shared = shared_ids(ctx)
    full = len(pickle.dumps(checkpoint.capture(algo, shared)))
    baseline = checkpoint.arrays(checkpoint.capture(algo, shared))
    steps(algo, 3)
    lean = checkpoint.capture(algo, shared, baseline)
    assert len(pickle.dumps(lean)) < full / 2
    assert isinstance(lean.attributes["oracle"].attributes["x"], checkpoint._Array)


def test_aliases_and_containers():
    class Holder:  # not a fairbench class: not walked
        pass

    a = np.arange(6.0)
    state = {"a": a, "view": a[2:], "same": a, "list": [1, 2.5, "s"], "tuple": (np.float32(2), None),
             "rng": np.random.default_rng(1), "other": Holder()}
    saved = checkpoint.capture(state)
    assert saved.items["other"] is checkpoint.SKIP
    assert isinstance(saved.items["same"], checkpoint._Alias)
    state["rng"].random(3)
    expected = state["rng"].random()
    a[:] = -1
    state["list"].append(9)
    state["new"] = 1
    checkpoint.restore(state, saved)
    assert state["same"] is state["a"] is a and a.tolist() == [0, 1, 2, 3, 4, 5] and state["view"].tolist() == [2, 3, 4, 5]
    assert state["list"] == [1, 2.5, "s"] and "new" not in state
    state["rng"].random(3)
    assert state["rng"].random() == expected
    del state["other"]  # an entry not saved, absent now (e.g. a method bound by a test): stays absent
    checkpoint.restore(state, saved)
    assert "other" not in state
