"""Parse a Chinese law text into title, 编/分编/章/节 headings, articles (条), paragraphs (款) and items (项).

Also the Chinese-numeral helpers shared by the retrieval code: ``cn_to_int("一百零二") == 102`` and
``article_label(102) == "第一百零二条"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

INFO_END = "<!-- INFO" + " END -->"  # marker after the promulgation history in LawRefBook files

_DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
           "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUM = "零〇○一二两三四五六七八九十百千万"
_CN_DIGITS = "零一二三四五六七八九"

ARTICLE_RE = re.compile(rf"^第([{_CN_NUM}0-9０-９]+)条(?:之([{_CN_NUM}]+))?(?:\s+|$)(.*)$", re.S)
HEADING_RE = re.compile(rf"^第([{_CN_NUM}0-9]+)(编|分编|章|节)(?:\s+|$)(.*)$")
ITEM_RE = re.compile(rf"^[（(]([{_CN_NUM}]+)[）)]")
_HEADING_RANK = {"编": 0, "分编": 1, "章": 2, "节": 3}
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


class NumeralError(ValueError):
    pass


def cn_to_int(text: str) -> int:
    """Chinese (or Arabic) numeral to int: "十" -> 10, "一百零二" -> 102, "两千零一" -> 2001, "12" -> 12."""
    s = str(text).strip()
    if not s:
        raise NumeralError("empty numeral")
    if s.isdigit():
        return int(s)
    total, section, num = 0, 0, None
    for ch in s:
        if ch in _DIGITS:
            num = _DIGITS[ch]
        elif ch in _UNITS:
            section += (1 if num is None else num) * _UNITS[ch]
            num = None
        elif ch == "万":
            total += (section + (num or 0)) * 10000
            section, num = 0, None
        else:
            raise NumeralError(f"not a Chinese numeral: {text!r}")
    return total + section + (num or 0)


def int_to_cn(n: int) -> str:
    """Int to the numeral used in article labels: 10 -> 十, 12 -> 十二, 102 -> 一百零二, 110 -> 一百一十."""
    if n < 0:
        raise NumeralError(f"negative numeral: {n}")
    if n < 10:
        return _CN_DIGITS[n]
    if n >= 10000:
        high, low = divmod(n, 10000)
        rest = "" if low == 0 else ("零" if low < 1000 else "") + int_to_cn(low)
        return int_to_cn(high) + "万" + rest
    out, zero = [], False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, value)
        if d:
            if zero:
                out.append("零")
            out.append(_CN_DIGITS[d] + unit)
            zero = False
        elif out:
            zero = True
        if n == 0:
            break
    s = "".join(out)
    return s[1:] if s.startswith("一十") else s


def article_label(n: int, suffix: str = "") -> str:
    """``article_label(102) == "第一百零二条"``; ``article_label(10, "之一") == "第十条之一"``."""
    return f"第{int_to_cn(n)}条{suffix}"


def clean_line(line: str) -> str:
    return line.translate(_INVISIBLE).strip()


@dataclass
class Clause:
    """One 款 (paragraph) of an article with the 项 items ((一)(二)...) that follow it."""

    text: str
    items: list[str] = field(default_factory=list)

    @property
    def full_text(self) -> str:
        return "\n".join([self.text, *self.items])


@dataclass
class Article:
    num: int
    suffix: str  # "之一" or ""
    chapter: str  # "第一编 总则 / 第二章 ..." (empty when the law has no headings)
    clauses: list[Clause]
    line: int  # 1-based line in the source file

    @property
    def label(self) -> str:
        return article_label(self.num, self.suffix)

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.num, cn_to_int(self.suffix[1:]) if self.suffix else 0)

    @property
    def paragraphs(self) -> list[str]:
        """The 款 texts (items joined to the clause they belong to); the label is not included."""
        return [c.full_text for c in self.clauses if c.full_text]

    @property
    def text(self) -> str:
        return f"{self.label} " + "\n".join(self.paragraphs)


@dataclass
class Paragraph:
    """Body text outside any article (structure-less files, appendices)."""

    text: str
    chapter: str
    line: int


@dataclass
class ParsedLaw:
    title: str
    preface: list[str]  # promulgation / amendment history, notes
    articles: list[Article]
    loose: list[Paragraph]  # paragraphs not inside an article
    headings: list[str]  # every 编/章/节 heading path seen, in order

    def article_order_problems(self) -> list[str]:
        """Human-readable notes where article numbers do not strictly increase."""
        out = []
        for prev, cur in zip(self.articles, self.articles[1:]):
            if cur.sort_key <= prev.sort_key:
                out.append(f"line {cur.line}: {cur.label} follows {prev.label}")
        return out


def _heading_of(line: str) -> tuple[int, str] | None:
    """(rank, text) for a 编/分编/章/节 heading or any markdown sub-heading; None otherwise."""
    md = re.match(r"^(#{1,6})\s*(.*)$", line)
    text = md.group(2).strip() if md else line
    m = HEADING_RE.match(text)
    if m and (md or len(text) <= 40):
        name = "".join(m.group(3).split())  # "总 则" -> "总则"
        return _HEADING_RANK[m.group(2)], f"第{m.group(1)}{m.group(2)} {name}".strip()
    if md and text:
        return 2, " ".join(text.split())  # an unnumbered markdown heading (e.g. "附则") acts as a chapter
    return None


def parse_law(text: str, fallback_title: str = "") -> ParsedLaw:
    """Parse one law text (LawRefBook markdown or our sample format); never raises on odd structure."""
    lines = text.splitlines()
    title = ""
    preface: list[str] = []
    start = 0
    marker = next((i for i, ln in enumerate(lines) if ln.strip() == INFO_END), None)
    for i, raw in enumerate(lines):
        ln = clean_line(raw)
        if ln:
            if ln.startswith("# "):
                title = ln[2:].strip()
                start = i + 1
            break
    if marker is not None:
        for x in lines[start:marker]:
            x = clean_line(x)
            if x.startswith("# ") and title:  # e.g. "# 中华人民共和国民法典" then "# 合同编"
                title += f"（{x[2:].strip()}）"
            elif x:
                preface.append(x)
        start = marker + 1
    else:  # sample format: "> note" lines right after the title
        while start < len(lines) and (not clean_line(lines[start]) or clean_line(lines[start]).startswith(">")):
            if clean_line(lines[start]):
                preface.append(clean_line(lines[start]).lstrip("> ").strip())
            start += 1

    stack: list[tuple[int, str]] = []
    articles: list[Article] = []
    loose: list[Paragraph] = []
    headings: list[str] = []
    current: Article | None = None
    for i in range(start, len(lines)):
        ln = clean_line(lines[i])
        if not ln or ln == INFO_END:
            continue
        head = _heading_of(ln)
        if head is not None and not ARTICLE_RE.match(ln):
            rank, htext = head
            while stack and stack[-1][0] >= rank:
                stack.pop()
            stack.append((rank, htext))
            headings.append(" / ".join(h for _, h in stack))
            current = None
            continue
        chapter = " / ".join(h for _, h in stack)
        m = ARTICLE_RE.match(ln)
        if m:
            num = cn_to_int(m.group(1).translate(str.maketrans("０１２３４５６７８９", "0123456789")))
            suffix = f"之{m.group(2)}" if m.group(2) else ""
            body = m.group(3).strip()
            current = Article(num, suffix, chapter, [Clause(body)] if body else [], i + 1)
            articles.append(current)
        elif current is not None and ITEM_RE.match(ln) and current.clauses:
            current.clauses[-1].items.append(ln)
        elif current is not None:
            current.clauses.append(Clause(ln))
        else:
            loose.append(Paragraph(ln, chapter, i + 1))
    return ParsedLaw(title or fallback_title, preface, articles, loose, headings)
