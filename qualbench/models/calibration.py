"""Fit the retrieval answerer's decision rules on labelled items, and cross-fit over folds.

A ``Calibration`` holds: option-scoring weights (conditional logit over per-option evidence), the 多选题
threshold τ (an option is chosen unless its score lies more than τ standard deviations below the item's mean
option score), and the 判断题 classifier and its threshold. Every fit sees only the items it is
given; ``crossfit`` records which idx each fold trained and predicted on. Ties between option scores are broken
by a random choice seeded by ``(seed, idx)``, never by position.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from qualbench.models.evidence import CHOICE_FEATURES, JUDGE_FEATURES, ItemFeatures
from qualbench.records import FALSE, JUDGE, MULTI, SINGLE, TRUE

log = logging.getLogger(__name__)

MIN_FIT_ITEMS = 6  # fewer labelled items of a type than this: keep that type's defaults
DEFAULT_MULTI_TAU = 0.8  # 多选题: drop options more than 0.8 SD below the item's mean option score
TAU_GRID = np.round(np.arange(-0.5, 2.01, 0.1), 2)  # τ values tried when τ is fitted
_TIE = 1e-9


def tie_order(seed: int, idx: str, n: int) -> np.ndarray:
    """A random permutation of range(n) fixed by (seed, idx): the tie-break rank of each option."""
    h = int(hashlib.sha256(f"{seed}|{idx}".encode()).hexdigest()[:16], 16)
    return np.random.default_rng(h).permutation(n)


def ranked(scores: np.ndarray, seed: int, idx: str) -> np.ndarray:
    """Option indices from best to worst; equal scores (within 1e-9) ordered by the seeded tie-break."""
    s = np.round(np.asarray(scores, dtype=float) / _TIE) * _TIE
    return np.lexsort((tie_order(seed, idx, len(s)), -s))


def item_z(s: np.ndarray) -> np.ndarray:
    """Option scores standardised within the item (all 0 when the options are indistinguishable)."""
    sd = float(s.std())
    return (s - s.mean()) / sd if sd > _TIE else np.zeros_like(s)


@dataclass
class Calibration:
    """Decision parameters; the defaults (``calibration=none``) weigh all evidence features equally."""

    choice_coef: np.ndarray = field(default_factory=lambda: np.ones(len(CHOICE_FEATURES)))
    multi_tau: float = DEFAULT_MULTI_TAU
    min_multi: int = 2
    seed: int = 0  # tie-break seed (with each item's idx)
    judge_coef: np.ndarray | None = None  # None: rule "supported and no wording mismatch → 正确"
    judge_intercept: float = 0.0
    judge_mean: np.ndarray | None = None
    judge_scale: np.ndarray | None = None
    judge_threshold: float = 0.5
    fitted_on: tuple[str, ...] = ()  # idx of the items this was fitted on (for audits and tests)

    # ---- prediction -------------------------------------------------------------------------------
    def option_scores(self, f: ItemFeatures) -> np.ndarray:
        """Item-normalised option scores in [0, 1] (1 = best supported)."""
        s = f.X @ self.choice_coef
        lo, hi = float(s.min()), float(s.max())
        return (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)

    def judge_prob(self, f: ItemFeatures) -> float:
        """Estimated probability that the statement is 正确."""
        if self.judge_coef is None:  # default rule: 错误 only when a law sentence was visibly altered
            x = dict(zip(JUDGE_FEATURES, f.X))
            return 0.0 if x["altered"] or (x["num_miss"] and x["cov"] >= 0.7) else 1.0
        z = (f.X - self.judge_mean) / self.judge_scale
        return float(1.0 / (1.0 + np.exp(-(z @ self.judge_coef + self.judge_intercept))))

    def decide(self, f: ItemFeatures) -> tuple[str, dict[str, float]]:
        """The answer and the scores behind it."""
        if f.question_type == JUDGE:
            p = self.judge_prob(f)
            return (TRUE if p >= self.judge_threshold else FALSE), {"p_true": round(p, 4)}
        s = self.option_scores(f)
        scores = {l: round(float(v), 4) for l, v in zip(f.letters, s)}
        order = ranked(s, self.seed, f.idx)
        if f.question_type == SINGLE:
            pick = [f.letters[order[0]]]
        elif len(f.letters) <= self.min_multi:
            pick = list(f.letters)
        else:  # per option: keep it unless its evidence is well below the item's other options
            z = item_z(s)
            pick = [l for l, v in zip(f.letters, z) if v >= -self.multi_tau - _TIE]
            if len(pick) < self.min_multi:
                pick = [f.letters[i] for i in order[: self.min_multi]]
        return "".join(sorted(pick)), scores


# ---- fitting --------------------------------------------------------------------------------------
def _fit_choice(items: Sequence[ItemFeatures], l2: float = 0.1) -> np.ndarray | None:
    """Conditional logit: weights maximising the softmax probability of the answer option(s) per item."""
    from scipy.optimize import minimize

    items = [f for f in items if len(f.letters) >= 2 and any(l in f.answer for l in f.letters)]
    if len(items) < MIN_FIT_ITEMS:
        return None
    Xs = [f.X for f in items]
    targets = []
    for f in items:
        m = np.array([float(l in f.answer) for l in f.letters])
        targets.append(m / m.sum())

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for X, t in zip(Xs, targets):
            s = X @ w
            s = s - s.max()
            p = np.exp(s)
            p /= p.sum()
            total -= float(t @ np.log(p + 1e-12))
            grad -= X.T @ (t - p)
        n = len(Xs)
        return total / n + l2 * float(w @ w), grad / n + 2 * l2 * w

    w0 = np.ones(Xs[0].shape[1])
    return minimize(loss, w0, jac=True, method="L-BFGS-B").x


def _fit_tau(cal: Calibration, items: Sequence[ItemFeatures]) -> float | None:
    """τ maximising exact-match accuracy on the 多选题 items (ties: the smaller τ)."""
    multi = [f for f in items if f.question_type == MULTI]
    if len(multi) < MIN_FIT_ITEMS:
        return None
    best_tau, best_acc = None, -1.0
    for tau in TAU_GRID:
        cal.multi_tau = float(tau)
        acc = np.mean([cal.decide(f)[0] == f.answer for f in multi])
        if acc > best_acc + 1e-12:
            best_tau, best_acc = float(tau), acc
    return best_tau


def _fit_judge(cal: Calibration, items: Sequence[ItemFeatures]) -> None:
    from sklearn.linear_model import LogisticRegression

    judge = [f for f in items if f.question_type == JUDGE]
    y = np.array([int(f.answer == TRUE) for f in judge])
    if len(judge) < MIN_FIT_ITEMS or len(set(y.tolist())) < 2:
        return
    X = np.array([f.X for f in judge])
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=0.5, max_iter=1000).fit((X - mean) / scale, y)
    cal.judge_coef, cal.judge_intercept = lr.coef_[0], float(lr.intercept_[0])
    cal.judge_mean, cal.judge_scale = mean, scale
    # threshold maximising accuracy on the calibration items (0.5 unless another cut is clearly better)
    probs = np.array([cal.judge_prob(f) for f in judge])
    best_t, best_acc = 0.5, float(np.mean((probs >= 0.5) == y))
    for t in np.linspace(0.2, 0.8, 25):
        acc = float(np.mean((probs >= t) == y))
        if acc > best_acc + 0.01:
            best_t, best_acc = float(t), acc
    cal.judge_threshold = best_t


def fit_calibration(
    items: Sequence[ItemFeatures],
    min_multi: int = 2,
    seed: int = 0,
    multi_tau: float | None = DEFAULT_MULTI_TAU,
    fit_judge: bool = False,
) -> Calibration:
    """Fit the decision rules on ``items`` (types with too few items keep their defaults).

    The option weights are always fitted; τ only when ``multi_tau`` is None (else it is that fixed value);
    the 判断题 classifier only when ``fit_judge`` (else the fixed rule of ``Calibration.judge_prob``).
    """
    cal = Calibration(min_multi=min_multi, seed=seed, fitted_on=tuple(f.idx for f in items))
    choice = [f for f in items if f.question_type in (SINGLE, MULTI)]
    coef = _fit_choice(choice)
    if coef is not None:
        cal.choice_coef = coef
    if multi_tau is not None:
        cal.multi_tau = float(multi_tau)
    else:
        tau = _fit_tau(cal, items)
        if tau is not None:
            cal.multi_tau = tau
    if fit_judge:
        _fit_judge(cal, items)
    return cal


@dataclass
class FoldRecord:
    fold: int
    fitted_on: tuple[str, ...]
    predicted: tuple[str, ...]


def crossfit(
    items: Sequence[ItemFeatures],
    folds: Sequence[Sequence[str]],
    fit: Callable[[Sequence[ItemFeatures]], Calibration] = fit_calibration,
) -> tuple[dict[str, tuple[str, dict[str, float]]], list[FoldRecord]]:
    """Predict each fold with a calibration fitted on the other folds.

    ``folds`` lists the idx of each fold (disjoint, covering ``items``). Returns the decisions by idx and
    one record per fold of the idx it was fitted on and predicted.
    """
    by_idx = {f.idx: f for f in items}
    seen: set[str] = set()
    for fold in folds:
        overlap = seen & set(fold)
        if overlap:
            raise ValueError(f"folds overlap on idx {sorted(overlap)[:5]}")
        seen |= set(fold)
    if seen != set(by_idx):
        raise ValueError("folds must cover exactly the items given")
    out: dict[str, tuple[str, dict[str, float]]] = {}
    records: list[FoldRecord] = []
    for i, fold in enumerate(folds):
        held = set(fold)
        train = [f for f in items if f.idx not in held]
        cal = fit(train)
        records.append(FoldRecord(i, tuple(f.idx for f in train), tuple(fold)))
        for idx in fold:
            out[idx] = cal.decide(by_idx[idx])
    return out, records
