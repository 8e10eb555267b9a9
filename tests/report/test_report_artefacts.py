"""A small hand-made multirun (sgd, ssl_alm, a 2-combination alm sweep) reported end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.layout_engine import ConstrainedLayoutEngine
from PIL import Image

from fairbench.report import build, cli, style
from fairbench.report.tables import TABLE_METRICS, TABLE_SPLITS
from rundirs import write_multirun

FIGURES = ("fig1_trajectories_iterations", "fig1_trajectories_time", "fig3_scores", "fig4_radar", "violation_true",
           "verdict_profiles")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path, str]:
    """(sweep dir, report dir, stderr) of one report run, shared by the tests below."""
    root = write_multirun(tmp_path_factory.mktemp("multirun") / "sweep")
    err_path = root.parent / "stderr.txt"
    with pytest.MonkeyPatch.context() as mp, err_path.open("w") as err:
        mp.setattr(build, "PROGRESS_MIN_RUNS", 2)
        mp.setattr("sys.stderr", err)
        assert cli.main([str(root)]) == 0
    return root, root / "report", err_path.read_text()


def test_every_artefact_is_written(report):
    _, out, _ = report
    for name in ("table.md", "table.tex", "table.csv", "selection.md", "selection.json", "report.md", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for stem in FIGURES:
        pngs = list((out / "figures").glob(f"{stem}_*.png"))
        assert len(pngs) == 1, stem
        assert pngs[0].stat().st_size < 300_000
        assert pngs[0].with_suffix(".pdf").is_file()


def test_progress_line_per_run(report):
    _, _, stderr = report
    assert [line for line in stderr.splitlines() if "reading run" in line][-1].startswith(
        "fairbench-report: reading run 4/4")


def test_html_is_self_contained(report):
    _, out, _ = report
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)
    assert "<table>" in html and "Problems" in html


def test_latex_uses_booktabs(report):
    tex = (report[1] / "table.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"ssl\_alm" in tex and r"\pm" in tex


def test_sweep_selected_and_represented(report):
    _, out, _ = report
    selection = json.loads((out / "selection.json").read_text())
    (sweep,) = selection["sweeps"]
    assert sweep["method"] == "alm" and sweep["varying"] == ["algo.tau"]
    assert sweep["chosen"] == "algo=alm algo.tau=0.01"
    assert "algo=alm algo.tau=0.01" in (out / "selection.md").read_text()
    methods = [row["method"] for row in csv.DictReader((out / "table.csv").open())]
    assert methods == ["alm (tau=0.01)", "sgd", "ssl_alm"]


def test_table_numbers_equal_direct_computation(report):
    root, out, _ = report
    rows = list(csv.DictReader((out / "table.csv").open()))
    markdown = (out / "table.md").read_text()
    for row in rows:
        seeds = [json.loads(p.read_text()) for p in sorted(Path(row["run"]).glob("seed_*/metrics.json"))]
        completed = [m for m in seeds if m["status"] == "completed"]
        assert int(row["seeds_completed"]) == len(completed) == 2
        for split in TABLE_SPLITS:
            for key, _ in TABLE_METRICS:
                values = np.array([m["splits"][split][key] for m in completed])
                mean, std = values.mean(), values.std(ddof=1)
                assert math.isclose(float(row[f"{split}_{key}_mean"]), mean, rel_tol=1e-12)
                assert math.isclose(float(row[f"{split}_{key}_std"]), std, rel_tol=1e-12)
                assert f"{mean:.4f} ± {std:.4f}" in markdown


def test_a_figure_is_laid_out_once_for_all_its_files(tmp_path, monkeypatch):
    """``save_figure`` runs the constrained layout on the first save only (a PNG over the size
    limit is saved again at a lower dpi, then the PDF): the later files keep the axes where that
    layout put them, and are still written, the PNG at the lower dpi."""
    runs = []
    execute = ConstrainedLayoutEngine.execute
    monkeypatch.setattr(ConstrainedLayoutEngine, "execute", lambda self, fig: (runs.append(fig), execute(self, fig))[1])
    monkeypatch.setattr(style, "PNG_LIMIT", 1)  # every dpi is "too large": all four PNG saves happen
    fig = style.new_figure(4.0, 3.0)
    axes = fig.subplots(2, 2)
    for ax in axes.flat:
        ax.plot([0, 1], [0, 1])
        ax.set_ylabel("a long label that the layout must make room for")
    fig.savefig(tmp_path / "reference.png", dpi=style.DPIS[0])  # the layout as the first save makes it
    placed = [ax.get_position().bounds for ax in axes.flat]
    assert runs == [fig]
    png, pdf = style.save_figure(fig, tmp_path / "figures", "f")
    assert runs == [fig, fig]  # the first save of save_figure, then none
    assert [ax.get_position().bounds for ax in axes.flat] == placed
    assert (tmp_path / "figures" / pdf).stat().st_size > 0
    with Image.open(tmp_path / "figures" / png) as image:  # the last dpi tried, on the figure's size
        assert image.size == (round(style.MIN_WIDTH * style.DPIS[-1]), round(3.0 * style.DPIS[-1]))
