"""The report writer: a document is a list of blocks, rendered to Markdown (:func:`to_markdown`) and
to a self-contained HTML page (:func:`to_html`) from the same blocks.

Blocks hold text with Markdown inline marks (``**bold**``, ```code```) and tables of
already formatted cells; they hold no numbers to format and no verdicts to decide.
"""

from __future__ import annotations

import base64
import html
import re
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
class Note:
    """A boxed paragraph at the head of a report ("how to read this"); a block quote in Markdown."""

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
    """An image, ``path`` relative to the document's folder, with an optional caption (Markdown inline marks)."""

    path: str
    alt: str
    caption: str = ""


Block = Heading | Paragraph | Note | Bullets | Table | Figure


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
        elif isinstance(b, Note):
            out += [f"> {b.text}", ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            out += [_markdown_table(b.rows)]
        elif isinstance(b, Figure):
            out += [f"![{b.alt}]({b.path})", ""] + ([f"*{b.caption}*", ""] if b.caption else [])
    return "\n".join(out)


_EMPHASIS = [(re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
             (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>")]
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222;"
          "line-height:1.4}h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;margin-top:1.8em}"
          ".scroll{overflow-x:auto}table{border-collapse:collapse;font-size:0.85em;margin:0.8em 0}"
          "th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}"
          "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
          "th{background:#f3f3f3;position:sticky;top:0}tbody tr:nth-child(even){background:#fafafa}"
          "code{background:#f3f3f3;padding:0 0.2em;word-break:break-all}"
          "figure{margin:1.2em 0}img{max-width:100%;height:auto}figcaption{font-size:0.85em;color:#555}"
          ".lead{background:#f6f8fa;border-left:4px solid #888;padding:0.6em 1em}"
          "@media print{body{max-width:none;margin:0}h2{break-after:avoid}figure,table{break-inside:avoid}"
          "th{position:static}.scroll{overflow:visible}}")
_NUMERIC = re.compile(r"^(\*\*)?(≤ )?[−+-]?[\d.]+(e[+-]?\d+)?(\*\*)?( ± [\d.e+-]+)?(\*\*)?( \(n = \d+\))?$")


def _inline(text: str) -> str:
    """Escape ``text`` for HTML, then turn its Markdown inline marks (code, bold, italics) into tags."""
    parts = re.split(r"(`[^`]+`)", str(text))  # code spans keep their content verbatim
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            esc = html.escape(part)
            for pattern, repl in _EMPHASIS:
                esc = pattern.sub(repl, esc)
            out.append(esc)
    return "".join(out)


def _html_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "<p><em>no rows</em></p>"
    cols = list(rows[0])
    head = "".join(f"<th>{_inline(c)}</th>" for c in cols)

    def cell(v) -> str:
        v = str(v)
        return f'<td class="num">{_inline(v)}</td>' if _NUMERIC.match(v) else f"<td>{_inline(v)}</td>"

    body = "".join("<tr>" + "".join(cell(r.get(c, "–")) for c in cols) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'



def _html_figure(fig: Figure, base: Path) -> str:
    path = base / fig.path
    if not path.is_file():
        return f"<p><em>missing figure: {html.escape(fig.path)}</em></p>"
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(
        path.suffix.lower(), "application/octet-stream")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cap = f"<figcaption>{_inline(fig.caption)}</figcaption>" if fig.caption else ""
    return f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(fig.alt)}">{cap}</figure>'


def to_html(doc: Document, base: Path | str = ".") -> str:
    """The document as one self-contained HTML page: text escaped, figures embedded as data URIs
    (read from ``base``, the document's folder), no external resources."""
    base = Path(base)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(re.sub(r'[`*]', '', doc.title))}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{_inline(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            level = min(6, max(2, b.level))
            out.append(f"<h{level}>{_inline(b.text)}</h{level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Note):
            out.append(f'<p class="lead">{_inline(b.text)}</p>')
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in b.items) + "</ul>")
        elif isinstance(b, Table):
            out.append(_html_table(b.rows))
        elif isinstance(b, Figure):
            out.append(_html_figure(b, base))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
