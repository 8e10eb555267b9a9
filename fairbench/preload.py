"""What a sweep's fork server loads before it forks the workers (:func:`fairbench.workers.use_forkserver`).

Every job imports torch, numba, scipy, Hydra and fairbench, and loads the compiled kernels of
its method; done once in the server, the workers forked from it share those pages (copy on
write) instead of each holding its own copy. The server

1. imports the modules every job imports;
2. warms the kernels of the sweep's methods: for each distinct method of the jobs
   (``FAIRBENCH_PRELOAD_JOBS``, set by the launching process), one step of the job's algorithm
   on its own data (loaded from the cache; a cold cache is built here once, which the workers
   then find), outside any run directory;
3. moves everything alive out of the garbage collector's sight (:func:`gc.freeze`), so that
   the workers' collections do not touch, and so copy, those pages.

Step 2 is best effort: a job it cannot warm (a bad job: the workers' validation reports it)
is passed over; its worker then loads the kernels itself.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import tempfile
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from fairbench.api import build_algorithm
from fairbench.cli import compose_job  # (Hydra, OmegaConf)
from fairbench.runner import effective_algo_config, load_blas_libraries, prepare
from fairbench.training import setup_group
from fairbench.workers import JOBS_ENV, kernel_choices

with contextlib.suppress(ImportError):  # the compiled kernels' modules (numba: the fast extra)
    importlib.import_module("fairbench.backends.compiled.mlp")


def warm(jobs: list[list[str]]) -> None:
    """One step of each distinct method's algorithm (and fast path), on the first job that uses it.

    Only the first job of each :func:`~fairbench.workers.kernel_choices` is composed (the
    workers wait for the server, and a sweep over hyperparameters would compose every job). With one thread, as the jobs run: a
    thread pool started here (torch's OpenMP team) would not survive the fork, and a worker's
    first parallel region would wait for it forever."""
    torch.set_num_threads(1)
    load_blas_libraries()
    seen, chosen = set(), set()
    with threadpool_limits(limits=1):
        for job in jobs:
            if kernel_choices(job) in chosen:
                continue
            chosen.add(kernel_choices(job))
            try:
                cfg = compose_job(job)
                key = (cfg.algo.name, str(cfg.problem.fast_path))
                if key in seen:
                    continue
                seen.add(key)
                with tempfile.TemporaryDirectory(prefix="fairbench_preload_") as tmp:
                    ctx = prepare(cfg, Path(tmp))
                    algo = build_algorithm(effective_algo_config(cfg))
                    setup_group(ctx, [0], algo)
                    algo.step()
            except Exception:  # noqa: BLE001 - best effort (module doc)
                continue


if os.environ.get(JOBS_ENV):
    warm(json.loads(os.environ[JOBS_ENV]))
gc.collect()
gc.freeze()
