"""Turn parsed laws into retrieval chunks: one per article, long articles split (款 boundaries first, with
overlap), tiny consecutive articles of the same chapter merged."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from retrievers.corpus import Corpus, LawDocument

_SENTENCE_END = re.compile(r"(?<=[。；;！？!?])")


@dataclass(frozen=True)
class ChunkConfig:
    max_chars: int = 600  # longest chunk body (the 《title》 prefix is not counted)
    overlap: int = 80  # characters of the previous part repeated at the start of a continuation part
    min_chars: int = 40  # articles shorter than this are merged with a neighbour in the same chapter

    def __post_init__(self) -> None:
        if self.max_chars <= 0 or self.overlap < 0 or self.min_chars < 0:
            raise ValueError(f"invalid ChunkConfig {self}: sizes must be positive")
        if self.overlap >= self.max_chars:
            raise ValueError(f"invalid ChunkConfig {self}: overlap must be smaller than max_chars")


@dataclass
class Chunk:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "metadata": dict(self.metadata)}  # asdict deep-copies: slow


def chunk_id(source: str, article: str, part: int) -> str:
    """Stable id: a hash of (source file, article key, part number)."""
    return hashlib.sha1(f"{source}|{article}|{part}".encode("utf-8")).hexdigest()[:16]


def _pieces(text: str, max_chars: int) -> list[str]:
    """Split one 款 into pieces no longer than max_chars: at sentence ends, then hard cuts."""
    if len(text) <= max_chars:
        return [text]
    out: list[str] = []
    for sent in (s for s in _SENTENCE_END.split(text) if s):
        while len(sent) > max_chars:
            out.append(sent[:max_chars])
            sent = sent[max_chars:]
        out.append(sent)
    return out


def split_paragraphs(paragraphs: list[str], max_chars: int, overlap: int) -> list[str]:
    """Pack paragraphs (款) into parts of at most ``max_chars`` (+ overlap), splitting inside a paragraph
    only when it alone is too long; each part after the first starts with the previous part's last
    ``overlap`` characters."""
    pieces: list[tuple[str, bool]] = []  # (text, starts a new paragraph)
    for para in paragraphs:
        for j, piece in enumerate(_pieces(para, max_chars)):
            pieces.append((piece, j == 0))
    parts: list[str] = []
    cur = ""
    for piece, new_para in pieces:
        sep = "\n" if (cur and new_para) else ""
        if cur and len(cur) + len(sep) + len(piece) > max_chars:
            parts.append(cur)
            cur = piece
        else:
            cur += sep + piece
    if cur:
        parts.append(cur)
    if overlap and len(parts) > 1:
        parts = [parts[0]] + [parts[i - 1][-overlap:] + parts[i] for i in range(1, len(parts))]
    return parts


@dataclass
class _Unit:
    """One article (or loose paragraph block) before merging."""

    key: str
    label: str
    num: int
    suffix: str
    chapter: str
    body: str  # label + text for articles, raw text for loose paragraphs


def _units(doc: LawDocument) -> list[_Unit]:
    law = doc.law
    units = [_Unit(a.label, a.label, a.num, a.suffix, a.chapter, a.text) for a in law.articles]
    for p in law.loose:
        units.append(_Unit(f"p{p.line}", "", 0, "", p.chapter, p.text))
    return units


def _merge_tiny(units: list[_Unit], cfg: ChunkConfig) -> list[list[_Unit]]:
    groups: list[list[_Unit]] = []
    for u in units:
        if groups:
            last = groups[-1]
            size = sum(len(x.body) + 1 for x in last) + len(u.body)
            tiny = len(u.body) < cfg.min_chars or sum(len(x.body) for x in last) < cfg.min_chars
            same = last[-1].chapter == u.chapter and bool(last[-1].label) == bool(u.label)
            if tiny and same and size <= cfg.max_chars:
                last.append(u)
                continue
        groups.append([u])
    return groups


def chunk_document(doc: LawDocument, cfg: ChunkConfig = ChunkConfig()) -> list[Chunk]:
    """Chunks of one law file, in document order."""
    title = doc.law.title
    chunks: list[Chunk] = []
    articles_first = [u for u in _units(doc) if u.label]
    loose = [u for u in _units(doc) if not u.label]
    for group in _merge_tiny(articles_first, cfg) + _loose_groups(loose, cfg):
        head = group[0]
        key = "+".join(u.key for u in group)
        if len(group) == 1:
            paragraphs = head.body.split("\n")
            parts = split_paragraphs(paragraphs, cfg.max_chars, cfg.overlap)
        else:
            parts = ["\n".join(u.body for u in group)]
        for i, part in enumerate(parts):
            prefix = f"《{title}》" + (f"{head.label}（续）" if i and head.label else "")
            cid = chunk_id(doc.source_file, key, i)
            chunks.append(Chunk(cid, prefix + part, {
                "law_title": title,
                "domain": doc.domain,
                "article": head.label,
                "article_num": head.num,
                "article_suffix": head.suffix,
                "articles": [u.label for u in group if u.label],
                "chapter": head.chapter,
                "source_file": doc.source_file,
                "chunk_id": cid,
                "part": i,
                "n_parts": len(parts),
            }))
    return chunks


def _loose_groups(units: list[_Unit], cfg: ChunkConfig) -> list[list[_Unit]]:
    """Paragraphs outside articles: consecutive ones of a chapter packed up to max_chars."""
    if not units:
        return []
    packed = ChunkConfig(cfg.max_chars, cfg.overlap, cfg.max_chars)  # merge whenever it fits
    return _merge_tiny(units, packed)


def chunk_corpus(corpus: Corpus, cfg: ChunkConfig = ChunkConfig()) -> list[Chunk]:
    """All chunks of a corpus; ids are unique (a duplicate means two identical sources)."""
    chunks = [c for doc in corpus.documents for c in chunk_document(doc, cfg)]
    seen: dict[str, Chunk] = {}
    for c in chunks:
        if c.id in seen:
            raise ValueError(f"duplicate chunk id {c.id} for {c.metadata['source_file']} {c.metadata['article']}")
        seen[c.id] = c
    return chunks
