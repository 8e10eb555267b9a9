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
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from fairbench import provenance
from fairbench.algorithms.base import Algorithm
from fairbench.api import build_algorithm
from fairbench.data import PreparedData, load_dataset
from fairbench.errors import ConfigError, FairbenchError, check, check_positive
from fairbench.instantiate import instantiate_node
from fairbench.metrics import fairness_metrics
from fairbench.problems.fairness import TensorSplit
from fairbench.problems.fast_mlp import oracle_path
from fairbench.problems.problem import FairnessProblem, SplitEvaluation
from fairbench.recorder import SPLITS, Recorder

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

    @property
    def bound(self):
        return self.problem.bind(self.data.group_proportions(), self.data.group_names)


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


def prepare_checks(cfg: DictConfig) -> None:
    """Validate the top-level keys (seeds, threads, log_every)."""
    check_positive("threads", cfg.threads, integer=True)
    check_positive("log_every", cfg.log_every, integer=True)
    seeds = list(cfg.seeds) if OmegaConf.is_list(cfg.seeds) else cfg.seeds
    check(isinstance(seeds, list) and len(seeds) > 0 and all(isinstance(s, int) and s >= 0 for s in seeds)
          and len(set(seeds)) == len(seeds), "seeds", seeds, "a non-empty list of distinct integers >= 0")


def check_setup(cfg: DictConfig, data: PreparedData) -> None:
    """Build seed 0's model, oracle and algorithm once, so that errors which depend on the
    data (e.g. a per-group batch larger than the smallest group, a method that needs
    constraints on an unconstrained problem) surface before anything is written."""
    problem = instantiate_node(cfg.problem, "problem")
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


def evaluate(ctx: RunContext, model: torch.nn.Module, bound) -> dict[str, SplitEvaluation]:
    return {name: ctx.problem.evaluate(model, split, bound) for name, split in ctx.splits.items()}


def trajectory_row(iteration: int, oracle, seconds: float, n_train: int, evals: dict[str, SplitEvaluation],
                   events: dict[str, float], state: dict[str, float]) -> dict:
    row = {
        "iteration": iteration,
        "epoch": oracle.counters.samples / n_train,
        "samples": oracle.counters.samples,
        "grad_evals": oracle.counters.grad_evals,
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


def is_finite_state(oracle, evals: dict[str, SplitEvaluation]) -> bool:
    return oracle.final_check() and all(math.isfinite(ev.loss) for ev in evals.values())


def run_seed(ctx: RunContext, seed: int, algo: Algorithm, flag: _StopFlag, progress) -> dict:
    """Train one seed; write its trajectory and metrics; return the metrics."""
    cfg = ctx.cfg
    bound = ctx.bound
    torch.manual_seed(seed)
    model = instantiate_node(cfg.model, "model", n_features=ctx.data.n_features)
    oracle = ctx.problem.oracle(model, ctx.splits["train"], bound, seed)
    algo.setup(oracle, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))))
    n_train, log_every, budget = len(ctx.splits["train"]), int(cfg.log_every), ctx.budget
    events: dict[str, float] = {}
    rows: list[dict] = []
    iteration, seconds, status = 0, 0.0, "completed"
    evals = evaluate(ctx, model, bound)
    rows.append(trajectory_row(0, oracle, 0.0, n_train, evals, events, algo.state()))
    clock = time.perf_counter
    while not budget.spent(iteration, oracle.counters.samples, seconds, n_train):
        start = clock()
        info = algo.step()
        seconds += clock() - start
        iteration += 1
        if info:
            for key, value in info.items():
                events[key] = events.get(key, 0) + value
        if flag.signal_number is not None:
            status = "interrupted"
            break
        if iteration % log_every == 0:
            evals = evaluate(ctx, model, bound)
            rows.append(trajectory_row(iteration, oracle, seconds, n_train, evals, events, algo.state()))
            progress.update(seed, iteration, seconds, evals["train"])
            if not is_finite_state(oracle, evals):
                status = "diverged"
                break
    final = algo.final_params()
    if final is not None and status == "completed":
        oracle.x[:] = final
    evals = evaluate(ctx, model, bound)
    if rows[-1]["iteration"] != iteration or final is not None:
        rows.append(trajectory_row(iteration, oracle, seconds, n_train, evals, events, algo.state()))
    if status == "completed" and not is_finite_state(oracle, evals):
        status = "diverged"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    ctx.recorder.write_trajectory(seed, columns, rows)
    metrics = {
        "seed": seed,
        "status": status,
        "iterations": iteration,
        "samples": oracle.counters.samples,
        "grad_evals": oracle.counters.grad_evals,
        "epochs": oracle.counters.samples / n_train,
        "train_seconds": seconds,
        "iterations_per_second": iteration / seconds if seconds > 0 else None,
        "events": events,
        "oracle_path": oracle_path(oracle),
        "output": "last_iterate" if final is None else "algorithm_output",
        "constraint_names": list(bound.names),
        "group_names": ctx.data.group_names,
        "splits": {},
    }
    if status != "diverged":
        metrics["splits"] = {
            name: final_split_metrics(evals[name], ctx.splits[name], ctx.data.n_groups) for name in SPLITS
        }
        for name in SPLITS:
            split = ctx.splits[name]
            ctx.recorder.write_scores(seed, name, evals[name].scores, split.y.numpy(), split.group.numpy())
    metrics["provenance"] = provenance.collect(int(cfg.threads))
    ctx.recorder.write_metrics(seed, metrics)
    return metrics


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


# keys that may differ between a run and its resumption
RESUME_FREE_KEYS = ("seeds", "resume", "progress", "threads")


def check_same_config(previous: Path, cfg: DictConfig) -> None:
    """Refuse to resume into a directory that holds results of a different config."""
    if not previous.is_file():
        return
    try:
        old = OmegaConf.to_container(OmegaConf.load(previous))
    except Exception:  # noqa: BLE001 - an unreadable config is replaced, the seeds re-checked
        return
    new = OmegaConf.to_container(cfg, resolve=True)
    changed = sorted(k for k in set(old) | set(new) if k not in RESUME_FREE_KEYS and old.get(k) != new.get(k))
    if changed:
        raise FairbenchError(
            f"{previous.parent} holds results of a different config ({', '.join(changed)} differ): "
            "use another hydra.run.dir, or resume=false to start afresh in a new directory"
        )


def run(cfg: DictConfig, run_dir: Path, progress=None) -> dict:
    """Run every seed of ``cfg`` into ``run_dir``; return the summary."""
    torch.set_num_threads(int(cfg.threads))
    cfg = OmegaConf.merge(cfg, {"algo": effective_algo_config(cfg)})  # recorded as it ran
    ctx = prepare(cfg, run_dir)
    if cfg.get("resume", True):
        check_same_config(run_dir / "config.yaml", cfg)
    ctx.recorder.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    progress = progress or Progress(len(cfg.seeds), ctx.budget, enabled=False)
    header = summary_header(ctx)
    seed_metrics: dict[int, dict] = {}
    # overflow in a diverging run is detected and reported (status "diverged"), not warned about
    with stop_on_signals() as flag, np.errstate(all="ignore"):
        for seed in cfg.seeds:
            previous = ctx.recorder.read_metrics(seed) if cfg.get("resume", True) else None
            if previous is not None and previous.get("status") in ("completed", "diverged"):
                seed_metrics[seed] = previous
                progress.skipped(seed)
                continue
            algo = build_algorithm(cfg.algo)
            progress.start(seed)
            seed_metrics[seed] = run_seed(ctx, seed, algo, flag, progress)
            progress.finish(seed, seed_metrics[seed])
            ctx.recorder.write_summary(header, seed_metrics)
            if flag.signal_number is not None:
                break
    summary = ctx.recorder.write_summary(header, seed_metrics)
    summary["interrupted_by"] = flag.signal_number
    return summary


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
