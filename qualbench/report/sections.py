"""The report as one list of sections, and its Markdown renderer (the HTML one is :mod:`qualbench.report.html`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from qualbench.report.leaderboard import Table


@dataclass
class Section:
    """One ``##`` part of the report, its parts in this order: notes (paragraphs, inline Markdown), tables (each
    under an optional ``###`` heading), a Markdown body (a study file, a job list) and PNG images. ``name`` is the
    HTML class of its tables (``leaderboard``, ``by_domain``, ...)."""

    title: str
    name: str = ""
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)
    markdown: str = ""
    images: list[Path] = field(default_factory=list)


def demote_headings(md: str, levels: int = 2) -> str:
    """``# x`` → ``### x``: a section's Markdown body sits under the report's ``##`` section headings."""
    return re.sub(r"^(#{1,6})(?=\s)", lambda m: "#" * min(6, len(m.group(1)) + levels), md, flags=re.M)


def section_markdown(section: Section, base: Path) -> list[str]:
    """One section as Markdown lines; images are linked relative to ``base`` (the folder of the .md file)."""
    out = [f"## {section.title}", ""]
    for note in section.notes:
        out += [note, ""]
    for heading, table in section.tables:
        out += ([f"### {heading}", ""] if heading else []) + [table.to_markdown()]
    if section.markdown:
        out += [demote_headings(section.markdown).rstrip("\n"), ""]
    if section.images:
        out += [f"![{p.stem}]({Path(os.path.relpath(p, base)).as_posix()})" for p in section.images] + [""]
    return out


def render_markdown(sections: Sequence[Section], base: Path, title: str | None = None) -> str:
    """The sections as one Markdown document (under ``# title`` when given)."""
    lines = [f"# {title}", ""] if title else []
    for s in sections:
        lines += section_markdown(s, base)
    return "\n".join(lines).rstrip("\n") + "\n"
