"""A tiny document model rendered to Markdown here and to HTML in :mod:`fairbench.report.html`.

Every section of the report is built once as a list of blocks, so ``report.md``,
``report.html``, ``table.md`` and ``selection.md`` never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class CodeBlock:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    """A figure saved as ``png`` and ``pdf`` (paths relative to the report folder)."""

    png: str
    pdf: str
    caption: str


@dataclass(frozen=True)
class Links:
    """Links to sibling files of the report (relative paths)."""

    items: list[tuple[str, str]]  # (text, href)


Block = Heading | Paragraph | Bullets | CodeBlock | Table | Image | Links


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, CodeBlock):
            parts.append(f"```\n{block.text}\n```")
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(md_cell(h) for h in block.header) + " |",
                     "|" + "|".join("---" for _ in block.header) + "|"]
            lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in block.rows]
            parts.append("\n".join(lines))
        elif isinstance(block, Image):
            parts.append(f"![{block.caption}]({block.png})\n\n*{block.caption}* ([PDF]({block.pdf}))")
        elif isinstance(block, Links):
            parts.append(" · ".join(f"[{text}]({href})" for text, href in block.items))
    return "\n\n".join(parts) + "\n"
