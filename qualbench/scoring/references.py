"""Reference rows for a report, computed from the evaluated items alone (no model involved).

* ``chance``: the expected accuracy of answering uniformly at random, per item — 单选题 1/n for n options;
  多选题 1/(2^n − 1), a uniform draw over the non-empty subsets of the n options (the guesser is not told
  how many options the key holds); 判断题 1/2. Reads no labels. It is also what ``model=random`` expects to
  score: that baseline draws the same way.
* ``majority``: answer every item with the most common gold answer of its question type among the evaluated
  items (ties: the alphabetically first canonical answer). Its accuracy is the share of items whose gold
  answer is that answer. It **reads the evaluated items' labels**, so it is a reference, not a model.

Both have the shape of a model's metrics (``n``, ``accuracy``, ``by_type`` and ``by_domain`` of
``{"n", "accuracy"}``), so a report can put them next to a model's rows. :func:`below_references` says where
a model's accuracy is below one of them (point estimates, strictly below).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from qualbench.domains import DOMAIN_NAMES, UnknownDomainError, canonical_domain
from qualbench.formatting import MISSING_MARK
from qualbench.records import JUDGE, QUESTION_TYPES, SINGLE
from qualbench.scoring.extract import ScoringError, normalize_question_type
from qualbench.scoring.metrics import canonical_answer

__all__ = ["REFERENCE_LABELS", "below_references", "chance_accuracy", "majority_answers", "reference_rows"]

REFERENCE_LABELS = {
    "chance": "chance (uniform random answer; reads no labels)",
    "majority": "majority answer per type (reads the evaluated labels)",
}
_CHANCE_RULE = ("单选题: 1/n_options; 多选题: 1/(2^n_options - 1), uniform over non-empty subsets; 判断题: 1/2; "
                "averaged over items")
_MAJORITY_RULE = ("always the most common gold answer of the item's type among the evaluated items "
                  "(ties: alphabetically first)")


def _field(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _where(item: Any, i: int) -> str:
    return f"item #{i} (idx={_field(item, 'idx')!r})"


def _qtype(item: Any, i: int) -> str:
    try:
        return normalize_question_type(str(_field(item, "question_type", "")))
    except ScoringError as err:
        raise ScoringError(f"{_where(item, i)}: {err}") from None


def _n_options(item: Any, i: int) -> int:
    n = _field(item, "n_options")
    if n is None:
        opts = _field(item, "options")
        n = len(opts) if opts else 0
    n = int(n)
    if n < 1:
        raise ScoringError(f"{_where(item, i)}: a choice item without options; chance needs the number of options")
    return n


def chance_accuracy(item: Any, i: int = 0) -> float:
    """Expected accuracy of a uniform random answer to one item (a Question or a dict with options)."""
    qtype = _qtype(item, i)
    if qtype == JUDGE:
        return 0.5
    n = _n_options(item, i)
    if qtype == SINGLE:
        return 1.0 / n
    return 1.0 / (2**n - 1)


def _domain(item: Any) -> str:
    d = str(_field(item, "domain", "") or "")
    try:
        return canonical_domain(d)
    except UnknownDomainError:
        return d


def _gold(item: Any, qtype: str, i: int) -> str:
    gold = canonical_answer(_field(item, "answer"), qtype)
    if not gold:
        raise ScoringError(f"{_where(item, i)} has no readable answer: {_field(item, 'answer')!r}")
    return gold


def majority_answers(items: Sequence[Any]) -> dict[str, tuple[str, int]]:
    """{question type: (most common gold answer, its count)} over ``items``."""
    counts: dict[str, Counter[str]] = {}
    for i, it in enumerate(items):
        qtype = _qtype(it, i)
        counts.setdefault(qtype, Counter())[_gold(it, qtype, i)] += 1
    return {t: min(c.items(), key=lambda kv: (-kv[1], kv[0])) for t, c in counts.items()}


def _ordered(groups: dict[str, list[float]], order: Sequence[str]) -> dict[str, dict[str, Any]]:
    rank = {g: k for k, g in enumerate(order)}
    keys = sorted(groups, key=lambda g: (rank.get(g, len(rank)), g))
    return {g: {"n": len(groups[g]), "accuracy": sum(groups[g]) / len(groups[g])} for g in keys}


def _row(values: list[float], types: list[str], domains: list[str]) -> dict[str, Any]:
    by_type: dict[str, list[float]] = {}
    by_domain: dict[str, list[float]] = {}
    for v, t, d in zip(values, types, domains):
        by_type.setdefault(t, []).append(v)
        if d:
            by_domain.setdefault(d, []).append(v)
    return {"n": len(values), "accuracy": sum(values) / len(values),
            "by_type": _ordered(by_type, QUESTION_TYPES), "by_domain": _ordered(by_domain, DOMAIN_NAMES)}


def reference_rows(items: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """``{"chance": {...}, "majority": {...}}`` for the evaluated items (Questions or dicts); see the module doc."""
    items = [dataclasses.asdict(it) if dataclasses.is_dataclass(it) and not isinstance(it, type) else it
             for it in items]
    if not items:
        raise ScoringError("reference rows: no items")
    types = [_qtype(it, i) for i, it in enumerate(items)]
    domains = [_domain(it) for it in items]
    chance = _row([chance_accuracy(it, i) for i, it in enumerate(items)], types, domains)
    chance.update(label=REFERENCE_LABELS["chance"], reads_labels=False, rule=_CHANCE_RULE)
    major = majority_answers(items)
    hits = [float(_gold(it, t, i) == major[t][0]) for i, (it, t) in enumerate(zip(items, types))]
    majority = _row(hits, types, domains)
    for t, v in majority["by_type"].items():
        v["answer"] = major[t][0]
    majority.update(label=REFERENCE_LABELS["majority"], reads_labels=True, rule=_MAJORITY_RULE)
    return {"chance": chance, "majority": majority}


def below_references(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Where a model's accuracy is strictly below a reference: ``{"overall": ["chance", ...],
    "by_type": {type: [...]}}`` (types with no flag left out). Empty lists when ``metrics`` has no references."""
    refs = metrics.get("references") or {}
    out: dict[str, Any] = {"overall": [], "by_type": {}}

    def below(acc: Any, ref: Any) -> bool:
        return isinstance(acc, (int, float)) and isinstance(ref, (int, float)) and acc < ref - 1e-12

    for name, ref in refs.items():
        if not isinstance(ref, Mapping):
            continue
        if below(metrics.get("accuracy"), ref.get("accuracy")):
            out["overall"].append(name)
        for t, v in (metrics.get("by_type") or {}).items():
            r = (ref.get("by_type") or {}).get(t) or {}
            if below((v or {}).get("accuracy"), r.get("accuracy")):
                out["by_type"].setdefault(t, []).append(name)
    return out


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m qualbench.scoring.references FILE...``: the reference rows of official-format JSON files."""
    import argparse
    import sys

    from qualbench.data import load_dataset
    from qualbench.errors import QualBenchError

    ap = argparse.ArgumentParser(prog="python -m qualbench.scoring.references",
                                 description="chance and majority-per-type accuracy of QualBench JSON files")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    tables = []
    for f in args.files:
        try:
            tables.append((f, reference_rows(load_dataset({"loader": "qualbench_json", "path": f}))))
        except QualBenchError as e:
            print(f"references: error: {e}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"references: error: {f}: {e.strerror or e}", file=sys.stderr)
            return 2
    print("| file | row | all | " + " | ".join(QUESTION_TYPES) + " |")
    print("|---|---|---:|" + "---:|" * len(QUESTION_TYPES))
    for f, refs in tables:
        for name, ref in refs.items():
            cells = []
            for t in QUESTION_TYPES:
                v = ref["by_type"].get(t)
                cells.append(MISSING_MARK if v is None else f"{v['accuracy']:.3f}" + (f" ({v['answer']})" if "answer" in v
                                                                              else "") + f" n={v['n']}")
            print(f"| {f.rsplit('/', 1)[-1]} | {name} | {ref['accuracy']:.3f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
