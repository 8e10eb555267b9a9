"""Colours and figure output shared by every figure.

* Methods keep one colour in every figure and every report: a fixed map from the method
  name (Okabe–Ito, colour-blind safe; yellow left out, it vanishes on white), and for names
  not in the map a colour from Paul Tol's *muted* scheme chosen by a stable hash of the name.
* Series inside one panel (groups, constraints) use Tol's *bright* scheme, with line styles
  cycling once the colours run out.
* Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
  global state, works headless) and saved as PNG (kept under :data:`PNG_LIMIT` bytes by
  lowering the dpi) and PDF.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from textwrap import fill

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

METHOD_COLORS = {
    "sgd": "#000000",           # black
    "sgd_penalized": "#E69F00",  # orange
    "sgd_fairret": "#CC79A7",   # reddish purple
    "alm": "#56B4E9",           # sky blue
    "ssl_alm": "#0072B2",       # blue
    "ghost": "#009E73",         # bluish green
    "ssw": "#D55E00",           # vermillion
    "pbm": "#882255",           # wine (Tol muted)
    "ialm": "#44AA99",          # teal
    "nupi": "#999933",          # olive
    "gda": "#AA4499",           # purple
    "extragradient": "#DDCC77",  # sand
}
TOL_MUTED = ("#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499")
TOL_BRIGHT = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB")
LINESTYLES = ("-", "--", ":", "-.")
REFERENCE = "#555555"
PNG_LIMIT = 300_000
DPIS = (110, 90, 72, 56)
#: a lower dpi is not tried when the size scaled by the pixel count stays above this many limits
SKIP_MARGIN = 1.1
MIN_WIDTH = 7.0


def method_color(name: str) -> str:
    """The colour of a method (``algo`` or ``algo/problem``), the same in every figure."""
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    return TOL_MUTED[zlib.crc32(name.encode("utf-8")) % len(TOL_MUTED)]


def series_style(index: int) -> dict[str, str]:
    """Colour and line style of the ``index``-th series within a panel."""
    return {"color": TOL_BRIGHT[index % len(TOL_BRIGHT)],
            "linestyle": LINESTYLES[(index // len(TOL_BRIGHT)) % len(LINESTYLES)]}


def new_figure(width: float, height: float) -> Figure:
    """A figure at least :data:`MIN_WIDTH` inches wide, so titles and legends fit one column."""
    fig = Figure(figsize=(max(width, MIN_WIDTH), height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def set_title(fig: Figure, text: str) -> None:
    fig.suptitle(fill(text, 100), fontsize=10)


def save_figure(fig: Figure, folder: Path, stem: str) -> tuple[str, str]:
    """Write ``stem.png`` (under 300 KB) and ``stem.pdf``; return their names.

    The PNG is saved at the first of :data:`DPIS` at which it is under :data:`PNG_LIMIT`. A
    PNG's size falls no faster than its pixel count, so a save at ``d0`` of ``s`` bytes puts
    the size at a lower ``d`` at about ``s (d / d0)^2`` or more: a dpi for which that is over
    :data:`SKIP_MARGIN` times the limit is skipped without rendering (the last one is always
    saved). The constrained layout is computed once, by the first save, and kept for the
    others (a lower dpi, the PDF): re-running it made up much of each later save."""
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{stem}.png", folder / f"{stem}.pdf"
    size, saved_at = None, None
    for i, dpi in enumerate(DPIS):
        if size is not None and i < len(DPIS) - 1 and size * (dpi / saved_at) ** 2 > SKIP_MARGIN * PNG_LIMIT:
            continue
        fig.savefig(png, dpi=dpi)
        fig.set_layout_engine("none")  # (keeps the axes where the layout put them)
        size, saved_at = png.stat().st_size, dpi
        if size < PNG_LIMIT:
            break
    fig.savefig(pdf)
    return png.name, pdf.name
