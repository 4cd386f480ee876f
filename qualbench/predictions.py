"""The append-only ``predictions.jsonl`` store: crash-safe appends and resume."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)


def read_predictions(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Read every complete line; a half-written last line (from a crash) is dropped (and cut off if ``repair``).

    A corrupt line elsewhere is an error naming the file and line: it means the file was edited by hand.
    """
    path = Path(path)
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    good_end = 0
    with path.open("rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    pos = 0
    for i, raw in enumerate(lines):
        end = pos + len(raw) + 1
        is_last = i == len(lines) - 1
        if raw.strip():
            try:
                out.append(json.loads(raw.decode("utf-8")))
                if not is_last:
                    good_end = end
                else:  # a last line without newline that parses: keep it and add the newline on repair
                    good_end = len(data)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if is_last or all(not x.strip() for x in lines[i + 1 :]):
                    log.warning("%s:%d: dropping a half-written last line (crash during write)", path, i + 1)
                    break
                from qualbench.errors import DataError

                raise DataError(f"{path}:{i + 1}: corrupt predictions line (not JSON); fix or remove it") from None
        elif not is_last:
            good_end = end
        pos = end
    if repair and good_end != len(data):
        with path.open("r+b") as f:
            f.truncate(good_end)
            if good_end and not data[:good_end].endswith(b"\n"):
                f.seek(good_end)
                f.write(b"\n")
    elif repair and data and not data.endswith(b"\n"):
        with path.open("ab") as f:
            f.write(b"\n")
    return out


class PredictionWriter:
    """Append predictions as they are computed; each batch is flushed and fsynced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        from qualbench.secrets import scrub_values

        for row in rows:  # secret values (an API key a server echoed into a completion) never reach the file
            self._f.write(json.dumps(scrub_values(row), ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
