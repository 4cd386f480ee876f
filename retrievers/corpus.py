"""Read a regulation corpus: one sub-folder per domain slug holding .md/.txt law texts.

Every problem (unknown folder, undecodable or empty file, file without 第X条 articles, article numbers out
of order) is recorded in a :class:`CorpusReport` instead of being dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qualbench.domains import UnknownDomainError, domain_slug
from retrievers.structure import ParsedLaw, parse_law

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".md", ".txt")
SKIP_NAMES = {"SOURCES.md", "README.md", "LICENSE.md"}


class CorpusError(ValueError):
    pass


@dataclass
class FileIssue:
    file: str  # path relative to the corpus root
    level: str  # "warning" (file used) | "error" (file skipped)
    message: str


@dataclass
class CorpusReport:
    root: str
    n_files: int = 0
    n_used: int = 0
    n_articles: int = 0
    issues: list[FileIssue] = field(default_factory=list)

    def add(self, file: str, level: str, message: str) -> None:
        self.issues.append(FileIssue(file, level, message))
        (log.error if level == "error" else log.warning)("%s: %s", file, message)

    @property
    def errors(self) -> list[FileIssue]:
        return [i for i in self.issues if i.level == "error"]

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    def summary(self) -> str:
        return (f"{self.n_used}/{self.n_files} files, {self.n_articles} articles, "
                f"{len(self.errors)} errors, {len(self.issues) - len(self.errors)} warnings")


@dataclass
class LawDocument:
    domain: str  # slug
    source_file: str  # path relative to the corpus root, POSIX style
    law: ParsedLaw


@dataclass
class Corpus:
    root: Path
    documents: list[LawDocument]
    report: CorpusReport

    @property
    def domains(self) -> list[str]:
        return sorted({d.domain for d in self.documents})


def corpus_files(root: str | Path) -> list[Path]:
    """The law files under ``root`` in a stable order (domain folder, then file name)."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"corpus directory not found: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                  and p.name not in SKIP_NAMES and not any(x.startswith(".") for x in p.relative_to(root).parts))


def corpus_hash(root: str | Path) -> str:
    """sha256 over every law file's relative name and bytes."""
    root = Path(root)
    h = hashlib.sha256()
    for p in corpus_files(root):
        h.update(p.relative_to(root).as_posix().encode("utf-8") + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def decode_bytes(data: bytes, name: str, allow_gb18030: bool = True) -> tuple[str, str | None]:
    """Decode UTF-8 (with or without BOM), else GB18030/GBK when allowed; returns (text, warning)."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        utf8_error = e
    if allow_gb18030:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            pass
        else:
            cjk = sum("\u4e00" <= c <= "\u9fff" for c in text)
            if cjk >= max(1, len(text) // 10):
                return text, "not UTF-8; decoded as GB18030/GBK (convert it to UTF-8)"
    raise CorpusError(f"{name}: not valid UTF-8 ({utf8_error.reason} at byte {utf8_error.start})"
                      + ("" if allow_gb18030 else "; GB18030 fallback disabled")
                      + " and not GB18030/GBK Chinese text; convert the file to UTF-8")


def read_corpus(root: str | Path, allow_gb18030: bool = True, strict: bool = False) -> Corpus:
    """Parse every law file under ``root``/<domain slug>/; ``strict`` raises on the first error issue."""
    root = Path(root)
    report = CorpusReport(str(root))
    docs: list[LawDocument] = []
    for path in corpus_files(root):
        rel = path.relative_to(root).as_posix()
        report.n_files += 1

        def fail(msg: str) -> None:
            if strict:
                raise CorpusError(f"{path}: {msg}")
            report.add(rel, "error", msg)

        parts = path.relative_to(root).parts
        if len(parts) < 2:
            fail("file is not inside a domain folder (<root>/<domain slug>/file.md); skipped")
            continue
        try:
            slug = domain_slug(parts[0])
        except UnknownDomainError as e:
            fail(f"unknown domain folder {parts[0]!r} ({e}); skipped")
            continue
        try:
            text, warning = decode_bytes(path.read_bytes(), rel, allow_gb18030)
        except CorpusError as e:
            fail(f"{e}; skipped".removeprefix(f"{rel}: "))
            continue
        if warning:
            report.add(rel, "warning", warning)
        if not text.strip():
            fail("empty file; skipped")
            continue
        law = parse_law(text, fallback_title=path.stem)
        if not law.articles and not law.loose:
            fail("no body text after the title/preface; skipped")
            continue
        if not law.articles:
            report.add(rel, "warning", "no 第X条 articles found; chunked by paragraph with article=''")
        for problem in law.article_order_problems():
            report.add(rel, "warning", f"article numbers not increasing: {problem}")
        if not law.title or law.title == path.stem and not text.lstrip().startswith("# "):
            report.add(rel, "warning", f"no '# title' on line 1; using the file name {path.stem!r}")
        docs.append(LawDocument(slug, rel, law))
        report.n_used += 1
        report.n_articles += len(law.articles)
    if not docs:
        raise CorpusError(f"no usable law files under {root} (expected <root>/<domain slug>/*.md); "
                          f"issues: {[asdict(i) for i in report.issues][:5]}")
    log.info("corpus %s: %s", root, report.summary())
    return Corpus(root, docs, report)
