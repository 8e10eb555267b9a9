"""The runner: seeds, budgets, timing and the evaluation schedule.

For every seed the runner builds the model (``torch.manual_seed(seed)`` first), the problem's
oracle and the algorithm, then calls ``algo.step()`` until the first budget is reached:
``budget.iterations``, ``budget.epochs`` (rows drawn / training rows), ``budget.samples`` or
``budget.seconds``. Only the time spent inside ``step()`` counts as training time; the
evaluation on the full train/val/test splits every ``log_every`` iterations happens outside
the timed region, and so does all logging.

A seed ends ``completed``, ``diverged`` (non-finite parameters or loss: it stops, the other
seeds go on) or ``interrupted`` (SIGINT/SIGTERM: what was logged so far is written, then the
run stops). Finished seeds are never re-run when the same run directory is used again
(``resume=true``).

Stacked seeds (``stack_seeds: auto``, the default): when more than one seed is pending, the
method supports it (``Algorithm.supports_stacking``), the model and problem are on the numpy
fast path and no ``budget.seconds`` is set, the pending seeds train together in lockstep on one
stacked oracle (:mod:`fairbench.problems.stacked`), each with the batches and numbers of its
own single-seed run; :func:`run_stack` gives the rules (per-seed budgets, divergence, signals,
time). Otherwise (or with ``stack_seeds: off``) the seeds run one after another
(:func:`run_seed`). Both write the same files through :class:`SeedRun`.
"""

from __future__ import annotations

import importlib

import math
import signal
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from omegaconf import DictConfig, OmegaConf

from fairbench import provenance
from fairbench.algorithms.base import Algorithm
from fairbench.api import build_algorithm
from fairbench.data import PreparedData, load_dataset
from fairbench.errors import ConfigError, check, check_in, check_positive
from fairbench.instantiate import instantiate_node
from fairbench.metrics import fairness_metrics
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.fast_mlp import oracle_path
from fairbench.problems.evaluation import SplitEvaluation, SplitsEvaluator
from fairbench.problems.problem import FairnessProblem
from fairbench.problems.stacked import can_stack, stacked_oracle
from fairbench.recorder import SPLITS, Recorder
from fairbench.rundir import check_one_config, claimed

BUDGET_KEYS = ("iterations", "epochs", "samples", "seconds")


@dataclass(frozen=True)
class Budget:
    """When a run stops: the first of the limits that are set."""

    iterations: int | None = None
    epochs: float | None = None
    samples: int | None = None
    seconds: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping) -> "Budget":
        values = {key: cfg.get(key) for key in BUDGET_KEYS}
        check(
            any(v is not None for v in values.values()),
            "budget",
            dict(values),
            "set at least one of budget.iterations, budget.epochs, budget.samples, budget.seconds",
        )
        for key, value in values.items():
            if value is not None:
                check_positive(f"budget.{key}", value, integer=key in ("iterations", "samples"))
        return cls(**values)

    def spent(self, iterations: int, samples: int, seconds: float, n_train: int) -> bool:
        return (
            (self.iterations is not None and iterations >= self.iterations)
            or (self.samples is not None and samples >= self.samples)
            or (self.epochs is not None and samples >= self.epochs * n_train)
            or (self.seconds is not None and seconds >= self.seconds)
        )


class Interrupted(Exception):
    """Raised inside the training loop when SIGINT or SIGTERM arrives."""


class _StopFlag:
    signal_number: int | None = None


@contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the training loop polls, restoring handlers after."""
    flag = _StopFlag()

    def handler(signum, _frame):
        flag.signal_number = signum

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread (e.g. some launchers): leave handlers alone
            pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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


def effective_algo_config(cfg: DictConfig) -> DictConfig:
    """``cfg.algo`` with the run's ``algo_overrides[<algo name>]`` applied, if any.

    Lets a preset that sweeps over methods set hyperparameters of one method only (e.g.
    experiment 2's SSL-ALM step sizes) without touching the others.
    """
    overrides = (cfg.get("algo_overrides") or {}).get(cfg.algo.name)
    if not overrides:
        return cfg.algo
    for key in overrides:
        check(key in cfg.algo, f"algo_overrides.{cfg.algo.name}.{key}", overrides[key],
              f"not a hyperparameter of {cfg.algo.name}")
    return OmegaConf.merge(cfg.algo, overrides)


STACK_SEEDS = ("auto", "off")
MAX_SEED = 2**64 - 1  # torch.manual_seed's largest; numpy's SeedSequence takes any integer >= 0


def prepare_checks(cfg: DictConfig) -> None:
    """Validate the top-level keys (seeds, threads, log_every, stack_seeds)."""
    check_positive("threads", cfg.threads, integer=True)
    check_in("stack_seeds", stack_setting(cfg), STACK_SEEDS)
    check_positive("log_every", cfg.log_every, integer=True)
    seeds = list(cfg.seeds) if OmegaConf.is_list(cfg.seeds) else cfg.seeds
    check(isinstance(seeds, list) and len(seeds) > 0
          and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in seeds)
          and len(set(seeds)) == len(seeds), "seeds", seeds,
          f"a non-empty list of distinct integers from 0 to {MAX_SEED} (2**64 - 1, torch.manual_seed's range)")
    for key in ("resume", "progress"):
        check(isinstance(cfg.get(key), bool), key, cfg.get(key), "true or false")


def check_setup(cfg: DictConfig, data: PreparedData) -> None:
    """Build seed 0's model, oracle and algorithm once, so that errors which depend on the
    data (e.g. a per-group batch larger than the smallest group, a method that needs
    constraints on an unconstrained problem) surface before anything is written."""
    problem = instantiate_node(cfg.problem, "problem")
    if getattr(problem, "fast_path", None) == "auto":
        # the checks need an oracle's rules, not its speed: the numpy oracle applies the same
        # ones without importing numba into a process that may only launch the jobs
        problem.fast_path = "numpy"
    train = TensorSplit.from_arrays(data.train.X, data.train.y, data.train.group)
    bound = problem.bind(data.group_proportions(), data.group_names)
    model = instantiate_node(cfg.model, "model", n_features=data.n_features)
    oracle = problem.oracle(model, train, bound, 0)
    build_algorithm(effective_algo_config(cfg)).setup(oracle, np.random.default_rng(0))


def prepare(cfg: DictConfig, run_dir: Path) -> RunContext:
    """Validate the config and load everything the seeds share (data, problem)."""
    prepare_checks(cfg)
    budget = Budget.from_config(cfg.budget)
    problem = instantiate_node(cfg.problem, "problem")
    data = load_dataset(cfg.dataset)
    splits = {name: TensorSplit.from_arrays(s.X, s.y, s.group) for name, s in
              (("train", data.train), ("val", data.val), ("test", data.test))}
    return RunContext(cfg, data, problem, splits, Recorder(run_dir), budget)


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
    seconds and status; and the files it ends with. Shared by the one-seed-at-a-time loop
    (:func:`run_seed`) and the stacked loop (:func:`run_stack`)."""

    def __init__(self, ctx: RunContext, seed: int, model: torch.nn.Module, bound):
        self.ctx, self.seed, self.model, self.bound = ctx, seed, model, bound
        self.n_train = len(ctx.splits["train"])
        self.rows: list[dict] = []
        self.events: dict[str, float] = {}
        self.iteration, self.seconds, self.status = 0, 0.0, "completed"

    def add_events(self, info: dict | None) -> None:
        if info:
            for key, value in info.items():
                self.events[key] = self.events.get(key, 0) + value

    def log(self, samples: int, grad_evals: int, state: dict) -> dict[str, SplitEvaluation]:
        """Evaluate the model on every split and append a trajectory row."""
        evals = evaluate(self.ctx, self.model, self.bound)
        self.rows.append(trajectory_row(self.iteration, samples, grad_evals, self.seconds, self.n_train,
                                        evals, self.events, state))
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
                                            self.events, state()))
        if self.status == "completed" and not (finite() and finite_losses(evals)):
            self.status = "diverged"
        seed = self.seed
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        ctx.recorder.write_trajectory(seed, columns, self.rows)
        metrics = {
            "seed": seed,
            "status": self.status,
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


class StackedEvents:
    """The event totals (``step()``'s returned counts) of a stack's seeds, kept as (S,) arrays.

    One numpy add per key and step instead of a dict update per seed and step (which cost
    about 5 µs a seed a step, a tenth of a stacked SSL-ALM step). :meth:`of` gives one seed's
    totals as the Python numbers its single-seed run would have summed.
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


def run_seed(ctx: RunContext, seed: int, algo: Algorithm, flag: _StopFlag, progress) -> dict:
    """Train one seed; write its trajectory and metrics; return the metrics."""
    bound = ctx.bound
    model = build_model(ctx, seed)
    oracle = ctx.problem.oracle(model, ctx.splits["train"], bound, seed)
    algo.setup(oracle, seed_rng(seed))
    run = SeedRun(ctx, seed, model, bound)
    n_train, log_every, budget = run.n_train, int(ctx.cfg.log_every), ctx.budget
    counters = oracle.counters
    run.log(counters.samples, counters.grad_evals, algo.state())
    clock = time.perf_counter
    while not budget.spent(run.iteration, counters.samples, run.seconds, n_train):
        start = clock()
        info = algo.step()
        run.seconds += clock() - start
        run.iteration += 1
        run.add_events(info)
        if flag.signal_number is not None:
            run.status = "interrupted"
            break
        if run.iteration % log_every == 0:
            evals = run.log(counters.samples, counters.grad_evals, algo.state())
            progress.update(seed, run.iteration, run.seconds, evals["train"])
            if not (oracle.final_check() and finite_losses(evals)):
                run.status = "diverged"
                break
    return run.finish(counters.samples, counters.grad_evals, algo.state, algo.final_params(), oracle.x,
                      oracle.final_check, oracle_path(oracle))


def stack_setting(cfg: DictConfig) -> str:
    """``stack_seeds`` as ``"auto"`` or ``"off"`` (YAML reads a bare ``off``/``on`` as a boolean)."""
    value = cfg.get("stack_seeds", "auto")
    if isinstance(value, bool):
        return "auto" if value else "off"
    return value


def can_stack_seeds(ctx: RunContext, algo: Algorithm, pending: list[int]) -> bool:
    """Whether :func:`run_stack` trains ``pending`` together: ``stack_seeds=auto``, more than one
    seed, no ``budget.seconds`` (a seed's time would depend on its stack; see :func:`run_stack`),
    a method that supports stacking, and a problem and model on the numpy fast path."""
    if stack_setting(ctx.cfg) != "auto" or len(pending) < 2 or ctx.budget.seconds is not None:
        return False
    if not type(algo).supports_stacking:
        return False
    return can_stack(ctx.problem, build_model(ctx, pending[0]))


def run_stack(ctx: RunContext, seeds: list[int], algo: Algorithm, flag: _StopFlag, progress,
              done: Callable[[list[tuple[int, dict]]], None]) -> None:
    """Train ``seeds`` together on one stacked oracle (:mod:`fairbench.problems.stacked`).

    The seeds step in lockstep (one ``algo.step()`` moves all of them); each seed's batches,
    updates and numbers are those of its single-seed run, and each is evaluated, logged and
    written exactly as :func:`run_seed` does, with ``oracle_path`` ``"numpy-stacked"``,
    ``stack_size`` (S) and ``stack_train_seconds`` (the stack's step time while the seed
    trained) added to its metrics. Rules:

    - **budget**: checked per seed before every step (iterations are common; samples and
      epochs are each seed's own counters). A seed that is done, diverged (at a log point) or
      interrupted is finished there and then (final evaluation, files); ``done`` gets the
      ``(seed, metrics)`` of the seeds that finished at the same point together (one summary
      for the lot: a stack's seeds usually all finish at once); the stack keeps computing a
      finished seed's row, which nothing reads any more, until every seed is done.
    - **time**: a step's wall-clock time is shared equally by the seeds still training, so a
      seed's ``train_seconds`` is its share of the stack's time and the seeds' times add up to
      the stack's. (A ``budget.seconds`` run is not stacked: its iteration count would depend
      on the stack it ran in.)
    - **signals**: SIGINT/SIGTERM marks every seed still training ``interrupted``.
    """
    bound, train = ctx.bound, ctx.splits["train"]
    models = [build_model(ctx, seed) for seed in seeds]
    oracle = stacked_oracle(ctx.problem, models, train, bound, seeds)
    algo.setup(oracle, [seed_rng(seed) for seed in seeds])
    runs = [SeedRun(ctx, seed, model, bound) for seed, model in zip(seeds, models)]
    n_seeds, n_train, log_every, budget = len(seeds), runs[0].n_train, int(ctx.cfg.log_every), ctx.budget
    counters, x = oracle.counters, oracle.x
    stack_seconds = 0.0

    def counts(s: int) -> tuple[int, int]:
        return int(counters.samples[s]), int(counters.grad_evals[s])

    events = StackedEvents(n_seeds)

    def finish(s: int) -> tuple[int, dict]:
        runs[s].events = events.of(s)
        final = algo.final_params()
        extra = {"stack_size": n_seeds, "stack_train_seconds": stack_seconds}
        metrics = runs[s].finish(*counts(s), lambda: seed_values(algo.state(), s),
                                 None if final is None else final[s], x[s], lambda: bool(np.isfinite(x[s]).all()),
                                 oracle_path(oracle), extra)
        return runs[s].seed, metrics

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
        run.log(*counts(s), seed_values(state, s))
    active = list(range(n_seeds))
    iteration = 0
    clock = time.perf_counter
    while True:
        spent = [s for s in active if budget.spent(iteration, int(counters.samples[s]), runs[s].seconds, n_train)]
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
                evals = runs[s].log(*counts(s), seed_values(state, s))
                if np.isfinite(x[s]).all() and finite_losses(evals):
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


def summary_header(ctx: RunContext) -> dict:
    cfg = ctx.cfg
    return {
        "algo": cfg.algo.name,
        "dataset": cfg.dataset.name,
        "problem": cfg.problem.name,
        "synthetic": bool(ctx.data.synthetic),
        "data_source": ctx.data.source,
        "delta": ctx.problem.spec.delta,
        "n_groups": ctx.data.n_groups,
        "group_names": ctx.data.group_names,
        "seeds": list(cfg.seeds),
        "budget": {k: cfg.budget.get(k) for k in BUDGET_KEYS},
        "log_every": int(cfg.log_every),
        "provenance": provenance.collect(int(cfg.threads)),
    }


def check_same_config(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse to run ``cfg`` into a directory that holds results of a different config or
    code, or any results with ``resume=false`` (:func:`fairbench.rundir.check_one_config`)."""
    check_one_config(run_dir, OmegaConf.to_container(cfg, resolve=True), bool(cfg.get("resume", True)))


def run(cfg: DictConfig, run_dir: Path, progress=None) -> dict:
    """Run every seed of ``cfg`` into ``run_dir``; return the summary.

    ``threads`` caps torch's intra-op threads and the BLAS threads numpy uses (the fast
    paths are numpy): on a busy 2-core machine a second thread makes these small products
    many times slower, so parallelism belongs across jobs (launchers), not inside one.
    """
    torch.set_num_threads(int(cfg.threads))
    load_blas_libraries()
    with threadpool_limits(limits=int(cfg.threads)):
        return _run(cfg, run_dir, progress)


def load_blas_libraries() -> None:
    """Load scipy's BLAS, which the compiled kernels' matrix products call (numba binds
    ``np.dot`` to ``scipy.linalg.cython_blas``), so that ``threadpool_limits`` covers it
    whatever has been imported so far: a BLAS first loaded inside the limits keeps its default
    of every core (scipy.special happens to load it at import today; this does not rely on it)."""
    importlib.import_module("scipy.linalg.cython_blas")


def _run(cfg: DictConfig, run_dir: Path, progress) -> dict:
    cfg = OmegaConf.merge(cfg, {"algo": effective_algo_config(cfg)})  # recorded as it ran
    ctx = prepare(cfg, run_dir)
    with claimed(run_dir):  # one run at a time; checked again under the lock (the command checked before)
        check_same_config(run_dir, cfg)
        return _run_claimed(ctx, cfg, progress)


def _run_claimed(ctx: RunContext, cfg: DictConfig, progress) -> dict:
    ctx.recorder.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    progress = progress or Progress(len(cfg.seeds), ctx.budget, enabled=False)
    header = summary_header(ctx)
    seed_metrics: dict[int, dict] = {}
    # overflow in a diverging run is detected and reported (status "diverged"), not warned about
    with stop_on_signals() as flag, np.errstate(all="ignore"):
        previous = {seed: ctx.recorder.read_metrics(seed) if cfg.get("resume", True) else None for seed in cfg.seeds}
        finished = [s for s, m in previous.items() if m is not None and m.get("status") in ("completed", "diverged")]
        pending = [seed for seed in cfg.seeds if seed not in finished]
        algo = build_algorithm(cfg.algo)
        # finished seeds count in every summary written from now on, even if a signal stops
        # the run before the loop reaches them
        for seed in finished:
            seed_metrics[seed] = previous[seed]
            progress.skipped(seed)
        if can_stack_seeds(ctx, algo, pending):

            def done(batch: list[tuple[int, dict]]) -> None:
                for seed, metrics in batch:
                    seed_metrics[seed] = metrics
                    progress.finish(seed, metrics)
                ctx.recorder.write_summary(header, in_seed_order(seed_metrics, cfg.seeds))

            progress.start_stack(pending)
            run_stack(ctx, pending, algo, flag, progress, done)
        else:
            for seed in pending:
                algo = build_algorithm(cfg.algo)
                progress.start(seed)
                seed_metrics[seed] = run_seed(ctx, seed, algo, flag, progress)
                progress.finish(seed, seed_metrics[seed])
                ctx.recorder.write_summary(header, in_seed_order(seed_metrics, cfg.seeds))
                if flag.signal_number is not None:
                    break
    summary = ctx.recorder.write_summary(header, in_seed_order(seed_metrics, cfg.seeds))
    summary["interrupted_by"] = flag.signal_number
    return summary


def in_seed_order(seed_metrics: dict[int, dict], seeds) -> dict[int, dict]:
    """``seed_metrics`` ordered as ``seeds`` (the summary's means then add up in one order)."""
    return {seed: seed_metrics[seed] for seed in seeds if seed in seed_metrics}


class Progress:
    """A one-line progress display on stderr (redrawn in place on a terminal)."""

    def __init__(self, n_seeds: int, budget: Budget, enabled: bool = True, stream=sys.stderr):
        self.n_seeds, self.budget, self.enabled, self.stream = n_seeds, budget, enabled, stream
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.done = 0

    def _print(self, text: str, final: bool) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, seed: int) -> None:
        self._print(f"seed {seed} ({self.done + 1}/{self.n_seeds}) ...", final=False)

    def update(self, seed: int, iteration: int, seconds: float, train: SplitEvaluation) -> None:
        if self.tty:
            limit = f"/{self.budget.iterations}" if self.budget.iterations else ""
            self._print(f"seed {seed} ({self.done + 1}/{self.n_seeds}) it {iteration}{limit} "
                        f"{seconds:.1f}s train loss {train.loss:.4f} viol {train.max_violation:.4f}", final=False)

    def start_stack(self, seeds: list[int]) -> None:
        self._print(f"seeds {', '.join(map(str, seeds))} stacked ({len(seeds)} at once) ...", final=False)

    def skipped(self, seed: int) -> None:
        self.done += 1
        self._print(f"seed {seed}: already finished, skipped (resume=true)", final=True)

    def finish(self, seed: int, metrics: dict) -> None:
        self.done += 1
        rate = metrics.get("iterations_per_second") or 0.0
        test = metrics.get("splits", {}).get("test", {})
        detail = f" test loss {test['loss']:.4f} max viol {test['max_violation']:.4f}" if test else ""
        self._print(f"seed {seed} ({self.done}/{self.n_seeds}) {metrics['status']}: {metrics['iterations']} it "
                    f"in {metrics['train_seconds']:.2f}s ({rate:,.0f} it/s){detail}", final=True)


def summary_table(summary: dict) -> str:
    """A plain-text table of mean ± std over seeds, train and test."""
    if not any(summary.get(split) for split in ("train", "test")):
        return "no completed seed: nothing to summarise"
    keys = ("loss", "max_violation", "ind", "sp", "sf", "ina", "wd", "auc")
    lines = [f"{'split':<6}" + "".join(f"{k:>18}" for k in keys)]
    for split in ("train", "test"):
        stats = summary.get(split)
        if not stats:
            continue
        cells = []
        for key in keys:
            s = stats.get(key, {})
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f}" if s.get("mean") is not None else "n/a")
        lines.append(f"{split:<6}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)


__all__ = ["Budget", "run", "prepare", "summary_table", "ConfigError"]
