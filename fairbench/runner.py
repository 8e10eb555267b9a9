"""The runner: one job's seeds, from its config to its summary.

It validates the job, loads what the seeds share (data, problem, budget), skips the seeds a
previous run of the same directory finished (``resume=true``), and trains the others in
groups (:func:`seed_groups`) through the one training loop, :func:`fairbench.training.train_group`:
the pending seeds together on a stacked oracle where that gives each seed the numbers of its
own run (``stack_seeds: auto``, a method that can stack
(:func:`~fairbench.backends.variants.can_stack_method`), the numpy fast path, no
``budget.seconds``), else one seed at a time. A seed ends ``completed`` (at its budget:
:mod:`fairbench.budget`), ``diverged`` (non-finite parameters or loss: it stops, the other
seeds go on) or ``interrupted`` (SIGINT/SIGTERM: what was logged so far is written, then the
run stops). The summary is rewritten as seeds finish.
"""

from __future__ import annotations

import importlib
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from omegaconf import DictConfig, OmegaConf

from fairbench import provenance
from fairbench.algorithms.base import Algorithm
from fairbench.algorithms.output import check_output_budget
from fairbench.api import build_algorithm
from fairbench.budget import Budget
from fairbench.checkpoint import checkpoint_every, preemption_signal, resumable_groups
from fairbench.data import PreparedData, load_dataset
from fairbench.data.shift import other_states
from fairbench.errors import ConfigError, check, check_in, check_positive
from fairbench.eval_settings import parse_eval
from fairbench.instantiate import instantiate_node
from fairbench.problems.fairness import TensorSplit
from fairbench.backends.stacking import can_stack
from fairbench.backends.variants import can_stack_method
from fairbench.progress import Progress, summary_table
from fairbench.recorder import Recorder
from fairbench.rundir import check_one_config, claimed
from fairbench.training import RunContext, _StopFlag, build_model, train_group

@contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM, and in a submitit job its pre-emption signal
    (:func:`~fairbench.training.preemption_signal`), into a flag the training loop polls,
    restoring handlers after. The pre-emption signal's own handler (submitit's: checkpoint and
    requeue the job) is kept in the flag, for :meth:`~fairbench.training._StopFlag.forward`."""
    flag = _StopFlag()
    chained = preemption_signal()

    def handler(signum, _frame):
        flag.signal_number = signum
        if signum == chained:
            flag.preempted = previous.get(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, chained):
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread (e.g. some launchers): leave handlers alone
            pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
    every = cfg.get("checkpoint_every")
    check(every is None or isinstance(every, int) and not isinstance(every, bool) and every >= 0,
          "checkpoint_every", every, "an integer >= 0 (iterations between checkpoints; 0 or null: none)")
    seeds = list(cfg.seeds) if OmegaConf.is_list(cfg.seeds) else cfg.seeds
    check(isinstance(seeds, list) and len(seeds) > 0
          and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in seeds)
          and len(set(seeds)) == len(seeds), "seeds", seeds,
          f"a non-empty list of distinct integers from 0 to {MAX_SEED} (2**64 - 1, torch.manual_seed's range)")
    for key in ("resume", "progress"):
        check(isinstance(cfg.get(key), bool), key, cfg.get(key), "true or false")
    parse_eval(cfg)
    check_output_setting(cfg)


def check_output_setting(cfg: DictConfig) -> None:
    """``algo.output`` against the budget (:func:`fairbench.algorithms.output.check_output_budget`)."""
    algo = effective_algo_config(cfg)
    output = algo.get("output")
    # only where the method has the option (elsewhere its constructor names what it accepts)
    if not (output == "tail" and "tail_fraction" in algo or output == "random" and "random_start" in algo):
        return
    budget = Budget.of_job(cfg)
    others = {key: value for key, value in budget.as_dict().items() if key != "iterations"}
    check_output_budget(output, algo.get("tail_fraction"), budget.iterations, others, algo.get("random_start"))


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
    bound = problem.bind_data(data)
    model = instantiate_node(cfg.model, "model", n_features=data.n_features)
    oracle = problem.oracle(model, train, bound, 0)
    build_algorithm(effective_algo_config(cfg)).setup(oracle, np.random.default_rng(0))
    check_other_states(cfg)


def check_other_states(cfg: DictConfig) -> None:
    """``eval.states`` against the training data: refused before anything is written when a
    state is a training state or has no data."""
    states = parse_eval(cfg).states
    if states is not None:
        other_states(cfg.dataset, states)


def prepare(cfg: DictConfig, run_dir: Path) -> RunContext:
    """Validate the config and load everything the seeds share (data, problem)."""
    prepare_checks(cfg)
    budget = Budget.of_job(cfg)
    problem = instantiate_node(cfg.problem, "problem")
    data = load_dataset(cfg.dataset)
    check_other_states(cfg)
    splits = {name: TensorSplit.from_arrays(s.X, s.y, s.group) for name, s in
              (("train", data.train), ("val", data.val), ("test", data.test))}
    return RunContext(cfg, data, problem, splits, Recorder(run_dir), budget)


def stack_setting(cfg: DictConfig) -> str:
    """``stack_seeds`` as ``"auto"`` or ``"off"`` (YAML reads a bare ``off``/``on`` as a boolean)."""
    value = cfg.stack_seeds
    if isinstance(value, bool):
        return "auto" if value else "off"
    return value


def can_stack_seeds(ctx: RunContext, algo: Algorithm, pending: list[int]) -> bool:
    """Whether :func:`~fairbench.training.train_group` trains ``pending`` together: ``stack_seeds=auto``, more than one
    seed, no ``budget.seconds`` (a seed's time would depend on its stack),
    a method that supports stacking, and a problem and model on the numpy fast path."""
    if stack_setting(ctx.cfg) != "auto" or len(pending) < 2 or ctx.budget.seconds is not None:
        return False
    if not can_stack_method(type(algo)):
        return False
    return can_stack(ctx.problem, build_model(ctx, pending[0]))


def seed_groups(ctx: RunContext, algo: Algorithm, pending: list[int]) -> list[list[int]]:
    """The groups :func:`~fairbench.training.train_group` trains the pending seeds in: all together where
    :func:`can_stack_seeds` allows it, else one seed at a time."""
    if can_stack_seeds(ctx, algo, pending):
        return [pending]
    return [[seed] for seed in pending]


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
        "rows": ctx.data.rows,
        "seeds": list(cfg.seeds),
        "budget": ctx.budget.as_dict(),
        "log_every": int(cfg.log_every),
        "eval": {**ctx.eval_settings.as_dict(),
                 "log_rows": {name: len(split) for name, split in ctx.evaluator.splits.items()},
                 "final_rows": {name: len(split) for name, split in ctx.splits.items()}},
        "provenance": provenance.collect(int(cfg.threads)),
    }


def check_same_config(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse to run ``cfg`` into a directory that holds results of a different config or
    code, or any results with ``resume=false`` (:func:`fairbench.rundir.check_one_config`)."""
    check_one_config(run_dir, OmegaConf.to_container(cfg, resolve=True), bool(cfg.resume))


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
        previous = {seed: ctx.recorder.read_metrics(seed) if cfg.resume else None for seed in cfg.seeds}
        finished = [s for s, m in previous.items() if m is not None and m.get("status") in ("completed", "diverged")]
        pending = [seed for seed in cfg.seeds if seed not in finished]
        algo = build_algorithm(cfg.algo)
        # finished seeds count in every summary written from now on, even if a signal stops
        # the run before the loop reaches them
        for seed in finished:
            seed_metrics[seed] = previous[seed]
            progress.skipped(seed)
        def done(batch: list[tuple[int, dict]]) -> None:
            for seed, metrics in batch:
                seed_metrics[seed] = metrics
                progress.finish(seed, metrics)
            ctx.recorder.write_summary(header, in_seed_order(seed_metrics, cfg.seeds))

        # a group interrupted mid-way continues from its checkpoint, as the group it was
        resumed = resumable_groups(ctx.recorder.run_dir, cfg, pending, finished) if checkpoint_every(cfg) else []
        rest = [seed for seed in pending if not any(seed in group for group in resumed)]
        for group in resumed + seed_groups(ctx, algo, rest):
            if flag.signal_number is not None:
                break
            progress.start(group)
            train_group(ctx, group, build_algorithm(cfg.algo), flag, progress, done)
    summary = ctx.recorder.write_summary(header, in_seed_order(seed_metrics, cfg.seeds))
    summary["interrupted_by"] = flag.signal_number
    flag.forward()  # pre-empted under submitit: its handler requeues the job (which resumes) and exits
    return summary


def in_seed_order(seed_metrics: dict[int, dict], seeds) -> dict[int, dict]:
    """``seed_metrics`` ordered as ``seeds`` (the summary's means then add up in one order)."""
    return {seed: seed_metrics[seed] for seed in seeds if seed in seed_metrics}


__all__ = ["Budget", "Progress", "run", "prepare", "summary_table", "ConfigError"]
