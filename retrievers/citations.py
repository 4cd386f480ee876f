"""Parse gold citations (《法规》第X条) out of an item's explanation and resolve them to corpus law titles."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

_PRC = "中华人民共和国"
_TITLE = re.compile(r"《([^《》]{2,80})》")
_NUM = r"[零〇一二三四五六七八九十百千两\d]+"
_ARTICLE = re.compile(rf"第({_NUM})条")
# "第十条至第十二条", "第十条到第十二条", "第十条-第十二条"
_RANGE = re.compile(rf"第({_NUM})条\s*(?:至|到|—|-|～|~)\s*第({_NUM})条")
# parentheses holding a version note: （2021年修正）, (试行) is kept as part of the name
_VERSION_NOTE = re.compile(r"[（(][^（）()]*(?:\d{4}|修正|修订|年)[^（）()]*[）)]")
# cited names that are implementing rules of a law, never the law itself
_IMPLEMENTING = ("实施条例", "实施细则", "实施办法", "条例", "细则", "办法", "规定", "解释")
_MAX_RANGE = 30


@dataclass(frozen=True)
class Citation:
    """One cited law (and article, when the explanation names one)."""

    cited: str  # the name as written, without 《》
    title: str | None  # the corpus law title it resolves to, None when not in the corpus
    article_num: int | None = None

    @property
    def law_id(self) -> str | None:
        return self.title

    @property
    def article_id(self) -> str | None:
        if self.title is None or self.article_num is None:
            return None
        return article_id(self.title, self.article_num)


def article_id(title: str, article_num: int) -> str:
    """The id used for article-level retrieval metrics: ``title#num``."""
    return f"{title}#{article_num}"


def _cn_to_int(text: str) -> int | None:
    from retrievers.structure import cn_to_int

    if text.isdigit():
        return int(text)
    try:
        return cn_to_int(text)
    except (ValueError, KeyError):
        return None


def normalize_title(name: str) -> str:
    """Comparable form of a law name: no 中华人民共和国, no inner brackets, version notes or spaces."""
    s = _VERSION_NOTE.sub("", name)
    s = s.replace(_PRC, "")
    for ch in "《》〈〉<>“”\"' 　\t":
        s = s.replace(ch, "")
    return s.strip()


class TitleResolver:
    """Map cited law names (full, abbreviated, with or without 中华人民共和国) to corpus titles."""

    def __init__(self, titles: Iterable[str], aliases: Mapping[str, str] | None = None) -> None:
        self.titles = sorted(set(titles))
        self._keys: dict[str, str] = {}
        for t in self.titles:
            self._keys.setdefault(normalize_title(t), t)
        for alias, title in (aliases or {}).items():  # only aliases of laws the corpus holds
            target = self._keys.get(normalize_title(title))
            if target is not None:
                self._keys.setdefault(normalize_title(alias), target)

    def resolve(self, cited: str) -> str | None:
        """The corpus title for a cited name, or None when the corpus does not hold that law."""
        c = normalize_title(cited)
        if not c:
            return None
        if c in self._keys:
            return self._keys[c]
        best: tuple[int, str] | None = None
        for key, title in self._keys.items():
            if key.endswith(c) or key.startswith(c):
                extra = key[len(c):] if key.startswith(c) else key[: len(key) - len(c)]
            elif c.endswith(key):
                extra = c[: len(c) - len(key)]
            else:
                continue
            # 《安全生产法实施条例》 is not 《安全生产法》; 《民法典》 may be 《民法典合同编》
            if any(extra.endswith(s) for s in _IMPLEMENTING) or len(extra) > 6:
                continue
            cand = (len(extra), title)
            if best is None or cand < best:
                best = cand
        return best[1] if best else None


def _article_tokens(text: str) -> list[tuple[int, int]]:
    """``(position, article number)`` for every article mentioned, ranges expanded."""
    out: list[tuple[int, int]] = []
    covered: list[tuple[int, int]] = []
    for m in _RANGE.finditer(text):
        a, b = _cn_to_int(m.group(1)), _cn_to_int(m.group(2))
        if a is not None and b is not None and 0 < b - a <= _MAX_RANGE:
            out.extend((m.start(), n) for n in range(a, b + 1))
            covered.append(m.span())
    for m in _ARTICLE.finditer(text):
        if any(s <= m.start() < e for s, e in covered):
            continue
        n = _cn_to_int(m.group(1))
        if n is not None and n > 0:
            out.append((m.start(), n))
    return sorted(out)


def parse_citations(explanation: str, resolver: TitleResolver | None = None) -> list[Citation]:
    """All citations in an explanation, in order, without duplicates.

    Each 第X条 belongs to the nearest 《法规》 before it (or, if none precedes it, the first one after it);
    a law named without any article yields one law-only citation.
    """
    if not explanation:
        return []
    titles = [(m.start(), m.group(1)) for m in _TITLE.finditer(explanation)]
    if not titles:
        return []
    articles = _article_tokens(explanation)
    by_title: dict[int, list[int]] = {i: [] for i in range(len(titles))}
    for pos, num in articles:
        before = [i for i, (tpos, _) in enumerate(titles) if tpos < pos]
        owner = before[-1] if before else 0
        by_title[owner].append(num)
    out: list[Citation] = []
    seen: set[tuple[str | None, str, int | None]] = set()
    for i, (_, name) in enumerate(titles):
        title = resolver.resolve(name) if resolver else None
        nums: list[int | None] = list(by_title[i]) or [None]
        for num in nums:
            key = (title, normalize_title(name) if title is None else "", num)
            if key in seen:
                continue
            seen.add(key)
            out.append(Citation(cited=name, title=title, article_num=num))
    # a law-only citation is redundant when the same law is also cited with an article
    with_article = {c.title or normalize_title(c.cited) for c in out if c.article_num is not None}
    return [c for c in out if c.article_num is not None or (c.title or normalize_title(c.cited)) not in with_article]


def corpus_titles(corpus_path: str | Path) -> dict[str, str]:
    """``{title: domain slug}`` read from each corpus file's ``# title`` line, plus manifest short titles.

    Manifests (``<corpus>/manifests/*.yaml`` or ``<corpus>/../manifests``) may list ``title``/``short_title``.
    """
    root = Path(corpus_path)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {root}")
    titles: dict[str, str] = {}
    for f in sorted(root.glob("*/*.md")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                titles.setdefault(line[2:].strip(), f.parent.name)
                break
    return titles


def manifest_aliases(corpus_path: str | Path) -> dict[str, str]:
    """``{short_title: title}`` from manifest yaml files (``laws: [{title, short_title}, ...]``).

    Looked up next to the corpus (``<corpus>/manifests``, ``<corpus>/../manifests``) and in the project's
    ``corpora/manifests``.
    """
    import yaml

    root = Path(corpus_path)
    project = Path(__file__).resolve().parents[1] / "corpora" / "manifests"
    aliases: dict[str, str] = {}
    for d in dict.fromkeys((root / "manifests", root.parent / "manifests", project)):
        for f in sorted(d.glob("*.yaml")) if d.is_dir() else []:
            data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            entries = data.get("laws", data.get("files", data)) if isinstance(data, dict) else data
            if isinstance(entries, dict):
                entries = list(entries.values())
            for e in entries or []:
                if isinstance(e, dict) and e.get("title") and e.get("short_title"):
                    aliases[str(e["short_title"])] = str(e["title"])
    return aliases


def resolver_for_corpus(corpus_path: str | Path) -> TitleResolver:
    """A TitleResolver over the laws of a corpus directory."""
    return TitleResolver(corpus_titles(corpus_path), manifest_aliases(corpus_path))
