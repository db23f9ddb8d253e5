"""The report writer: a document is a list of blocks, rendered to Markdown (and, by the same
blocks, to any other format).

Blocks hold text with Markdown inline marks (``**bold**``, ```code```) and tables of
already formatted cells; they hold no numbers to format and no verdicts to decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    """A section title; ``level`` 1 is the document title."""

    text: str
    level: int = 2


@dataclass
class Paragraph:
    """A paragraph of text with Markdown inline marks."""

    text: str


@dataclass
class Bullets:
    """A bulleted list, one item per entry."""

    items: list[str]


@dataclass
class Table:
    """A table: every row maps the same column names to formatted cells (strings)."""

    rows: list[dict[str, str]]


@dataclass
class Figure:
    """An image, ``path`` relative to the document's folder."""

    path: str
    alt: str


Block = Heading | Paragraph | Bullets | Table | Figure


@dataclass
class Document:
    """A report: a title and its blocks, in order."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Document:
        self.blocks.extend(blocks)
        return self


def _markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_no rows_\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r.get(c, "–")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_markdown(doc: Document) -> str:
    """The document as GitHub-flavoured Markdown."""
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * max(2, b.level) + f" {b.text}", ""]
        elif isinstance(b, Paragraph):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            out += [_markdown_table(b.rows)]
        elif isinstance(b, Figure):
            out += [f"![{b.alt}]({b.path})", ""]
    return "\n".join(out)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`bench.results.atomic_write`); returns ``path``."""
    from bench import results

    return results.write_text(path, text)
