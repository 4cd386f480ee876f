"""Retrieval over regulations: corpus → chunks → cached BM25 / FAISS / hybrid indices → langchain retrievers.

Entry point: ``retrievers.build.build_retriever(retriever_cfg, corpus_path, cache_dir=None)``; see
docs/retrieval.md.
"""
