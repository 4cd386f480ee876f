"""Domain routing: pick which domain's regulations a question should be answered from.

``BM25Router`` takes the domain whose chunks score highest for the query (sum over the global top hits);
``CentroidRouter`` takes the domain whose mean chunk embedding is nearest to the query embedding.
``routing_accuracy`` scores any router on labelled queries.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from qualbench.domains import domain_slug


class Router(Protocol):
    def route(self, queries: list[str]) -> list[str]: ...


class BM25Router:
    def __init__(self, bm25_index: Any, depth: int = 3):
        self.index = bm25_index
        self.depth = depth
        counts = Counter(bm25_index.domains.tolist())
        self.default = counts.most_common(1)[0][0]  # for queries sharing no token with the corpus

    def route(self, queries: list[str]) -> list[str]:
        scores = self.index.domain_scores(queries, self.depth)
        names = self.index.domain_names
        return [names[int(np.argmax(row))] if row.max() > 0 else self.default for row in scores]


class CentroidRouter:
    def __init__(self, embed_queries: Any, centroids: np.ndarray, names: list[str]):
        self.embed_queries = embed_queries  # list[str] -> np.ndarray [n, d] (L2-normalised)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self.centroids = (centroids / np.maximum(norms, 1e-12)).astype(np.float32)
        self.names = list(names)

    @staticmethod
    def centroids_of(vectors: np.ndarray, domains: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        names = sorted(set(domains))
        arr = np.asarray(domains)
        return np.stack([vectors[arr == n].mean(axis=0) for n in names]).astype(np.float32), names

    def route(self, queries: list[str]) -> list[str]:
        q = np.asarray(self.embed_queries(queries), dtype=np.float32)
        return [self.names[int(i)] for i in np.argmax(q @ self.centroids.T, axis=1)]


@dataclass
class RoutingReport:
    accuracy: float
    n: int
    per_domain: dict[str, float] = field(default_factory=dict)  # recall per gold domain
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # gold -> predicted -> count


def routing_accuracy(router: Router, queries: list[str], gold_domains: list[str]) -> RoutingReport:
    """Accuracy of ``router.route`` against gold domains (any accepted spelling)."""
    if len(queries) != len(gold_domains):
        raise ValueError(f"{len(queries)} queries but {len(gold_domains)} gold domains")
    if not queries:
        raise ValueError("routing_accuracy needs at least one labelled query")
    gold = [domain_slug(d) for d in gold_domains]
    pred = router.route(list(queries))
    confusion: dict[str, dict[str, int]] = {}
    for g, p in zip(gold, pred):
        confusion.setdefault(g, {}).setdefault(p, 0)
        confusion[g][p] += 1
    per = {g: row.get(g, 0) / sum(row.values()) for g, row in sorted(confusion.items())}
    acc = sum(g == p for g, p in zip(gold, pred)) / len(gold)
    return RoutingReport(acc, len(gold), per, confusion)
