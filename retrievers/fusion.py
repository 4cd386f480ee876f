"""Reciprocal rank fusion of several ranked hit lists, and the hybrid (BM25 + dense) searcher."""

from __future__ import annotations

from typing import Any, Sequence

Hits = list[tuple[int, float]]


def rrf(rankings: Sequence[Hits], weights: Sequence[float] | None = None, k: int = 60) -> Hits:
    """Weighted reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks 1-based; ties by position."""
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    scores: dict[int, float] = {}
    for w, hits in zip(weights, rankings):
        if w == 0:  # a switched-off retriever contributes no candidates either
            continue
        for rank, (pos, _) in enumerate(hits, start=1):
            scores[pos] = scores.get(pos, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))


class HybridSearcher:
    """Fuses the rankings of several searchers (e.g. [bm25, dense]) with weighted RRF."""

    def __init__(self, searchers: Sequence[Any], weights: Sequence[float], rrf_k: int = 60, depth: int = 50):
        if len(searchers) != len(weights):
            raise ValueError(f"hybrid: {len(searchers)} retrievers but weights={list(weights)}")
        self.searchers = list(searchers)
        self.weights = list(weights)
        self.rrf_k = rrf_k
        self.depth = depth

    def search(self, queries: list[str], allowed: list[frozenset[str] | None], k: int) -> list[Hits]:
        depth = max(k, self.depth)
        per = [s.search(queries, allowed, depth) for s in self.searchers]
        return [rrf([p[i] for p in per], self.weights, self.rrf_k)[:k] for i in range(len(queries))]
