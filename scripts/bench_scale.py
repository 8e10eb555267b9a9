#!/usr/bin/env python
"""it/s against the number of constraints m, full and sampled (``problem.constraints_per_step``),
and the evaluation share; docs/scale.md explains the figures.

The rows of the embedded synthetic data (or ``--dataset``) get G random groups, so m grows while
the data, the model and the rows per step stay the same: ``pairs`` with G = 2, 5, 10, 18 gives
m = 2, 20, 90, 306, ``vs_all`` with G = 400, 500 and 1,000 gives m = 800, 1,000 and 2,000
(Ghost's exact subproblem path goes to m = 4,096; beyond it Ghost is not measured), and the
stress shape ``vs_all`` with G = 1500 gives m = 3000 (what the all-states RAC1P x SEX x MAR x AGEP x ST task
keeps after its size rule is of that order).
Methods: SSL-ALM, Stochastic Ghost and the switching subgradient, on the default fast path
("full"), on the autograd path ("full-autograd") and with k sampled constraints ("sampled",
on the default fast path; Ghost and SSW refuse it). The evaluation share is the time of one
whole-split evaluation (train/val/test) over that plus ``log_every`` steps.

``--evaluation-share`` measures instead the share of the log points in a real run
(:func:`evaluation_share`): ``fairbench`` in process on ``--share-dataset`` (default ``acs_all``,
every state of the data root) with ``log_every`` 100 and ``eval.subsample`` 20,000; the time of
the trajectory's log points (evaluation of the three splits' subsamples and the optimality
columns) over that time plus the training seconds. docs/scale.md asks for at most 20 %.

    python scripts/bench_scale.py [--quick] [--k 8] [--append docs/performance.md]
    python scripts/bench.py --scale [the same options]
    FAIRBENCH_DATA_DIR=... python scripts/bench.py --scale --evaluation-share [--share-seconds 30]
    FAIRBENCH_DATA_DIR=... python scripts/bench.py --scale --sweep-memory [--repeats 3]

``--sweep-memory`` (:func:`sweep_memory`) runs one job of ``--share-dataset`` and a 2-job sweep
of it on the parallel launcher (the seeds [0] and [1]), each ``--repeats`` times as its own
command, polling the process tree's PSS and RSS (``bench.TreeRss``, every 0.5 s), and prints the
peaks, their medians and the ratio of the medians (docs/scale.md asks for at most 1.5).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench  # noqa: E402
from fairbench.algorithms.subproblems.common import EXACT_MAX_M  # noqa: E402

TASKS = (("pairs", 2), ("pairs", 5), ("pairs", 10), ("pairs", 18), ("vs_all", 400), ("vs_all", 500),
         ("vs_all", 1000), ("vs_all", 1500))
METHODS = ("ssl_alm", "ghost", "ssw")


def regroup(split, n_groups: int, seed: int = 0):
    from fairbench.problems.fairness import TensorSplit

    n = len(split)
    group = np.random.default_rng(seed).permutation(np.arange(n) % n_groups)
    return TensorSplit.from_arrays(split.X.numpy(), split.y.numpy(), group)


def build(ctx, train, method: str, family: str, n_groups: int, extra: list[str], seed: int):
    from fairbench.api import build_algorithm
    from fairbench.backends.oracles import oracle_path
    from fairbench.backends.variants import bind_variant
    from fairbench.instantiate import instantiate_node
    from fairbench.runner import effective_algo_config
    from fairbench.problems.statistics import label_counts

    cfg = bench.compose(ctx.dataset, method, f"problem.family={family}", *extra)
    problem = instantiate_node(cfg.problem, "problem")
    g = train.group.numpy()
    bound = problem.bind(np.bincount(g, minlength=n_groups) / len(g), [f"g{i}" for i in range(n_groups)],
                         label_counts(g, train.y.numpy(), n_groups))
    torch.manual_seed(seed)
    model = instantiate_node(cfg.model, "model", n_features=ctx.data.n_features)
    oracle = problem.oracle(model, train, bound, seed)
    algo = build_algorithm(effective_algo_config(cfg))
    algo.setup(oracle, np.random.default_rng(seed))
    bind_variant(algo, oracle)
    return algo, oracle_path(oracle), bound, model


def eval_seconds(ctx, bound, model, groups: int) -> float:
    from fairbench.problems.evaluation import SplitsEvaluator
    from fairbench.problems.fairness import TensorSplit

    d = ctx.data
    splits = {name: regroup(TensorSplit.from_arrays(s.X, s.y, s.group), groups)
              for name, s in (("train", d.train), ("val", d.val), ("test", d.test))}
    ev = SplitsEvaluator(splits, groups)
    start = time.perf_counter()
    ev.evaluate(model, bound, scores=False)
    return time.perf_counter() - start


def evaluation_share(dataset: str, algo: str, seconds: float, log_every: int, subsample: int | None,
                     extra: list[str], out: Path) -> dict:
    """One seed of ``algo`` on ``dataset`` for ``seconds`` of training, in process: the seconds
    spent in the trajectory's log points (:meth:`fairbench.training.SeedRun.log`: the
    evaluation and the optimality columns; not the final full-split evaluation) and their share
    of log time plus training time."""
    import json

    from fairbench import cli, training

    spent = {"seconds": 0.0, "points": 0}
    original = training.SeedRun.log

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - start
            spent["points"] += 1

    argv = [f"dataset={dataset}", f"algo={algo}", "seeds=[0]", f"budget.seconds={seconds}", "budget.epochs=null",
            f"log_every={log_every}", f"eval.subsample={'null' if subsample is None else subsample}",
            "progress=false", f"hydra.run.dir={out}", *extra]
    saved = sys.argv
    training.SeedRun.log, sys.argv = timed, ["fairbench", *argv]
    try:
        try:
            cli.main()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(f"fairbench {' '.join(argv)} exited with {exc.code}") from None
    finally:
        training.SeedRun.log, sys.argv = original, saved
    metrics = json.loads(next(Path(out).rglob("metrics.json")).read_text())
    train = float(metrics["train_seconds"])
    return {"log_seconds": spent["seconds"], "log_points": spent["points"], "train_seconds": train,
            "iterations": metrics["iterations"], "share": spent["seconds"] / (spent["seconds"] + train),
            "status": metrics["status"], "eval": metrics.get("eval")}


def share_main(args) -> int:
    import tempfile

    extra = args.share_overrides.split() if args.share_overrides else []
    with tempfile.TemporaryDirectory(prefix="bench_share_") as tmp:
        r = evaluation_share(args.share_dataset, args.share_algo, args.share_seconds, args.log_every,
                             args.subsample, extra, Path(tmp) / "run")
    per_point = r["log_seconds"] / max(r["log_points"], 1)
    print(f"evaluation share: {100 * r['share']:.1f} % ({r['log_points']} log points, {per_point * 1000:.0f} ms each; "
          f"{r['iterations']} iterations in {r['train_seconds']:.1f} s of training; log_every={args.log_every}, "
          f"eval.subsample={args.subsample}; {args.share_dataset}, {args.share_algo}; status {r['status']})")
    verdict = "within" if r["share"] <= 0.20 else "ABOVE"
    print(f"  {verdict} the 20 % the issue allows")
    return 0


#: the job of --sweep-memory (a 2,000-iteration SSL-ALM run, two log points on the subsample)
MEMORY_JOB = ["algo=ssl_alm", "budget.iterations=2000", "budget.epochs=null", "log_every=1000",
              "eval.subsample=20000", "progress=false"]


def sweep_memory(dataset: str, repeats: int) -> dict:
    """Peak PSS and RSS (KiB) of ``repeats`` single jobs and 2-job sweeps, run alternately."""
    import subprocess
    import tempfile

    runs = {"one job": [], "2-job sweep": []}
    for _ in range(repeats):
        for name, extra in (("one job", ["seeds=[0]"]), ("2-job sweep", ["-m", "hydra/launcher=parallel",
                                                                        "seeds=[0],[1]"])):
            with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
                where = "hydra.sweep.dir" if "-m" in extra else "hydra.run.dir"
                cmd = ["fairbench", *extra, f"dataset={dataset}", *MEMORY_JOB, f"{where}={tmp}/out"]
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                with bench.TreeRss(proc.pid, 0.5) as tree:
                    _, err = proc.communicate()
                if proc.returncode:
                    raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}: {err[-500:]}")
            runs[name].append((tree.peak_pss_kib, tree.peak_kib))
            print(f"  {name:<12} peak PSS {tree.peak_pss_kib:>9,} KiB, RSS {tree.peak_kib:>9,} KiB", flush=True)
    return runs


def memory_main(args) -> int:
    runs = sweep_memory(args.share_dataset, args.repeats)
    one = float(np.median([pss for pss, _ in runs["one job"]]))
    two = float(np.median([pss for pss, _ in runs["2-job sweep"]]))
    print(f"median peak PSS: one job {one / 1024:,.0f} MiB, 2-job sweep {two / 1024:,.0f} MiB: "
          f"{two / one:.2f}x ({args.share_dataset}, {args.repeats} runs each)")
    print(f"  {'within' if two <= 1.5 * one else 'ABOVE'} the 1.5x the issue allows")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--k", type=int, default=8, help="constraints per step of the sampled runs")
    parser.add_argument("--target", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="few steps, small tasks only")
    parser.add_argument("--groups", default=None, help="comma-separated G of the tasks to run (default: all)")
    parser.add_argument("--append", default=None, metavar="PATH", help="append the table to this Markdown file")
    parser.add_argument("--evaluation-share", action="store_true",
                        help="measure the log points' share of a real run instead (see the module doc)")
    parser.add_argument("--share-dataset", default="acs_all", help="dataset of --evaluation-share (default acs_all)")
    parser.add_argument("--share-algo", default="ssl_alm", help="method of --evaluation-share (default ssl_alm)")
    parser.add_argument("--share-seconds", type=float, default=30.0, help="training seconds of --evaluation-share")
    parser.add_argument("--log-every", type=int, default=100, help="log_every of --evaluation-share (default 100)")
    parser.add_argument("--subsample", type=int, default=20000, help="eval.subsample of --evaluation-share")
    parser.add_argument("--share-overrides", default="", metavar="OVERRIDES",
                        help="more overrides for --evaluation-share, space-separated (e.g. 'eval.optimality=false')")
    parser.add_argument("--sweep-memory", action="store_true",
                        help="measure one job's and a 2-job sweep's peak memory instead (see the module doc)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command of --sweep-memory")
    args = parser.parse_args(argv)
    if args.evaluation_share:
        return share_main(args)
    if args.sweep_memory:
        return memory_main(args)
    bench.pin_threads()
    ctx = bench.Context(args.dataset)
    log_every = int(bench.compose(ctx.dataset, "sgd").log_every)
    rows = []
    tasks = TASKS[:3] if args.quick else TASKS
    if args.groups:
        tasks = [t for t in TASKS if str(t[1]) in args.groups.split(",")]
    for family, groups in tasks:
        train = regroup(ctx.train, groups)
        m = None
        for method in METHODS:
            for mode, extra in (("full", []), ("full-autograd", ["problem.fast_path=off"]),
                                ("sampled", None)):
                if method == "ghost" and (m or 0) > EXACT_MAX_M:  # OSQP/HiGHS on the dense (m, P) Jacobian
                    rows.append((family, groups, m, method, mode, "-", "not measured (minutes per step)"))
                    continue
                try:
                    if extra is None:
                        k = min(args.k, m or args.k)
                        extra = [f"problem.constraints_per_step={k}"]
                    per_group = ["algo.per_group=2"] if groups > 100 and method != "ghost" else []  # (Ghost: its own sizes)
                    algo, path, bound, model = build(ctx, train, method, family, groups, extra + per_group, 0)
                    m = bound.n_constraints
                    n = (1 if m > 100 else 3) if method == "ghost" else (3 if args.quick else None)
                    with np.errstate(all="ignore"):
                        r = bench.measure(lambda s: build(ctx, train, method, family, groups, extra + per_group,
                                                          s)[0].step, 1, args.target, 5, 20_000, 2, fixed_n=n)
                    rows.append((family, groups, m, method, mode, path, r["it_s"]))
                    print(f"  {family:<6} G={groups:<5} m={m:<5} {method:<8} {mode:<13} ({path:<8}) "
                          f"{r['it_s']:>9,.1f} it/s", flush=True)
                except Exception as exc:  # noqa: BLE001
                    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    rows.append((family, groups, m, method, mode, "-", text))
                    print(f"  {family:<6} G={groups:<5} {method:<8} {mode:<13} refused/failed: {text[:110]}")
        full = [r for r in rows if r[1] == groups and r[3] == "ssl_alm" and r[4] == "full"]
        if full and isinstance(full[0][6], float):
            _, _, bound, model = build(ctx, train, "ssl_alm", family, groups, [], 0)
            e = eval_seconds(ctx, bound, model, groups)
            share = e / (e + log_every / full[0][6])
            rows.append((family, groups, m, "evaluation", f"share at log_every={log_every}", "-",
                         f"{e * 1000:.0f} ms per evaluation, {100 * share:.1f} % of SSL-ALM's time"))
            print(f"  evaluation: {e * 1000:.0f} ms, share {100 * share:.1f} %", flush=True)
    table = ["| family | G | m | method | mode | oracle | it/s |", "|---|---:|---:|---|---|---|---:|"]
    for family, groups, m, method, mode, path, value in rows:
        v = f"{value:,.1f}" if isinstance(value, float) else value.replace("|", "/")
        table.append(f"| {family} | {groups} | {m} | {method} | {mode} | {path} | {v} |")
    text = "\n".join(table)
    print(text)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as fh:
            fh.write("\n" + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
