"""Deterministic, stratified (domain × type) splits, filters and limits."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from typing import Callable, Iterable, Sequence

from qualbench.answers import AnswerError, canonical_type
from qualbench.domains import canonical_domain
from qualbench.errors import ConfigError
from qualbench.records import Question

SPLIT_NAMES = ("train", "val", "test")


def stratum(q: Question) -> tuple[str, str]:
    return (q.domain, q.question_type)


def _rng(seed: int, key: object) -> random.Random:
    h = hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()
    return random.Random(int(h[:16], 16))


def _shuffled_strata(
    items: Sequence[Question], seed: int, by: Callable[[Question], object] = stratum
) -> dict[object, list[Question]]:
    groups: dict[object, list[Question]] = defaultdict(list)
    for q in items:
        groups[by(q)].append(q)
    for key, group in groups.items():
        group.sort(key=lambda q: q.idx)
        _rng(seed, key).shuffle(group)
    return dict(sorted(groups.items(), key=lambda kv: str(kv[0])))


def stratified_split(
    items: Sequence[Question],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    names: Sequence[str] = SPLIT_NAMES,
    by: Callable[[Question], object] = stratum,
) -> dict[str, list[Question]]:
    """Split each stratum by ``fractions`` (largest-remainder rounding); same seed, same split."""
    if len(fractions) != len(names) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions {list(fractions)} must be {len(names)} non-negative numbers summing to 1")
    out: dict[str, list[Question]] = {n: [] for n in names}
    for group in _shuffled_strata(items, seed, by).values():
        n = len(group)
        raw = [f * n for f in fractions]
        counts = [int(x) for x in raw]
        for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
            counts[i] += 1
        start = 0
        for name, c in zip(names, counts):
            out[name].extend(group[start : start + c])
            start += c
    order = {q.idx: i for i, q in enumerate(items)}
    return {k: sorted(v, key=lambda q: order[q.idx]) for k, v in out.items()}


def kfold(items: Sequence[Question], k: int, seed: int = 0) -> list[list[Question]]:
    """K stratified folds (each item in exactly one fold)."""
    folds: list[list[Question]] = [[] for _ in range(k)]
    offset = 0
    for group in _shuffled_strata(items, seed).values():
        for i, q in enumerate(group):
            folds[(i + offset) % k].append(q)
        offset += len(group)
    return folds


def stratified_limit(items: Sequence[Question], n: int, seed: int = 0) -> list[Question]:
    """Keep ``n`` items, spread proportionally over strata; the original order is kept."""
    if n >= len(items):
        return list(items)
    keyed = []
    for key, group in _shuffled_strata(items, seed).items():
        r = _rng(seed, ("offset", key)).random()
        keyed.extend(((i + r) / len(group), q) for i, q in enumerate(group))
    keep = {q.idx for _, q in sorted(keyed, key=lambda t: (t[0], t[1].idx))[:n]}
    return [q for q in items if q.idx in keep]


def filter_items(
    items: Iterable[Question], domains: Sequence[str] = (), types: Sequence[str] = ()
) -> list[Question]:
    """Keep items of the given domains (any accepted spelling) and types (单选题/single/...)."""
    dset = {canonical_domain(d) for d in domains}
    tset = set()
    for t in types:
        try:
            c = canonical_type(t)
        except AnswerError:
            raise ConfigError(f"unknown question type {t!r} in data.types (use 单选题/多选题/判断题)") from None
        tset.add(c)
    return [q for q in items if (not dset or q.domain in dset) and (not tset or q.question_type in tset)]
