"""SplitsEvaluator: all splits evaluated together give, bit for bit, what each split evaluated
on its own by the definition gives (per-split forward, BCE, index_add_ group sums, mean)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairbench.models import INFERENCE_BLOCK
from fairbench.problems import TensorSplit
from fairbench.problems.evaluation import SplitsEvaluator
import configs


@torch.no_grad()
def definition(model, split: TensorSplit, bound):
    """One split on its own, written out as the evaluation is defined."""
    logits = model(split.X)
    losses = F.binary_cross_entropy_with_logits(logits, split.y, reduction="none").double()
    n_groups = bound.matrix.shape[1]
    counts = torch.bincount(split.group, minlength=n_groups).double()
    sums = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, split.group, losses)
    group_losses = (sums / counts.clamp(min=1)).numpy()
    return float(losses.mean()), group_losses, bound.values(group_losses), torch.sigmoid(logits).double().numpy()


def random_split(rng, n, d, n_groups, empty_group=None):
    group = rng.integers(0, n_groups, n)
    if empty_group is not None:
        group[group == empty_group] = (empty_group + 1) % n_groups
    return TensorSplit.from_arrays(rng.normal(size=(n, d)) * 2, (rng.random(n) < 0.3).astype(np.float32), group)


def bound_for(n_groups, form="signed"):
    spec = configs.constraint_spec(delta=0.01, family="pairs" if n_groups == 2 else "vs_all", form=form)
    return spec.bind(np.full(n_groups, 1.0 / n_groups), [f"g{g}" for g in range(n_groups)])


@pytest.mark.parametrize("sizes", [(14333, 1792, 1792), (INFERENCE_BLOCK + 1, 7, INFERENCE_BLOCK * 2), (1, 1, 1)])
@pytest.mark.parametrize("n_groups", [2, 5])
def test_joint_evaluation_equals_each_split_on_its_own(sizes, n_groups):
    rng = np.random.default_rng(sum(sizes) + n_groups)
    splits = {name: random_split(rng, n, 9, n_groups, empty_group=1 if name == "val" else None)
              for name, n in zip(("train", "val", "test"), sizes)}
    bound = bound_for(n_groups, form="abs" if n_groups == 2 else "signed")
    evaluator = SplitsEvaluator(splits, n_groups)
    for seed in range(3):
        torch.manual_seed(seed)
        model = configs.model(9)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        joint = evaluator.evaluate(model, bound)
        assert list(joint) == ["train", "val", "test"]
        for name, split in splits.items():
            loss, group_losses, constraints, scores = definition(model, split, bound)
            ev = joint[name]
            assert ev.loss == loss
            np.testing.assert_array_equal(ev.group_losses, group_losses)
            np.testing.assert_array_equal(ev.constraints, constraints)
            np.testing.assert_array_equal(ev.scores, scores)


def test_any_module_and_scores_only_when_asked():
    """A user's module goes through its own forward; without scores the rest is unchanged."""
    rng = np.random.default_rng(3)
    splits = {"a": random_split(rng, 300, 4, 3), "b": random_split(rng, 50, 4, 3)}
    bound = bound_for(3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1), nn.Flatten(0))
    evaluator = SplitsEvaluator(splits, 3)
    with_scores = evaluator.evaluate(model, bound)
    without = evaluator.evaluate(model, bound, scores=False)
    for name, split in splits.items():
        loss, group_losses, constraints, scores = definition(model, split, bound)
        assert with_scores[name].loss == loss == without[name].loss
        np.testing.assert_array_equal(with_scores[name].group_losses, group_losses)
        np.testing.assert_array_equal(without[name].constraints, constraints)
        np.testing.assert_array_equal(with_scores[name].scores, scores)
        assert without[name].scores is None


def test_group_outside_the_range_is_refused():
    """Such a row would be counted in the next split's cells."""
    split = TensorSplit.from_arrays(np.zeros((4, 2)), np.zeros(4), np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match=r"split 'train': group indices must lie in \[0, 2\), got 0..2"):
        SplitsEvaluator({"train": split, "test": split}, 2)


@pytest.mark.parametrize("statistic", ["loss", "positive_rate"])
def test_chunked_evaluation_equals_one_forward_per_split(statistic):
    """Chunks of the inference block (the last small one joined to the one before) give, bit
    for bit, what one forward over each whole split gives: the final evaluation of a large
    split never holds the split's activations at once."""
    B = INFERENCE_BLOCK
    rng = np.random.default_rng(11)
    sizes = (3 * B + 5, B + 1, 4 * B, B // 2)
    splits = {f"s{i}": random_split(rng, n, 9, 3) for i, n in enumerate(sizes)}
    spec = configs.constraint_spec(delta=0.01, family="pairs", form="signed", statistic=statistic,
                                   temperature=0.5)
    bound = spec.bind(np.full(3, 1 / 3), ["a", "b", "c"])
    torch.manual_seed(4)
    model = configs.model(9)
    whole = SplitsEvaluator(splits, 3, chunk_rows=64 * B).evaluate(model, bound)
    chunked = SplitsEvaluator(splits, 3, chunk_rows=B).evaluate(model, bound)
    for name in splits:
        a, b = whole[name], chunked[name]
        assert a.loss == b.loss and a.rate_gaps == b.rate_gaps and a.rows == b.rows == len(splits[name])
        for field in ("group_losses", "constraints", "constraints_true", "scores"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_chunk_bounds():
    from fairbench.problems.evaluation import chunk_bounds
    B = INFERENCE_BLOCK
    assert chunk_bounds(5, B) == [(0, 5)]
    assert chunk_bounds(2 * B + 1, B) == [(0, B), (B, 2 * B + 1)]
    assert chunk_bounds(3 * B, 2 * B) == [(0, 3 * B)]
    assert chunk_bounds(5 * B, 2 * B) == [(0, 2 * B), (2 * B, 5 * B)]
    assert chunk_bounds(6 * B, 2 * B) == [(0, 2 * B), (2 * B, 4 * B), (4 * B, 6 * B)]
