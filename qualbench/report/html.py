"""The HTML renderer of the report's sections: one self-contained page (images as base64 data URIs, no external
assets)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Sequence

from qualbench.formatting import ascii_name
from qualbench.report.leaderboard import Table
from qualbench.report.sections import Section

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f3f7}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;margin-top:2em}
p.note{color:#555;font-size:13px}
tr.reference td{background:#f4f4f4;font-style:italic;color:#444}
tr.labels td{background:#fff1d6}
tr.group td{font-weight:600;border-top:2px solid #999}
tr.seed td{color:#444}tr.seed td:first-child{padding-left:2em}
"""


def _head(h: str, base: str | None = None) -> str:
    """A header cell; Chinese domain/type names (``base``: the name without its unit, e.g. ``消防`` of ``消防 %``)
    get their English slug below (readable without CJK fonts)."""
    cell = html.escape(h)
    base = h if base is None else base
    slug = None if base.isascii() else ascii_name(base)
    if slug:
        cell += f"<br><small>{slug}</small>"
    return f"<th>{cell}</th>"


def _tr(kind: str) -> str:
    """Row markup: reference rows and rows of models that read the evaluated labels get their own class."""
    if kind == "reference":
        return '<tr class="reference" title="reference row computed from the evaluated items, not a model">'
    if kind == "labels":
        return '<tr class="labels" title="this model read the evaluated items\' labels">'
    if kind == "group":
        return '<tr class="group" title="mean ± sample sd over the seeds listed below">'
    if kind == "seed":
        return '<tr class="seed" title="one seed of the group above">'
    return "<tr>"


def table_html(table: Table, cls: str = "") -> str:
    head = "".join(_head(d, h) for d, h in zip(table.display_header(), table.header))
    kinds = table.row_kinds or [""] * len(table.rows)
    body = "".join(
        _tr(k) + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for k, row in zip(kinds, table.formatted())
    )
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img_html(path: str | Path, alt: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _inline(s: str) -> str:
    s = html.escape(s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def markdown_html(md: str) -> str:
    """The small Markdown subset our study files use: headings, pipe tables, bullet lists, paragraphs."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[i].strip())[1:-1]]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                    rows.append([c.replace("\\|", "|") for c in cells])
                i += 1
            if rows:
                head = "".join(_head(c) for c in rows[0])
                body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            continue
        m = re.match(r"(#{1,6})\s+(.*)", line)
        if m:
            level = min(6, len(m.group(1)) + 2)  # study files sit under the page's <h2> sections
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def section_html(section: Section) -> str:
    """One section as HTML: ``<h2>`` title, notes, tables (``<h3>`` headings), Markdown body, embedded images."""
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    parts += [f'<p class="note">{_inline(n)}</p>' for n in section.notes]
    for heading, table in section.tables:
        parts += ([f"<h3>{html.escape(heading)}</h3>"] if heading else []) + [table_html(table, section.name)]
    if section.markdown:
        parts.append(markdown_html(section.markdown))
    parts += [img_html(p, p.stem) for p in section.images]
    return "\n".join(parts)


def render_html(sections: Sequence[Section], title: str) -> str:
    """The sections as one self-contained HTML page under ``<h1>title</h1>``."""
    body = "\n".join(section_html(s) for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
