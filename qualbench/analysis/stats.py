"""Paired significance for accuracy comparisons: paired bootstrap, McNemar, Holm, bootstrap CI of a mean.

All functions take per-item 0/1 correctness vectors aligned on the same items (same order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

EXACT_MAX_DISCORDANT = 25  # McNemar "auto": exact binomial below this many discordant pairs, chi-square above


def _as01(x: Sequence[Any]) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-d correctness vector, got shape {a.shape}")
    return a


def _boot_indices(rng: np.random.Generator, n: int, n_boot: int, chunk: int = 200):
    """Bootstrap index matrices in chunks (bounded memory for large n)."""
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def bootstrap_mean_ci(
    values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, lo, hi): the scorer's percentile bootstrap CI of a mean (one implementation: ``bootstrap_ci``)."""
    from qualbench.scoring.metrics import bootstrap_ci

    a = _as01(values)
    if a.size == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_ci(a, n_boot=n_boot, alpha=alpha, seed=seed)
    return float(a.mean()), lo, hi


@dataclass
class BootstrapDiff:
    delta: float  # mean(b) - mean(a)
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, centred bootstrap test of delta = 0
    n: int


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> BootstrapDiff:
    """Paired bootstrap of ``mean(b) - mean(a)``: items are resampled together.

    The p-value is the centred test (Efron & Tibshirani 16.4): the share of resampled deltas at least as far
    from the observed delta as the observed delta is from 0, with the +1 correction.
    """
    x, y = _as01(a), _as01(b)
    if x.shape != y.shape:
        raise ValueError(f"paired vectors differ in length: {x.size} vs {y.size}")
    n = x.size
    if n == 0:
        nan = float("nan")
        return BootstrapDiff(nan, nan, nan, nan, 0)
    d = y - x
    obs = float(d.mean())
    rng = np.random.default_rng(seed)
    boots = np.concatenate([d[ix].mean(axis=1) for ix in _boot_indices(rng, n, n_boot)])
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    if obs == 0.0 and not boots.any():
        p = 1.0
    else:
        extreme = np.sum(np.abs(boots - obs) >= abs(obs) - 1e-12)
        p = float((1 + extreme) / (1 + boots.size))
    return BootstrapDiff(obs, float(lo), float(hi), min(1.0, p), n)


@dataclass
class McNemar:
    b: int  # a right, b wrong
    c: int  # a wrong, b right
    statistic: float  # min(b, c) for the exact test, the corrected chi-square otherwise
    p_value: float
    method: str  # "exact" | "chi2_cc"


def mcnemar(a: Sequence[float], b: Sequence[float], method: str = "exact") -> McNemar:
    """McNemar's test on paired correctness. ``method``: "exact" (binomial, the default: valid at any n),
    "chi2_cc" (chi-square with continuity correction) or "auto" (exact below 25 discordant pairs)."""
    x, y = _as01(a).astype(bool), _as01(b).astype(bool)
    if x.shape != y.shape:
        raise ValueError(f"paired vectors differ in length: {x.size} vs {y.size}")
    nb = int(np.sum(x & ~y))
    nc = int(np.sum(~x & y))
    return mcnemar_counts(nb, nc, method)


def mcnemar_counts(b: int, c: int, method: str = "exact") -> McNemar:
    """McNemar's test from the two discordant counts."""
    if method not in ("exact", "chi2_cc", "auto"):
        raise ValueError(f"unknown McNemar method {method!r}; use exact, chi2_cc or auto")
    n = b + c
    if method == "auto":
        method = "exact" if n < EXACT_MAX_DISCORDANT else "chi2_cc"
    if n == 0:
        return McNemar(b, c, 0.0, 1.0, method)
    if method == "exact":
        p = stats.binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue
        return McNemar(b, c, float(min(b, c)), float(min(1.0, p)), "exact")
    chi2 = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, float(chi2), float(stats.chi2.sf(chi2, 1)), "chi2_cc")


def holm(pvalues: Sequence[float] | Mapping[str, float]) -> Any:
    """Holm–Bonferroni adjusted p-values (same shape: list in, list out; dict in, dict out). NaNs are ignored."""
    if isinstance(pvalues, Mapping):
        keys = list(pvalues)
        adj = holm([pvalues[k] for k in keys])
        return dict(zip(keys, adj))
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def group_order(names: Sequence[str]) -> list[str]:
    """Distinct group names in the canonical order: the six domains, then 单选/多选/判断, then the rest sorted."""
    from qualbench.domains import DOMAIN_NAMES
    from qualbench.records import QUESTION_TYPES

    known = list(DOMAIN_NAMES) + list(QUESTION_TYPES)
    uniq = set(map(str, names))
    return [k for k in known if k in uniq] + sorted(uniq - set(known))


@dataclass
class Comparison:
    """One row of a comparison table: b against a on the same items."""

    n: int
    acc_a: float
    acc_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_bootstrap: float
    p_mcnemar: float
    discordant_a_only: int
    discordant_b_only: int
    p_holm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_paired(a: Sequence[float], b: Sequence[float], n_boot: int = 1000, seed: int = 0) -> Comparison:
    """Delta (b − a), its paired-bootstrap CI and p, and McNemar's exact p."""
    x, y = _as01(a), _as01(b)
    bd = paired_bootstrap(x, y, n_boot=n_boot, seed=seed)
    mc = mcnemar(x, y)
    nan = float("nan")
    return Comparison(
        n=int(x.size),
        acc_a=float(x.mean()) if x.size else nan,
        acc_b=float(y.mean()) if y.size else nan,
        delta=bd.delta,
        ci_low=bd.ci_low,
        ci_high=bd.ci_high,
        p_bootstrap=bd.p_value,
        p_mcnemar=mc.p_value,
        discordant_a_only=mc.b,
        discordant_b_only=mc.c,
    )


def compare_groups(
    a: Sequence[float],
    b: Sequence[float],
    groups: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Comparison]:
    """``compare_paired`` overall ("all") and within each group, Holm-adjusting McNemar p across the groups."""
    x, y = _as01(a), _as01(b)
    g = np.asarray(list(groups), dtype=object)
    out: dict[str, Comparison] = {"all": compare_paired(x, y, n_boot=n_boot, seed=seed)}
    for name in group_order(g.tolist()):
        m = g == name
        out[str(name)] = compare_paired(x[m], y[m], n_boot=n_boot, seed=seed)
    names = [k for k in out if k != "all"]
    for k, p in zip(names, holm([out[k].p_mcnemar for k in names])):
        out[k].p_holm = p
    out["all"].p_holm = out["all"].p_mcnemar
    return out
