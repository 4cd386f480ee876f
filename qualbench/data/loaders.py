"""Read QualBench items from the official JSON list, JSON Lines, the bundled sample or the HF hub.

Every loader yields ``RawRecord``s (the raw dict plus where it came from); ``qualbench.data.cleaning``
turns them into canonical ``Question``s, dropping or rejecting bad ones with a report.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from qualbench.errors import DataError

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "resources" / "sample"


@dataclass
class RawRecord:
    data: dict[str, Any]
    source: str  # "path:line" (JSONL, or JSON where the line is known) or "path#record N"
    error: str | None = None  # set when the record could not be read (bad JSON line, not an object)


WRAPPER_KEYS = ("data", "questions", "items")  # {"data": [...]} files
# Encodings Chinese exam banks come in, tried after UTF-8 when charset-normalizer is unsure.
CHINESE_FALLBACKS = ("gb18030", "big5")


def read_text(path: str | Path, encoding: str | None = None) -> str:
    """A text file's contents: ``encoding`` if given, else UTF-8 (BOM allowed), else the detected encoding.

    GBK/GB2312 detections are read as GB18030 (its superset). Undecodable or empty files raise a
    ``DataError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError:
            raise DataError(f"{path}: unknown data.encoding {encoding!r}") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not valid {encoding} at byte {e.start}; set data.encoding to the file's encoding") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        first_bad = utf8_error.start
    for enc in _detect(raw):
        try:
            return raw.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    raise DataError(
        f"{path}: not UTF-8 (first bad byte at offset {first_bad}) and no encoding fits; set data.encoding"
    )


def _detect(raw: bytes) -> list[str]:
    """Candidate encodings for non-UTF-8 bytes, best first."""
    from charset_normalizer import from_bytes  # noqa: PLC0415

    best = from_bytes(raw).best()
    found = [] if best is None else [best.encoding.lower().replace("-", "_")]
    out = ["gb18030" if e in ("gbk", "gb2312", "cp936", "hz") else e for e in found]
    return out + [e for e in CHINESE_FALLBACKS if e not in out]


def _line_of_offsets(text: str) -> list[int]:
    """Start offsets of each line (to turn a character offset into a line number)."""
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def read_json_list(path: str | Path, encoding: str | None = None) -> Iterator[RawRecord]:
    """The official QualBench format: one JSON list of objects (or ``{"data"|"questions"|"items": [...]}``)."""
    path = Path(path)
    yield from _json_records(path, read_text(path, encoding))


def _json_records(path: Path, text: str) -> Iterator[RawRecord]:
    decoder = json.JSONDecoder()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if isinstance(data, dict):
        # tolerate {"data": [...]} wrappers
        for key in WRAPPER_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of question objects, got {type(data).__name__}")
    if not data:
        raise DataError(f"{path}: the question list is empty")
    # Recover each record's line number by re-scanning the list (cheap, and errors can name a line).
    lines = _line_of_offsets(text)
    positions: list[int] = []
    i = _list_start(text)
    if i >= 0:
        pos = i + 1
        for _ in data:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            positions.append(pos)
            try:
                _, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
            pos = end
    import bisect

    for n, rec in enumerate(data):
        if n < len(positions):
            line = bisect.bisect_right(lines, positions[n])
            where = f"{path}:{line}"
        else:
            where = f"{path}#record {n}"
        if not isinstance(rec, dict):
            yield RawRecord({}, where, f"not an object: record {n} is {type(rec).__name__}, expected an object")
            continue
        yield RawRecord(rec, where)


def _list_start(text: str) -> int:
    """Offset of the question list's '[' (after a ``{"data": `` wrapper if there is one)."""
    head = text.lstrip()
    if head.startswith("{"):
        m = re.search(r'"(?:data|questions|items)"\s*:\s*\[', text)
        return m.end() - 1 if m else -1
    return text.find("[")


def read_jsonl(path: str | Path, encoding: str | None = None) -> Iterator[RawRecord]:
    """JSON Lines, one object per line (blank lines skipped; unreadable lines come back with ``error`` set)."""
    path = Path(path)
    yield from _jsonl_records(path, read_text(path, encoding))


def _jsonl_records(path: Path, text: str) -> Iterator[RawRecord]:
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            yield RawRecord({}, where, f"invalid JSON line: {e.msg} (column {e.colno})")
            continue
        if not isinstance(rec, dict):
            yield RawRecord({}, where, f"not an object: expected a JSON object, got {type(rec).__name__}")
            continue
        yield RawRecord(rec, where)


def read_any(path: str | Path, encoding: str | None = None) -> Iterator[RawRecord]:
    """Pick the reader by content: a JSON list or ``{"data": [...]}`` file, else JSON Lines; a dir: all files."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
        if not files:
            raise DataError(f"{path}: directory holds no .json or .jsonl files")
        for p in files:
            yield from read_any(p, encoding)
        return
    text = read_text(path, encoding)
    if _is_json_document(text):
        yield from _json_records(path, text)
    else:
        yield from _jsonl_records(path, text)


def _is_json_document(text: str) -> bool:
    """True for one JSON list (or wrapper object) spanning the file; False for JSON Lines."""
    head = text.lstrip()
    if head.startswith("["):
        return True
    if not head.startswith("{"):
        return False
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:  # several objects (JSON Lines), or a broken wrapper object
        return bool(re.match(r'\s*\{\s*"(?:data|questions|items)"\s*:\s*\[', text))
    return isinstance(doc, dict) and any(isinstance(doc.get(k), list) for k in WRAPPER_KEYS)


def read_sample() -> Iterator[RawRecord]:
    """The bundled sample set (one official-format JSON file per domain)."""
    files = sorted(SAMPLE_DIR.glob("*.json"))
    if not files:
        raise DataError(f"{SAMPLE_DIR}: the bundled sample set is missing")
    for p in files:
        yield from read_json_list(p)


def read_hub(dataset_id: str, split: str | None = "train") -> Iterator[RawRecord]:
    """A Hugging Face hub dataset through ``datasets`` (lazy import; clear error when offline)."""
    try:
        import datasets  # noqa: PLC0415
    except ImportError:
        raise DataError("data.loader=hub needs the `datasets` package: pip install 'qualbench-lab[hub]'") from None
    try:
        ds = datasets.load_dataset(dataset_id, split=split or "train")
    except Exception as e:  # network, missing dataset, auth: all end the same way for the user
        raise DataError(
            f"could not load hub dataset {dataset_id!r} (split {split!r}): {type(e).__name__}: {e}. "
            "Offline? Download it once with network, or point data=qualbench_json data.path=FILE at a local copy."
        ) from None
    for n, rec in enumerate(ds):
        yield RawRecord(dict(rec), f"hub:{dataset_id}[{split}]#{n}")
