#!/usr/bin/env python
"""Throughput benchmark of fairbench's methods on the census task.

One run measures, on the same data (Oklahoma 2018 when ``FAIRBENCH_DATA_DIR`` is set, else
the embedded synthetic default; the output says which):

1. single-seed iterations/s of every method's step loop, built as the runner builds it
   (model with ``torch.manual_seed(seed)``, the problem's oracle, the algorithm with the
   paper's settings) and timed like the runner (only ``algo.step()``), on the default fast
   path (``problem.fast_path=auto``: the compiled oracle where numba is installed), on the
   numpy oracle (``problem.fast_path=numpy``) and on the autograd path
   (``problem.fast_path=off``); median of ``--reps``;
2. stacked seeds: model-steps/s of 10 seeds trained together through ``runner.run`` with
   ``stack_seeds=auto`` (seeds x iterations / the runner's ``stack_train_seconds``), for the
   methods that support stacking, with the speedup over the same job with ``stack_seeds=off``
   run right after it; "not available" when the config has no ``stack_seeds`` key;
3. the reference implementations, each in a minimal training loop on the same data, batch 8,
   same MLP, 1 thread; the ratio uses fairbench's fast path re-measured right after each
   reference measurement, so both see the same machine load:
   humancompatible-train 0.4.2 (when importable; ``--skip-hct``): its ALM dual optimizer (ALM),
   ALM + MoreauEnvelope (SSL-ALM), SSG (switching subgradient), GhostSQP (needs qpsolvers,
   hct's ``[ghost]`` extra), PBM, iALM and nuPI; Cooper 1.0.1 (when importable;
   ``--skip-cooper``): GDA, extragradient and nuPI (the loops of the newer methods:
   scripts/bench_peers.py);
4. the whole paper experiment (``fairbench +experiment=paper_oklahoma hydra/launcher=parallel``)
   as a subprocess: wall time and peak memory, as preset (SGD-Fairret's KL projection loss
   with the exact projection) and with ``projection=fairret`` (fairret's own cvxpy/SCS call,
   as the paper's code ran it) (``--skip-experiment``); the preset's wall time is the median
   of ``--reps`` runs;
5. cached dataset load time in a fresh subprocess (first load in the process, then second);
6. the evaluation forward (the MLP on the whole training split without autograd): the
   blocked inference forward against the layer-by-layer one, best of rounds.

    python scripts/bench.py                      # everything (the experiment takes minutes)
    python scripts/bench.py --quick              # smoke mode: few steps, no experiment
    python scripts/bench.py --out docs/performance.md   # the run becomes the document's current
                                                        # section, the previous one goes to its history
    python scripts/bench.py --json bench.json    # every figure as JSON

Threads: 1 torch thread, BLAS pinned to 1 thread with threadpoolctl (the experiment
subprocess runs as a user would run it: fairbench pins its own torch threads).
Any part that fails prints a one-line note and the rest goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))
if str(REPO / "scripts") not in sys.path:  # perf_doc beside this file
    sys.path.insert(0, str(REPO / "scripts"))

import bench_peers  # noqa: E402  (scripts/bench_peers.py: the newer methods' reference loops)
import numpy as np  # noqa: E402
import perf_doc  # noqa: E402  (scripts/perf_doc.py: the --out document)
import torch  # noqa: E402

METHODS = ("sgd", "sgd_fairret", "sgd_penalized", "alm", "ssl_alm", "ghost", "ssw", "pbm", "ialm", "nupi", "gda",
           "extragradient")
GHOST_STEPS = 1000  # Ghost's timed steps per measurement (fixed: see bench_fairbench)
PAPER_DELTA = 0.005          # experiment 1's bound (conf/experiment/paper_oklahoma.yaml)
N_STACKED = 10               # seeds trained together for the stacked measurement
HCT_VERSION = "0.4.2"
COOPER_VERSION = "1.0.1"
NOTES: list[str] = []


def note(text: str) -> None:
    """A one-line note, printed now and repeated at the end of the report."""
    line = " ".join(str(text).split())
    NOTES.append(line)
    print(f"note: {line}", flush=True)


def failed(what: str, exc: BaseException) -> None:
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
    note(f"{what} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}")


def loadavg() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# -- the machine --------------------------------------------------------------------------------
def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if found:
            cpu = found.group(1).strip()
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    try:
        mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        mem_gib = round(int(mem.group(1)) / 2**20, 1) if mem else None
    except OSError:
        mem_gib = None
    blas = None
    try:
        from threadpoolctl import threadpool_info
        blas = sorted({f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                       for i in threadpool_info()})
    except Exception:  # noqa: BLE001
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "usable_cores": affinity, "memory_gib": mem_gib,
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(), "blas": blas, "loadavg_start": loadavg(),
        "small_op_us": small_op_us(),
    }


def small_op_us() -> float:
    """Median time of one small numpy operation (``x * 2.0`` on 24 floats), in µs: the
    per-call overhead that bounds every fast path here, to compare runs across machines."""
    x = np.zeros(24)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20000):
            x * 2.0
        times.append((time.perf_counter() - start) / 20000 * 1e6)
    return round(statistics.median(times), 2)


def pin_threads() -> bool:
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only possible before any parallel work)
        pass
    try:
        from threadpoolctl import threadpool_limits

        from fairbench.runner import load_blas_libraries

        load_blas_libraries()  # scipy's BLAS (the compiled kernels' products) must be loaded to be limited
        threadpool_limits(1)
        return True
    except ImportError:
        note("threadpoolctl not installed: BLAS threads not pinned")
        return False


# -- configs and the runner's objects ---------------------------------------------------------
def dataset_choice(forced: str | None) -> str:
    if forced:
        return forced
    return "oklahoma_race" if os.environ.get("FAIRBENCH_DATA_DIR") else "synthetic"


#: the problem every measurement uses (``--problem`` replaces it): the paper's loss gap
PROBLEM_OVERRIDES = ["problem=constrained", f"problem.delta={PAPER_DELTA}"]


def compose(dataset: str, algo: str, *extra: str):
    from fairbench.cli import compose_job, register_resolvers

    register_resolvers()
    return compose_job([f"dataset={dataset}", f"algo={algo}", *PROBLEM_OVERRIDES, *extra])


class Context:
    """Data and problem shared by every measurement (loaded once, like the runner's prepare)."""

    def __init__(self, dataset: str):
        from fairbench.data import load_dataset
        from fairbench.problems.fairness import TensorSplit

        self.dataset = dataset
        cfg = compose(dataset, "sgd")
        start = time.perf_counter()
        self.data = load_dataset(cfg.dataset)
        self.load_seconds = time.perf_counter() - start
        d = self.data
        self.train = TensorSplit.from_arrays(d.train.X, d.train.y, d.train.group)
        self.dataset_cfg = cfg.dataset

    def describe(self) -> str:
        d = self.data
        kind = "SYNTHETIC (embedded generated default)" if d.synthetic else "real census data"
        return (f"{self.dataset}: {kind}; {len(d.train.y)} train rows, {d.n_features} features, "
                f"groups {d.group_names}; source: {d.source}")


def build_fairbench(ctx: Context, cfg, seed: int):
    """Model, oracle and algorithm for one seed, exactly as ``training.train_group`` builds them for a group of one."""
    from fairbench.api import build_algorithm
    from fairbench.instantiate import instantiate_node
    from fairbench.backends.oracles import oracle_path
    from fairbench.backends.variants import bind_variant
    from fairbench.runner import effective_algo_config

    problem = instantiate_node(cfg.problem, "problem")
    bound = problem.bind_data(ctx.data)
    torch.manual_seed(seed)
    model = instantiate_node(cfg.model, "model", n_features=ctx.data.n_features)
    oracle = problem.oracle(model, ctx.train, bound, seed)
    algo = build_algorithm(effective_algo_config(cfg))
    algo.setup(oracle, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))))
    bind_variant(algo, oracle)
    return algo, oracle_path(oracle)


# -- timing ---------------------------------------------------------------------------------------
def time_steps(step, n: int) -> float:
    clock = time.perf_counter
    start = clock()
    for _ in range(n):
        step()
    return clock() - start


def calibrate(step, target: float, min_n: int, max_n: int) -> int:
    """Steps that take about ``target`` seconds (the calibration steps also warm up)."""
    n, elapsed = 1, 0.0
    while n < max_n:
        elapsed = time_steps(step, n)
        if elapsed >= 0.15 * target:
            break
        n = min(max_n, n * 4)
    rate = n / max(elapsed, 1e-9)
    return int(min(max_n, max(min_n, round(rate * target))))


def measure(make_step, reps: int, target: float, min_n: int, max_n: int, warmup: int,
            fixed_n: int | None = None) -> dict:
    """Median it/s over ``reps`` fresh runs (seed = rep) of ``n`` timed steps each."""
    step = make_step(0)
    for _ in range(warmup):
        step()
    n = fixed_n if fixed_n is not None else calibrate(step, target, min_n, max_n)
    rates, seconds = [], []
    for rep in range(reps):
        step = make_step(rep)
        for _ in range(warmup):
            step()
        elapsed = time_steps(step, n)
        rates.append(n / elapsed)
        seconds.append(elapsed)
    return {"it_s": statistics.median(rates), "rates": rates, "steps": n, "seconds": seconds}


# -- 1. fairbench single-seed it/s --------------------------------------------------------------
def bench_fairbench(ctx: Context, methods, args) -> dict:
    results: dict[str, dict] = {}
    for method in methods:
        results[method] = {}
        for path, extra in (("fast", ()), ("numpy", ("problem.fast_path=numpy",)),
                            ("autograd", ("problem.fast_path=off",))):
            try:
                cfg = compose(ctx.dataset, method, *extra)
                used = build_fairbench(ctx, cfg, 0)[1]

                def make_step(seed, cfg=cfg):
                    return build_fairbench(ctx, cfg, seed)[0].step

                slow = method in ("ghost",)
                # Ghost's cost per step depends on the levels drawn: a fixed step count gives every
                # measurement (and every version of the code) the same level sequence per seed
                fixed = (3 if slow else 50) if args.quick else (min(GHOST_STEPS, args.max_steps) if slow else None)
                with np.errstate(all="ignore"):
                    r = measure(make_step, args.reps, args.target,
                                min_n=3 if slow else 20, max_n=args.max_steps,
                                warmup=2 if slow else 20, fixed_n=fixed)
                r["oracle"] = used
                results[method][path] = r
                spread = ", ".join(f"{x:,.0f}" for x in r["rates"])
                print(f"  {method:<14} {path:<8} ({used:<9}) {r['it_s']:>10,.1f} it/s  "
                      f"[{r['steps']} steps x {args.reps}: {spread}]", flush=True)
            except Exception as exc:  # noqa: BLE001
                failed(f"{method} {path}", exc)
    return results


# -- 2. stacked seeds through the runner ---------------------------------------------------------
def stacked_available(ctx: Context) -> bool:
    try:
        return "stack_seeds" in compose(ctx.dataset, "sgd")
    except Exception as exc:  # noqa: BLE001
        failed("composing the config", exc)
        return False


def _runner_stacked(ctx: Context, method: str, iterations: int, mode: str = "auto") -> dict:
    """One ``runner.run`` of ``N_STACKED`` seeds with ``stack_seeds=auto`` and an iteration
    budget (evaluation only at the start and the end); its rate from the seeds' metrics.

    Stacked (``oracle_path`` ``numpy-stacked``): model-steps/s = seeds x iterations /
    ``stack_train_seconds`` (the runner's own clock: the stack's step time only). Otherwise
    (the runner fell back to one seed after another): iterations / ``train_seconds`` summed.
    """
    from fairbench.runner import run

    seeds = ",".join(map(str, range(N_STACKED)))
    cfg = compose(ctx.dataset, method, f"stack_seeds={mode}", f"seeds=[{seeds}]", f"budget.iterations={iterations}",
                  "budget.epochs=null", f"log_every={max(iterations, 1)}", "progress=false", "resume=false")
    with tempfile.TemporaryDirectory(prefix="fairbench-bench-") as tmp:
        start = time.perf_counter()
        summary = run(cfg, Path(tmp))
        wall = time.perf_counter() - start
        metrics = []
        for path in sorted(Path(tmp).glob("seed_*/metrics.json")):
            metrics.append(json.loads(path.read_text()))
    if len(metrics) != N_STACKED:
        raise RuntimeError(f"the runner wrote {len(metrics)} of {N_STACKED} seeds' metrics")
    iters = sum(int(m["iterations"]) for m in metrics)
    paths = sorted({str(m.get("oracle_path")) for m in metrics})
    stack_seconds = max((m.get("stack_train_seconds") or 0.0) for m in metrics)
    stacked = any("stacked" in p for p in paths) and stack_seconds > 0
    seconds = stack_seconds if stacked else sum(float(m.get("train_seconds") or 0.0) for m in metrics)
    return {"model_steps_s": iters / seconds if seconds > 0 else None, "stacked": stacked,
            "stack_size": max(int(m.get("stack_size") or 1) for m in metrics), "oracle_path": paths,
            "iterations": iterations, "train_seconds": seconds, "run_wall_s": wall,
            "status": summary.get("status")}


def bench_stacked(ctx: Context, methods, single: dict, args) -> dict:
    from fairbench.api import build_algorithm
    from fairbench.backends.variants import can_stack_method
    from fairbench.runner import effective_algo_config

    results = {}
    with np.errstate(all="ignore"):
        for method in methods:
            try:
                algo = build_algorithm(effective_algo_config(compose(ctx.dataset, method)))
                if not can_stack_method(type(algo)):
                    results[method] = {"supported": False}
                    print(f"  {method:<14} stacked    not supported (the runner trains its seeds one after another)",
                          flush=True)
                    continue
                base = single.get(method, {}).get("fast", {}).get("it_s") or 1000.0
                n = 20 if args.quick else max(20, int(base * 0.3 * args.target / N_STACKED))
                first = _runner_stacked(ctx, method, n)        # calibration (and warm-up)
                if not args.quick and first["model_steps_s"]:
                    n = int(min(args.max_steps, max(20, first["model_steps_s"] * args.target / N_STACKED)))
                # each stacked run is followed by the same job with stack_seeds=off (fewer iterations:
                # the rate is per model-step), so the speedup compares runs made under the same load
                n_off = max(10, n // 4)
                runs, off = [], []
                for _ in range(1 if args.quick else args.reps):
                    runs.append(first if args.quick else _runner_stacked(ctx, method, n))
                    off.append(_runner_stacked(ctx, method, n_off, "off"))
                rates = [r["model_steps_s"] for r in runs if r["model_steps_s"]]
                off_rates = [r["model_steps_s"] for r in off if r["model_steps_s"]]
                r = dict(runs[-1], model_steps_s=statistics.median(rates), rates=rates, supported=True,
                         off_model_steps_s=statistics.median(off_rates) if off_rates else None, off_rates=off_rates,
                         off_iterations=n_off)
                results[method] = r
                ref = r["off_model_steps_s"]
                speedup = f" = {r['model_steps_s'] / ref:.1f}x stack_seeds=off ({ref:,.0f})" if ref else ""
                how = "" if r["stacked"] else f"  NOT stacked by the runner (oracle {r['oracle_path']})"
                spread = ", ".join(f"{x:,.0f}" for x in rates)
                print(f"  {method:<14} stacked {r['model_steps_s']:>10,.1f} model-steps/s{speedup}  "
                      f"[{r['stack_size']} seeds x {n} it, x {len(rates)}: {spread}]{how}", flush=True)
                if r.get("status") not in (None, "completed"):
                    note(f"{method} stacked run status {r['status']} (a seed diverged or was interrupted; "
                         "model-steps count the seeds' own iterations)")
            except Exception as exc:  # noqa: BLE001
                failed(f"{method} stacked", exc)
    return results


# -- 3. humancompatible-train ---------------------------------------------------------------------
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or ``None``."""
    try:
        from importlib.metadata import version
        return version(distribution)
    except Exception:  # noqa: BLE001
        return None


def reference_section(distribution: str, expected: str, skip_flag: str | None, loops: str | None, run) -> dict:
    """One reference implementation's section: skipped (``skip_flag``, the option given), not
    installed, no method of the run with a loop (``loops`` names those that have one), or
    ``run()``'s results; the report entry ``{"version", "results", "note"}``."""
    version, results, why = installed_version(distribution), {}, None
    if skip_flag:
        why = "skipped"
        print(f"  skipped ({skip_flag})")
    elif version is None:
        why = "not installed"
        note(f"{distribution} is not importable: skipped (pip install -e \".[bench]\")")
    elif loops is not None:
        print(f"  none of the methods has a loop of {distribution} ({loops})")
    else:
        if not version.startswith(expected):
            note(f"{distribution} {version} installed, the comparison was written for {expected}")
        print(f"  {distribution} {version}: minimal loops, batch 8 + balanced constraint batch, same MLP")
        results = run()
    return {"version": version, "results": results, "note": why}


class HctData:
    """The training split as torch tensors plus cheap samplers for the minimal loops:
    objective rows drawn without replacement within a pass (batch 8), constraint rows as a
    balanced batch of ``per_group`` rows of every group (rows ordered group by group)."""

    def __init__(self, ctx: Context, seed: int):
        self.X, self.y, self.group = ctx.train.X, ctx.train.y, ctx.train.group
        self.n = len(self.y)
        self.gen = torch.Generator().manual_seed(seed)
        self.rows = [torch.nonzero(self.group == g).flatten() for g in range(ctx.data.n_groups)]
        self.n_groups = len(self.rows)
        self._perm, self._pos = torch.randperm(self.n, generator=self.gen), 0
        self._gperm = [torch.randperm(len(r), generator=self.gen) for r in self.rows]
        self._gpos = [0] * self.n_groups

    def objective_rows(self, size: int) -> torch.Tensor:
        if self._pos + size > self.n:
            self._perm, self._pos = torch.randperm(self.n, generator=self.gen), 0
        out = self._perm[self._pos:self._pos + size]
        self._pos += size
        return out

    def balanced_rows(self, per_group: int) -> torch.Tensor:
        parts = []
        for g, rows in enumerate(self.rows):
            if self._gpos[g] + per_group > len(rows):
                self._gperm[g], self._gpos[g] = torch.randperm(len(rows), generator=self.gen), 0
            parts.append(rows[self._gperm[g][self._gpos[g]:self._gpos[g] + per_group]])
            self._gpos[g] += per_group
        return torch.cat(parts)


def _hct_model(ctx: Context, seed: int):
    from fairbench.instantiate import instantiate_node

    torch.manual_seed(seed)
    return instantiate_node(compose(ctx.dataset, "sgd").model, "model", n_features=ctx.data.n_features)


_signed_constraints = bench_peers.signed_constraints


def hct_dual_loop(ctx: Context, seed: int, kind: str, hp: dict):
    """One step of the README's loop: forward, ``lgr = dual.forward_update(loss, c)``,
    ``lgr.backward()``, ``optimizer.step()``, ``optimizer.zero_grad()``."""
    import torch.nn.functional as F
    from humancompatible.train.dual_optim import ALM, SSG, MoreauEnvelope

    data = HctData(ctx, seed)
    model = _hct_model(ctx, seed)
    delta, batch, per_group, G = PAPER_DELTA, hp["batch_size"], hp["per_group"], data.n_groups
    if kind in ("alm", "ssl_alm"):
        primal = torch.optim.SGD(model.parameters(), lr=hp["tau"])
        dual = ALM(m=2, lr=hp["eta"], penalty=hp["rho"], is_ineq=True, dual_range=(0.0, hp["dual_bound"]))
        stepper = MoreauEnvelope(primal, mu=hp["mu"], beta=hp["beta"]) if kind == "ssl_alm" else primal
    else:  # ssw: SGD at eta_f; the constraint branch scaled by eta_c / eta_f (hct's SSG docstring)
        primal = torch.optim.SGD(model.parameters(), lr=hp["eta_f"])
        dual = SSG(m=2, constraint_tol=hp["tol"], constraint_scale=hp["eta_c"] / hp["eta_f"])
        stepper = primal
    X, y = data.X, data.y

    def step():
        rows = torch.cat([data.objective_rows(batch), data.balanced_rows(per_group)])
        losses = F.binary_cross_entropy_with_logits(model(X[rows]), y[rows], reduction="none")
        loss = losses[:batch].mean()
        c = _signed_constraints(losses[batch:].view(G, per_group).mean(dim=1), delta)
        lgr = dual.forward_update(loss, c)
        lgr.backward()
        stepper.step()
        primal.zero_grad()   # MoreauEnvelope's delegated zero_grad passes the optimizer as an argument

    return step


def hct_ghost_loop(ctx: Context, seed: int, hp: dict):
    """``GhostSQP.step()`` with a balanced sampler (a base set of 1 row per group; hct's
    ``TensorSampler`` draws rows regardless of group, so a 1-row set has no group loss)."""
    import torch.nn.functional as F
    from humancompatible.train.sqp.ghost import GhostConfig, GhostSQP, Sampler

    data = HctData(ctx, seed)
    G = data.n_groups

    class BalancedSampler(Sampler):
        def draw(self, J, rng):
            rows = torch.cat([r[torch.from_numpy(rng.integers(0, len(r), size=J))] for r in data.rows])
            return data.X[rows], data.y[rows], J

        def split_even_odd(self, batch):
            X, y, J = batch
            half = J // 2
            pos = torch.arange(G * J).view(G, J)
            even, odd = pos[:, 0::2].reshape(-1), pos[:, 1::2].reshape(-1)
            return (X[even], y[even], half), (X[odd], y[odd], half)

    def group_losses(net, batch):
        X, y, J = batch
        return F.binary_cross_entropy_with_logits(net(X), y, reduction="none").view(G, J).mean(dim=1)

    def objective(net, batch):
        X, y, _ = batch
        return F.binary_cross_entropy_with_logits(net(X), y)

    def c_plus(net, batch):
        gl = group_losses(net, batch)
        return gl[0] - gl[1] - PAPER_DELTA

    def c_minus(net, batch):
        gl = group_losses(net, batch)
        return gl[1] - gl[0] - PAPER_DELTA

    cfg = GhostConfig(alpha=hp["p"], base_batch=1, tau=hp["tau"], beta=hp["beta"], rho=hp["rho"],
                      lambda_=hp["kappa_weight"], gamma0=hp["gamma0"], qp_solver="osqp")
    model = _hct_model(ctx, seed)
    ghost = GhostSQP(model, objective, [c_plus, c_minus], BalancedSampler(), cfg,
                     rng=np.random.default_rng(seed))
    return ghost.step


def paired_reference(ctx: Context, method: str, label: str, make_step, what: str, slow: bool, args) -> dict:
    """it/s of a reference loop (``make_step(seed)``), then of fairbench's fast path right after
    it (same load): the result with ``paired_fast_it_s`` and ``ratio`` (fairbench over the reference)."""
    fixed = (3 if slow else 50) if args.quick else None
    with np.errstate(all="ignore"):
        r = measure(make_step, args.reps, args.target, min_n=3 if slow else 20, max_n=args.max_steps,
                    warmup=2 if slow else 20, fixed_n=fixed)
    r["what"] = what
    spread = ", ".join(f"{x:,.0f}" for x in r["rates"])
    print(f"  {method:<14} {label:<8} {r['it_s']:>10,.1f} it/s  [{r['steps']} steps x {args.reps}: {spread}]"
          f"  {what}", flush=True)
    cfg = compose(ctx.dataset, method)

    def make_fb(seed, cfg=cfg):
        return build_fairbench(ctx, cfg, seed)[0].step

    with np.errstate(all="ignore"):
        fb = measure(make_fb, args.reps, args.target, min_n=3 if slow else 20, max_n=args.max_steps,
                     warmup=2 if slow else 20, fixed_n=fixed)
    r["paired_fast_it_s"] = fb["it_s"]
    r["ratio"] = fb["it_s"] / r["it_s"]
    print(f"  {method:<14} paired   {fb['it_s']:>10,.1f} it/s  fairbench fast, right after: "
          f"{r['ratio']:.1f}x {label}", flush=True)
    return r


def bench_hct(ctx: Context, methods, args) -> dict:
    from omegaconf import OmegaConf

    results = {}
    targets = {"alm": "ALM (dual_optim.ALM, penalty=rho, HPR) + torch SGD",
               "ssl_alm": "ALM + MoreauEnvelope(SGD, mu, beta)",
               "ssw": "SSG (dual_optim.SSG, constraint_scale=eta_c/eta_f) + torch SGD",
               "ghost": "GhostSQP (sqp.ghost, qp_solver=osqp)"}
    for method in methods:
        if method not in targets and method not in bench_peers.HCT_TARGETS:
            continue
        try:
            hp = OmegaConf.to_container(compose(ctx.dataset, method).algo, resolve=True)
            slow = method == "ghost"
            if method in bench_peers.HCT_TARGETS:
                what = bench_peers.hct_what(method, hp)

                def make_step(seed, hp=hp, method=method):
                    return bench_peers.hct_loop(HctData(ctx, seed), _hct_model(ctx, seed), method, hp, PAPER_DELTA)
            elif method == "ghost":
                try:
                    importlib.import_module("humancompatible.train.sqp.ghost")  # needs qpsolvers: hct's [ghost] extra
                except ImportError as exc:
                    note(f"hct GhostSQP not importable ({exc}); pip install qpsolvers (hct's [ghost] extra)")
                    continue
                what = targets[method]

                def make_step(seed, hp=hp):
                    return hct_ghost_loop(ctx, seed, hp)
            else:
                what = targets[method]

                def make_step(seed, hp=hp, method=method):
                    return hct_dual_loop(ctx, seed, method, hp)
            results[method] = paired_reference(ctx, method, "hct", make_step, what, slow, args)
        except Exception as exc:  # noqa: BLE001
            failed(f"hct {method}", exc)
    return results


def bench_cooper(ctx: Context, methods, args) -> dict:
    """Cooper's loops (scripts/bench_peers.py) for GDA, extragradient and nuPI, paired like hct's."""
    from omegaconf import OmegaConf

    results = {}
    for method in methods:
        if method not in ("gda", "extragradient", "nupi"):
            continue
        try:
            hp = OmegaConf.to_container(compose(ctx.dataset, method).algo, resolve=True)

            def make_step(seed, hp=hp, method=method):
                return bench_peers.cooper_loop(HctData(ctx, seed), _hct_model(ctx, seed), method, hp, PAPER_DELTA)

            results[method] = paired_reference(ctx, method, "cooper", make_step, bench_peers.cooper_what(method, hp),
                                               False, args)
        except Exception as exc:  # noqa: BLE001
            failed(f"cooper {method}", exc)
    return results


# -- 4. the whole experiment ------------------------------------------------------------------------
class TreeRss:
    """Peak memory of a process and its descendants, polled from /proc: the sum of their RSS
    (``peak_kib``: a page shared by several processes, such as torch's and LLVM's libraries,
    counts once per process) and of their PSS (``peak_pss_kib``: a shared page is divided
    among the processes that map it, so the sum is the memory the tree takes).

    A poll is not free: scanning /proc and reading three torch processes' ``smaps_rollup``
    takes ~40 ms of CPU on the 2-core VM, so polling every 0.1 s took ~0.4 of a core from the
    run it measured (the whole experiment's wall time 33 s against ~29 s unpolled). Hence
    one poll a second, and the timed runs of the preset are not polled at all."""

    def __init__(self, pid: int, interval: float = 1.0):
        self.pid, self.interval, self.peak_kib, self.peak_pss_kib = pid, interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _children() -> dict[int, list[int]]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        return children

    def _run(self):
        while not self._stop.is_set():
            children, total, pss, todo = self._children(), 0, 0, [self.pid]
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, []))
                try:
                    found = re.search(r"^VmRSS:\s*(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M)
                    total += int(found.group(1)) if found else 0
                    found = re.search(r"^Pss:\s*(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)
                    pss += int(found.group(1)) if found else 0
                except OSError:
                    pass
            self.peak_kib = max(self.peak_kib, total)
            self.peak_pss_kib = max(self.peak_pss_kib, pss)
            self._stop.wait(self.interval)


def run_experiment(label: str, extra: list[str], timeout: float, memory: bool = True) -> dict:
    """One run of the preset; its peak memory polled from /proc when ``memory`` (see :class:`TreeRss`)."""
    cmd = [sys.executable, "-m", "fairbench", "+experiment=paper_oklahoma", "hydra/launcher=parallel", *extra]
    shown = "fairbench " + " ".join(cmd[3:])
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    with tempfile.TemporaryDirectory(prefix="fairbench-bench-exp-") as tmp:
        env = dict(os.environ, FAIRBENCH_OUTPUT_DIR=tmp)
        time_file = Path(tmp) / "time.txt"
        full = [gnu_time, "-v", "-o", str(time_file), *cmd] if gnu_time else cmd
        before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        start = time.perf_counter()
        proc = subprocess.Popen(full, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tree = TreeRss(proc.pid)
        with tree if memory else contextlib.nullcontext():
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
                raise RuntimeError(f"{shown} ran past {timeout:.0f} s and was killed") from None
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            tail = " | ".join(line for line in out.strip().splitlines()[-3:])
            raise RuntimeError(f"{shown} exited {proc.returncode}: {tail}")
        max_rss_kib = None
        if gnu_time and time_file.exists():
            found = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", time_file.read_text())
            max_rss_kib = int(found.group(1)) if found else None
        else:
            import resource
            max_rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        statuses = {}
        for summary in Path(tmp).rglob("summary.json"):
            try:
                s = json.loads(summary.read_text())
                statuses[s.get("algo", summary.parent.name)] = {
                    "status": s.get("status"), "counts": s.get("counts"),
                    "train_seconds_per_seed": _mean_train_seconds(summary.parent)}
            except (OSError, ValueError):
                pass
    result = {"label": label, "command": shown, "wall_s": wall, "max_process_rss_mib": (max_rss_kib or 0) / 1024,
              "peak_tree_rss_mib": tree.peak_kib / 1024 if memory else None,
              "peak_tree_pss_mib": tree.peak_pss_kib / 1024 if memory else None,
              "rss_source": "/usr/bin/time -v" if gnu_time else
              "getrusage(RUSAGE_CHILDREN)", "loadavg_before": before, "jobs": statuses}
    tree_text = (f", peak RSS of the process tree {result['peak_tree_rss_mib']:,.0f} MiB (PSS "
                 f"{result['peak_tree_pss_mib']:,.0f} MiB, polled)" if memory else " (memory not polled)")
    print(f"  {label}: {wall:,.1f} s wall, max RSS of one process {result['max_process_rss_mib']:,.0f} MiB"
          + tree_text, flush=True)
    for algo, s in sorted(statuses.items()):
        print(f"      {algo:<14} {s['status']} {s['counts']} mean train s/seed {s['train_seconds_per_seed']}")
    return result


def median_run(runs: list[dict], memory: dict | None = None) -> dict:
    """The run of median wall time, with every run's wall time and the largest memory peaks
    (of ``runs`` and of the separate ``memory`` run, whose time is not counted)."""
    middle = dict(sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2])
    middle["walls_s"] = [round(r["wall_s"], 1) for r in runs]
    measured = runs + ([memory] if memory else [])
    middle["max_process_rss_mib"] = max(r["max_process_rss_mib"] for r in measured)
    for key in ("peak_tree_rss_mib", "peak_tree_pss_mib"):
        peaks = [r[key] for r in measured if r[key] is not None]
        middle[key] = max(peaks) if peaks else None
    if len(runs) > 1:
        print(f"  median of {len(runs)}: {middle['wall_s']:,.1f} s wall (runs: "
              f"{', '.join(f'{w:,.1f}' for w in middle['walls_s'])} s)", flush=True)
    return middle


def _mean_train_seconds(run_dir: Path):
    values = []
    for metrics in run_dir.glob("seed_*/metrics.json"):
        try:
            values.append(float(json.loads(metrics.read_text())["train_seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return round(sum(values) / len(values), 2) if values else None


# -- 5. cached dataset load -------------------------------------------------------------------------
LOAD_SNIPPET = r"""
import json, sys, time
t0 = time.perf_counter()
from fairbench.cli import compose_job, register_resolvers
from fairbench.data import load_dataset
register_resolvers()
cfg = compose_job([f"dataset={sys.argv[1]}"]).dataset
t1 = time.perf_counter()
d = load_dataset(cfg)
t2 = time.perf_counter()
d = load_dataset(cfg)
t3 = time.perf_counter()
print(json.dumps({"import_compose_s": t1 - t0, "first_s": t2 - t1, "second_s": t3 - t2}))
"""


def bench_load(dataset: str) -> dict:
    out = subprocess.run([sys.executable, "-c", LOAD_SNIPPET, dataset], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {dataset}: first load in a fresh process (cache hit) {result['first_s'] * 1e3:,.1f} ms, "
          f"second {result['second_s'] * 1e3:,.1f} ms (imports + compose {result['import_compose_s']:.2f} s)",
          flush=True)
    return result


# -- 6. evaluation forward -----------------------------------------------------------------------------
def bench_evaluation(ctx: Context, reps: int) -> dict:
    """The runner's evaluation forward on the whole training split: the MLP's blocked inference
    forward against the layer-by-layer one, best of ``reps`` x 5 rounds of 20 calls each (the
    minimum: interference only ever adds time). Same model (seed 0), same rows, no autograd."""
    from fairbench.instantiate import instantiate_node

    cfg = compose(ctx.dataset, "sgd")
    torch.manual_seed(0)
    model = instantiate_node(cfg.model, "model", n_features=ctx.data.n_features)
    X = ctx.train.X

    def best_ms(forward) -> float:
        forward()
        times = []
        for _ in range(max(1, reps) * 5):
            start = time.perf_counter()
            for _ in range(20):
                forward()
            times.append((time.perf_counter() - start) / 20 * 1e3)
        return min(times)

    with torch.no_grad():
        blocked = best_ms(lambda: model(X))
        plain = best_ms(lambda: torch.nn.Sequential.forward(model, X))
        same = bool(torch.equal(model(X), torch.nn.Sequential.forward(model, X).squeeze(-1)))
    print(f"  {len(X):,} rows: blocked {blocked:.2f} ms, layer by layer {plain:.2f} ms "
          f"({plain / blocked:.2f}x; identical logits: {same})", flush=True)
    return {"rows": len(X), "blocked_ms": blocked, "layer_by_layer_ms": plain, "identical": same}


# -- report ---------------------------------------------------------------------------------------
def fmt(value, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:,.{digits}f}" if value >= 100 or digits else f"{value:,.1f}"


def reference_cells(results: dict | None, note_text: str | None, method: str, fast) -> tuple[str, str]:
    """A reference's it/s cell and its fast/reference cell (the paired ratio where measured)."""
    h = results.get(method, {}).get("it_s") if results else None
    h_cell = fmt(h) if h is not None else (note_text if note_text else "n/a")
    paired = results.get(method, {}).get("ratio") if results else None
    return h_cell, f"{paired:.1f}x" if paired else (f"{fast / h:.1f}x" if fast and h else "n/a")


def table(methods, single, stacked, stacked_note, hct, hct_note, cooper=None, cooper_note=None) -> str:
    lines = ["| method | fast it/s (oracle) | numpy it/s | autograd it/s | stacked model-steps/s (10 seeds) "
             "| hct it/s | fast/hct | cooper it/s | fast/cooper |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        fast = single.get(m, {}).get("fast", {}).get("it_s")
        oracle = single.get(m, {}).get("fast", {}).get("oracle")
        numpy_rate = single.get(m, {}).get("numpy", {}).get("it_s")
        auto = single.get(m, {}).get("autograd", {}).get("it_s")
        entry = stacked.get(m, {}) if stacked else {}
        st = entry.get("model_steps_s")
        if st is not None:
            ref = entry.get("off_model_steps_s")
            st_cell = fmt(st) + (f" ({st / ref:.1f}x)" if ref else "") + ("" if entry.get("stacked") else " not stacked")
        elif entry.get("supported") is False:
            st_cell = "not supported"
        else:
            st_cell = stacked_note
        h_cell, ratio = reference_cells(hct, hct_note, m, fast)
        c_cell, c_ratio = reference_cells(cooper, cooper_note, m, fast)
        fast_cell = fmt(fast) + (f" ({oracle})" if oracle else "")
        lines.append(f"| {m} | {fast_cell} | {fmt(numpy_rate)} | {fmt(auto)} | {st_cell} | {h_cell} | {ratio} "
                     f"| {c_cell} | {c_ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (median; default 3)")
    parser.add_argument("--target", type=float, default=1.5, help="seconds per measurement (default 1.5)")
    parser.add_argument("--max-steps", type=int, default=200_000, help="cap on steps per measurement")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--dataset", default=None,
                        help="dataset config (default: oklahoma_race if FAIRBENCH_DATA_DIR is set, else synthetic)")
    parser.add_argument("--problem", default=None, metavar="OVERRIDES",
                        help="the problem as space-separated overrides, replacing the paper's loss gap "
                             "(e.g. 'problem=demographic_parity problem.delta=0.02')")
    parser.add_argument("--quick", action="store_true", help="smoke mode: few steps, 1 rep, no experiment")
    parser.add_argument("--skip-hct", action="store_true", help="skip the humancompatible-train comparison")
    parser.add_argument("--skip-cooper", action="store_true", help="skip the Cooper comparison")
    parser.add_argument("--skip-stacked", action="store_true", help="skip the stacked-seeds measurement")
    parser.add_argument("--skip-experiment", action="store_true", help="skip the whole-experiment runs")
    parser.add_argument("--experiment-timeout", type=float, default=3600, help="seconds per experiment run")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="write the run as the current section of the Markdown document PATH (e.g. docs/performance.md; created if missing), moving its previous current section into its history")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument("--scale", action="store_true",
                        help="measure it/s against the number of constraints m and the evaluation share instead "
                             "(scripts/bench_scale.py; the options after --scale are its own, see --scale --help)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--scale" in argv:
        import bench_scale

        return bench_scale.main([a for a in argv if a != "--scale"])
    args = parser.parse_args(argv)
    if args.problem:
        PROBLEM_OVERRIDES[:] = args.problem.split()
    if args.out:
        try:
            perf_doc.check_document(Path(args.out))
        except ValueError as exc:
            parser.error(f"--out: {exc}")
    if args.quick:
        args.reps, args.skip_experiment = 1, True
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; accepted: {', '.join(METHODS)}")

    pinned = pin_threads()
    # fairret's KL projection (cvxpy) warns on every inexact solve; the runner's jobs warn the same
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
    info = machine_info()
    info["blas_pinned_to_1"] = pinned
    print("# fairbench throughput benchmark\n")
    print(f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
          f"{info['memory_gib']} GiB; python {info['python']}, torch {info['torch']}, numpy {info['numpy']}")
    print(f"threads: torch {torch.get_num_threads()}, BLAS {'1 (threadpoolctl)' if pinned else 'not pinned'}"
          f" {info['blas'] or ''}")
    print(f"load average (1/5/15 min) at start: {info['loadavg_start']}"
          "  (other jobs on the machine slow every number below)")
    print(f"one small numpy op: {info['small_op_us']} µs (per-call overhead; the fast paths scale with it)",
          flush=True)

    report: dict = {"machine": info, "args": vars(args), "methods": methods}
    dataset = dataset_choice(args.dataset)
    try:
        ctx = Context(dataset)
    except Exception as exc:  # noqa: BLE001
        failed(f"loading dataset {dataset}", exc)
        return 1
    print(f"data: {ctx.describe()}  (FAIRBENCH_DATA_DIR={os.environ.get('FAIRBENCH_DATA_DIR') or 'unset'})")
    report["data"] = {"dataset": dataset, "synthetic": bool(ctx.data.synthetic), "source": ctx.data.source,
                      "n_train": int(len(ctx.data.train.y))}

    print(f"\n## 1. single seed, paper settings (median of {args.reps}, ~{args.target:g} s each)", flush=True)
    single = bench_fairbench(ctx, methods, args)
    report["single"] = single

    print("\n## 2. stacked seeds (runner, stack_seeds=auto)", flush=True)
    stacked, stacked_note = {}, "not available"
    if args.skip_stacked:
        stacked_note = "skipped"
        print("  skipped (--skip-stacked)")
    elif stacked_available(ctx):
        stacked = bench_stacked(ctx, methods, single, args)
        stacked_note = "n/a"
    else:
        print("  not available: the config has no `stack_seeds` key (stacked-seed training is not in this tree)")
    report["stacked"] = stacked or stacked_note
    print(f"  load average: {loadavg()}")

    print(f"\n## 3. humancompatible-train {HCT_VERSION}", flush=True)
    report["hct"] = reference_section("humancompatible-train", HCT_VERSION, args.skip_hct and "--skip-hct", None,
                                      lambda: bench_hct(ctx, methods, args))
    hct, hct_note = report["hct"]["results"], report["hct"]["note"]
    print(f"  load average: {loadavg()}")

    print(f"\n## 3b. Cooper {COOPER_VERSION}", flush=True)
    cooper_methods = ("gda", "extragradient", "nupi")
    report["cooper"] = reference_section(
        "cooper-optim", COOPER_VERSION, args.skip_cooper and "--skip-cooper",
        None if any(m in cooper_methods for m in methods) else ", ".join(cooper_methods),
        lambda: bench_cooper(ctx, methods, args))
    cooper, cooper_note = report["cooper"]["results"], report["cooper"]["note"]
    print(f"  load average: {loadavg()}")

    print("\n## 4. whole experiment (7 methods x 10 seeds, hydra/launcher=parallel)", flush=True)
    experiments = []
    if args.skip_experiment:
        print("  skipped" + (" (--quick)" if args.quick else " (--skip-experiment)"))
    elif ctx.data.synthetic or not os.environ.get("FAIRBENCH_DATA_DIR"):
        note("whole experiment skipped: +experiment=paper_oklahoma needs the census data (FAIRBENCH_DATA_DIR)")
    else:
        # the preset: median of --reps runs (whole runs vary by 20 % and more on a shared VM),
        # never polled, then one more run for its memory; fairret's projection variant
        # (~220-300 s) once, polled (labelled so)
        for label, extra, reps, separate in (
                ("paper preset (SGD-Fairret: exact KL projection)", [], args.reps, True),
                ("SGD-Fairret projection=fairret (fairret's cvxpy/SCS call, as the paper's code; one run, polled)",
                 ["+algo_overrides.sgd_fairret.projection=fairret"], 1, False)):
            runs, memory = [], None
            try:
                for _ in range(max(1, reps)):
                    runs.append(run_experiment(label, extra, args.experiment_timeout, memory=not separate))
                if separate:
                    memory = run_experiment(label + ", memory run", extra, args.experiment_timeout)
            except Exception as exc:  # noqa: BLE001
                failed(f"experiment '{label}'", exc)  # (a next run would fail the same way)
            if runs:
                experiments.append(median_run(runs, memory))
            print(f"  load average: {loadavg()}")
    report["experiment"] = experiments

    print("\n## 5. cached dataset load (fresh subprocess)", flush=True)
    try:
        report["dataset_load"] = bench_load(dataset)
    except Exception as exc:  # noqa: BLE001
        failed("cached dataset load", exc)
        report["dataset_load"] = None

    print("\n## 6. evaluation forward (whole training split, no autograd)", flush=True)
    try:
        report["evaluation"] = bench_evaluation(ctx, args.reps)
    except Exception as exc:  # noqa: BLE001
        failed("evaluation forward", exc)
        report["evaluation"] = None

    info["loadavg_end"] = loadavg()
    md = [f"machine: {info['cpu']}, {info['cores']} cores; torch {info['torch']}, numpy {info['numpy']}; "
          f"1 torch thread, BLAS {'1 thread (threadpoolctl)' if pinned else 'not pinned'}; "
          f"load average start {info['loadavg_start']}, end {info['loadavg_end']}; "
          f"one small numpy op {info['small_op_us']} µs",
          f"data: {ctx.describe()}", "",
          table(methods, single, stacked, stacked_note, hct, hct_note, cooper, cooper_note), ""]
    md.append("fast/autograd: single seed, runner-built oracle and algorithm, steps only; stacked: 10 seeds "
              "through runner.run(stack_seeds=auto), seeds x iterations / the runner's stack step time, "
              "(Nx) = vs the same runner job with stack_seeds=off, run right after it")
    if hct:
        md.append("fast/hct: fairbench's fast path re-measured right after each hct measurement (same load), "
                  "over hct it/s")
        md.append("hct: " + "; ".join(f"{m} = {r['what']}" for m, r in hct.items()))
    if cooper:
        md.append("fast/cooper: likewise, over Cooper it/s (cooper-optim); cooper: "
                  + "; ".join(f"{m} = {r['what']}" for m, r in cooper.items()))
    if experiments:
        md.append("")
        md.append("| whole experiment | wall s (median) | runs s | max RSS one process MiB | "
                  "peak RSS process tree MiB | peak PSS process tree MiB |")
        md.append("|---|---:|---|---:|---:|---:|")
        for e in experiments:
            md.append(f"| {e['label']} | {e['wall_s']:,.1f} | {', '.join(f'{w:,.1f}' for w in e['walls_s'])} | "
                      f"{e['max_process_rss_mib']:,.0f} | {fmt(e['peak_tree_rss_mib'])} | "
                      f"{fmt(e['peak_tree_pss_mib'])} |")
        md.append(f"(command: `{experiments[0]['command']}`, data cached, FAIRBENCH_OUTPUT_DIR in a temp dir)")
    else:
        md.append("whole experiment: not run" + (" (--quick)" if args.quick else ""))
    load = report.get("dataset_load")
    md.append("")
    md.append(f"dataset load ({dataset}, cached, fresh process): first {load['first_s'] * 1e3:,.1f} ms, "
              f"second {load['second_s'] * 1e3:,.1f} ms" if load else "dataset load: n/a")
    ev = report.get("evaluation")
    md.append(f"evaluation forward ({ev['rows']:,} training rows, best of rounds): blocked {ev['blocked_ms']:.2f} ms, "
              f"layer by layer {ev['layer_by_layer_ms']:.2f} ms" if ev else "evaluation forward: n/a")
    if NOTES:
        md.append("")
        md.extend(f"- note: {n}" for n in NOTES)
    text = "\n".join(md)
    print("\n## results\n")
    print(text)
    if args.out:
        command = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
        try:
            perf_doc.update_file(Path(args.out), perf_doc.run_section(text, command.strip()))
            print(f"\nwrote the current section of {args.out}")
        except (OSError, ValueError) as exc:
            failed(f"writing {args.out}", exc)
    if args.json:
        try:
            report["notes"] = NOTES
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
            print(f"wrote {args.json}")
        except OSError as exc:
            failed(f"writing {args.json}", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
