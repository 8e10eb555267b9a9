"""Hand-made run directories in the recorder's exact format (written by the real Recorder).

Values are chosen by the caller where a test needs to know them (final loss and violation of
the trajectory, statuses) and drawn from a seeded RNG elsewhere, so the table has non-zero
standard deviations to check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from fairbench.recorder import Recorder
import configs

SPLITS = ("train", "val", "test")
GROUPS = {2: ["white", "non-white"], 5: ["white", "black", "asian", "aian", "other"]}


def trajectory_rows(constraints, n_groups: int, rows: int, log_every: int, loss: float, violation: float,
                    early_loss: float | None, last: int, rng: np.random.Generator) -> list[dict]:
    """Rows whose last ``last`` states have val loss ~ ``loss`` and val max violation ``violation``."""
    delta = constraints.spec.delta
    out = []
    seconds = np.cumsum(np.r_[0.0, 0.02 + 0.002 * rng.random(rows - 1)])
    for i in range(rows):
        late = i >= rows - last
        row = {"iteration": i * log_every, "epoch": i * 0.01, "samples": i * 800, "grad_evals": i * 800,
               "train_seconds": float(seconds[i])}
        for split in SPLITS:
            base = loss if late or early_loss is None else early_loss
            level = base + (0.0 if split == "val" else 0.01 * rng.standard_normal())
            gap = delta + violation if (late or split != "val") else 0.0
            group_losses = level + gap * (np.linspace(0.5, -0.5, n_groups))
            c = constraints.values(group_losses)
            row[f"{split}_loss"] = level
            row[f"{split}_max_violation"] = float(max(0.0, c.max()))
            row.update({f"{split}_c{j}": float(v) for j, v in enumerate(c)})
            row.update({f"{split}_loss_g{g}": float(v) for g, v in enumerate(group_losses)})
            row[f"{split}_max_violation_true"] = float(max(0.0, c.max() - 0.001))
        out.append(row)
    return out


def split_metrics(constraints, n_groups: int, rng: np.random.Generator) -> dict:
    group_losses = 0.5 + 0.05 * rng.random(n_groups)
    c = constraints.values(group_losses)
    return {"ind": rng.random() * 0.1, "sp": rng.random() * 0.2, "sf": rng.random() * 0.3,
            "ina": 0.2 + rng.random() * 0.1, "wd": rng.random() * 0.05, "wd2_binned": rng.random() * 0.01,
            "auc": 0.7 + rng.random() * 0.1, "loss": float(group_losses.mean()),
            "max_violation": float(max(0.0, c.max())), "loss_gap": float(np.ptp(group_losses)),
            "accuracy": 0.75, "group_losses": group_losses.tolist(), "constraints": c.tolist(),
            "max_violation_true": rng.random() * 0.01}


def write_run(run_dir: Path, algo: str = "sgd", seeds=(0, 1), *, hyper: dict | None = None,
              problem: str = "constrained", dataset: str = "synthetic", delta: float = 0.005, n_groups: int = 2,
              statuses: dict[int, str] | None = None, loss: float = 0.5, violation: float = 0.0,
              early_loss: float | None = None, rows: int = 30, last: int = 20, scores: bool = False) -> Path:
    """Write a complete run directory like ``fairbench`` does; returns it."""
    names = GROUPS[n_groups]
    constraints = configs.constraint_spec(delta=delta).bind(np.full(n_groups, 1 / n_groups), names)
    config = {
        "dataset": {"name": dataset, "source": "synthetic"},
        "problem": {"_target_": "fairbench.problems.problem.ConstrainedProblem", "name": problem, "delta": delta,
                    "family": "pairs", "form": "signed", "statistic": "loss"},
        "algo": {"_target_": f"fairbench.algorithms.{algo}.X", "name": algo, "lr": 0.005, **(hyper or {})},
        "seeds": list(seeds), "budget": {"iterations": None, "epochs": 4}, "log_every": 100,
        "threads": 1, "resume": True, "progress": False,
    }
    recorder = Recorder(run_dir)
    recorder.write_config(yaml.safe_dump(config, sort_keys=False))
    all_metrics = {}
    for seed in seeds:
        rng = np.random.default_rng([seed, len(algo), int(loss * 1000)])
        status = (statuses or {}).get(seed, "completed")
        n_rows = rows if status == "completed" else rows // 2
        traj = trajectory_rows(constraints, n_groups, n_rows, 100, loss, violation, early_loss, last, rng)
        if status == "diverged":
            traj[-1].update(train_loss=float("nan"), test_loss=float("inf"))
        columns = list(dict.fromkeys(k for row in traj for k in row))
        recorder.write_trajectory(seed, columns, traj)
        metrics = {"seed": seed, "status": status, "iterations": traj[-1]["iteration"], "samples": 0,
                   "grad_evals": 0, "train_seconds": traj[-1]["train_seconds"], "constraint_names": constraints.names,
                   "group_names": names, "splits": {}}
        if status != "diverged":
            metrics["splits"] = {split: split_metrics(constraints, n_groups, rng) for split in SPLITS}
        recorder.write_metrics(seed, metrics)
        all_metrics[seed] = metrics
        if scores and status == "completed":
            for split in ("train", "test"):
                group = rng.integers(0, n_groups, 300)
                np.savez(run_dir / f"seed_{seed}" / f"scores_{split}.npz", scores=rng.beta(2, 3 + group),
                         y=rng.integers(0, 2, 300).astype(np.float32), group=group)
    header = {"algo": algo, "dataset": dataset, "problem": problem, "synthetic": dataset == "synthetic",
              "delta": delta, "n_groups": n_groups, "group_names": names, "seeds": list(seeds)}
    recorder.write_summary(header, all_metrics)
    return run_dir


def write_multirun(root: Path, scores: bool = True) -> Path:
    """A Hydra multirun folder: sgd and ssl_alm (2 seeds each) plus a 2-combination alm sweep."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text("hydra: {mode: MULTIRUN}\n")
    write_run(root / "algo=sgd,seeds=[0,1]", "sgd", loss=0.45, violation=0.05, scores=scores)
    write_run(root / "algo=ssl_alm,seeds=[0,1]", "ssl_alm", hyper={"tau": 0.01}, loss=0.5, scores=scores)
    write_run(root / "algo=alm,algo.tau=0.01", "alm", hyper={"tau": 0.01}, loss=0.52, violation=0.0005,
              scores=scores)
    write_run(root / "algo=alm,algo.tau=0.05", "alm", hyper={"tau": 0.05}, loss=0.48, violation=0.02, scores=scores)
    return root
