"""Pure helpers for the HF backend: padding, length-sorted batching, and answer decisions from log-probs."""

from __future__ import annotations

import math
from typing import Sequence

from qualbench.records import JUDGE, MULTI, SINGLE, Question


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding is minimal."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by every sequence."""
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for k in range(n):
        t = first[k]
        if any(s[k] != t for s in seqs):
            return k
    return n


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """Left-pad token id lists to one length; returns (input_ids, attention_mask)."""
    width = max(len(s) for s in seqs)
    ids = [[pad_id] * (width - len(s)) + list(s) for s in seqs]
    mask = [[0] * (width - len(s)) + [1] * len(s) for s in seqs]
    return ids, mask


def candidates(item: Question, judge_words: Sequence[str]) -> dict[str, str]:
    """Canonical answer -> continuation text to score: option letters, or 正确/错误 -> ``judge_words``."""
    if item.question_type == JUDGE:
        true_word, false_word = judge_words
        return {"正确": true_word, "错误": false_word}
    if not item.options:
        raise ValueError(f"item {item.idx}: {item.question_type} without options cannot be scored by loglik")
    return {k: k for k in item.options}


def softmax(scores: dict[str, float]) -> dict[str, float]:
    """Softmax of log-scores over the given keys only (renormalised over the valid options)."""
    top = max(scores.values())
    exp = {k: math.exp(v - top) for k, v in scores.items()}
    z = sum(exp.values())
    return {k: v / z for k, v in exp.items()}


def decide(question_type: str, scores: dict[str, float], tau: float = 0.5, min_multi: int = 2) -> str:
    """The answer implied by continuation log-probs.

    单选题/判断题: the argmax. 多选题: letters whose probability (softmax over the valid letters) is at least
    ``tau`` times the top letter's, and always the ``min_multi`` most likely; returned sorted ("ACD").
    """
    if question_type in (SINGLE, JUDGE):
        return max(scores, key=lambda k: scores[k])
    if question_type != MULTI:
        raise ValueError(f"unknown question type {question_type!r}")
    probs = softmax(scores)
    pmax = max(probs.values())
    ranked = sorted(probs, key=lambda k: -probs[k])
    keep = {k for k in ranked if probs[k] >= tau * pmax}
    keep.update(ranked[: min(min_multi, len(ranked))])
    return "".join(sorted(keep))
