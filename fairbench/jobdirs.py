"""Where each job of a command writes, and whether it may: checked before Hydra writes.

The directory names come from the resolvers of ``conf/config.yaml`` (:func:`register_resolvers`):
``fb.dirname`` makes one directory name of a job's overrides (never a path: ``/`` is
encoded), ``fb.fresh`` the suffix of ``resume=false`` (a new directory, fixed for the whole
command), ``fb.sweep_id`` a sweep's name from its command line.

Hydra creates a job's directory and writes ``.hydra/`` (and a sweep's ``multirun.yaml``)
before the job starts, so every rule of :mod:`fairbench.rundir` that can refuse a command is
applied here, while :mod:`fairbench.cli` validates the jobs: a refused command writes
nothing. A job's directory is what Hydra will resolve: its config composed with the
command line's ``hydra`` overrides, then ``hydra.run.dir`` for a single run, or
``hydra.sweep.dir``/``hydra.sweep.subdir`` with the job's number for a sweep. A refusal names
that key (or ``FAIRBENCH_OUTPUT_DIR`` when the output root itself is the problem).

Rules, in order: ``dataset.name`` and ``algo.name`` are plain names (they name directories);
a directory from the default templates stays inside the output root, and a sweep's job
directory inside its sweep directory; the directory (or its nearest existing ancestor) can
be written; no other run holds it; it holds results of this config and code only
(:func:`fairbench.rundir.check_one_config`).
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from fairbench import rundir
from fairbench.errors import ConfigError, FairbenchError, check

OUTPUT_ENV = "FAIRBENCH_OUTPUT_DIR"
SWEEPER_PARAMS = "hydra.sweeper.params."
NAMED_BY = ("dataset.name", "algo.name")  # config values the default directories are named by


# -- output directory names ------------------------------------------------------------------
NAME_MAX = 255  # bytes in one path component (Linux, macOS)


def _dirname(override_dirname: str) -> str:
    """One directory name (never a path) from a job's overrides: ``%`` and ``/`` are
    percent-encoded (``dataset.table=../x.csv`` -> ``dataset.table=..%2Fx.csv``), so no value
    nests directories or climbs out of the output root, and distinct overrides keep distinct
    names; a name longer than a file system allows ends in a hash of the whole."""
    name = (override_dirname or "default").replace("%", "%25").replace("/", "%2F")
    if len(name.encode()) > NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = name.encode()[:NAME_MAX - 13].decode("utf-8", "ignore") + "-" + digest
    return name


_FRESH_STAMP: str | None = None


def fresh_stamp() -> str:
    """The suffix of this command's fresh directories (``resume=false``): the start time (to the
    microsecond: two commands of one process in the same second still differ) and the
    launching process's pid, fixed for the whole command (the directory is resolved more
    than once: validation, Hydra, each worker)."""
    global _FRESH_STAMP
    if _FRESH_STAMP is None:
        now = time.time()
        _FRESH_STAMP = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{now % 1:.6f}"[1:] + f"-{os.getpid()}"
    return _FRESH_STAMP


def use_fresh_stamp(stamp: str | None) -> None:
    """Take the launching process's stamp (in a worker), or forget it (a new command: ``None``)."""
    global _FRESH_STAMP
    _FRESH_STAMP = stamp


def _fresh(resume) -> str:
    return "" if resume is True or resume in ("true", "True") else "-" + fresh_stamp()


def _sweep_id() -> str:
    """A directory name that is the same for the same sweep command (so it can resume)."""
    overrides = sorted(a for a in sys.argv[1:] if not a.startswith("-") and not _excluded(a))
    text = " ".join(overrides)
    slug = re.sub(r"[^A-Za-z0-9=.,_+-]+", "_", "_".join(overrides))[:60] or "default"
    return f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _excluded(arg: str) -> bool:
    return arg.split("=", 1)[0].lstrip("+~") in ("resume", "threads", "progress", "stack_seeds", "checkpoint_every") or arg.startswith("hydra")


def register_resolvers() -> None:
    """``fb.fresh`` is cached in the config (``use_cache``), so that a job's config, which Hydra
    composes again in a worker, resolves the launching process's directory (Hydra copies the
    cache of the sweep's config into every job's: ``ConfigLoaderImpl.load_sweep_config``)."""
    for name, fn, cached in (("fb.dirname", _dirname, False), ("fb.fresh", _fresh, True),
                             ("fb.sweep_id", _sweep_id, False)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cached)


@dataclass(frozen=True)
class Placement:
    """What chooses an invocation's directories besides each job's own overrides."""

    hydra_overrides: tuple[str, ...]  # the command line's ``hydra`` overrides (not the sweeper's params)
    sweep: bool
    fresh_stamp: str  # the launching process's suffix for ``resume=false`` (``cli.fresh_stamp``)

    @classmethod
    def of(cls, overrides: list[str], sweep: bool, fresh_stamp: str) -> "Placement":
        chosen = tuple(o for o in overrides if o.lstrip("+~").startswith("hydra")
                       and not o.lstrip("+~").startswith(SWEEPER_PARAMS))
        return cls(chosen, sweep, fresh_stamp)

    @property
    def key(self) -> str:
        return "hydra.sweep.dir" if self.sweep else "hydra.run.dir"

    def given(self, key: str) -> bool:
        """Whether the command line sets ``key``."""
        return any(o.lstrip("+~").split("=", 1)[0] == key for o in self.hydra_overrides)


@dataclass(frozen=True)
class JobDirectory:
    path: Path
    key: str            # the setting that chose it (named in messages)
    sweep_dir: Path | None
    explicit: bool      # the command line chose it (hydra.run.dir / hydra.sweep.dir)
    fresh: bool         # resume=false would choose a new directory

    @property
    def named(self) -> str:
        """How a message names it: ``hydra.run.dir=...``, or a sweep's job directory and its
        ``hydra.sweep.dir``."""
        if self.sweep_dir is None:
            return f"{self.key}={self.path}"
        return f"{self.path} (in {self.key}={self.sweep_dir})"


def job_directory(composed: DictConfig, index: int, placement: Placement) -> JobDirectory | None:
    """The directory Hydra will give job ``index`` (``composed``: its config with the ``hydra``
    node), or ``None`` when it cannot be resolved before Hydra runs (a template that refers to
    Hydra's runtime values): then only the runner's checks apply."""
    hydra_cfg = composed.hydra
    with open_dict(hydra_cfg):
        hydra_cfg.job.num = index
        hydra_cfg.job.id = f"{hydra_cfg.job.name}_{index}"
    node = "sweep" if placement.sweep else "run"
    template = str(OmegaConf.to_container(hydra_cfg[node], resolve=False).get("dir", ""))
    try:
        base = Path(str(hydra_cfg[node].dir))
        path = base / str(hydra_cfg.sweep.subdir) if placement.sweep else base
    except Exception:  # noqa: BLE001 - any unresolvable template: left to Hydra and the runner
        return None
    return JobDirectory(path, placement.key, base if placement.sweep else None,
                        placement.given(placement.key), "fb.fresh:" in template)


def output_root() -> Path:
    return Path(os.environ.get(OUTPUT_ENV) or "outputs")


def check_names(cfg: DictConfig) -> None:
    for key in NAMED_BY:
        value = OmegaConf.select(cfg, key)
        check(isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\0" not in value,
              key, value, "a plain name: no '/', not '.' or '..' (it names the run's directory)")


def check_directory(where: JobDirectory) -> None:
    """Inside its root, writable, not held by another run."""
    if where.sweep_dir is not None and rundir.outside(where.path, where.sweep_dir):
        raise FairbenchError(f"hydra.sweep.subdir: the job directory {where.path} lies outside "
                             f"{where.key}={where.sweep_dir}: a subdir must name a folder inside it")
    root = output_root()
    if not where.explicit and rundir.outside(where.path, root):
        raise FairbenchError(f"{where.named} lies outside the output root {root}: "
                             "a directory named by the config must stay inside it")
    blocked = rundir.unwritable(where.path)
    if blocked is not None:
        at, reason = blocked
        if not where.explicit and os.environ.get(OUTPUT_ENV) and not rundir.outside(root, at):
            raise ConfigError(OUTPUT_ENV, os.environ[OUTPUT_ENV], f"an output root that can be written ({reason})")
        raise ConfigError(where.key, str(where.path), f"a directory that can be written ({reason})")
    rundir.check_not_busy(where.path)


def check_job(composed: DictConfig | None, cfg: DictConfig, index: int, placement: Placement) -> Path | None:
    """Every rule for job ``index`` (``cfg``: its config, already validated; ``composed``: the
    same with the ``hydra`` node, or ``None`` when it could not be composed); the job's
    directory (``None`` when it is not known here)."""
    from fairbench.runner import effective_algo_config

    check_names(cfg)
    where = None if composed is None else job_directory(composed, index, placement)
    if where is None:
        return None
    check_directory(where)
    recorded = OmegaConf.to_container(OmegaConf.merge(cfg, {"algo": effective_algo_config(cfg)}), resolve=True)
    rundir.check_one_config(where.path, recorded, bool(cfg.resume), where.key, where.fresh, where.named)
    return where.path


def check_distinct(paths: list[Path | None]) -> None:
    """Refuse a sweep two of whose jobs would write one directory (job ``i``'s path at ``i``;
    ``None``: not known): the second would mix its results, and its Hydra files, into the first's."""
    seen: dict = {}
    for index, path in enumerate(paths):
        if path is None:
            continue
        key = os.path.normpath(os.path.abspath(path))
        if key in seen:
            raise ConfigError("hydra.sweep.subdir", str(path),
                              f"a directory of its own for every job (jobs {seen[key]} and {index} of the sweep "
                              "would both write it)")
        seen[key] = index


def without_hydra(composed: DictConfig) -> DictConfig:
    """A job's config as Hydra hands it to the job: without the ``hydra`` node."""
    cfg = copy.deepcopy(composed)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg
