"""The report's results as Parquet files, for other tools (pandas, polars, DuckDB, R arrow).

Written under ``<report>/parquet/``:

- ``trajectories.parquet``: every logged row of every seed of every run read, with the
  provenance columns below (one table for all runs: columns a run lacks are null);
- ``time_to_target.parquet``, ``profile_scores.parquet``, ``paired_tests.parquet``,
  ``variance.parquet``, ``test_gaps.parquet``: the verdict tables of the report, at full
  precision (``inf`` for a failure).

Provenance columns of a trajectory row: ``run`` (its directory), ``method`` (as the report
names it), ``algo``, ``problem``, ``dataset``, ``delta``, ``split_seed``, ``seed``,
``status``, and from the seed's ``metrics.json`` the code that trained it
(``fairbench_version``, ``git_commit``, ``code_sha256``). Every verdict table carries
``report_fairbench_version``, the version that computed it, and the target settings.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fairbench.provenance import fairbench_version
from fairbench.report.collect import Run

FOLDER = "parquet"
CODE_KEYS = ("fairbench_version", "git_commit", "code_sha256")


def trajectories_frame(runs: list[Run], labels: dict[Path, str]) -> pd.DataFrame:
    parts = []
    for run in runs:
        for seed in run.seeds:
            if seed.trajectory is None:
                continue
            frame = seed.trajectory.copy()
            provenance = ((seed.metrics or {}).get("provenance") or {})
            identity = {"run": str(run.path), "method": labels.get(run.path, run.algo), "algo": run.algo,
                        "problem": run.problem, "dataset": run.dataset, "delta": run.delta,
                        "split_seed": run.split_seed, "seed": seed.seed, "status": seed.status,
                        **{key: provenance.get(key) for key in CODE_KEYS}}
            for column, value in reversed(identity.items()):
                frame.insert(0, column, value)
            parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def write_parquet(folder: Path, runs: list[Run], labels: dict[Path, str], tables: dict[str, pd.DataFrame],
                  settings: dict) -> list[str]:
    """Write every table (``tables``: name -> frame) and the trajectories; return the file names."""
    out = folder / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for name, frame in {"trajectories": trajectories_frame(runs, labels), **tables}.items():
        frame = frame.copy()
        if name != "trajectories":
            frame["report_fairbench_version"] = fairbench_version()
            for key, value in settings.items():
                frame[key] = value
        frame.to_parquet(out / f"{name}.parquet", index=False)
        names.append(f"{name}.parquet")
    return names
