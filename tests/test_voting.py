"""Vote rules (abstains, ties, 多选题 per option) and crowd-kit aggregators on plain label lists."""

import importlib.util

import numpy as np
import pytest

from qualbench.analysis import voting
from qualbench.records import JUDGE, MULTI, SINGLE

needs_crowdkit = pytest.mark.skipif(
    importlib.util.find_spec("crowdkit") is None,
    reason="crowd-kit not installed (extra `crowd`; the `test` extra includes it)",
)


def test_majority_vote_counts_and_abstains():
    assert voting.majority_vote(["A", "B", "", "B"]) == "B"
    assert voting.majority_vote(["", ""]) == ""
    assert voting.majority_vote(["正确", "错误", "正确"]) == "正确"


def test_tie_rules():
    # without a ranking: lowest label; with one: the label of the best-ranked model among the tied labels
    assert voting.majority_vote(["B", "A"]) == "A"
    assert voting.majority_vote(["B", "A"], rank=[0, 1]) == "B"
    assert voting.majority_vote(["C", "B", "A", "B", "A"], rank=[2, 1, 0, 3, 4]) == "A"
    assert voting.majority_vote(["C", "B", "A", "B", "A"], rank=[0, 1, 2, 3, 4]) == "B"  # C not tied


def test_weighted_vote():
    assert voting.weighted_vote(["A", "B", "B"], [0.9, 0.2, 0.3]) == "A"
    assert voting.weighted_vote(["A", "B", "B"], [0.4, 0.2, 0.3]) == "B"
    assert voting.weighted_vote(["A", "B"], [0.5, 0.5], rank=[1, 0]) == "B"
    assert voting.weighted_vote(["", "B", "A"], [5.0, 0.1, 0.2]) == "A"  # an abstainer's weight counts for nothing


def test_multi_vote_per_option():
    assert voting.multi_vote(["AB", "ABC", "BC"]) == "ABC"
    assert voting.multi_vote(["AB", "CD", "AC"]) == "AC"
    # every letter tied 1:1: without ranking none survive -> whole-set vote, lowest set
    assert voting.multi_vote(["AB", "CD"]) == "AB"
    # with ranking the best model's choice breaks each per-letter tie
    assert voting.multi_vote(["AB", "CD"], rank=[1, 0]) == "CD"
    assert voting.multi_vote(["ABD", "AC", ""], weights=[0.1, 0.9, 0.5]) == "AC"
    assert voting.multi_vote(["", ""]) == ""


def test_vote_items_uses_the_per_option_rule_for_multi_only():
    labels = [["AB", "ABC", "BC"], ["A", "B", "B"], ["正确", "错误", "错误"]]
    assert voting.vote_items(labels, [MULTI, SINGLE, JUDGE], None, [0, 1, 2]) == ["ABC", "B", "错误"]
    # the same rows as 单选题: whole-label votes, the three-way tie goes to the best-ranked model (index 2)
    assert voting.vote_items(labels[:1], [SINGLE], None, [2, 0, 1]) == ["BC"]
    assert voting.vote_items(labels[1:2], [SINGLE], [0.9, 0.2, 0.3], [0, 1, 2]) == ["A"]


def test_ranking_orders_by_accuracy_then_name():
    assert voting.ranking([0.5, 0.7, 0.5], ["b", "c", "a"]) == [1, 2, 0]
    assert voting.ranking(np.array([0.1, 0.1]), ["y", "x"]) == [1, 0]


def synthetic_voters(n: int = 240, seed: int = 0, honest: bool = False) -> tuple[list[str], list[list[str]]]:
    """Gold letters and voters with known confusion: one good, two constant "A" voters, one A-biased, one weak
    (``honest``: five voters of accuracy 0.8 … 0.4 with uniform errors)."""
    rng = np.random.default_rng(seed)
    letters = list("ABCD")
    gold = [letters[i] for i in rng.integers(0, 4, n)]

    def noisy(g: str, acc: float, bias: str | None = None, p_bias: float = 0.0) -> str:
        r = rng.random()
        if r < acc:
            return g
        if bias and r < acc + p_bias:
            return bias
        return str(rng.choice([x for x in letters if x != g]))

    if honest:
        return gold, [[noisy(g, a) for a in (0.8, 0.7, 0.6, 0.5, 0.4)] for g in gold]
    return gold, [[noisy(g, 0.8), "A", "A", noisy(g, 0.35, "A", 0.5), noisy(g, 0.45)] for g in gold]


WORKERS = ["good", "constA1", "constA2", "biasedA", "weak"]


@needs_crowdkit
def test_dawid_skene_beats_majority_vote_with_constant_voters():
    gold, labels = synthetic_voters()
    ids = [f"q{i}" for i in range(len(gold))]
    mv = np.array([voting.majority_vote(row) for row in labels], dtype=object)
    ds = voting.crowdkit_labels(ids, [SINGLE] * len(ids), WORKERS, labels, "dawid_skene")
    ds = np.array([ds[i] for i in ids], dtype=object)
    g = np.array(gold, dtype=object)
    acc_mv, acc_ds = (mv == g).mean(), (ds == g).mean()
    assert acc_ds > acc_mv + 0.1, (acc_ds, acc_mv)
    assert acc_ds > 0.5  # well above chance (0.25)


@needs_crowdkit
@pytest.mark.parametrize("method", ["dawid_skene", "glad", "mace"])
def test_crowdkit_aggregators_run_on_installed_versions(method):
    """The three crowd-kit aggregators we use work with the installed scikit-learn/pandas."""
    gold, labels = synthetic_voters(n=50, seed=1, honest=True)
    ids = [f"q{i}" for i in range(len(gold))]
    out = voting.crowdkit_labels(ids, [SINGLE] * len(ids), WORKERS, labels, method)
    assert set(out) == set(ids)
    acc = np.mean([out[i] == g for i, g in zip(ids, gold)])
    assert acc > 0.7  # well above chance (0.25) and the average voter (0.6)


@needs_crowdkit
def test_crowdkit_fits_each_family_and_multi_per_letter():
    """单选题, 判断题 and 多选题 items in one call: letters, 正确/错误 and per-letter sets come back, each item
    from its own family (a judge label never answers a choice item)."""
    rng = np.random.default_rng(3)
    ids, qtypes, labels, gold = [], [], [], []
    for i in range(90):
        t = (SINGLE, JUDGE, MULTI)[i % 3]
        g = {SINGLE: str(rng.choice(list("ABCD"))), JUDGE: str(rng.choice(["正确", "错误"])),
             MULTI: "".join(sorted(rng.choice(list("ABCD"), size=2, replace=False)))}[t]
        row = [g if rng.random() < acc else "" if rng.random() < 0.1 else
               {SINGLE: "D" if g != "D" else "A", JUDGE: "错误" if g == "正确" else "正确", MULTI: "ABCD"}[t]
               for acc in (0.9, 0.8, 0.7, 0.6)]
        ids.append(f"q{i}"), qtypes.append(t), labels.append(row), gold.append(g)
    out = voting.crowdkit_labels(ids, qtypes, WORKERS[:4], labels, "dawid_skene")
    assert set(out) == set(ids)
    for x, t in zip(ids, qtypes):
        if t == JUDGE:
            assert out[x] in ("正确", "错误")
        elif t == SINGLE:
            assert out[x] in list("ABCD")
        else:
            assert len(out[x]) >= 2 and set(out[x]) <= set("ABCD")
    assert np.mean([out[x] == g for x, g in zip(ids, gold)]) > 0.8


def test_unknown_crowdkit_method_is_named():
    with pytest.raises(ValueError, match="unknown crowd-kit method 'glda'.*dawid_skene"):
        voting.crowdkit_labels(["q0"], [SINGLE], ["a"], [["A"]], "glda")
