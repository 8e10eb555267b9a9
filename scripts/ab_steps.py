#!/usr/bin/env python
"""A/B of one method's step time between two revisions of fairbench, on the census task.

    python scripts/ab_steps.py 064d2b2~1 064d2b2 --method ssw            # 10 stacked seeds
    python scripts/ab_steps.py d916e7e~1 d916e7e --method ssl_alm --seeds 1

Each revision (a git revision, or ``.`` for the working tree) is checked out into a temporary
worktree. Rounds then alternate the two: each round runs one fresh process per revision that
builds the oracle and the algorithm as ``scripts/bench.py`` does (``--seeds 1``: the
single-seed oracle; more: the stacked oracle), takes ``--warmup`` steps and times ``--steps``
more. Alternating rounds let both revisions meet the same phases of a machine whose speed
drifts; the medians and minima over the rounds are printed, and whether both revisions left
bitwise the same parameters (a speed change that should not change the numbers).

The first round of a revision compiles its kernels (numba caches them in the worktree), so
a warm-up round per revision is run and not counted. Needs ``FAIRBENCH_DATA_DIR`` for the
census data (else the synthetic default, as bench.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# runs inside a worktree: its own fairbench (first on sys.path) and its own scripts/bench.py
CHILD = r"""
import hashlib, json, sys, time
tree, method, n_seeds, warmup, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sys.path[:0] = [tree, tree + "/scripts"]
import bench
bench.pin_threads()
import numpy as np, torch
import fairbench
from fairbench.api import build_algorithm
from fairbench.instantiate import instantiate_node
from fairbench.runner import effective_algo_config
try:
    from fairbench.backends.stacking import stacked_oracle
    from fairbench.backends.variants import bind_variant
except ImportError:  # a revision before fairbench/backends: setup binds its own fast paths
    from fairbench.problems.stacked import stacked_oracle
    bind_variant = None
assert fairbench.__file__.startswith(tree), f"imported {fairbench.__file__}, not the worktree's"
ctx = bench.Context(bench.dataset_choice(None))
cfg = bench.compose(ctx.dataset, method)
problem = instantiate_node(cfg.problem, "problem")
bound = (problem.bind_data(ctx.data) if hasattr(problem, "bind_data")  # older revisions: bind by proportions
         else problem.bind(ctx.data.group_proportions(), ctx.data.group_names))
seeds = list(range(n_seeds))
models = []
for s in seeds:
    torch.manual_seed(s)
    models.append(instantiate_node(cfg.model, "model", n_features=ctx.data.n_features))
if n_seeds == 1:
    oracle, rngs = problem.oracle(models[0], ctx.train, bound, 0), np.random.default_rng(0)
else:
    oracle, rngs = stacked_oracle(problem, models, ctx.train, bound, seeds), [np.random.default_rng(s) for s in seeds]
algo = build_algorithm(effective_algo_config(cfg))
algo.setup(oracle, rngs)
if bind_variant is not None:
    bind_variant(algo, oracle)
for _ in range(warmup):
    algo.step()
start = time.perf_counter()
for _ in range(steps):
    algo.step()
us = (time.perf_counter() - start) / steps * 1e6
print(json.dumps({"us": us, "x": hashlib.sha256(np.ascontiguousarray(oracle.x).tobytes()).hexdigest()}))
"""


def worktree(rev: str, base: Path) -> Path:
    if rev == ".":
        return REPO
    path = base / hashlib.sha1(rev.encode()).hexdigest()[:10]
    made = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), rev],
                          capture_output=True, text=True)
    if made.returncode:
        print(f"ab_steps: revision {rev!r} is not a commit of this repository; accepted: a git revision, "
              f"or . for the working tree", file=sys.stderr)
        sys.exit(2)
    return path


def one(tree: Path, args) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), args.method, str(args.seeds), str(args.warmup),
                          str(args.steps)], capture_output=True, text=True, env=os.environ.copy())
    if out.returncode:
        sys.exit(f"ab_steps: the run of {tree} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev_a")
    parser.add_argument("rev_b")
    parser.add_argument("--method", default="ssl_alm")
    parser.add_argument("--seeds", type=int, default=10, help="1: single-seed oracle; more: stacked (default 10)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        try:
            for rev in (args.rev_a, args.rev_b):
                trees[rev] = worktree(rev, Path(tmp))
            results = {rev: [] for rev in trees}
            for rev, tree in trees.items():
                one(tree, args)  # compiles (or loads) the revision's kernels: not counted
            for _ in range(args.rounds):
                for rev, tree in trees.items():
                    results[rev].append(one(tree, args))
        finally:
            for tree in trees.values():
                if tree != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"{args.method}, {args.seeds} seed(s), {args.rounds} alternating rounds of {args.steps} steps "
          f"(after {args.warmup}), us per step:")
    for rev, runs in results.items():
        us = [r["us"] for r in runs]
        print(f"  {rev:>14}: median {statistics.median(us):8.1f}  min {min(us):8.1f}")
    same = len({r["x"] for runs in results.values() for r in runs}) == 1
    print(f"  parameters after the run: {'bitwise the same' if same else 'DIFFERENT'} for both revisions")


if __name__ == "__main__":
    main()
