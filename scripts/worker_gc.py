#!/usr/bin/env python
"""Time spent in full garbage collections by one joblib worker of a paper preset.

    python scripts/worker_gc.py                # as a worker runs now (fairbench.cli.prepare_worker)
    python scripts/worker_gc.py --no-prepare   # without the worker's preparation

Replays in this process what one worker of ``fairbench +experiment=paper_oklahoma`` does: it
checks four jobs (``cli.validate_job_in_worker``, which prepares the worker after its first
valid check unless ``--no-prepare``), then runs SSW, SGD-Fairret, ALM and Ghost at the preset's
budgets, with loky's ``gc.collect()`` after each (loky's behaviour without psutil). Prints the
number of full (generation 2) collections and the seconds spent in them, from ``gc.callbacks``.
Needs ``FAIRBENCH_DATA_DIR`` for the census data.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

JOBS = ("ssw", "sgd_fairret", "alm", "ghost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-prepare", action="store_true", help="skip the worker's preparation")
    args = parser.parse_args()
    spent, started = [0.0, 0], [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            spent[0] += time.perf_counter() - started[0]
            spent[1] += 1

    gc.callbacks.append(on_gc)
    begin = time.perf_counter()
    from fairbench import cli
    from fairbench.runner import run

    for algo in JOBS:  # a pid that is not this process's: the checks run "in a worker"
        cli.validate_job_in_worker(["+experiment=paper_oklahoma", f"algo={algo}"], None if args.no_prepare else -1)
    for algo in JOBS:
        cfg = cli.compose_job(["+experiment=paper_oklahoma", f"algo={algo}", "progress=false"])
        with tempfile.TemporaryDirectory() as tmp:
            run(cfg, Path(tmp))
        gc.collect()  # loky, after every task
    print(f"{'without' if args.no_prepare else 'with'} the worker's preparation: {spent[1]} full collections, "
          f"{spent[0]:.2f} s in them; {time.perf_counter() - begin:.1f} s in all")


if __name__ == "__main__":
    main()
