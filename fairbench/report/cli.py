"""The ``fairbench-report`` command (also ``python -m fairbench.report``).

Exit codes: 0 when the report was written (problems with single files are listed in it, not
fatal); 2 with a one-line message when nothing can be reported (no run directories) or an
argument is invalid.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from fairbench.errors import EXIT_USAGE, FairbenchError
from fairbench.report.build import Options, write_report
from fairbench.report.selection import DEFAULT_LAST, DEFAULT_TOL
from fairbench.report.verdicts import DEFAULT_LEVEL, DEFAULT_MARGIN, DEFAULT_RATIO, DEFAULT_TOLERANCE, VerdictOptions


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer >= 1")
    return value


def non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number >= 0")
    return value


def finite_number(text: str) -> float:
    value = float(text)
    if not abs(value) < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number")
    return value


def ratio_above_one(text: str) -> float:
    value = float(text)
    if not 1 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 1")
    return value


def level(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number in (0, 1)")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fairbench-report",
        description="Tables, figures and hyperparameter selection from fairbench run directories "
                    "(single runs, Hydra multirun sweeps, or any folder containing them).")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run directory, sweep directory or parent")
    p.add_argument("--out", type=Path, help="output folder (default: <first PATH>/report)")
    p.add_argument("--last", type=positive_int, default=DEFAULT_LAST, metavar="K",
                   help=f"logged states per seed scored in the hyperparameter selection (default {DEFAULT_LAST})")
    p.add_argument("--tol", type=non_negative, default=DEFAULT_TOL,
                   help="largest mean validation max-violation a selected combination may have "
                        f"(default {DEFAULT_TOL:g})")
    p.add_argument("--all-runs", action="store_true",
                   help="show every sweep combination in the table and figures, not only the selected one")
    v = p.add_argument_group("verdicts (time to target, profiles, tests, intervals; docs/verdicts.md)")
    v.add_argument("--tolerance", type=non_negative, default=None,
                   help=f"largest training max violation of a point that meets the target (default {DEFAULT_TOLERANCE:g})")
    v.add_argument("--target-margin", type=non_negative, default=None, metavar="M",
                   help="target loss L* + M (L0 - L*) per task: L* the best feasible training loss any run reached, "
                        f"L0 the median initial loss (default {DEFAULT_MARGIN:g})")
    v.add_argument("--target-loss", type=finite_number, default=None, metavar="LOSS",
                   help="an absolute training-loss target instead (runs of one task only)")
    v.add_argument("--profile-ratio", type=ratio_above_one, default=DEFAULT_RATIO, metavar="TAU",
                   help=f"performance ratio up to which a profile's area is the method's score (default {DEFAULT_RATIO:g})")
    v.add_argument("--level", type=level, default=DEFAULT_LEVEL,
                   help=f"confidence level of intervals and tests (default {DEFAULT_LEVEL:g})")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr (problems are still printed)")
    return p


class sigterm_as_exit:
    """Within the block, SIGTERM raises ``SystemExit(143)``, so the partial report folder is
    removed and the old report left as it was (:mod:`fairbench.report.atomic`)."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._exit)

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

    @staticmethod
    def _exit(signum, frame) -> None:
        raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = args.out if args.out is not None else args.paths[0] / "report"
    verdicts = VerdictOptions(
        tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
        margin=DEFAULT_MARGIN if args.target_margin is None else args.target_margin,
        target_loss=args.target_loss, profile_ratio=args.profile_ratio, level=args.level,
        strict=args.tolerance is not None or args.target_margin is not None)
    options = Options(last=args.last, tol=args.tol, all_runs=args.all_runs, quiet=args.quiet, verdicts=verdicts)
    try:
        with sigterm_as_exit():
            issues = write_report(list(args.paths), out, options)
    except FairbenchError as err:
        print(f"fairbench-report: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if not args.quiet:
        note = f" ({len(issues)} problem(s), listed in the report)" if issues else ""
        print(f"fairbench-report: wrote {out / 'report.md'} and {out / 'report.html'}{note}", file=sys.stderr)
    return 0
