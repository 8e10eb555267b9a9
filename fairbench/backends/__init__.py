"""The backend layer: every fast path of fairbench lives here.

A method file in :mod:`fairbench.algorithms` states its update rule once, on the oracle
interface of :mod:`fairbench.problems.base`, in plain numpy for one seed. This package holds
what makes that rule fast without the method knowing:

- faster oracles for fairbench's MLP (hand-written numpy passes, stacked seeds, compiled
  numba kernels), chosen by ``problem.fast_path``;
- faster variants of a method's step (compiled kernels, stacked seeds), registered per
  method and chosen in one place, the way ``torch.optim.Adam`` hands off to its
  single-tensor, multi-tensor or fused implementation.

A method with no fast variant runs its own rule on whatever oracle it is given, and every
run records which paths it took.
"""
