"""The langchain-core retriever over our indices, with domain routing.

``QBRetriever.search_batch(queries, domains, k)`` is the batched API; ``invoke(query, domain=..., k=...)``
is langchain's single-query entry point (per-call kwargs reach ``_get_relevant_documents``).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, PrivateAttr

from qualbench.domains import domain_slug
from retrievers.chunking import Chunk

log = logging.getLogger(__name__)
ROUTING_MODES = ("oracle", "all", "routed")
Hits = list[tuple[int, float]]


class Searcher(Protocol):
    def search(self, queries: list[str], allowed: list[frozenset[str] | None], k: int) -> list[Hits]: ...


class QBRetriever(BaseRetriever):
    """Retrieves law chunks as Documents (metadata: chunk metadata + ``score``, ``rank`` (1-based),
    ``retriever``, ``searched_domain``).

    Routing decides which domain's chunks are searched: ``oracle`` the domain passed with each query
    (required), ``all`` every domain (passed domains are ignored), ``routed`` the router's prediction
    (passed domains are ignored, so the gold domain can always be passed).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: str
    routing: str = "all"
    top_k: int = 5
    chunks: list[Chunk] = Field(default_factory=list, repr=False)
    searcher: Any = Field(default=None, repr=False)
    router: Any = Field(default=None, repr=False)
    corpus_report: Any = Field(default=None, repr=False)
    index_dirs: list[str] = Field(default_factory=list)
    built: list[bool] = Field(default_factory=list)  # per index dir: built by this call (False = loaded)
    domain_names: list[str] = Field(default_factory=list)
    _warned: set[str] = PrivateAttr(default_factory=set)

    def model_post_init(self, __context: Any) -> None:
        if self.routing not in ROUTING_MODES:
            raise ValueError(f"unknown routing {self.routing!r}; choose one of {ROUTING_MODES}")

    def route(self, queries: list[str]) -> list[str]:
        """The domain slug the router picks for each query (available in every routing mode)."""
        if self.router is None:
            raise RuntimeError("this retriever has no router")
        return self.router.route(list(queries))

    def _allowed(self, queries: list[str], domains: list[str | None] | None) -> list[frozenset[str] | None]:
        if self.routing == "all":
            return [None] * len(queries)
        if self.routing == "routed":
            return [frozenset([d]) for d in self.route(queries)]
        if domains is None or len(domains) != len(queries) or any(d is None for d in domains):
            raise ValueError("routing=oracle needs a domain for every query (search_batch(queries, domains=[...]) "
                             "or invoke(query, domain=...)); use routing=all or routed when domains are unknown")
        out = []
        for d in domains:
            slug = domain_slug(d)
            if slug not in self.domain_names and slug not in self._warned:
                self._warned.add(slug)
                log.warning("domain %s has no chunks in this corpus (domains: %s); its queries get no passages",
                            slug, self.domain_names)
            out.append(frozenset([slug]))
        return out

    def search_batch(self, queries: list[str], domains: list[str | None] | None = None,
                     k: int | None = None) -> list[list[Document]]:
        """Top-``k`` Documents for each query (fewer when the searched domain has fewer matching chunks)."""
        queries = list(queries)
        if domains is not None and len(domains) != len(queries):
            raise ValueError(f"{len(queries)} queries but {len(domains)} domains")
        k = self.top_k if k is None else int(k)
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if not queries:
            return []
        allowed = self._allowed(queries, domains)
        hits = self.searcher.search(queries, allowed, k)
        out = []
        for a, row in zip(allowed, hits):
            searched = None if a is None else ",".join(sorted(a))
            docs = []
            for rank, (pos, score) in enumerate(row[:k], start=1):
                c = self.chunks[pos]
                meta = {**c.metadata, "score": float(score), "rank": rank, "retriever": self.kind,
                        "searched_domain": searched}
                docs.append(Document(page_content=c.text, metadata=meta, id=c.id))
            out.append(docs)
        return out

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                domain: str | None = None, k: int | None = None) -> list[Document]:
        return self.search_batch([query], [domain], k)[0]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       domain: str | None = None, k: int | None = None) -> list[Document]:
        return (await run_in_executor(None, self.search_batch, [query], [domain], k))[0]
