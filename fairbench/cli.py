"""The ``fairbench`` command: compose the Hydra config, validate it, hand over to the runner.

Before Hydra creates any directory, every job of the invocation (one, or each combination
of a ``-m`` sweep) is composed and validated: config group options, keys, value domains of
the algorithm, problem, model, budget and dataset, and the data itself is located and
loaded (then cached), and the directory each job will write is checked
(:mod:`fairbench.jobdirs`: writable, inside the output root, not held by another run, holding
no other config's or code's results). A mistake therefore costs one line on stderr and exit
code 2 (75 for a directory another run holds), and nothing is written.

Exit codes: 0; 2 bad input or a refused directory (:class:`fairbench.errors.FairbenchError`);
3 every seed of a run diverged (:data:`EXIT_ALL_DIVERGED`; after a sweep, of any of its
jobs); 75 the run directory is held by another run (:data:`fairbench.rundir.EXIT_BUSY`);
128 + n stopped by signal n (130 SIGINT, 143 SIGTERM); 1 Hydra's own errors.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from fairbench import CONF_DIR
from fairbench.errors import ConfigError, FairbenchError, check
from fairbench.jobdirs import (SWEEPER_PARAMS, Placement, check_distinct, check_job, fresh_stamp, register_resolvers,
                               use_fresh_stamp, without_hydra)
from fairbench.searchspace import corner_jobs, is_search
from fairbench.tuning_sweeper import defaults_first_trial
from fairbench.tuning import check_tune, job_return
from fairbench.workers import guard, launcher_pid, launching, use_forkserver

GROUPS = ("dataset", "model", "problem", "algo", "experiment")


# -- validation before Hydra runs ---------------------------------------------------------------
def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_group_choices(overrides: list[str]) -> None:
    """Unknown option of a config group: name the group, the value and the options."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in GROUPS and value:
            options = group_options(key)
            for choice in value.split(","):
                if choice and choice not in options:
                    raise ConfigError(key, choice, "accepted: " + ", ".join(options))


def compose_job(overrides: list[str], hydra_config: bool = False) -> DictConfig:
    from hydra import compose, initialize_config_dir

    from fairbench.data.config import check_group_overrides, group_override_hint

    check_group_choices(overrides)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return check_group_overrides(overrides, compose(config_name="config", overrides=overrides,
                                                            return_hydra_config=hydra_config))
    except HydraException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        unknown = re.match(r"Could not override '([^']+)'", first)
        if unknown:
            key = unknown.group(1)
            value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key), None)
            raise ConfigError(key, value, group_override_hint(key) or "no such key in the config (see `fairbench --cfg job`)") from None
        bad = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] in first] or overrides
        raise FairbenchError(f"invalid override {' '.join(bad)}: {first}") from None


def job_override_lists(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of every job the invocation will run.

    A sweep comes from the command line (``-m a=1,2``) or from a config that sets
    ``hydra.mode: MULTIRUN`` with ``hydra.sweeper.params`` (the experiment presets); the
    command line wins over the config's params, as in Hydra's basic sweeper.
    """
    return plan_invocation(overrides, multirun)[0]


def _launch_override(override: str) -> bool:
    """An override of how the sweep is launched: the launcher or the sweeper (other than the
    sweeper's params, which :func:`plan_invocation` applies itself)."""
    key = override.lstrip("+~").split("=", 1)[0]
    return (key in ("hydra/launcher", "hydra/sweeper") or key.startswith("hydra.launcher.")
            or (key.startswith("hydra.sweeper.") and not key.startswith(SWEEPER_PARAMS)))


def plan_invocation(overrides: list[str], multirun: bool) -> tuple[list[list[str]], DictConfig | None]:
    """``(jobs, hydra)``: every job's override list (:func:`job_override_lists`) and, for a
    sweep, the ``hydra`` config it will be launched with (its sweeper and launcher; ``None``
    for a single run)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except HydraException as exc:
        raise FairbenchError(f"cannot parse overrides {' '.join(overrides)}: {str(exc).splitlines()[0]}") from None
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    base = compose_job([o for o in plain if not o.lstrip("+~").startswith("hydra")]
                       + [o for o in plain if o.startswith("hydra.mode") or _launch_override(o)], hydra_config=True)
    multirun = multirun or str(base.hydra.mode) == "RunMode.MULTIRUN" or str(base.hydra.mode) == "MULTIRUN"
    if not multirun:
        sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
        if sweeps:
            raise ConfigError(sweeps[0].split("=")[0], sweeps[0].split("=", 1)[1],
                              "a single value (use -m/--multirun to sweep over several)")
        return [overrides], None
    hydra_sweeps = [o.input_line for o in parsed if o.is_sweep_override() and o.key_or_group.startswith("hydra")]
    if hydra_sweeps:
        # Hydra itself refuses these with exit 1 and a stack-trace hint
        raise ConfigError(hydra_sweeps[0].split("=")[0], hydra_sweeps[0].split("=", 1)[1],
                          "a single value: Hydra's own settings cannot be swept (to sweep a config key, "
                          "e.g. a subset of a preset's methods, give it directly: algo=ssw,ssl_alm)")
    given = {o.key_or_group for o in parsed}
    params = dict(base.hydra.sweeper.get("params") or {})
    for o in parsed:  # hydra.sweeper.params.<key>=... on the command line edits the config's params
        if o.key_or_group.startswith(SWEEPER_PARAMS):
            key = o.key_or_group[len(SWEEPER_PARAMS):]
            if o.is_delete():
                params.pop(key, None)
            else:
                value = o.value()
                params[key] = value if isinstance(value, str) else o.input_line.split("=", 1)[1]
    from_config = [f"{key}={value}" for key, value in params.items() if key not in given]
    jobs = parser.parse_overrides(from_config + overrides)
    if is_search(base.hydra):  # a search sweeper (Optuna): its corner jobs
        return corner_jobs(jobs, base), base.hydra
    batches = BasicSweeper.split_arguments([o for o in jobs if not o.key_or_group.startswith("hydra")], None)
    return [job for batch in batches for job in batch] or [overrides], base.hydra


def validates_what_hydra_runs(argv: list[str]) -> bool:
    """False when the invocation picks another primary config (``-cn``/``-cp``/``-cd`` and their
    long forms): :func:`validate_invocation` composes ``conf/config.yaml``, so Hydra's own check
    of the batch must stay on."""
    flags = ("-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir")
    return not any(arg == f or arg.startswith(f + "=") for arg in argv for f in flags)


def validate_job(cfg: DictConfig, loaded: dict) -> None:
    """Construct everything once (cheap) so that domain errors surface before any output."""
    from fairbench.api import build_algorithm
    from fairbench.data import load_dataset
    from fairbench.instantiate import instantiate_node
    from fairbench.runner import Budget, check_setup, effective_algo_config, prepare_checks

    prepare_checks(cfg)
    check_tune(cfg.tune)
    Budget.of_job(cfg)
    build_algorithm(effective_algo_config(cfg))
    instantiate_node(cfg.problem, "problem")
    instantiate_node(cfg.model, "model", n_features=1)
    key = OmegaConf.to_yaml(cfg.dataset)
    if key not in loaded:
        loaded[key] = load_dataset(cfg.dataset)
    check_setup(cfg, loaded[key])


def validate_job_and_directory(job: list[str], index: int, placement: Placement | None,
                               loaded: dict) -> tuple[DictConfig, Path | None]:
    """:func:`validate_job`, then the rules of the directory the job will write
    (:func:`fairbench.jobdirs.check_job`); the job's config and directory (``None`` when not
    known here). ``placement`` ``None``: the job alone (no directory). A ``hydra`` override
    that does not compose is left to Hydra to report, as it would without fairbench; the
    directory is then checked by the runner."""
    composed = None
    if placement is not None:
        try:
            composed = compose_job([*job, *placement.hydra_overrides], hydra_config=True)
        except FairbenchError:
            composed = None
    cfg = compose_job(job) if composed is None else without_hydra(composed)
    validate_job(cfg, loaded)
    path = check_job(composed, cfg, index, placement) if placement is not None else None
    return cfg, path


class PendingValidation:
    """The outcome of validating an invocation's jobs, possibly still being computed.

    ``outcomes`` gives, job by job in sweep order, ``None`` or ``("ok", directory)`` (valid;
    two jobs of one directory are refused: :func:`fairbench.jobdirs.check_distinct`), ``("error", line)`` (a
    :class:`FairbenchError`) or ``("bug", traceback)`` (any other exception). :meth:`result`
    waits for them and raises for the first failing job in sweep order: the
    :class:`FairbenchError` an in-process validation gives, or a ``RuntimeError`` carrying the
    worker's traceback. A second call returns at once; :meth:`cancel` stops what still runs.
    """

    def __init__(self, outcomes: Iterable[tuple[str, str] | None] = ()):
        self._outcomes: Iterable[tuple[str, str] | None] | None = outcomes

    def result(self) -> None:
        if self._outcomes is None:
            return
        paths: list = []
        try:
            first = None
            for outcome in self._outcomes:
                if outcome is not None and outcome[0] != "ok":
                    first = outcome
                    break
                paths.append(None if outcome is None else Path(outcome[1]))
        finally:
            self.cancel()
        if first is None:
            check_distinct(paths)
            return
        kind, text = first
        if kind == "error":
            raise FairbenchError(text)
        raise RuntimeError(f"validating a job failed in a worker process:\n{text}")

    def cancel(self) -> None:
        """Stop the checks still running (a joblib generator), silently."""
        outcomes, self._outcomes = self._outcomes, None
        close = getattr(outcomes, "close", None)
        if close is not None:
            with warnings.catch_warnings():
                # joblib warns that it cancelled tasks: intended (a bad job, or Hydra stopped)
                warnings.simplefilter("ignore", UserWarning)
                close()


def validate_invocation(argv: list[str]) -> PendingValidation:
    """Compose and validate every job of the invocation.

    A sweep on the joblib launcher is validated in that launcher's worker processes
    (:func:`validate_in_joblib_workers`); for Hydra's basic sweeper in the background (the
    returned :class:`PendingValidation` has the outcome once they are done, and the sweeper
    waits for it: :func:`hydra_hooks`), for another sweeper before returning. Anything else
    is validated here, job after job, before returning (a bad job raises
    :class:`FairbenchError`), and so is a sweep on the joblib launcher with one job at a time
    (``hydra.launcher.n_jobs=1``, or a negative one that leaves one core: joblib then runs
    the jobs in this process). Each job's directory is checked with it
    (:func:`fairbench.jobdirs.check_job`).
    """
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return PendingValidation()
    jobs, hydra_cfg = plan_invocation(list(args.overrides), bool(args.multirun))
    jobs = [[o for o in job if not o.lstrip("+~").startswith("hydra")] for job in jobs]
    # (another primary config (-cn/-cp/-cd) chooses its own directories, a search sweeper its
    # trials' values, not the corners checked here: the runner checks those directories)
    placement = Placement.of(list(args.overrides), hydra_cfg is not None, fresh_stamp()) \
        if validates_what_hydra_runs(argv) and not is_search(hydra_cfg) else None
    if hydra_cfg is not None and hydra_cfg.launcher.get("_target_") == JOBLIB_LAUNCHER \
            and joblib_workers(hydra_cfg.launcher) > 1:
        pending = validate_in_joblib_workers(jobs, hydra_cfg.launcher, placement)
        if hydra_cfg.sweeper.get("_target_") != BASIC_SWEEPER:
            pending.result()  # only the basic sweeper's start is hooked (:func:`hydra_hooks`)
        return pending
    loaded: dict = {}
    check_distinct([validate_job_and_directory(job, index, placement, loaded)[1] for index, job in enumerate(jobs)])
    return PendingValidation()


JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


N_JOBS_ACCEPTED = ("an integer: jobs at once (>= 1), or a negative -k for every core but k - 1 "
                   "(joblib's rule: cores + 1 - k, at least 1; -1 = every core)")


def joblib_workers(launcher: DictConfig) -> int:
    """How many jobs the joblib launcher runs at once: ``hydra.launcher.n_jobs`` as joblib reads
    it (a negative ``-k``: every core but ``k - 1``, at least one). Refuses 0 and non-integers
    (joblib's own error is a traceback, after Hydra has started)."""
    from joblib import effective_n_jobs

    n_jobs = launcher.get("n_jobs")
    check(isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs != 0,
          "hydra.launcher.n_jobs", n_jobs, N_JOBS_ACCEPTED)
    return effective_n_jobs(n_jobs)


def validate_in_joblib_workers(jobs: list[list[str]], launcher: DictConfig,
                               placement: Placement | None = None) -> PendingValidation:
    """Start validating a sweep's jobs in the joblib launcher's own worker processes.

    The workers are loky's reusable executor, created here with exactly the settings the
    launcher passes to ``joblib.Parallel``, so the launcher then runs the jobs in these same
    processes. Otherwise the launching process imports torch and checks the jobs one after
    another (one core busy, the others idle) before the first job starts, and each worker
    then imports torch again. Here the
    launching process does not import torch (with ``n_jobs`` >= 2), the jobs are validated
    on every worker at once while the launching process sets up Hydra's sweep (basic
    sweeper), and each worker starts its first job
    with torch and fairbench imported and the data in the disk cache (on a cold cache each
    worker builds the same cache entry, safely: entries are replaced atomically). Nothing is
    written before the outcome is known (:func:`hydra_hooks`). With one job at a time
    (:func:`joblib_workers`) joblib would run the checks in this process while Hydra runs
    the sweep: :func:`validate_invocation` checks them here first instead.
    """
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    from joblib import Parallel, delayed

    joblib_workers(launcher)
    use_forkserver(jobs)
    joblib_cfg = {k: v for k, v in OmegaConf.to_container(launcher, resolve=True).items() if k != "_target_"}
    joblib_cfg["backend"] = "loky"  # as the launcher sets it (hydra_joblib_launcher._core.launch)
    process_joblib_cfg(joblib_cfg)
    joblib_cfg["verbose"] = 0  # the launcher's progress lines are for the jobs (not a setting reuse depends on)
    # a generator: the tasks are dispatched now, their results collected by result()
    launching = os.getpid()
    return PendingValidation(Parallel(return_as="generator", **joblib_cfg)(
        delayed(validate_job_in_worker)(job, launching, placement, index) for index, job in enumerate(jobs)))


_WORKER_DATA: dict = {}  # datasets a validating worker has loaded, by their config
_WORKER_PREPARED = False


def validate_job_in_worker(overrides: list[str], launching_pid: int | None = None,
                           placement: Placement | None = None, index: int = 0) -> tuple[str, str] | None:
    """Compose and validate one job (and its directory, given ``placement``: the launching
    process's) in a worker process: its :class:`PendingValidation` outcome (an exception is
    returned, not raised, so that the first failing job in sweep order is the one reported,
    whichever worker finishes first). In a worker process (a pid other than
    ``launching_pid``), first: it dies with the launching process
    (:func:`fairbench.workers.guard`); after its first valid job: :func:`prepare_worker`."""
    guard(launching_pid)
    register_resolvers()
    if placement is not None:
        use_fresh_stamp(placement.fresh_stamp)
    try:
        cfg, path = validate_job_and_directory(overrides, index, placement, _WORKER_DATA)
    except FairbenchError as err:
        return "error", str(err)
    except Exception:  # noqa: BLE001 - reported by the launching process, in sweep order
        return "bug", traceback.format_exc()
    if launching_pid is not None and os.getpid() != launching_pid:
        prepare_worker(cfg)
    return None if path is None else ("ok", str(path))


def prepare_worker(cfg: DictConfig) -> None:
    """Once per worker process: load the compiled kernels where ``cfg``'s jobs take them, then
    move every object alive now (torch, numba, Hydra, the loaded data: what the worker keeps
    for its whole life) out of the garbage collector's sight with :func:`gc.freeze`.

    Why: with torch and numba loaded a worker holds some hundreds of thousands of objects that
    the collector traverses in every full collection, and there are several per job (loky's
    ``gc.collect()`` after every task when psutil is absent, plus automatic ones inside a job);
    frozen, they are no longer traversed (``scripts/worker_gc.py`` measures it).
    The kernels would load in the worker's first job anyway. Frozen objects are still freed
    when their last reference goes; only a reference cycle among them would stay, and those
    are the worker's own long-lived state, not the jobs'."""
    global _WORKER_PREPARED
    if _WORKER_PREPARED:
        return
    _WORKER_PREPARED = True
    from fairbench.backends.oracles import use_compiled

    use_compiled(str(cfg.problem.fast_path))  # (imports the kernels where numba is installed)
    gc.collect()
    gc.freeze()


# -- launching ------------------------------------------------------------------------------------
@contextlib.contextmanager
def hydra_hooks(validation: PendingValidation, skip_revalidation: bool, job_codes: list | None = None):
    """Within the block, Hydra's basic sweeper

    - waits for ``validation`` before it creates the sweep directory: a bad job prints its
      one line and exits 2 with nothing written;
    - appends to ``job_codes`` what each job of the sweep returned (:func:`hydra_main`: the
      exit code it asks for, e.g. :data:`EXIT_ALL_DIVERGED`);
    - with ``skip_revalidation``, launches a batch without composing every job once more
      first (``BasicSweeper.validate_batch_is_legal``, a full composition per job in the
      launching process), a check that only fails early on
      a bad override: :func:`validate_invocation` has composed and checked every job. Each
      job is still composed where it runs.

    and Hydra's Optuna sweeper starts a tuning sweep with the composed configuration
    (:func:`fairbench.tuning_sweeper.defaults_first_trial`).

    All are restored on exit."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    original = {name: BasicSweeper.__dict__.get(name) for name in ("sweep", "validate_batch_is_legal")}
    sweep = BasicSweeper.sweep

    def validated_sweep(self, arguments):
        try:
            validation.result()
        except FairbenchError as err:
            print(f"fairbench: error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)  # SystemExit passes through Hydra's error handling
        returns = sweep(self, arguments)
        if job_codes is not None:
            job_codes.extend(job.return_value for batch in returns or () for job in batch)
        return returns

    BasicSweeper.sweep = validated_sweep
    if skip_revalidation:
        BasicSweeper.validate_batch_is_legal = _already_validated
    try:
        with defaults_first_trial():
            yield
    finally:
        for name, value in original.items():
            if value is None:
                if name in BasicSweeper.__dict__:
                    delattr(BasicSweeper, name)
            else:
                setattr(BasicSweeper, name, value)


def _already_validated(self, batch) -> None:
    return None


def release_joblib_workers() -> None:
    """After a sweep on the joblib launcher, end its idle workers at once.

    joblib keeps its loky workers for reuse; at exit the interpreter would shut them down
    gracefully, a wait after the last job has finished and written its results. Nothing is
    left for them to do, so they are killed."""
    if "hydra_plugins.hydra_joblib_launcher._core" not in sys.modules:
        return
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)


# -- the Hydra job --------------------------------------------------------------------------------
#: exit code of a run (or, after a sweep, of the command) in which every seed diverged
EXIT_ALL_DIVERGED = 3


def closing_line(summary: dict, run_dir: Path) -> str:
    synthetic = " [SYNTHETIC data: the embedded generated default]" if summary.get("synthetic") else ""
    diverged = ", every seed diverged (non-finite parameters or loss): no result" if summary.get("all_diverged") else ""
    return (f"{summary['algo']} on {summary['dataset']}{synthetic}: {summary['status']}{diverged} "
            f"({summary['counts']}) -> {run_dir}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> int:
    """One job: run it; print its closing line and table. Exit codes: 2 for a
    :class:`FairbenchError`, 128 + the signal's number when a signal stopped it,
    :data:`EXIT_ALL_DIVERGED` when every seed diverged (in a sweep, returned: the sweep goes
    on and the command exits with it at the end). With ``tune.objective`` set it returns the
    run's score instead, which a tuning sweeper minimises (:mod:`fairbench.tuning`)."""
    from hydra.types import RunMode

    from fairbench.runner import Budget, Progress, run, summary_table

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.launcher.get("_target_") == JOBLIB_LAUNCHER:
        guard(launcher_pid())  # a joblib worker dies with the launching process
        # every job was validated before the sweep started: the datasets the validation kept
        # (anonymous memory beside the cache's shared pages) go before the job loads its own
        _WORKER_DATA.clear()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        progress = Progress(len(cfg.seeds), Budget.of_job(cfg), enabled=bool(cfg.progress))
        summary = run(cfg, run_dir, progress)
    except FairbenchError as err:
        print(f"fairbench: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    print(closing_line(summary, run_dir))
    print(summary_table(summary))
    if summary.get("interrupted_by"):
        sys.exit(128 + int(summary["interrupted_by"]))
    code = EXIT_ALL_DIVERGED if summary.get("all_diverged") else 0
    if code and hydra_cfg.mode != RunMode.MULTIRUN:
        sys.exit(code)
    return job_return(cfg, summary, code)  # the score, for a tuning sweeper (fairbench.tuning)


def main() -> None:
    register_resolvers()
    use_fresh_stamp(None)  # a new command: a new fresh directory for resume=false
    validation = PendingValidation()
    job_codes: list = []
    try:
        with launching():
            validation = validate_invocation(sys.argv[1:])
            with hydra_hooks(validation, skip_revalidation=validates_what_hydra_runs(sys.argv[1:]),
                             job_codes=job_codes):
                hydra_main()
            validation.result()  # known by now, unless Hydra started no sweep
    except FairbenchError as err:
        print(f"fairbench: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    finally:
        validation.cancel()  # (Hydra may have stopped before its sweep waited for it)
        release_joblib_workers()
    diverged = sum(type(code) is int and code == EXIT_ALL_DIVERGED for code in job_codes)
    if diverged:
        print(f"fairbench: every seed diverged in {diverged} of {len(job_codes)} jobs", file=sys.stderr)
        sys.exit(EXIT_ALL_DIVERGED)


if __name__ == "__main__":
    main()
