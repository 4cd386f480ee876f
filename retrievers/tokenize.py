"""Chinese tokenizers for BM25: ``jieba`` words or ``char_bigram`` (character unigrams + bigrams).

bm25s's own tokenizer splits on non-word characters, so a whole clause of Chinese becomes one token; these
tokenizers give word-level matches instead. The tokenizer name is stored in the index manifest and the same
one is used for queries.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Callable, Sequence

from retrievers import parallel

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[A-Za-z0-9]+(?:\.[0-9]+)?")
_KEEP = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z0-9]")
TOKENIZERS = ("jieba", "char_bigram")


def char_bigram(text: str) -> list[str]:
    """Each CJK run -> its characters and adjacent-character bigrams; Latin/digit runs -> lower-cased words."""
    out: list[str] = []
    for m in _CJK_RUN.finditer(text):
        run = m.group(0)
        if run[0].isascii():
            out.append(run.lower())
            continue
        out.extend(run)
        out.extend(run[i:i + 2] for i in range(len(run) - 1))
    return out


@functools.lru_cache(maxsize=1)
def _jieba_tokenizer():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()  # its own instance with jieba's bundled default dictionary
    tok.initialize()
    return tok


def jieba_words(text: str) -> list[str]:
    """jieba's accurate-mode words, lower-cased, punctuation and whitespace dropped."""
    return [w.lower() for w in _jieba_tokenizer().lcut(text) if _KEEP.search(w)]


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    if name == "jieba":
        return jieba_words
    if name == "char_bigram":
        return char_bigram
    raise ValueError(f"unknown tokenizer {name!r}; choose one of {TOKENIZERS}")


def _tokenize_part(args: tuple[str, list[str]]) -> list[list[str]]:
    name, texts = args
    tok = get_tokenizer(name)
    return [tok(t) for t in texts]


def tokenize_all(texts: Sequence[str], name: str, workers: int | None = None) -> list[list[str]]:
    """Tokenise a corpus once: for a large corpus in forked worker processes (one per usable core, at most 8)
    when only daemon helper threads run beside the main one (fork is safe then; nothing is re-imported), else
    in this process. The tokens are the same either way."""
    tok = get_tokenizer(name)
    workers = parallel.default_workers(workers)
    if not parallel.can_fork(len(texts), workers):
        return [tok(t) for t in texts]
    tok("预热")  # load the dictionary once here; the forked workers inherit it
    parts = [(name, part) for part in parallel.split(texts, workers * 4)]
    return [tokens for part in parallel.fork_map(_tokenize_part, parts, workers) for tokens in part]
