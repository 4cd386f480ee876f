"""Read a regulation corpus: one sub-folder per domain slug holding .md/.txt law texts.

Every problem (unknown folder, undecodable or empty file, file without 第X条 articles, article numbers out
of order, a symlink that leads outside the corpus folder) is recorded in a :class:`CorpusReport` instead of
being dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qualbench.domains import DOMAIN_SLUGS, UnknownDomainError, domain_slug
from qualbench.errors import QualBenchError
from retrievers.structure import ParsedLaw, parse_law

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".md", ".txt")
SKIP_NAMES = {"SOURCES.md", "README.md", "LICENSE.md"}


class CorpusError(QualBenchError, ValueError):
    """A corpus that cannot be used: the app prints it as one line (no traceback)."""


def display_path(path: str | Path) -> str:
    """A path safe to print, log and write as UTF-8: bytes that are not UTF-8 in a file name (held by Python
    as surrogate escapes) are shown as ``\\xff``."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def _utf8_name(rel: Path) -> bool:
    try:
        rel.as_posix().encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def _candidates(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if (p.is_file() or p.is_symlink()) and p.suffix.lower() in TEXT_SUFFIXES
                  and p.name not in SKIP_NAMES and not any(x.startswith(".") for x in p.relative_to(root).parts))


def _escape(path: Path, real_root: Path) -> str | None:
    """Why ``path`` (a symlink, or under one) is refused, or None if it resolves inside ``real_root``."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        return f"symlink cannot be resolved ({type(e).__name__}); skipped"
    if not target.is_relative_to(real_root):
        return f"resolves outside the corpus folder (-> {display_path(target)}); skipped"
    if not target.is_file():
        return "not a regular file; skipped"
    return None


def scan_corpus(root: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(law files under ``root`` in a stable order, [(refused file, reason)]): files whose real path is
    outside the corpus root (e.g. ``passwd.md -> /etc/passwd``) are refused and never read."""
    root = Path(root)
    if not root.exists():
        raise CorpusError(f"corpus directory not found: {display_path(root)} (set corpus.path to a folder of "
                          "<domain slug>/*.md law files)")
    if not root.is_dir():
        raise CorpusError(f"corpus.path is a file, not a folder: {display_path(root)} (expected a folder of "
                          "<domain slug>/*.md law files)")
    real_root = root.resolve()
    ok, refused = [], []
    try:
        candidates = _candidates(root)
    except OSError as e:
        raise CorpusError(f"corpus folder {display_path(root)} cannot be read: {e.strerror or e}") from None
    for p in candidates:
        if not _utf8_name(p.relative_to(root)):
            refused.append((p, "file name is not valid UTF-8 (the bytes that are not are shown as \\xNN); "
                               "rename the file; skipped"))
            continue
        reason = _escape(p, real_root)
        if reason is None:
            ok.append(p)
        else:
            refused.append((p, reason))
    return ok, refused


def corpus_files(root: str | Path) -> list[Path]:
    """The law files under ``root`` in a stable order (domain folder, then file name); refused symlinks
    (see :func:`scan_corpus`) are left out."""
    return scan_corpus(root)[0]


def corpus_hash(root: str | Path) -> str:
    """sha256 over every law file's relative name and bytes (and the names of refused files)."""
    root = Path(root)
    h = hashlib.sha256()
    ok, refused = scan_corpus(root)
    for p in ok:
        h.update(p.relative_to(root).as_posix().encode("utf-8") + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    for p, _ in refused:
        h.update(b"refused\0" + os.fsencode(p.relative_to(root).as_posix()) + b"\0")
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
    report = CorpusReport(display_path(root))
    docs: list[LawDocument] = []
    files, refused = scan_corpus(root)
    for path, reason in refused:
        report.n_files += 1
        if strict:
            raise CorpusError(f"{display_path(path)}: {reason}")
        report.add(display_path(path.relative_to(root).as_posix()), "error", reason)
    for path in files:
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
        where = display_path(root)
        if not report.n_files:
            raise CorpusError(f"corpus folder {where} holds no .md/.txt law files "
                              "(expected <root>/<domain slug>/*.md)")
        unknown = sorted({i.file.split("/")[0] for i in report.errors if "unknown domain folder" in i.message})
        hint = (f"; unknown domain folder(s) {', '.join(map(repr, unknown))}: name them by domain slug "
                f"({', '.join(DOMAIN_SLUGS)}) or Chinese name" if unknown else "")
        first = report.issues[0] if report.issues else None
        raise CorpusError(f"no usable law files under {where}: {report.n_files} file(s), all skipped{hint}"
                          + (f"; first: {first.file}: {first.message}" if first and not unknown else ""))
    log.info("corpus %s: %s", display_path(root), report.summary())
    return Corpus(root, docs, report)
