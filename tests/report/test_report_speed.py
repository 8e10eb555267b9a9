"""The report's faster paths give what the plain ones gave: trajectory bands without pandas,
a PNG saved at the same dpi with fewer renders, a sweep's multirun.yaml parsed once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairbench.report import style
from fairbench.report.trajectories import TIME_POINTS, band


def reference_band(frames, x, y):
    """The band as the report computed it with pandas."""
    curves = []
    for frame in frames:
        clean = frame[[x, y]].replace([np.inf, -np.inf], np.nan).dropna().drop_duplicates(x, keep="last")
        if len(clean):
            curves.append(clean.sort_values(x))
    if not curves:
        return None
    end = min(c[x].iloc[-1] for c in curves)
    if x == "iteration":
        grid = np.unique(np.concatenate([c[x].to_numpy(dtype=float) for c in curves]))
        grid = grid[grid <= end]
    else:
        grid = np.linspace(min(c[x].iloc[0] for c in curves), end, TIME_POINTS)
    values = np.vstack([np.interp(grid, c[x].to_numpy(dtype=float), c[y].to_numpy(dtype=float)) for c in curves])
    q25, q75 = np.percentile(values, [25, 75], axis=0)
    return grid, values.mean(axis=0), q25, q75


def trajectory(rng, n: int) -> pd.DataFrame:
    iteration = np.sort(rng.choice(np.arange(0, 40 * n, 10), size=n)).astype(np.int64)  # repeats: a resumed log
    frame = pd.DataFrame({"iteration": iteration, "train_seconds": np.cumsum(rng.random(n)),
                          "train_loss": rng.random(n), "train_c0": rng.standard_normal(n)})
    frame.loc[rng.random(n) < 0.15, "train_loss"] = np.nan
    frame.loc[rng.random(n) < 0.1, "train_c0"] = np.inf
    frame.loc[rng.random(n) < 0.05, "train_c0"] = -np.inf
    return frame.sample(frac=1.0, random_state=int(rng.integers(1000))) if rng.random() < 0.5 else frame


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("x", ["iteration", "train_seconds"])
def test_band_equals_the_pandas_computation(seed, x):
    rng = np.random.default_rng(seed)
    frames = [trajectory(rng, int(rng.integers(1, 30))) for _ in range(int(rng.integers(1, 5)))]
    for y in ("train_loss", "train_c0"):
        got, want = band(frames, x, y), reference_band(frames, x, y)
        assert (got is None) == (want is None)
        if want is not None:
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)
    empty = pd.DataFrame({"iteration": [0, 10], "train_seconds": [0.0, 1.0], "train_loss": [np.nan, np.inf]})
    assert band([empty], x, "train_loss") is None and reference_band([empty], x, "train_loss") is None


def busy_figure(points: int):
    fig = style.new_figure(7.0, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(points)
    for k in range(6):
        ax.plot(rng.random(points), rng.random(points), linewidth=0.5)
    return fig


@pytest.mark.parametrize("limit", [1, 20_000, 60_000, 120_000, 400_000])
def test_the_png_is_saved_at_the_first_dpi_under_the_limit(tmp_path, monkeypatch, limit):
    """What the exhaustive loop (every dpi in turn) chose: the same dpi, the same bytes."""
    monkeypatch.setattr(style, "PNG_LIMIT", limit)
    reference = busy_figure(400)
    reference.savefig(tmp_path / "layout.png", dpi=style.DPIS[0])
    reference.set_layout_engine("none")
    sizes = {}
    for dpi in style.DPIS:
        reference.savefig(tmp_path / f"ref_{dpi}.png", dpi=dpi)
        sizes[dpi] = (tmp_path / f"ref_{dpi}.png").stat().st_size
    expected = next((d for d in style.DPIS if sizes[d] < limit), style.DPIS[-1])
    saves = []
    fig = busy_figure(400)
    savefig = fig.savefig
    monkeypatch.setattr(fig, "savefig", lambda path, **kw: (saves.append(kw.get("dpi")), savefig(path, **kw))[1])
    png, _ = style.save_figure(fig, tmp_path / "figures", "f")
    with Image.open(tmp_path / "figures" / png) as image:
        assert round(image.info["dpi"][0]) == expected
    assert (tmp_path / "figures" / png).read_bytes() == (tmp_path / f"ref_{expected}.png").read_bytes()
    assert len(saves) <= style.DPIS.index(expected) + 2  # the PNGs tried, then the PDF
    if limit == 1:  # nothing fits: the first and the last dpi only, then the PDF
        assert saves == [style.DPIS[0], style.DPIS[-1], None]


def test_a_sweeps_multirun_file_is_read_once_and_again_when_it_changes(tmp_path, monkeypatch):
    import yaml

    from fairbench.report import collect

    path = tmp_path / "multirun.yaml"
    path.write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["algo=sgd,ssw", "seeds=[0]"]}}}))
    loads = []
    safe_load = yaml.safe_load
    monkeypatch.setattr(collect.yaml, "safe_load", lambda text: (loads.append(1), safe_load(text))[1])
    assert collect.swept_keys(path) == ("algo",) and collect.swept_keys(path) == ("algo",)
    assert len(loads) == 1
    path.write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["algo=sgd,ssw", "algo.lr=0.1,0.2,0.3"]}}}))
    assert collect.swept_keys(path) == ("algo", "algo.lr") and len(loads) == 2
    assert collect.swept_keys(tmp_path / "missing.yaml") is None
