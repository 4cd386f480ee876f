"""Read QualBench items from the official JSON list, JSON Lines, the bundled sample or the HF hub.

Every loader yields ``RawRecord``s (the raw dict plus where it came from); ``qualbench.data.cleaning``
turns them into canonical ``Question``s, dropping or rejecting bad ones with a report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from qualbench.errors import DataError

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "resources" / "sample"


@dataclass
class RawRecord:
    data: dict[str, Any]
    source: str  # "path:line" (JSONL, or JSON where the line is known) or "path#record N"


def _line_of_offsets(text: str) -> list[int]:
    """Start offsets of each line (to turn a character offset into a line number)."""
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def read_json_list(path: str | Path) -> Iterator[RawRecord]:
    """The official QualBench format: one JSON list of objects."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8-sig")
    decoder = json.JSONDecoder()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if isinstance(data, dict):
        # tolerate {"data": [...]} wrappers
        for key in ("data", "questions", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of question objects, got {type(data).__name__}")
    # Recover each record's line number by re-scanning the list (cheap, and errors can name a line).
    lines = _line_of_offsets(text)
    positions: list[int] = []
    i = text.find("[")
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
            raise DataError(f"{where}: record {n} is {type(rec).__name__}, expected an object")
        yield RawRecord(rec, where)


def read_jsonl(path: str | Path) -> Iterator[RawRecord]:
    """JSON Lines, one object per line (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON line: {e.msg} (column {e.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            yield RawRecord(rec, f"{path}:{lineno}")


def read_any(path: str | Path) -> Iterator[RawRecord]:
    """Pick the reader by content: a file starting with '[' is a JSON list, else JSON Lines; a dir: all files."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
        if not files:
            raise DataError(f"{path}: directory holds no .json or .jsonl files")
        for p in files:
            yield from read_any(p)
        return
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(encoding="utf-8-sig") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        yield from read_json_list(path)
    else:
        yield from read_jsonl(path)


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
