"""The training loop: one group of seeds, from their models to their files.

:func:`train_group` trains one seed on its own oracle, or several seeds in lockstep on one
stacked oracle (:mod:`fairbench.backends.stacked`), with the same code: :class:`Lanes` gives
each seed's view of the oracle and of the algorithm's values, so a single seed is a stack
of one. It times only ``algo.step()`` (after a warm-up step of a copy, :func:`warm_up`),
evaluates every ``log_every`` iterations outside the timed region, and stops each seed at
its budget, on divergence or on a signal. :class:`SeedRun` keeps a seed's record and
writes its files.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from omegaconf import DictConfig

from fairbench import provenance
from fairbench.algorithms.base import Algorithm
from fairbench.budget import Budget
from fairbench.data import PreparedData
from fairbench.instantiate import instantiate_node
from fairbench.metrics import fairness_metrics
from fairbench.optimality import COLUMNS as OPTIMALITY_COLUMNS, TrainOptimality, method_multipliers
from fairbench.problems.evaluation import SplitEvaluation, SplitsEvaluator
from fairbench.problems.fairness import TensorSplit
from fairbench.backends.oracles import oracle_path
from fairbench.backends.stacking import stacked_oracle
from fairbench.backends.variants import bind_variant
from fairbench.problems.problem import FairnessProblem
from fairbench.recorder import SPLITS, Recorder


class _StopFlag:
    """Set by the signal handler of :func:`fairbench.runner.stop_on_signals`; polled by the loop."""

    signal_number: int | None = None


@dataclass
class RunContext:
    """Everything shared by the seeds of one run."""

    cfg: DictConfig
    data: PreparedData
    problem: FairnessProblem
    splits: dict[str, TensorSplit]
    recorder: Recorder
    budget: Budget

    @cached_property
    def bound(self):
        """The problem's constraints bound to this data's groups (the same for every seed)."""
        return self.problem.bind(self.data.group_proportions(), self.data.group_names)

    @cached_property
    def evaluator(self) -> SplitsEvaluator:
        """Evaluates a model on train, val and test together (every log point)."""
        return SplitsEvaluator(self.splits, self.bound.matrix.shape[1])

    @cached_property
    def optimality(self) -> TrainOptimality:
        """Stationarity and complementarity on the training split (every log point)."""
        return TrainOptimality(self.splits["train"], self.bound)


def evaluate(ctx: RunContext, model: torch.nn.Module, bound, scores: bool = False) -> dict[str, SplitEvaluation]:
    """The model on every split; ``scores`` (the predicted probabilities) only when asked for:
    the final evaluation writes them, a trajectory row does not use them."""
    return ctx.evaluator.evaluate(model, bound, scores=scores)


def trajectory_row(iteration: int, samples: int, grad_evals: int, seconds: float, n_train: int,
                   evals: dict[str, SplitEvaluation], events: dict[str, float], state: dict[str, float]) -> dict:
    row = {
        "iteration": iteration,
        "epoch": samples / n_train,
        "samples": samples,
        "grad_evals": grad_evals,
        "train_seconds": seconds,
    }
    for split, ev in evals.items():
        row[f"{split}_loss"] = ev.loss
        row[f"{split}_max_violation"] = ev.max_violation
        for j, value in enumerate(ev.constraints):
            row[f"{split}_c{j}"] = value
        for g, value in enumerate(ev.group_losses):
            row[f"{split}_loss_g{g}"] = value
    row.update({f"n_{k}": v for k, v in events.items()})
    row.update(state)
    return row


def final_split_metrics(ev: SplitEvaluation, split: TensorSplit, n_groups: int) -> dict:
    y, group = split.y.numpy(), split.group.numpy()
    metrics = fairness_metrics(ev.scores, y, group, n_groups)
    gl = ev.group_losses
    metrics.update(
        loss=ev.loss,
        max_violation=ev.max_violation,
        loss_gap=float(gl.max() - gl.min()),
        accuracy=float(((ev.scores >= 0.5) == (y > 0.5)).mean()),
        group_losses=gl.tolist(),
        constraints=ev.constraints.tolist(),
    )
    return metrics


def finite_losses(evals: dict[str, SplitEvaluation]) -> bool:
    return all(math.isfinite(ev.loss) for ev in evals.values())


def seed_rng(seed: int) -> np.random.Generator:
    """The algorithm's own random stream of ``seed`` (minibatches come from the oracle)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))


def build_model(ctx: RunContext, seed: int) -> torch.nn.Module:
    """The seed's model: ``torch.manual_seed(seed)`` first, so every seed starts from its own point."""
    torch.manual_seed(seed)
    return instantiate_node(ctx.cfg.model, "model", n_features=ctx.data.n_features)


def _scalar(value):
    """A numpy scalar as the Python number a single-seed run would have recorded."""
    return value.item() if isinstance(value, np.generic) else value


def seed_values(values: dict | None, index: int | None) -> dict:
    """One seed's entries of what ``step()``/``state()`` returned: unchanged for a single-seed
    run (``index`` None); for a stack, entry ``index`` of every (S,) array (scalars are shared)."""
    if not values:
        return values or {}
    if index is None:
        return values
    return {key: _scalar(value[index] if np.ndim(value) else value) for key, value in values.items()}


class SeedRun:
    """One seed's record while it trains: trajectory rows, event totals, iteration, training
    seconds, status and the budget that stopped it; and the files it ends with."""

    def __init__(self, ctx: RunContext, seed: int, model: torch.nn.Module, bound):
        self.ctx, self.seed, self.model, self.bound = ctx, seed, model, bound
        self.n_train = len(ctx.splits["train"])
        self.rows: list[dict] = []
        self.events: dict[str, float] = {}
        self.iteration, self.seconds, self.status = 0, 0.0, "completed"
        self.stopped_by: dict | None = None  # the budget limit that ended a completed seed
        self.multipliers: Callable[[], np.ndarray | None] = lambda: None  # the method's, for optimality

    def optimality(self, evals: dict[str, SplitEvaluation]) -> dict[str, float]:
        train = evals["train"]
        return self.ctx.optimality.columns(self.model, train.group_losses, train.constraints, self.multipliers())

    def log(self, samples: int, grad_evals: int, state: dict) -> dict[str, SplitEvaluation]:
        """Evaluate the model on every split and append a trajectory row."""
        evals = evaluate(self.ctx, self.model, self.bound)
        self.rows.append(trajectory_row(self.iteration, samples, grad_evals, self.seconds, self.n_train,
                                        evals, self.events, state) | self.optimality(evals))
        return evals

    def finish(self, samples: int, grad_evals: int, state: Callable[[], dict], final: np.ndarray | None,
               x: np.ndarray, finite: Callable[[], bool], path: str, extra: dict | None = None) -> dict:
        """Last evaluation and row, final status; write the trajectory, scores and metrics.

        ``x`` is the seed's parameter vector (the model's flat buffer) and ``finite`` checks it;
        ``final`` is the algorithm's output for it (``None``: the last iterate); ``state`` gives
        the last row's state; ``extra`` entries are added to the metrics after ``oracle_path``.
        """
        ctx, bound, n_train = self.ctx, self.bound, self.n_train
        # the algorithm's output (e.g. a random iterate) is reported only for a completed seed
        used_final = final is not None and self.status == "completed"
        if used_final:
            x[:] = final
        evals = evaluate(ctx, self.model, bound, scores=True)
        if self.rows[-1]["iteration"] != self.iteration or used_final:
            self.rows.append(trajectory_row(self.iteration, samples, grad_evals, self.seconds, n_train, evals,
                                            self.events, state()) | self.optimality(evals))
        if self.status == "completed" and not (finite() and finite_losses(evals)):
            self.status = "diverged"
        seed = self.seed
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        # the optimality columns last, so every other column keeps its place
        columns = [k for k in columns if k not in OPTIMALITY_COLUMNS] + list(OPTIMALITY_COLUMNS)
        ctx.recorder.write_trajectory(seed, columns, self.rows)
        metrics = {
            "seed": seed,
            "status": self.status,
            "stopped_by": self.stopped_by if self.status == "completed" else None,
            "iterations": self.iteration,
            "samples": samples,
            "grad_evals": grad_evals,
            "epochs": samples / n_train,
            "train_seconds": self.seconds,
            "iterations_per_second": self.iteration / self.seconds if self.seconds > 0 else None,
            "events": self.events,
            "oracle_path": path,
            **(extra or {}),
            "output": "algorithm_output" if used_final else "last_iterate",
            "constraint_names": list(bound.names),
            "group_names": ctx.data.group_names,
            "splits": {},
        }
        if self.status != "diverged":
            metrics["splits"] = {
                name: final_split_metrics(evals[name], ctx.splits[name], ctx.data.n_groups) for name in SPLITS
            }
            for name in SPLITS:
                split = ctx.splits[name]
                ctx.recorder.write_scores(seed, name, evals[name].scores, split.y.numpy(), split.group.numpy())
        metrics["provenance"] = provenance.collect(int(ctx.cfg.threads))
        ctx.recorder.write_metrics(seed, metrics)
        return metrics


class SeedEvents:
    """The event totals (``step()``'s returned counts) of one seed trained on its own oracle:
    Python numbers summed in a dict, as the counts come."""

    def __init__(self, n_seeds: int = 1):
        self.totals: dict[str, float] = {}

    def add(self, info: dict | None, active) -> None:
        if info:
            totals = self.totals
            for key, value in info.items():
                totals[key] = totals.get(key, 0) + value

    def of(self, index: int) -> dict:
        return self.totals


class StackedEvents:
    """The event totals (``step()``'s returned counts) of a stack's seeds, kept as (S,) arrays.

    One numpy add per key and step instead of a dict update per seed and step. :meth:`of`
    gives one seed's totals as the Python numbers its single-seed run would have summed.
    """

    def __init__(self, n_seeds: int):
        self.n_seeds = n_seeds
        self.totals: dict[str, np.ndarray] = {}

    def add(self, info: dict | None, active) -> None:
        """Add a step's ``info`` (values (S,) per seed, or one scalar shared) to the seeds
        ``active`` (their indices).

        Counts (bool or integer values) add up as int64 and anything else as float64, as the
        Python ints and floats of a single-seed run would."""
        if not info:
            return
        active = np.asarray(active, dtype=np.intp)
        for key, value in info.items():
            value = np.asarray(value)
            kind = np.int64 if value.dtype.kind in "biu" else np.float64
            total = self.totals.get(key)
            if total is None:
                total = self.totals[key] = np.zeros(self.n_seeds, dtype=kind)
            elif total.dtype != np.float64 and kind is np.float64:
                total = self.totals[key] = total.astype(np.float64)
            total[active] += (value[active] if value.ndim else value).astype(total.dtype)

    def of(self, index: int) -> dict:
        return {key: total[index].item() for key, total in self.totals.items()}


class Lanes:
    """Each seed's view of the oracle that trains a group of seeds.

    A group of several seeds trains on a stacked oracle (``x`` of shape (S, P), counters and
    the algorithm's per-seed values with a leading seed axis); a group of one on that seed's
    own oracle (``x`` of shape (P,), scalar counters, values as they are). Seed ``s`` of the
    group reads its entries here, so one training loop serves both."""

    def __init__(self, oracle, n_seeds: int):
        self.oracle, self.n_seeds = oracle, n_seeds
        self.stacked = np.ndim(oracle.x) == 2
        self.events = StackedEvents(n_seeds) if self.stacked else SeedEvents()

    def samples(self, s: int) -> int:
        samples = self.oracle.counters.samples
        return int(samples[s]) if self.stacked else samples

    def counts(self, s: int) -> tuple[int, int]:
        counters = self.oracle.counters
        if self.stacked:
            return int(counters.samples[s]), int(counters.grad_evals[s])
        return counters.samples, counters.grad_evals

    def x(self, s: int) -> np.ndarray:
        return self.oracle.x[s] if self.stacked else self.oracle.x

    def finite(self, s: int) -> bool:
        return bool(np.isfinite(self.x(s)).all())

    def values(self, values: dict | None, s: int) -> dict:
        """Seed ``s``'s entries of what ``step()``/``state()`` returned."""
        return seed_values(values, s if self.stacked else None)

    def output(self, final, s: int):
        """Seed ``s``'s entry of ``final_params()`` (``None``: its last iterate)."""
        if final is None or not self.stacked:
            return final
        return final[s]


def warm_up(algo: Algorithm, data: PreparedData) -> float:
    """One step of a deep copy of ``algo`` (with its oracle), outside the timed region; the
    seconds it took.

    The copy is made after the method's fast variant is bound (its bound methods follow the
    copy). The first step of a process loads or compiles the compiled kernels (numba), builds
    caches and pays other one-off costs that are not training time: a ``budget.seconds`` run
    would otherwise spend them in its budget. The copy shares only what no step writes (the
    data's arrays and the loaded modules), so the seeds' own state, random streams and
    counters are untouched."""
    memo = {id(module): module for module in list(sys.modules.values())}
    for split in (data.train, data.val, data.test):
        for array in (split.X, split.y, split.group):
            memo[id(array)] = array
    start = time.perf_counter()
    shadow = copy.deepcopy(algo, memo)
    shadow.step()
    return time.perf_counter() - start


def train_group(ctx: RunContext, seeds: list[int], algo: Algorithm, flag: _StopFlag, progress,
                done: Callable[[list[tuple[int, dict]]], None]) -> None:
    """Train ``seeds`` together: one seed on its own oracle, several on one stacked oracle
    (:mod:`fairbench.backends.stacked`; call only when :func:`seed_groups` put them together).

    The seeds step in lockstep (one ``algo.step()`` moves all of them); each seed's batches,
    updates and numbers are those of its single-seed run, and each is evaluated, logged and
    written the same way; a stacked seed's metrics add ``stack_size`` (S) and
    ``stack_train_seconds`` (the stack's step time while the seed trained). Rules:

    - **warm-up**: one step of a copy of the algorithm (:func:`warm_up`) before the timed
      region; its time is recorded apart (``warmup_seconds``).
    - **budget**: checked per seed before every step (iterations are common; samples and
      epochs are each seed's own counters). A seed that is done, diverged (at a log point) or
      interrupted is finished there and then (final evaluation, files); ``done`` gets the
      ``(seed, metrics)`` of the seeds that finished at the same point together (one summary
      for the lot); the stack keeps computing a finished seed's row, which nothing reads any
      more, until every seed is done.
    - **time**: a step's wall-clock time is shared equally by the seeds still training, so a
      seed's ``train_seconds`` is its share of the stack's time and the seeds' times add up to
      the stack's. (A ``budget.seconds`` run is not stacked: its iteration count would depend
      on the stack it ran in.)
    - **signals**: SIGINT/SIGTERM marks every seed still training ``interrupted``.
    """
    bound, train = ctx.bound, ctx.splits["train"]
    models = [build_model(ctx, seed) for seed in seeds]
    if len(seeds) == 1:
        oracle = ctx.problem.oracle(models[0], train, bound, seeds[0])
        algo.setup(oracle, seed_rng(seeds[0]))
    else:
        oracle = stacked_oracle(ctx.problem, models, train, bound, seeds)
        algo.setup(oracle, [seed_rng(seed) for seed in seeds])
    algorithm_path = bind_variant(algo, oracle)
    lanes = Lanes(oracle, len(seeds))
    warmup_seconds = warm_up(algo, ctx.data)
    runs = [SeedRun(ctx, seed, model, bound) for seed, model in zip(seeds, models)]
    for s, run in enumerate(runs):
        run.multipliers = lambda s=s: method_multipliers(algo, bound.n_constraints, s if lanes.stacked else None)
    n_seeds, n_train, log_every, budget = len(seeds), runs[0].n_train, int(ctx.cfg.log_every), ctx.budget
    path = oracle_path(oracle)
    events, samples = lanes.events, lanes.samples
    stack_seconds = 0.0

    def finish(s: int) -> tuple[int, dict]:
        run = runs[s]
        run.events = events.of(s)
        extra = {"algorithm_path": algorithm_path, "warmup_seconds": warmup_seconds}
        if lanes.stacked:
            extra.update(stack_size=n_seeds, stack_train_seconds=stack_seconds)
        metrics = run.finish(*lanes.counts(s), lambda: lanes.values(algo.state(), s),
                             lanes.output(algo.final_params(), s), lanes.x(s), lambda: lanes.finite(s), path, extra)
        return run.seed, metrics

    def finish_together(finishing: list[int]) -> None:
        """Finish these seeds and hand them to ``done`` as one batch (one summary); if one
        fails to write, the seeds finished before it still reach ``done``."""
        finished = []
        try:
            for s in finishing:
                finished.append(finish(s))
        finally:
            if finished:
                done(finished)

    state = algo.state()
    for s, run in enumerate(runs):
        run.log(*lanes.counts(s), lanes.values(state, s))
    active = list(range(n_seeds))
    iteration = 0
    clock = time.perf_counter
    while active:
        spent = [s for s in active if budget.spent(iteration, samples(s), runs[s].seconds, n_train)]
        if spent:
            for s in spent:
                runs[s].stopped_by = budget.reached(iteration, samples(s), runs[s].seconds, n_train)
            finish_together(spent)
            active = [s for s in active if s not in spent]
            if not active:
                break
        start = clock()
        info = algo.step()
        elapsed = clock() - start
        stack_seconds += elapsed
        iteration += 1
        share = elapsed / len(active)
        for s in active:
            run = runs[s]
            run.seconds += share
            run.iteration = iteration
        events.add(info, active)
        if flag.signal_number is not None:
            for s in active:
                runs[s].status = "interrupted"
            break
        if iteration % log_every == 0:
            state = algo.state()
            still, shown, diverged = [], None, []
            for s in active:
                runs[s].events = events.of(s)
                evals = runs[s].log(*lanes.counts(s), lanes.values(state, s))
                if lanes.finite(s) and finite_losses(evals):
                    still.append(s)
                    shown = shown or (runs[s], evals["train"])
                else:
                    runs[s].status = "diverged"
                    diverged.append(s)
            finish_together(diverged)
            if shown:
                progress.update(shown[0].seed, iteration, shown[0].seconds, shown[1])
            active = still
    finish_together(active)


