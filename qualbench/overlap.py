"""Train/test overlap guard: an adapter trained by ``experiment=federated`` must not be scored on its own
training questions. The run directory beside the adapter holds the clients' data (``clients/client_*.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from qualbench.errors import ConfigError
from qualbench.records import Question


def item_key(stem: str, options: dict[str, str] | Iterable, answer: str) -> str:
    """What makes two items the same question, whatever their idx (files renumber)."""
    opts = "|".join(f"{k}{v}" for k, v in (options.items() if isinstance(options, dict) else options))
    return f"{''.join(stem.split())}#{''.join(opts.split())}#{answer}"


def training_keys(clients_dir: Path) -> set[str]:
    """Keys of every item in the clients' train and val splits."""
    keys: set[str] = set()
    for f in sorted(clients_dir.glob("client_*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        for split in ("train", "val"):
            keys.update(item_key(q["stem"], q.get("options") or {}, q["answer"]) for q in d.get(split, []))
    return keys


def clients_dir_of(adapter: str | None) -> Path | None:
    """``<run>/clients`` when ``adapter`` lies in a federated run directory (``<run>/global_adapter``)."""
    if not adapter:
        return None
    d = Path(adapter).expanduser().resolve().parent / "clients"
    return d if d.is_dir() else None


def check_adapter_overlap(items: Sequence[Question], adapter: str | None, allow: bool = False) -> int:
    """Refuse (one line) to score an adapter on items its federated clients trained on; return the overlap."""
    clients = clients_dir_of(adapter)
    if clients is None:
        return 0
    train = training_keys(clients)
    n = sum(item_key(q.stem, q.options, q.answer) in train for q in items)
    if n and not allow:
        heldout = clients.parent / "heldout_test.json"
        raise ConfigError(
            f"{n} of {len(items)} evaluated items are in the training data of the adapter's clients ({clients}); "
            f"evaluate on the held-out split (data=qualbench_json data.path={heldout}) or set data.allow_train_overlap=true"
        )
    return n
