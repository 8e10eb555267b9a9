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
from omegaconf import DictConfig, OmegaConf

from fairbench import provenance
from fairbench.algorithms.base import Algorithm
from fairbench.algorithms.output import bind_output
from fairbench.budget import Budget
from fairbench.checkpoint import GroupCheckpoint, checkpoint_every, data_aliases
from fairbench.constraint_columns import cap_state, capped, columns_record, constraint_columns, group_loss_columns
from fairbench.lanes import Lanes
from fairbench.data import PreparedData
from fairbench.data.shift import StateData, load_state, other_states
from fairbench.eval_settings import EvalSettings, parse_eval, subsample_splits
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
from fairbench.shift import shift_metrics


class _StopFlag:
    """Set by the signal handler of :func:`fairbench.runner.stop_on_signals`; polled by the loop.

    ``preempted``: the handler that the pre-emption signal of a submitit job had before
    (submitit's, which checkpoints the submitted call and requeues the job), once that signal
    came. The loop stops at the next step, as for SIGTERM, writing each seed's checkpoint;
    :meth:`forward` then hands the signal on, and the requeued job reruns the same command,
    which continues the seeds from their checkpoints."""

    signal_number: int | None = None
    preempted: Callable | None = None

    def forward(self) -> None:
        """Call the pre-emption signal's previous handler, if that signal came (it requeues
        the job and exits the process)."""
        if callable(self.preempted):
            self.preempted(self.signal_number, None)


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
        return self.problem.bind_data(self.data)

    @cached_property
    def eval_settings(self) -> EvalSettings:
        return parse_eval(self.cfg)

    @cached_property
    def evaluator(self) -> SplitsEvaluator:
        """Evaluates a model on train, val and test together at every log point: the full
        splits, or their fixed stratified subsample (``eval.subsample``)."""
        rows = self.eval_settings.subsample
        if rows is None:
            return self.final_evaluator
        seed = int(OmegaConf.select(self.cfg, "dataset.split.seed", default=0))
        return SplitsEvaluator(subsample_splits(self.splits, self.data.n_groups, rows, seed), self.data.n_groups,
                               subsampled=True)

    @cached_property
    def final_evaluator(self) -> SplitsEvaluator:
        """Evaluates a model on the full train, val and test splits (the final metrics)."""
        subsampled = None if self.eval_settings.subsample is None else False
        return SplitsEvaluator(self.splits, self.data.n_groups, subsampled=subsampled)

    @cached_property
    def other_states(self) -> list[StateData]:
        """The full data of the states of ``eval.states``, prepared as the training data was."""
        states = self.eval_settings.states
        if states is None:
            return []
        return [load_state(self.cfg.dataset, state, self.data) for state in other_states(self.cfg.dataset, states)]

    def evaluation_record(self, model: torch.nn.Module, bound, diverged: bool) -> dict:
        """``eval`` (which rows the log points and the final metrics used) and, with
        ``eval.states``, ``shift`` (the final model on each other state; not for a diverged seed)."""
        record = {"eval": {
            "subsample": self.eval_settings.subsample,
            "log_rows": {name: len(split) for name, split in self.evaluator.splits.items()},
            "final_rows": {name: len(split) for name, split in self.splits.items()},
        }}
        if self.eval_settings.states is not None and not diverged:
            record["shift"] = shift_metrics(self.problem, bound, model, self.other_states, self.data.n_groups,
                                            self.data.group_names, final_split_metrics)
        return record

    @cached_property
    def optimality(self) -> TrainOptimality:
        """Stationarity and complementarity on the log points' training rows (every log point):
        the fixed stratified subsample of ``eval.subsample`` when set, the rows of the logged
        ``train_loss`` and ``train_c<j>``."""
        return TrainOptimality(self.evaluator.splits["train"], self.bound)


def evaluate(ctx: RunContext, model: torch.nn.Module, bound, scores: bool = False) -> dict[str, SplitEvaluation]:
    """The model on every split; ``scores`` (the predicted probabilities) only when asked for:
    the final evaluation writes them, a trajectory row does not use them."""
    return (ctx.final_evaluator if scores else ctx.evaluator).evaluate(model, bound, scores=scores)


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
        row.update(constraint_columns(split, ev.constraints))  # (summaries at large m)
        row.update(group_loss_columns(split, ev.group_losses))
        # the true statistics of the thresholded predictions beside the surrogate ones
        row[f"{split}_max_violation_true"] = ev.max_violation_true
        row.update(constraint_columns(split, ev.constraints_true, "_true"))
        for key, value in ev.rate_gaps.items():
            row[f"{split}_{key}"] = value
    if any(ev.subsampled is not None for ev in evals.values()):  # eval.subsample set: rows evaluated
        row["eval_rows"] = sum(ev.rows for ev in evals.values())
    row.update({f"n_{k}": v for k, v in events.items()})
    row.update(cap_state(state))
    return row


def final_split_metrics(ev: SplitEvaluation, split: TensorSplit, n_groups: int) -> dict:
    y, group = split.y.numpy(), split.group.numpy()
    metrics = fairness_metrics(ev.scores, y, group, n_groups)
    gl = ev.group_losses
    metrics.update(
        loss=ev.loss,
        max_violation=ev.max_violation,
        max_violation_true=ev.max_violation_true,
        loss_gap=float(gl.max() - gl.min()),
        accuracy=float(((ev.scores >= 0.5) == (y > 0.5)).mean()),
        group_losses=gl.tolist(),
        constraints=ev.constraints.tolist(),
        constraints_true=ev.constraints_true.tolist(),
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
        if not self.ctx.eval_settings.optimality:
            return {}
        train = evals["train"]
        return self.ctx.optimality.columns(self.model, train.group_losses, train.constraints, self.multipliers())

    def record(self) -> dict:
        """What a checkpoint keeps of this record (:meth:`resume` takes it back)."""
        return {"rows": self.rows, "events": self.events, "iteration": self.iteration, "seconds": self.seconds,
                "status": self.status, "stopped_by": self.stopped_by}

    def resume(self, record: dict) -> None:
        self.rows, self.events, self.iteration = record["rows"], record["events"], record["iteration"]
        self.seconds, self.status, self.stopped_by = record["seconds"], record["status"], record["stopped_by"]

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
        columns = [k for k in columns if k not in OPTIMALITY_COLUMNS] + [k for k in OPTIMALITY_COLUMNS if k in columns]
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
        if capped(bound.n_constraints) or capped(ctx.data.n_groups):  # summary columns in the trajectory
            metrics["trajectory_columns"] = columns_record(bound.n_constraints, ctx.data.n_groups)
        if self.status != "diverged":
            metrics["splits"] = {
                name: final_split_metrics(evals[name], ctx.splits[name], ctx.data.n_groups) for name in SPLITS
            }
            for name in SPLITS:
                split = ctx.splits[name]
                ctx.recorder.write_scores(seed, name, evals[name].scores, split.y.numpy(), split.group.numpy())
        metrics.update(ctx.evaluation_record(self.model, bound, self.status == "diverged"))
        metrics["provenance"] = provenance.collect(int(ctx.cfg.threads))
        ctx.recorder.write_metrics(seed, metrics)
        return metrics


def warm_up(algo: Algorithm, shared: dict[int, object]) -> float:
    """One step of a deep copy of ``algo`` (with its oracle), outside the timed region; the
    seconds it took.

    The copy is made after the method's fast variant is bound (its bound methods follow the
    copy). The first step of a process loads or compiles the compiled kernels (numba), builds
    caches and pays other one-off costs that are not training time: a ``budget.seconds`` run
    would otherwise spend them in its budget. The copy shares only what no step writes (the
    loaded modules and ``shared``, the data and its views: :func:`shared_data`), so the seeds'
    own state, random streams and counters are untouched and the data is not copied."""
    memo = {id(module): module for module in list(sys.modules.values())}
    memo.update(shared)
    start = time.perf_counter()
    shadow = copy.deepcopy(algo, memo)
    shadow.step()
    return time.perf_counter() - start


def setup_group(ctx: RunContext, seeds: list[int], algo: Algorithm) -> tuple[list[torch.nn.Module], object, str]:
    """The seeds' models, their oracle (one seed's own, or a stacked one) and ``algo`` set up
    on it with its fast variant bound; returns ``(models, oracle, algorithm_path)``."""
    bound, train = ctx.bound, ctx.splits["train"]
    models = [build_model(ctx, seed) for seed in seeds]
    if len(seeds) == 1:
        oracle = ctx.problem.oracle(models[0], train, bound, seeds[0])
        algo.setup(oracle, seed_rng(seeds[0]))
    else:
        oracle = stacked_oracle(ctx.problem, models, train, bound, seeds)
        algo.setup(oracle, [seed_rng(seed) for seed in seeds])
    algorithm_path = bind_variant(algo, oracle)
    bind_output(algo, ctx.budget.iterations)
    return models, oracle, algorithm_path


def shared_ids(ctx: RunContext) -> set[int]:
    """The ids of the data every seed reads and no step writes (not saved in a checkpoint)."""
    return {id(value) for value in data_values(ctx)}


def data_values(ctx: RunContext) -> list:
    """The splits' arrays and tensors."""
    arrays = [a for split in (ctx.data.train, ctx.data.val, ctx.data.test) for a in (split.X, split.y, split.group)]
    return arrays + [t for split in ctx.splits.values() for t in (split.X, split.y, split.group)]


def shared_data(ctx: RunContext, algo: Algorithm) -> dict[int, object]:
    """The data every seed reads and no step writes, by id: the splits' arrays and tensors and
    every view of them that ``algo`` or its oracle holds (:func:`~fairbench.checkpoint.data_aliases`)."""
    values = data_values(ctx)
    return {**{id(value): value for value in values}, **data_aliases(algo, values)}


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
    bound = ctx.bound
    models, oracle, algorithm_path = setup_group(ctx, seeds, algo)
    lanes = Lanes(oracle, len(seeds))
    every = checkpoint_every(ctx.cfg)
    shared = shared_data(ctx, algo)
    saver = GroupCheckpoint(ctx.recorder.run_dir, seeds, ctx.cfg, algo, set(shared)) if every else None
    resumed = saver.load() if saver else None  # restores the algorithm and its oracle in place
    warmup_seconds = warm_up(algo, shared)
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

    def log_point() -> None:
        """Log the seeds still training; finish those that diverged."""
        nonlocal active
        state = algo.state()
        still, shown, diverged = [], None, []
        for s in active:
            run = runs[s]
            run.iteration, run.seconds, run.events = iteration, seconds, events.of(s)
            evals = run.log(*lanes.counts(s), lanes.values(state, s))
            if lanes.finite(s) and finite_losses(evals):
                still.append(s)
                shown = shown or (run, evals["train"])
            else:
                run.status = "diverged"
                diverged.append(s)
        finish_together(diverged)
        if shown:
            progress.update(shown[0].seed, iteration, shown[0].seconds, shown[1])
        active = still

    def sync() -> None:
        """The active seeds' common iteration and seconds into their records."""
        for s in active:
            runs[s].iteration, runs[s].seconds = iteration, seconds

    def save(log_pending: bool = False) -> None:
        """Checkpoint the group after step ``iteration`` (``log_pending``: before its log point)."""
        sync()
        saver.save({"iteration": iteration, "stack_seconds": stack_seconds, "log_pending": log_pending,
                    "active_seeds": [seeds[s] for s in active], "events": events.totals,
                    "runs": [run.record() for run in runs]})

    if resumed is None:
        state = algo.state()
        for s, run in enumerate(runs):
            run.log(*lanes.counts(s), lanes.values(state, s))
        active = list(range(n_seeds))
        iteration, seconds = 0, 0.0  # every active seed's iteration and training seconds
    else:
        iteration, stack_seconds = resumed["iteration"], resumed["stack_seconds"]
        active = [seeds.index(seed) for seed in resumed["active_seeds"]]
        events.totals = resumed["events"]
        for run, record in zip(runs, resumed["runs"]):
            run.resume(record)
        seconds = runs[active[0]].seconds if active else 0.0
        if resumed["log_pending"]:
            log_point()
    spent_among = lanes.spent_among(budget, n_train)
    clock = time.perf_counter
    while active:
        spent = spent_among(active, iteration, seconds)
        if spent:
            for s in spent:
                runs[s].iteration, runs[s].seconds = iteration, seconds
                runs[s].stopped_by = budget.reached(iteration, samples(s), seconds, n_train)
            finish_together(spent)
            active = [s for s in active if s not in spent]
            if not active:
                break
        start = clock()
        info = algo.step()
        elapsed = clock() - start
        stack_seconds += elapsed
        seconds += elapsed / len(active)
        iteration += 1
        events.add(info, active)
        if flag.signal_number is not None:
            if saver:
                save(log_pending=iteration % log_every == 0)
            for s in active:
                runs[s].iteration, runs[s].seconds, runs[s].status = iteration, seconds, "interrupted"
            break
        if iteration % log_every == 0:
            log_point()
        if saver and active and iteration % every == 0:
            save()
    sync()
    finish_together(active)
    if saver and flag.signal_number is None:
        saver.delete()
