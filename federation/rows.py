"""The rows a client reports per evaluated item and how the server scores one round from them (torch-free:
the ServerApp imports this, not :mod:`federation.train`)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from qualbench.domains import UnknownDomainError, canonical_domain

ROW_FIELDS = ("idx", "domain", "question_type", "answer", "prediction", "skipped", "qualification", "client",
              "answer_loss")  # what a client reports per evaluated item (no question text, no raw output)


def compact(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows reduced to :data:`ROW_FIELDS` (what travels from a client to the server)."""
    return [{k: r.get(k) for k in ROW_FIELDS} for r in rows]


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _domain_of(row: Mapping[str, Any]) -> str:
    try:
        return canonical_domain(str(row.get("domain", "")))
    except UnknownDomainError:
        return str(row.get("domain", ""))


def score(rows: Sequence[Mapping[str, Any]], n_boot: int = 1000, seed: int = 0,
          rule: Any = None) -> dict[str, Any] | None:
    """``compute_metrics`` over prediction rows, plus the mean answer-token ``loss`` overall and per group.

    None when there are no rows (a client without items in a split).
    """
    from qualbench.scoring.extract import normalize_question_type
    from qualbench.scoring.metrics import compute_metrics

    if not rows:
        return None
    m = compute_metrics(list(rows), n_boot=n_boot, seed=seed, rule=rule)
    m["loss"] = _mean([r.get("answer_loss") for r in rows])
    for key, fn in (("by_domain", _domain_of), ("by_type", lambda r: normalize_question_type(r["question_type"]))):
        for g, v in m[key].items():
            v["loss"] = _mean([r.get("answer_loss") for r in rows if fn(r) == g])
    return m


def by_client(rows_by_split: Mapping[str, Sequence[Mapping[str, Any]]], rule: Any = None) -> dict[str, Any]:
    """``{client: {split: {n, accuracy, exam_score, n_unparsed, loss}}}`` (``group_accuracy`` by client)."""
    from qualbench.scoring.metrics import group_accuracy

    out: dict[str, dict[str, Any]] = {}
    for split, rows in rows_by_split.items():
        for cid, v in group_accuracy(list(rows), "client", rule).items():
            v["loss"] = _mean([r.get("answer_loss") for r in rows if r.get("client") == cid])
            out.setdefault(str(cid), {})[split] = v
    return dict(sorted(out.items(), key=lambda kv: (len(kv[0]), kv[0])))


def round_metrics(rows_by_split: Mapping[str, Sequence[Mapping[str, Any]]], seed: int = 0,
                  n_boot: int = 1000) -> dict[str, Any]:
    """One round's evaluation: ``val`` and ``test`` from :func:`score` over all clients' rows, and ``by_client``."""
    return {**{split: score(rows, n_boot=n_boot, seed=seed) for split, rows in rows_by_split.items()},
            "by_client": by_client(rows_by_split)}
