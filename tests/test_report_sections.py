"""The report's sections rendered to Markdown and to HTML: the same headings, notes, tables and images in both."""

import base64
import re

import pytest

from qualbench import plotting
from qualbench.report.html import render_html
from qualbench.report.leaderboard import Table
from qualbench.report.sections import Section, render_markdown


def _headings_md(md: str) -> list[tuple[int, str]]:
    return [(len(m.group(1)), m.group(2)) for m in re.finditer(r"^(#{2,6}) (.+)$", md, flags=re.M)]


def _headings_html(page: str) -> list[tuple[int, str]]:
    return [(int(m.group(1)), m.group(2)) for m in re.finditer(r"<h([2-6])>(.+?)</h\1>", page)]


@pytest.fixture
def sections(tmp_path):
    png = plotting.lines({"a": ([1, 2, 3], [0.2, 0.4, 0.5])}, tmp_path / "figs" / "curve.png", xlabel="round")
    table = Table(["run", "消防", "n"], [["bm25", 0.5, 10], ["dense", 0.625, 10]], pct_cols=("消防",))
    study = "# Crowd study\n\n- tie rule: lowest index\n\n| method | acc |\n|---|---|\n| majority_vote | 41.0 |\n"
    return [
        Section("Leaderboard (2 runs)", "leaderboard", notes=["Columns: the differing `config` values."],
                tables=[("", table), ("Per domain", table)]),
        Section("Plots", images=[png]),
        Section("Study: crowd", markdown=study),
    ]


def test_markdown_and_html_render_the_same_sections(sections, tmp_path):
    md = render_markdown(sections, tmp_path, title="T")
    page = render_html(sections, title="T")
    assert md.startswith("# T\n") and "<h1>T</h1>" in page
    want = [(2, "Leaderboard (2 runs)"), (3, "Per domain"), (2, "Plots"), (2, "Study: crowd"), (3, "Crowd study")]
    assert _headings_md(md) == want == _headings_html(page)  # the study's own "#" sits under its section
    assert "Columns: the differing `config` values." in md
    assert '<p class="note">Columns: the differing <code>config</code> values.</p>' in page
    for cell in ("bm25", "62.5", "majority_vote", "41.0"):
        assert f"| {cell} |" in md and f"<td>{cell}</td>" in page
    assert md.count("| run | 消防 % | n |") == 2
    assert page.count('<table class="leaderboard">') == 2 and "<br><small>fire_safety</small>" in page
    assert "<li>tie rule: lowest index</li>" in page and "- tie rule: lowest index" in md


def test_an_image_section_references_the_png_it_was_given(sections, tmp_path):
    png = sections[1].images[0]
    md = render_markdown(sections, tmp_path)
    links = re.findall(r"!\[([^]]*)\]\(([^)]+)\)", md)
    assert links == [("curve", "figs/curve.png")]
    assert (tmp_path / links[0][1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = render_html(sections, title="T")
    data = re.findall(r'<img alt="curve" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert [base64.b64decode(d) for d in data] == [png.read_bytes()]
    # a report folder elsewhere links the same file by a relative path that still resolves
    other = tmp_path / "out" / "deep"
    other.mkdir(parents=True)
    (link,) = re.findall(r"\]\(([^)]+)\)", render_markdown(sections[1:2], other))
    assert (other / link).resolve() == png.resolve()


def test_markdown_without_a_title_is_the_sections_alone(sections, tmp_path):
    one = render_markdown(sections[:1], tmp_path)
    assert one.startswith("## Leaderboard (2 runs)\n") and "## Plots" not in one and one.endswith("|\n")
