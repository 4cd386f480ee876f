"""Embedders implementing ``langchain_core.embeddings.Embeddings``.

``LSAEmbeddings`` is the offline default: character n-gram TF-IDF reduced by a randomized truncated SVD
(``truncated_svd``), fitted on the corpus chunks and saved as JSON + ``.npy`` (no pickle). The n-grams of a large
corpus are counted in forked workers and the SVD's sparse products run in threads; the result does not depend on
the number of workers.
``SentenceTransformerEmbeddings`` wraps a local (or already cached) sentence-transformers model. Both add ``embed_queries(list[str]) -> np.ndarray`` (batched,
float32, L2-normalised) and ``embedder_id``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from qualbench.errors import QualBenchError
from retrievers import parallel

log = logging.getLogger(__name__)


class EmbedderError(QualBenchError, RuntimeError):
    """An embedder cannot be built, fitted, loaded or saved: the message names the model path or directory."""


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


SVD_POWER_ITERATIONS = 4  # law recall on real exam items as with sklearn's TruncatedSVD (5); 2 lost 0.007 R@5
SVD_OVERSAMPLES = 10
SVD_VERSION = "rsi2"  # in embedder_id: bump when the TF-IDF matrix or truncated_svd changes, so cached indices rebuild


class _RowBlocks:
    """A CSR matrix cut into row blocks whose products with a dense matrix run in threads (scipy's sparse
    kernels release the GIL): each output row is computed exactly as in one ``x @ m``."""

    def __init__(self, x: Any, pool: Any, n_blocks: int):  # x: CSR; pool: a ThreadPoolExecutor
        size = max(1, -(-x.shape[0] // n_blocks))
        self.starts = list(range(0, x.shape[0], size))
        self.blocks = [x[i:i + size] for i in self.starts]
        self.n_rows, self.pool = x.shape[0], pool

    def __matmul__(self, m: np.ndarray) -> np.ndarray:
        if len(self.blocks) == 1:
            return self.blocks[0] @ m
        out = np.empty((self.n_rows, m.shape[1]), dtype=np.result_type(self.blocks[0].dtype, m.dtype))

        def fill(i: int) -> None:
            out[self.starts[i]:self.starts[i] + self.blocks[i].shape[0]] = self.blocks[i] @ m

        list(self.pool.map(fill, range(len(self.blocks))))
        return out


def truncated_svd(x: Any, k: int, n_iter: int = SVD_POWER_ITERATIONS, seed: int = 0,
                  workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Randomized truncated SVD of a sparse float32 matrix: ``(components [k, n_features], x @ components.T)``.

    Subspace iteration (Halko, Martinsson & Tropp 2011) with k + 10 columns on the shorter side of ``x``,
    LU-normalised between steps and QR-orthonormalised once, then Rayleigh-Ritz through the small Gram matrix
    (its eigenvectors in float64): no dense SVD or QR of an n_features-long block, as sklearn's TruncatedSVD does.
    BLAS runs single-threaded here: on these tall, thin blocks OpenBLAS threads gain little on an idle machine
    and on a busy one spin so long that QR and eigh took 100x their one-thread time. The sparse products (most
    of the time) run on ``workers`` threads (default: one per usable core for a large matrix), row block by row
    block, with the same result as on one.
    """
    from concurrent.futures import ThreadPoolExecutor

    import scipy.linalg as la
    from threadpoolctl import threadpool_limits

    x = x.tocsr()
    wide = x.shape[0] <= x.shape[1]
    a, at = (x, x.T.tocsr()) if wide else (x.T.tocsr(), x)  # iterate on the short side: q is [short, l]
    short, l = a.shape[0], min(k + SVD_OVERSAMPLES, a.shape[0])
    if workers is None:  # a small matrix: threads cost more than they save
        workers = parallel.default_workers() if x.nnz >= 100_000 else 1
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        a, at = _RowBlocks(a, pool, workers), _RowBlocks(at, pool, workers)
        q = np.random.default_rng(seed).standard_normal((short, l), dtype=np.float32)
        for _ in range(n_iter):
            q = a @ (at @ la.lu(q, permute_l=True, check_finite=False)[0])
        q = la.qr(q, mode="economic", check_finite=False)[0]
        z = at @ q  # [long, l] = (qᵀ a)ᵀ
        y = a @ z if wide else None
        # qᵀ a aᵀ q, [l, l]: in float64 where the components z w depend on its eigenvectors' accuracy; the
        # components q w are orthonormal anyway, so a float32 zᵀ z spares a float64 copy of the long z
        gram = q.T.astype(np.float64) @ y.astype(np.float64) if wide else (z.T @ z).astype(np.float64)
        _, w = la.eigh((gram + gram.T) / 2, check_finite=False)
        w = np.ascontiguousarray(w[:, ::-1][:, :k], dtype=np.float32)  # eigenvectors of the k largest eigenvalues
        if not wide:  # x = aᵀ: its right singular vectors are q w (orthonormal), and x @ them = z w
            return np.ascontiguousarray(w.T @ q.T), z @ w
        vt = w.T @ z.T  # x = a: its right singular vectors are z w / |z w|, and x @ them = y w / |z w|
        norms = np.linalg.norm(vt, axis=1)
        scale = np.zeros_like(norms)
        real = norms > 1e-3 * norms.max()  # beyond the rank of x, z w is rounding noise: a zero component
        scale[real] = 1 / norms[real]
        vt *= scale[:, None]
        return vt, (y @ w) * scale


def _count_ngrams(args: tuple[str, tuple[int, int], list[str]]) -> tuple[list[str], Any]:
    """One part's n-gram counts: (its n-grams in column order, CSR float32 counts); runs in a forked worker."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

    analyzer, ngram_range, texts = args
    cv = CountVectorizer(analyzer=analyzer, ngram_range=ngram_range, dtype=np.float32)  # TfidfVectorizer's analysis
    try:
        counts = cv.fit_transform(texts)
    except ValueError as e:
        if "empty vocabulary" not in str(e):
            raise
        return [], sp.csr_matrix((len(texts), 0), dtype=np.float32)  # no text of this part has a character
    return cv.get_feature_names_out().tolist(), counts


def _merge_counts(parts: list[tuple[list[str], Any]], max_features: int | None) -> tuple[list[str], Any]:
    """The parts' counts stacked over their sorted union of n-grams (as CountVectorizer orders its columns), each
    row's columns in order, then the ``max_features`` most frequent n-grams (ties: the first in that order) —
    the same matrix whichever way the texts were split."""
    import scipy.sparse as sp

    terms = sorted(set().union(*(t for t, _ in parts)))
    col = {t: i for i, t in enumerate(terms)}
    blocks = []
    index_dtype = np.int32 if len(terms) < 2 ** 31 else np.int64
    for part_terms, m in parts:
        remap = np.fromiter((col[t] for t in part_terms), dtype=index_dtype, count=len(part_terms))
        blocks.append(sp.csr_matrix((m.data, remap[m.indices], m.indptr), shape=(m.shape[0], len(terms))))
    x = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    if max_features is not None and len(terms) > max_features:
        tfs = np.asarray(x.sum(axis=0, dtype=np.float64)).ravel()
        keep = np.sort(np.argsort(-tfs, kind="stable")[:max_features])
        x, terms = x[:, keep], [terms[i] for i in keep]
    x = x.tocsr()
    x.sort_indices()
    return terms, x


class LSAEmbeddings(Embeddings):
    """Char n-gram TF-IDF → truncated SVD → L2 norm. Call ``fit(texts)`` once (on the corpus chunks)."""

    needs_fit = True

    def __init__(self, dim: int = 256, ngram_range: tuple[int, int] = (1, 2), analyzer: str = "char_wb",
                 max_features: int | None = 200000, seed: int = 0):
        if analyzer not in ("char", "char_wb"):
            raise ValueError(f"LSA analyzer must be 'char' or 'char_wb', got {analyzer!r}")
        self.dim, self.ngram_range, self.analyzer = int(dim), tuple(ngram_range), analyzer
        self.max_features, self.seed = max_features, int(seed)
        self.vectorizer: Any = None
        self.components: np.ndarray | None = None  # right singular vectors, [n_components, n_features]

    @property
    def embedder_id(self) -> str:
        import sklearn

        lo, hi = self.ngram_range
        return (f"lsa:{self.analyzer}{lo}-{hi}:d{self.dim}:mf{self.max_features}:s{self.seed}"
                f":{SVD_VERSION}q{SVD_POWER_ITERATIONS}:sklearn{sklearn.__version__}")

    @property
    def fitted(self) -> bool:
        return self.components is not None

    def _vectorizer(self, vocabulary: dict[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer=self.analyzer, ngram_range=self.ngram_range, vocabulary=vocabulary,
                               max_features=self.max_features, sublinear_tf=True, dtype=np.float32)

    def fit(self, texts: list[str]) -> "LSAEmbeddings":
        self.fit_embed(texts)
        return self

    def fit_embed(self, texts: list[str]) -> np.ndarray:
        """Fit on ``texts`` and return their embeddings from the same TF-IDF matrix (no second pass)."""
        if len(texts) < 2:
            raise EmbedderError(f"LSA needs at least 2 texts to fit, got {len(texts)}")
        from sklearn.feature_extraction.text import TfidfTransformer

        texts = list(texts)
        workers = parallel.default_workers()
        if parallel.can_fork(len(texts), workers):
            parts = parallel.fork_map(_count_ngrams, [(self.analyzer, self.ngram_range, part)
                                                      for part in parallel.split(texts, workers)], workers)
        else:
            parts = [_count_ngrams((self.analyzer, self.ngram_range, texts))]
        terms, counts = _merge_counts(parts, self.max_features)
        if not terms:
            raise EmbedderError(f"LSA: the {len(texts)} texts hold no characters to build n-grams from")
        tfidf = TfidfTransformer(sublinear_tf=True)  # TfidfVectorizer's defaults
        x = tfidf.fit_transform(counts)
        self.vectorizer = self._vectorizer({t: i for i, t in enumerate(terms)})
        self.vectorizer.idf_ = tfidf.idf_  # sklearn's public way to set a fitted idf
        n_comp = min(self.dim, x.shape[0] - 1, x.shape[1] - 1)
        if n_comp < self.dim:
            log.warning("LSA: dim=%d reduced to %d (corpus has %d texts, %d n-grams)",
                        self.dim, n_comp, x.shape[0], x.shape[1])
        self.components, vectors = truncated_svd(x, n_comp, seed=self.seed)
        return _l2(vectors)

    def _transform(self, texts: list[str]) -> np.ndarray:
        if not self.fitted:
            raise EmbedderError("LSAEmbeddings is not fitted: call fit(corpus_texts) or load() first")
        return _l2(self.vectorizer.transform(texts) @ self.components.T)  # projection on the components

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._transform(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._transform([text])[0].tolist()

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._transform(list(texts))

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Documents as one float32 array (what index building uses)."""
        return self._transform(list(texts))

    def save(self, directory: str | Path) -> None:
        """``lsa.json`` (id, vocabulary in column order) + ``lsa_idf.npy`` + ``lsa_components.npy``."""
        if not self.fitted:
            raise EmbedderError("LSAEmbeddings is not fitted: nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab = self.vectorizer.vocabulary_
        terms = [""] * len(vocab)
        for term, col in vocab.items():
            terms[col] = term
        (directory / "lsa.json").write_text(json.dumps({"id": self.embedder_id, "vocabulary": terms},
                                                       ensure_ascii=False), encoding="utf-8")
        np.save(directory / "lsa_idf.npy", np.asarray(self.vectorizer.idf_), allow_pickle=False)
        np.save(directory / "lsa_components.npy", self.components, allow_pickle=False)

    def load(self, directory: str | Path) -> "LSAEmbeddings":
        """Rebuild the vectorizer from the saved vocabulary and idf; arrays are read with allow_pickle=False."""
        directory = Path(directory)
        try:
            state = json.loads((directory / "lsa.json").read_text(encoding="utf-8"))
            idf = np.load(directory / "lsa_idf.npy", allow_pickle=False)
            components = np.load(directory / "lsa_components.npy", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise EmbedderError(f"{directory}: cannot read the saved LSA embedder ({type(e).__name__}: {e})") from e
        if state.get("id") != self.embedder_id:
            raise EmbedderError(f"{directory}: saved LSA {state.get('id')} does not match the configured "
                                f"{self.embedder_id}")
        terms = state["vocabulary"]
        if idf.shape != (len(terms),) or components.ndim != 2 or components.shape[1] != len(terms):
            raise EmbedderError(f"{directory}: saved LSA arrays do not match its vocabulary "
                                f"(idf {idf.shape}, components {components.shape}, {len(terms)} terms)")
        self.vectorizer = self._vectorizer({t: i for i, t in enumerate(terms)})
        self.vectorizer.idf_ = idf  # sklearn's public way to transfer a fitted idf
        self.components = np.ascontiguousarray(components, dtype=np.float32)
        return self


class SentenceTransformerEmbeddings(Embeddings):
    """A sentence-transformers model from a local directory or the HF cache (loaded on first use)."""

    needs_fit = False

    def __init__(self, model_name_or_path: str, normalize: bool = True, batch_size: int = 32,
                 query_instruction: str = "", device: str | None = None):
        if not model_name_or_path:
            raise EmbedderError("sentence_transformers embedder needs a model path or hub id "
                                "(retriever.embedder.model=...)")
        self.model_name_or_path = str(model_name_or_path)
        self.normalize, self.batch_size = normalize, int(batch_size)
        self.query_instruction, self.device = query_instruction, device
        self._model: Any = None

    @property
    def embedder_id(self) -> str:
        h = hashlib.sha256(self.query_instruction.encode("utf-8"))
        p = Path(self.model_name_or_path)
        if p.is_dir():  # local weights: their names, sizes and small files' bytes identify them
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                h.update(f.relative_to(p).as_posix().encode() + str(f.stat().st_size).encode())
                if f.stat().st_size < 1_000_000:
                    h.update(f.read_bytes())
        return f"st:{self.model_name_or_path}:norm={self.normalize}:{h.hexdigest()[:12]}"

    @property
    def model(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:  # pragma: no cover - declared dependency
                raise EmbedderError("sentence-transformers is not installed: pip install sentence-transformers") from e
            local = Path(self.model_name_or_path).is_dir()
            try:
                self._model = SentenceTransformer(self.model_name_or_path, device=self.device,
                                                  local_files_only=not local and _offline())
            except Exception as e:
                raise EmbedderError(
                    f"could not load sentence-transformers model {self.model_name_or_path!r}: "
                    + ("it is a directory but not a loadable model" if local else
                       "not a local directory and not in the Hugging Face cache (offline). Download it on a "
                       "machine with network access (huggingface-cli download ...) and set "
                       "retriever.embedder.model to its local path")
                    + f" [{type(e).__name__}: {e}]") from e
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=self.normalize, show_progress_bar=len(texts) > 2000)
        return np.asarray(vecs, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0].tolist()

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.query_instruction + t for t in texts])

    def embed_array(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def make_embedder(cfg: Any) -> Embeddings:
    """An embedder from an ``EmbedderConfig`` (or anything with the same attributes)."""
    if cfg.kind == "lsa":
        return LSAEmbeddings(cfg.dim, (cfg.ngram_min, cfg.ngram_max), cfg.analyzer, cfg.max_features, cfg.seed)
    if cfg.kind == "sentence_transformers":
        return SentenceTransformerEmbeddings(cfg.model, cfg.normalize, cfg.batch_size, cfg.query_instruction,
                                             cfg.device)
    raise ValueError(f"unknown embedder kind {cfg.kind!r}; choose lsa or sentence_transformers")
