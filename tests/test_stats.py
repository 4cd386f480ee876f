"""Paired significance: McNemar against scipy and hand values, Holm by hand, bootstrap CIs against theory."""

import math

import numpy as np
import pytest
from scipy import stats

from qualbench.analysis.stats import (
    bootstrap_mean_ci,
    compare_groups,
    compare_paired,
    holm,
    mcnemar,
    mcnemar_counts,
    paired_bootstrap,
)


def vectors(b: int, c: int, both: int = 5, neither: int = 3) -> tuple[list[int], list[int]]:
    """Paired 0/1 vectors with b items only a got right and c items only b got right."""
    a = [1] * b + [0] * c + [1] * both + [0] * neither
    bb = [0] * b + [1] * c + [1] * both + [0] * neither
    return a, bb


def test_mcnemar_exact_hand_value():
    # b=1, c=6: two-sided exact p = 2 * (C(7,0) + C(7,1)) / 2**7 = 16/128
    r = mcnemar(*vectors(1, 6))
    assert (r.b, r.c, r.method) == (1, 6, "exact")
    assert r.p_value == pytest.approx(16 / 128)


@pytest.mark.parametrize("b,c", [(0, 5), (3, 3), (7, 19), (40, 61), (2, 0)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    r = mcnemar_counts(b, c, "exact")
    assert r.p_value == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue)


def test_mcnemar_chi2_continuity_hand_value():
    # (|10 - 25| - 1)^2 / 35 = 5.6; chi-square(1) survival = erfc(sqrt(5.6 / 2))
    r = mcnemar_counts(10, 25, "chi2_cc")
    assert r.statistic == pytest.approx(5.6)
    assert r.p_value == pytest.approx(math.erfc(math.sqrt(5.6 / 2)))
    assert mcnemar_counts(10, 25, "auto").method == "chi2_cc"
    assert mcnemar_counts(3, 5, "auto").method == "exact"


def test_mcnemar_no_discordant_pairs_and_bad_input():
    assert mcnemar([1, 0, 1], [1, 0, 1]).p_value == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar([1, 0], [1])
    with pytest.raises(ValueError, match="unknown McNemar method"):
        mcnemar_counts(1, 2, "z")


def test_holm_hand_values():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> monotone .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm({"x": 0.5, "y": 0.6}) == pytest.approx({"x": 1.0, "y": 1.0})
    out = holm([0.01, float("nan"), 0.02])
    assert out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02) and math.isnan(out[1])


def test_bootstrap_mean_ci_matches_normal_theory():
    rng = np.random.default_rng(1)
    x = (rng.random(2000) < 0.3).astype(float)
    m, lo, hi = bootstrap_mean_ci(x, n_boot=2000, seed=0)
    se = math.sqrt(m * (1 - m) / x.size)
    assert m == pytest.approx(x.mean())
    assert lo < m < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_mean_ci(x, n_boot=300, seed=5) == bootstrap_mean_ci(x, n_boot=300, seed=5)


def test_paired_bootstrap_delta_ci_and_p():
    rng = np.random.default_rng(2)
    a = (rng.random(600) < 0.5).astype(float)
    b = a.copy()
    flip = rng.choice(600, 120, replace=False)
    b[flip] = 1.0  # b is never worse, better on some items
    r = paired_bootstrap(a, b, n_boot=1000, seed=0)
    assert r.delta == pytest.approx(b.mean() - a.mean())
    assert 0 < r.ci_low < r.delta < r.ci_high
    assert r.p_value < 0.01
    same = paired_bootstrap(a, a, n_boot=200)
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    # a small, noisy difference is not significant
    c = a.copy()
    c[np.flatnonzero(a == 0)[:3]] = 1.0
    c[np.flatnonzero(a == 1)[:2]] = 0.0
    assert paired_bootstrap(a, c, n_boot=1000).p_value > 0.3


def test_compare_groups_holm_adjusts_within_family():
    rng = np.random.default_rng(3)
    a = (rng.random(300) < 0.5).astype(float)
    b = np.where(rng.random(300) < 0.3, 1.0, a)
    groups = rng.choice(["x", "y", "z"], 300)
    res = compare_groups(a, b, groups, n_boot=200)
    assert set(res) == {"all", "x", "y", "z"}
    raw = [res[g].p_mcnemar for g in "xyz"]
    assert [res[g].p_holm for g in "xyz"] == pytest.approx(holm(raw))
    assert all(res[g].p_holm >= res[g].p_mcnemar for g in "xyz")
    assert res["all"].n == 300 and sum(res[g].n for g in "xyz") == 300
    c = compare_paired(a, b, n_boot=200)
    assert c.discordant_b_only == int(np.sum((a == 0) & (b == 1)))
    assert c.delta == pytest.approx(b.mean() - a.mean())
