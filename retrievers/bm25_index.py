"""BM25 over all chunks (bm25s) with our own Chinese tokenization; per-query domain filtering via
bm25s's ``weight_mask`` so scores stay comparable across domains.

On disk: bm25s's own format (scores as ``.npy``, saved and loaded with ``allow_pickle=False``; vocabulary and
parameters as JSON) + ``bm25_meta.json``. No pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrievers.chunking import Chunk
from retrievers.tokenize import get_tokenizer, tokenize_all

Hits = list[tuple[int, float]]  # (chunk position, score), best first


@dataclass
class BM25Params:
    tokenizer: str = "jieba"
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"


class BM25Index:
    """A bm25s index over ``chunks``; ``search`` takes per-query sets of allowed domain slugs."""

    def __init__(self, model, chunk_domains: list[str], params: BM25Params):
        self.model = model
        self.params = params
        self.tokenize = get_tokenizer(params.tokenizer)
        self.domains = np.asarray(chunk_domains)
        self.domain_names = sorted(set(chunk_domains))

    @classmethod
    def build(cls, chunks: list[Chunk], params: BM25Params) -> "BM25Index":
        import bm25s

        if not chunks:
            raise ValueError("cannot build a BM25 index over zero chunks")
        corpus_tokens = [t or [""] for t in tokenize_all([c.text for c in chunks], params.tokenizer)]
        model = bm25s.BM25(k1=params.k1, b=params.b, method=params.method)
        model.index(corpus_tokens, show_progress=False)
        return cls(model, [c.metadata["domain"] for c in chunks], params)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(str(directory / "bm25s"), show_progress=False, allow_pickle=False)
        (directory / "bm25_meta.json").write_text(json.dumps(
            {"params": self.params.__dict__, "domains": self.domains.tolist()}, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> "BM25Index":
        import bm25s

        meta = json.loads((directory / "bm25_meta.json").read_text())
        model = bm25s.BM25.load(str(directory / "bm25s"), show_progress=False, verbosity=0, allow_pickle=False,
                                load_corpus=False, mmap=False)
        return cls(model, meta["domains"], BM25Params(**meta["params"]))

    def _query_tokens(self, query: str) -> list[str]:
        vocab = self.model.vocab_dict
        return [t for t in self.tokenize(query) if t in vocab and t != ""]

    def search(self, queries: list[str], allowed: list[frozenset[str] | None], k: int) -> list[Hits]:
        """Top-k chunks per query among the allowed domains (None = all); chunks scoring 0 are dropped."""
        return self.search_tokens([self._query_tokens(q) for q in queries], allowed, k)

    def search_tokens(self, tokens: list[list[str]], allowed: list[frozenset[str] | None], k: int) -> list[Hits]:
        """``search`` on tokenised queries (tokens outside the vocabulary already removed)."""
        out: list[Hits] = [[] for _ in tokens]
        groups: dict[frozenset[str] | None, list[int]] = {}
        for i, a in enumerate(allowed):
            groups.setdefault(a, []).append(i)
        for dom, idxs in groups.items():
            mask = None if dom is None else np.isin(self.domains, list(dom)).astype(np.float32)
            n_ok = len(self.domains) if mask is None else int(mask.sum())
            todo = [i for i in idxs if tokens[i]]  # a query sharing no token with the corpus gets no hits
            if not todo or n_ok == 0:
                continue
            docs, scores = self.model.retrieve([tokens[i] for i in todo],
                                               k=min(k, len(self.domains)), show_progress=False,
                                               weight_mask=mask)
            for row, i in enumerate(todo):
                out[i] = [(int(d), float(s)) for d, s in zip(docs[row], scores[row])
                          if s > 0 and (mask is None or mask[d] > 0)]
        return out

    def domain_scores(self, queries: list[str], depth: int = 3) -> np.ndarray:
        """[n_queries, n_domains] score of each domain: the sum of its chunks' scores in the top ``depth``."""
        hits = self.search(queries, [None] * len(queries), depth)
        col = {d: j for j, d in enumerate(self.domain_names)}
        out = np.zeros((len(queries), len(self.domain_names)), dtype=np.float32)
        for i, h in enumerate(hits):
            for pos, score in h:
                out[i, col[self.domains[pos]]] += score
        return out
