"""Render the report's blocks as one self-contained HTML file.

Figures are embedded as base64 PNG so the file can be mailed or archived on its own; the
links to the tables' CSV/LaTeX and the PDFs still work when it sits in the report folder.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

from fairbench.report.document import Block, Bullets, CodeBlock, Heading, Image, Links, Paragraph, Table

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { border-bottom: 2px solid #444; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; }
th { cursor: pointer; } th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; } figcaption { font-style: italic; }
"""


#: click a column header to sort the table by it (numbers as numbers, leading number of "m [q1, q3]"
#: or "m ± s" cells, ∞ last, n/a and empty cells after it); click again to reverse
SORT_SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  var key = function (text) {
    var t = text.trim();
    if (t === "" || t === "n/a") return [3, 0, t];
    if (t.charAt(0) === "\u221e") return [2, 0, t];
    var n = parseFloat(t.replace("\u2212", "-"));
    return isNaN(n) ? [1, 0, t] : [0, n, t];
  };
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[col] ? a.cells[col].textContent : ""), y = key(b.cells[col] ? b.cells[col].textContent : "");
        var c = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) || x[2].localeCompare(y[2]);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def inline(text: str) -> str:
    """Escape, then render the two inline Markdown forms the report uses: **bold** and `code`."""
    html = escape(text)
    html = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html)


def embed_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def block_html(block: Block, folder: Path) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, CodeBlock):
        return f"<pre><code>{escape(block.text)}</code></pre>"
    if isinstance(block, Table):
        head = "".join(f"<th>{inline(h)}</th>" for h in block.header)
        body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Image):
        return (f'<figure><img src="{embed_png(folder / block.png)}" alt="{escape(block.caption)}">'
                f'<figcaption>{inline(block.caption)} (<a href="{escape(block.pdf)}">PDF</a>)</figcaption></figure>')
    if isinstance(block, Links):
        return "<p>" + " · ".join(f'<a href="{escape(h)}">{escape(t)}</a>' for t, h in block.items) + "</p>"
    raise TypeError(f"unknown block {type(block).__name__}")


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    body = "\n".join(block_html(b, folder) for b in blocks)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n<script>{SORT_SCRIPT}</script>\n</body></html>\n")
