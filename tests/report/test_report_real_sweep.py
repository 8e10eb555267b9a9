"""The report of a real (small, synthetic) multirun made by the ``fairbench`` command."""

import json
import subprocess
import sys

from fairbench.report import cli


def test_report_of_a_real_synthetic_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "fairbench", "-m", "algo=sgd,ssl_alm", "seeds=[0,1]", "budget.iterations=200",
         "log_every=50", f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert cli.main([str(sweep), "--quiet"]) == 0
    out = sweep / "report"
    for name in ("table.md", "table.tex", "table.csv", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0
    for stem in ("fig1_trajectories_iterations", "fig1_trajectories_time", "fig3_scores", "fig4_radar"):
        assert len(list((out / "figures").glob(f"{stem}_*.png"))) == 1, stem
    table = (out / "table.md").read_text()
    assert "synthetic" in (out / "report.md").read_text().lower()
    for algo in ("sgd", "ssl_alm"):
        run = next(p for p in sweep.iterdir() if p.name.startswith(f"algo={algo},"))
        test_loss = json.loads((run / "summary.json").read_text())["test"]["loss"]["mean"]
        assert f"{test_loss:.4f}" in table
