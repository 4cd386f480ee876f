"""Evidence features for the retrieval answerer: how well retrieved law passages support each option/statement.

Pure functions over strings and langchain Documents; the retriever is only called in ``collect_features``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from qualbench.records import JUDGE, Question

_BLANK = re.compile(r"[（(][\s　_＿]*[)）]|[_＿]{2,}")
_NUMBERING = re.compile(r"^\s*\d+\s*[、.．]\s*")
_NON_WORD = re.compile(r"[^0-9A-Za-z\u4e00-\u9fff]+")
# stems that ask for the wrong / excluded option(s): 说法错误的是, 不属于……的是, ……除外
NEGATIVE_STEM = re.compile(
    r"(不正确|不准确|错误|有误|不属于|不包括|不符合|不恰当|不合理|不妥|不是|不需要|不必|无关)[^，。；,;]*?(的是|的有|是|有)?$"
    r"|除\s*[^，。；,;]{0,12}?\s*外|(下列|以下)[^，。；,;]*?(不正确|不属于|不包括|不符合|不是|错误|有误|不需要|不必)"
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?|[一二三四五六七八九十百千两半]+(?=[个日天年月周小时分钟%％万元人次级倍米层])")
MODALS = ("应当", "可以", "不得", "必须", "禁止", "严禁", "不应", "无需", "不需要", "有权", "不能")
ABSOLUTES = ("一律", "所有", "任何", "全部", "只要", "只有", "仅", "均", "都", "完全", "绝对", "一定", "无须", "无需")
NEGATIONS = ("不", "未", "无", "非", "禁止", "严禁")

CHOICE_FEATURES = ("ret", "own_cov", "joint_cov", "fill", "stem_ev")
JUDGE_FEATURES = (
    "cov", "joint", "lcs", "ret_norm", "num_miss", "modal_miss", "modal_extra", "absolute", "negation",
    "word_miss", "clean_support", "dirty_support", "near_copy", "altered",
)


def clean_stem(stem: str) -> str:
    """The stem without source numbering ("76、") and blank markers."""
    return _BLANK.sub(" ", _NUMBERING.sub("", stem)).strip()


def is_negative(stem: str) -> bool:
    """Does the stem ask for the wrong / excluded option(s) (说法错误的是, 不属于……的是, ……除外)?"""
    s = clean_stem(stem).rstrip("。．.？?：: 　")
    return bool(NEGATIVE_STEM.search(s))


def _chars(text: str) -> str:
    return _NON_WORD.sub("", text)


def ngrams(text: str, n: int = 2) -> set[str]:
    s = _chars(text)
    if len(s) < n:
        return {s} if s else set()
    return {s[i : i + n] for i in range(len(s) - n + 1)}


def coverage(part: str, passage: str, n: int = 2, exclude: frozenset[str] = frozenset()) -> float:
    """Share of ``part``'s character n-grams (minus ``exclude``) that occur in ``passage`` (0 if none)."""
    grams = ngrams(part, n) - exclude or ngrams(part, n)
    if not grams:
        return 0.0
    p = _chars(passage)
    return sum(1 for g in grams if g in p) / len(grams)


def longest_common_run(a: str, b: str) -> int:
    """Length of the longest common substring of ``a`` and ``b`` (punctuation ignored)."""
    a, b = _chars(a), _chars(b)
    best = 0
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0] * (len(b) + 1)
        for j, cb in enumerate(b, 1):
            if ca == cb:
                v = prev[j - 1] + 1
                cur[j] = v
                if v > best:
                    best = v
        prev = cur
    return best


def blank_window(stem: str, option: str, width: int = 10) -> tuple[str, int, int] | None:
    """The option written into the stem's first blank with ``width`` chars of context each side.

    Returns ``(text, start, end)`` of the option inside the window, or None if the stem has no blank.
    """
    s = _NUMBERING.sub("", stem)
    m = _BLANK.search(s)
    if not m:
        return None
    left = _chars(s[: m.start()])[-width:]
    right = _chars(s[m.end() :])[:width]
    opt = _chars(option)
    return left + opt + right, len(left), len(left) + len(opt)


def fill_score(stem: str, option: str, passages: Sequence[str], n: int = 3) -> float:
    """Share of the window's n-grams that straddle the option and its context and occur in a passage."""
    win = blank_window(stem, option)
    if win is None:
        return 0.0
    text, a, b = win
    if b == a:
        return 0.0
    grams = [text[i : i + n] for i in range(len(text) - n + 1) if i < b and i + n > a and (i < a or i + n > b)]
    if not grams:  # option fills the whole window (no context)
        return 0.0
    best = 0.0
    for p in passages:
        pc = _chars(p)
        best = max(best, sum(1 for g in grams if g in pc) / len(grams))
    return best


def missing_words(statement: str, passage: str) -> int:
    """How many words (2+ characters, jieba) of the statement do not occur in the passage."""
    import jieba

    jieba.setLogLevel(60)
    p = _chars(passage)
    words = {w for w in jieba.lcut(_chars(statement)) if len(w) >= 2}
    return sum(1 for w in words if w not in p)


def numbers(text: str) -> set[str]:
    return set(_NUMBER.findall(text))


@dataclass
class ItemFeatures:
    """Features of one item: ``X`` is (n_options, n_features) for choice items, (n_features,) for 判断题."""

    idx: str
    question_type: str
    letters: tuple[str, ...]
    X: np.ndarray
    answer: str
    negative: bool = False
    evidence: list[list[dict[str, Any]]] = field(default_factory=list)  # per option (or one): passage labels


def _label(doc: Any) -> dict[str, Any]:
    m = getattr(doc, "metadata", {}) or {}
    return {"law_title": m.get("law_title", ""), "article": m.get("article", ""), "score": m.get("score")}


def _score(doc: Any) -> float:
    s = (getattr(doc, "metadata", {}) or {}).get("score")
    return float(s) if s is not None else 0.0


def _minmax(v: np.ndarray) -> np.ndarray:
    lo, hi = float(v.min()), float(v.max())
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def choice_features(item: Question, own: list[list[Any]], stem_docs: list[Any]) -> ItemFeatures:
    """Per-option evidence (normalised per item; flipped for negatively phrased stems)."""
    stem = clean_stem(item.stem)
    pool = list(stem_docs) + [d for docs in own for d in docs]
    pool_text = [d.page_content for d in pool]
    stem_cov = [coverage(stem, t) for t in pool_text]
    stem_top = [d.page_content for d in stem_docs[:3]]
    # bigrams every option shares ("单位" in 建设单位/施工单位/监理单位) cannot tell the options apart
    grams = [ngrams(o) for o in item.options.values()]
    common = frozenset(set.intersection(*grams)) if grams else frozenset()
    rows = []
    for docs, opt in zip(own, item.options.values()):
        texts = [d.page_content for d in docs]
        ret = max((_score(d) for d in docs), default=0.0)
        own_cov = max((coverage(opt, t, exclude=common) for t in texts), default=0.0)
        joint = max((coverage(opt, t, exclude=common) * sc for t, sc in zip(pool_text, stem_cov)), default=0.0)
        fill = fill_score(item.stem, opt, pool_text)
        # is the option in the passages that best match the stem alone?
        stem_ev = max((coverage(opt, t, exclude=common) for t in stem_top), default=0.0)
        rows.append([ret, own_cov, joint, fill, stem_ev])
    X = np.array(rows, dtype=float)
    X = np.column_stack([_minmax(X[:, j]) for j in range(X.shape[1])])
    negative = is_negative(item.stem)
    if negative:
        X = 1.0 - X
    ev = [[_label(d) for d in docs[:3]] for docs in own]
    return ItemFeatures(item.idx, item.question_type, tuple(item.options), X, item.answer, negative, ev)


def judge_features(item: Question, docs: list[Any]) -> ItemFeatures:
    """Support of the statement by its best passages, plus wording cues (numbers, modal verbs, absolutes)."""
    stmt = clean_stem(item.stem)
    texts = [d.page_content for d in docs]
    covs = [coverage(stmt, t) for t in texts]
    best = int(np.argmax(covs)) if covs else -1
    best_text = texts[best] if best >= 0 else ""
    cov = covs[best] if best >= 0 else 0.0
    joint = coverage(stmt, " ".join(texts[:3]), 3) if texts else 0.0
    lcs = longest_common_run(stmt, best_text) / max(1, len(_chars(stmt))) if best_text else 0.0
    ret = _score(docs[0]) / max(1, len(_chars(stmt))) if docs else 0.0
    nums = numbers(stmt)
    num_miss = float(bool(nums) and best_text != "" and not nums <= numbers(" ".join(texts[:3])))
    modal_miss = float(any(m in stmt and m not in best_text for m in MODALS)) if best_text else 0.0
    modal_extra = float(any(m in best_text and m not in stmt for m in ("不得", "禁止", "严禁", "应当", "必须")))
    absolute = float(sum(stmt.count(w) for w in ABSOLUTES))
    negation = float(sum(stmt.count(w) for w in NEGATIONS))
    # false statements are often a law sentence with one term swapped (施工单位 → 建设单位)
    miss = float(missing_words(stmt, best_text)) if best_text else 0.0
    clean = cov if miss == 0 else 0.0
    dirty = cov * min(miss, 3.0)
    near_copy = float(cov >= 0.85 and miss == 0)  # the statement is (almost) a sentence of the law
    altered = float(cov >= 0.7 and 1 <= miss < 4)  # a law sentence with a few words changed
    X = np.array(
        [cov, joint, lcs, ret, num_miss, modal_miss, modal_extra, absolute, negation, miss, clean, dirty,
         near_copy, altered],
        dtype=float,
    )
    return ItemFeatures(item.idx, JUDGE, (), X, item.answer, False, [[_label(d) for d in docs[:3]]])


def collect_features(
    items: Sequence[Question], retriever: Any, k: int = 5, progress: bool = True
) -> list[ItemFeatures]:
    """One batched search over every (item, option) query, stem query and statement; then features per item."""
    queries: list[str] = []
    domains: list[str | None] = []
    spans: list[tuple[int, int]] = []
    for q in items:
        start = len(queries)
        stem = clean_stem(q.stem)
        slug = _slug(q)
        if q.question_type == JUDGE:
            queries.append(stem)
            domains.append(slug)
        else:
            queries.append(stem)
            domains.append(slug)
            for opt in q.options.values():
                queries.append(f"{stem} {opt}")
                domains.append(slug)
        spans.append((start, len(queries)))
    if k <= 0 or not queries:  # top_k=0: the no-retrieval ablation point, every item gets no evidence
        results: list[list[Any]] = [[] for _ in queries]
    else:
        results = retriever.search_batch(queries, domains=domains, k=k)
    if len(results) != len(queries):
        raise RuntimeError(f"retriever returned {len(results)} result lists for {len(queries)} queries")
    feats = []
    it = zip(items, spans)
    if progress and len(items) > 50:
        from tqdm import tqdm

        it = tqdm(it, total=len(items), desc="evidence features", leave=False)
    for q, (a, b) in it:
        if q.question_type == JUDGE:
            feats.append(judge_features(q, results[a]))
        else:
            feats.append(choice_features(q, results[a + 1 : b], results[a]))
    return feats


def _slug(q: Question) -> str | None:
    try:
        return q.domain_slug
    except ValueError:
        return None
