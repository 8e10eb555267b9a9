"""What a run shows while it trains: one progress line on stderr, a closing line per seed
(with what stopped it) and the summary table."""

from __future__ import annotations

import sys

from fairbench.budget import Budget, describe_stop
from fairbench.problems.evaluation import SplitEvaluation


class Progress:
    """A one-line progress display on stderr (redrawn in place on a terminal)."""

    def __init__(self, n_seeds: int, budget: Budget, enabled: bool = True, stream=sys.stderr):
        self.n_seeds, self.budget, self.enabled, self.stream = n_seeds, budget, enabled, stream
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.done = 0

    def _print(self, text: str, final: bool) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, seeds: list[int]) -> None:
        """A group of seeds starts: one seed on its own, or several stacked."""
        if len(seeds) == 1:
            self._print(f"seed {seeds[0]} ({self.done + 1}/{self.n_seeds}) ...", final=False)
        else:
            self._print(f"seeds {', '.join(map(str, seeds))} stacked ({len(seeds)} at once) ...", final=False)

    def update(self, seed: int, iteration: int, seconds: float, train: SplitEvaluation) -> None:
        if self.tty:
            limit = f"/{self.budget.iterations}" if self.budget.iterations else ""
            self._print(f"seed {seed} ({self.done + 1}/{self.n_seeds}) it {iteration}{limit} "
                        f"{seconds:.1f}s train loss {train.loss:.4f} viol {train.max_violation:.4f}", final=False)

    def skipped(self, seed: int) -> None:
        self.done += 1
        self._print(f"seed {seed}: already finished, skipped (resume=true)", final=True)

    def finish(self, seed: int, metrics: dict) -> None:
        self.done += 1
        rate = metrics.get("iterations_per_second") or 0.0
        test = metrics.get("splits", {}).get("test", {})
        detail = f" test loss {test['loss']:.4f} max viol {test['max_violation']:.4f}" if test else ""
        stop = describe_stop(metrics.get("stopped_by"))
        self._print(f"seed {seed} ({self.done}/{self.n_seeds}) {metrics['status']}: {metrics['iterations']} it "
                    f"in {metrics['train_seconds']:.2f}s ({rate:,.0f} it/s){detail}" + (f", {stop}" if stop else ""),
                    final=True)


def summary_table(summary: dict) -> str:
    """A plain-text table of mean ± std over seeds, train and test."""
    if not any(summary.get(split) for split in ("train", "test")):
        return "no completed seed: nothing to summarise"
    keys = ("loss", "max_violation", "ind", "sp", "sf", "ina", "wd", "auc")
    lines = [f"{'split':<6}" + "".join(f"{k:>18}" for k in keys)]
    for split in ("train", "test"):
        stats = summary.get(split)
        if not stats:
            continue
        cells = []
        for key in keys:
            s = stats.get(key, {})
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f}" if s.get("mean") is not None else "n/a")
        lines.append(f"{split:<6}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)
