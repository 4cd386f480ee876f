"""Vote rules and aggregators over plain lists of canonical labels (no files, no config): the algorithms of the
crowd study (``qualbench.analysis.crowd``).

A label is a canonical answer ("A", "AC", "正确"); "" means the model gave none (it abstains). ``labels[j]`` is
model j's label for one item; ``rank`` lists model indices, best first.

Tie rule: among tied labels, the one chosen by the model ranked highest on the calibration split (accuracy, then
name) wins; without a ranking, the lowest label in sort order.

多选题: per-option binary relevance. Each letter any model picked is a yes/no task (abstaining models do not vote);
a letter is kept when its (weighted) yes votes beat the no votes; the kept letters form the answer. When fewer than
two letters survive (a 多选题 answer has at least two), the whole-set vote is used for that item instead.

``crowdkit_labels`` fits crowd-kit's unsupervised aggregators (Dawid–Skene, GLAD, MACE; they never see gold
answers) separately on 单选题 (letters), 判断题 (正确/错误) and the per-letter tasks of 多选题.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Sequence

import numpy as np

from qualbench.records import JUDGE, MULTI

TIE_RULE = (
    "ties go to the label chosen by the highest-ranked model on the calibration split "
    "(calibration accuracy, then name); without a ranking, to the lowest label in sort order"
)
MULTI_STRATEGY = (
    "per-option binary relevance: each letter any model picked is a yes/no task; a letter is kept when its "
    "(weighted) yes votes beat the no votes; if fewer than two letters survive, the whole-set vote is used"
)
CROWDKIT_METHODS = ("dawid_skene", "glad", "mace")


def weighted_vote(
    labels: Sequence[str], weights: Sequence[float] | None = None, rank: Sequence[int] | None = None
) -> str:
    """The label with the largest total weight ("" = abstain, ignored). ``rank``: worker indices, best first,
    used to break ties; without it ties go to the lowest label. All abstain → ""."""
    w = [1.0] * len(labels) if weights is None else list(weights)
    score: dict[str, float] = defaultdict(float)
    for lab, wi in zip(labels, w):
        if lab:
            score[lab] += wi
    if not score:
        return ""
    best = max(score.values())
    tied = sorted(lab for lab, s in score.items() if np.isclose(s, best))
    if len(tied) == 1:
        return tied[0]
    if rank is not None:
        for i in rank:
            if labels[i] in tied:
                return labels[i]
    return tied[0]


def majority_vote(labels: Sequence[str], rank: Sequence[int] | None = None) -> str:
    """One model, one vote (see ``weighted_vote`` for abstains and ties)."""
    return weighted_vote(labels, None, rank)


def multi_vote(
    labels: Sequence[str], weights: Sequence[float] | None = None, rank: Sequence[int] | None = None
) -> str:
    """多选题 by per-option binary relevance (see the module docstring)."""
    w = [1.0] * len(labels) if weights is None else list(weights)
    voters = [i for i, lab in enumerate(labels) if lab]
    if not voters:
        return ""
    letters = sorted({ch for i in voters for ch in labels[i]})
    kept = []
    for ch in letters:
        yes = sum(w[i] for i in voters if ch in labels[i])
        no = sum(w[i] for i in voters if ch not in labels[i])
        if np.isclose(yes, no):
            first = next((i for i in (rank or []) if labels[i]), None)
            if first is not None and ch in labels[first]:
                kept.append(ch)
        elif yes > no:
            kept.append(ch)
    if len(kept) < 2:
        return weighted_vote(labels, w, rank)
    return "".join(kept)


def vote_items(
    labels: Sequence[Sequence[str]], qtypes: Sequence[str], weights: Sequence[float] | None, rank: Sequence[int]
) -> list[str]:
    """One vote per item: ``multi_vote`` for 多选题, ``weighted_vote`` for the others."""
    return [(multi_vote if t == MULTI else weighted_vote)(labs, weights, rank) for labs, t in zip(labels, qtypes)]


def ranking(acc: Sequence[float], workers: Sequence[str]) -> list[int]:
    """Worker indices by accuracy, best first (ties by name): the ``rank`` of the vote rules."""
    return sorted(range(len(workers)), key=lambda j: (-acc[j], workers[j]))


def _crowdkit(name: str) -> Callable[[], Any]:
    if name not in CROWDKIT_METHODS:
        raise ValueError(f"unknown crowd-kit method {name!r} (choose from {', '.join(CROWDKIT_METHODS)})")
    from crowdkit import aggregation

    return {
        "dawid_skene": lambda: aggregation.DawidSkene(n_iter=100),
        "glad": lambda: aggregation.GLAD(n_iter=100),
        "mace": lambda: aggregation.MACE(n_restarts=3, n_iter=50, random_state=0),
    }[name]


def crowdkit_labels(
    ids: Sequence[str], qtypes: Sequence[str], workers: Sequence[str], labels: Sequence[Sequence[str]], method: str
) -> dict[str, str]:
    """Fit one crowd-kit aggregator (``CROWDKIT_METHODS``) per question family on all items (no gold used)
    → item id → label. ``labels[i][j]``: worker j's label for item ``ids[i]``."""
    import pandas as pd

    fams: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    multi_letters: dict[str, list[str]] = {}
    for x, t, labs in zip(ids, qtypes, labels):
        if t == MULTI:
            letters = sorted({ch for lab in labs for ch in lab})
            multi_letters[x] = letters
            for ch in letters:
                for w, lab in zip(workers, labs):
                    if lab:
                        fams["multi"].append((f"{x}#{ch}", w, "1" if ch in lab else "0"))
        else:
            fam = "judge" if t == JUDGE else "single"
            fams[fam].extend((x, w, lab) for w, lab in zip(workers, labs) if lab)
    pred: dict[str, str] = {}
    for rows in fams.values():
        df = pd.DataFrame(rows, columns=["task", "worker", "label"])
        res = _crowdkit(method)().fit_predict(df)
        pred.update({str(k): str(v) for k, v in res.items()})
    out: dict[str, str] = {}
    for x, t, labs in zip(ids, qtypes, labels):
        if t == MULTI:
            kept = "".join(ch for ch in multi_letters.get(x, []) if pred.get(f"{x}#{ch}") == "1")
            out[x] = kept if len(kept) >= 2 else majority_vote(labs)
        else:
            out[x] = pred.get(x, "")
    return out
