"""Split questions over federated clients (by domain, by qualification, or Dirichlet skew) and per client
into train/val/test (stratified by question type); save the partition and a size summary."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from qualbench.data.splits import stratified_split
from qualbench.domains import DOMAINS
from qualbench.errors import ConfigError
from qualbench.records import QUESTION_TYPES, TYPE_SLUGS, Question

SPLITS = ("train", "val", "test")
PARTITION_MODES = ("domain", "qualification", "dirichlet")


@dataclass
class ClientData:
    """One client's questions, already split."""

    cid: int
    name: str
    train: list[Question] = field(default_factory=list)
    val: list[Question] = field(default_factory=list)
    test: list[Question] = field(default_factory=list)

    def split(self, name: str) -> list[Question]:
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)

    @property
    def all(self) -> list[Question]:
        return [*self.train, *self.val, *self.test]


def _group(questions: Sequence[Question], key) -> list[tuple[str, list[Question]]]:
    groups: dict[str, list[Question]] = {}
    for q in questions:
        groups.setdefault(key(q), []).append(q)
    return sorted(groups.items())


def dirichlet_assign(
    questions: Sequence[Question], num_clients: int, alpha: float, seed: int = 0, min_size: int = 2
) -> list[list[Question]]:
    """Label-skewed split (Hsu et al. 2019): each domain's items go to clients in Dirichlet(α) proportions.

    Small α gives each client few domains; large α approaches an even (IID) split. Redraws (up to 100
    times) until every client holds at least ``min_size`` items.
    """
    if num_clients < 1 or alpha <= 0:
        raise ConfigError(f"dirichlet partition needs num_clients >= 1 and alpha > 0 (got {num_clients}, {alpha})")
    if len(questions) < num_clients * min_size:
        raise ConfigError(f"{len(questions)} questions cannot give {num_clients} clients {min_size} items each")
    rng = np.random.default_rng(seed)
    by_domain = _group(questions, lambda q: q.domain)
    for _ in range(100):
        parts: list[list[Question]] = [[] for _ in range(num_clients)]
        for _, items in by_domain:
            order = rng.permutation(len(items))
            props = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(props) * len(items)).astype(int)[:-1]
            for k, chunk in enumerate(np.split(order, cuts)):
                parts[k].extend(items[i] for i in chunk)
        if min(len(p) for p in parts) >= min_size:
            return parts
    raise ConfigError(f"dirichlet(alpha={alpha}) could not give all {num_clients} clients {min_size} items; raise alpha")


def partition(
    questions: Sequence[Question],
    by: str = "domain",
    num_clients: int | None = None,
    alpha: float = 0.5,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> list[ClientData]:
    """Clients and their seeded train/val/test splits (stratified by question type)."""
    if not questions:
        raise ConfigError("no questions to partition (check data config / filters)")
    if by == "domain":
        order = {d.name: i for i, d in enumerate(DOMAINS)}
        by_dom = sorted(_group(questions, lambda q: q.domain), key=lambda g: (order.get(g[0], len(order)), g[0]))
        groups = [(items[0].domain_slug, items) for _, items in by_dom]
    elif by == "qualification":
        groups = _group(questions, lambda q: q.qualification or "unknown")
    elif by == "dirichlet":
        n = num_clients or 6
        groups = [(f"client{k}", p) for k, p in enumerate(dirichlet_assign(questions, n, alpha, seed))]
    else:
        raise ConfigError(f"unknown partition mode {by!r}; choose one of {', '.join(PARTITION_MODES)}")
    if by != "dirichlet" and num_clients and num_clients != len(groups):
        raise ConfigError(f"partition by {by} gives {len(groups)} clients but num_clients={num_clients}")
    clients = []
    for cid, (name, items) in enumerate(groups):
        parts = stratified_split(items, fractions, seed=seed + cid, by=lambda q: q.question_type)
        clients.append(ClientData(cid=cid, name=name, **parts))
    return clients


def summary_rows(clients: Iterable[ClientData]) -> list[dict]:
    """One row per client × split × domain × type with its item count (zeros omitted)."""
    rows = []
    for c in clients:
        for split in SPLITS:
            counts = Counter((q.domain_slug, q.question_type) for q in c.split(split))
            for (dom, qtype), n in sorted(counts.items()):
                rows.append({"client": c.cid, "name": c.name, "split": split, "domain": dom,
                             "type": TYPE_SLUGS.get(qtype, qtype), "n": n})
    return rows


def summary(clients: Sequence[ClientData]) -> dict:
    """Sizes per client (and per split / domain / type) as a JSON-able dict."""
    out = {"num_clients": len(clients), "clients": []}
    for c in clients:
        out["clients"].append({
            "cid": c.cid,
            "name": c.name,
            **{f"n_{s}": len(c.split(s)) for s in SPLITS},
            "domains": dict(sorted(Counter(q.domain_slug for q in c.all).items())),
            "types": {TYPE_SLUGS[t]: n for t in QUESTION_TYPES if (n := sum(q.question_type == t for q in c.all))},
        })
    return out


def save_summary(clients: Sequence[ClientData], directory: str | Path) -> tuple[Path, Path]:
    """Write ``partition_summary.json`` and ``partition_summary.csv`` into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    jpath, cpath = d / "partition_summary.json", d / "partition_summary.csv"
    jpath.write_text(json.dumps(summary(clients), ensure_ascii=False, indent=2), encoding="utf-8")
    rows = summary_rows(clients)
    with cpath.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["client", "name", "split", "domain", "type", "n"])
        w.writeheader()
        w.writerows(rows)
    return jpath, cpath


def save_clients(clients: Sequence[ClientData], directory: str | Path) -> Path:
    """Each client's data as ``client_<cid>.json`` (the data a real client would hold locally)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for c in clients:
        payload = {"cid": c.cid, "name": c.name, **{s: [q.to_dict() for q in c.split(s)] for s in SPLITS}}
        (d / f"client_{c.cid}.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return d


HELDOUT_FILE = "heldout_test.json"


def save_heldout(clients: Sequence[ClientData], path: str | Path) -> Path:
    """Every client's **test** split in the official QualBench format: the file to evaluate a federated
    adapter on (``data=qualbench_json data.path=<run>/heldout_test.json``), disjoint from all training data."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = [q.to_official() for c in clients for q in c.split("test")]
    p.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return p


def load_client(directory: str | Path, cid: int) -> ClientData:
    """Read ``client_<cid>.json`` written by :func:`save_clients`."""
    path = Path(directory) / f"client_{cid}.json"
    if not path.exists():
        raise ConfigError(f"{path}: no data for client {cid} (partition has fewer clients than SuperNodes?)")
    d = json.loads(path.read_text(encoding="utf-8"))
    return ClientData(cid=d["cid"], name=d["name"], **{s: [Question(**q) for q in d[s]] for s in SPLITS})
