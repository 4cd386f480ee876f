"""Scoring arithmetic against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from qualbench.records import FALSE, JUDGE, MULTI, SINGLE, TRUE, Prediction
from qualbench.scoring import (
    ScoringError,
    accuracy,
    bootstrap_ci,
    compute_metrics,
    exam_score,
    extract_answer,
    group_accuracy,
    is_correct,
    metrics_markdown,
    weighted_f1,
)
from qualbench.scoring.metrics import ExamScoreRule, exam_points, ratio_bootstrap_ci

# the rule the hand-scored values below were computed under: half credit for 少选, every item worth 1 point
HALF_EQUAL = ExamScoreRule("half", {SINGLE: 1, MULTI: 1, JUDGE: 1})


def _p(i, domain, qtype, answer, prediction, **kw):
    return {"idx": str(i), "domain": domain, "question_type": qtype, "answer": answer, "prediction": prediction,
            "correct": False, "raw": prediction, **kw}


# Hand-scored table (domain, type, gold, prediction -> correct, exam score):
#  1 消防      单选 C    C          -> 1, 1
#  2 消防      多选 ABD  AB         -> 0, 0.5  (少选)
#  3 消防      多选 ABD  C          -> 0, 0    (错选)
#  4 安全生产  判断 正确 正确       -> 1, 1
#  5 安全生产  判断 错误 ""         -> 0, 0    (unparsed)
#  6 安全生产  单选 A    "" skipped -> 0, 0    (skipped, stays in n)
#  7 银行保险  单选 B    B          -> 1, 1
#  8 银行保险  多选 AC   CA         -> 1, 1    (letters compare as sets)
# accuracy 4/8; exam score 4.5/8; by domain: 安全生产 1/3, 消防 1/3 (exam 1.5/3), 银行保险 2/2
# macro accuracy (1/3 + 1/3 + 1) / 3 = 5/9
# by type: 单选 2/3 (exam 2/3), 多选 1/3 (exam 1.5/3), 判断 1/2 (exam 1/2)
# weighted F1, classes = gold strings; y_pred = C, AB, C, 正确, <unparsed>, <unparsed>, B, AC
#   C: tp 1, fp 1 (item 3), fn 0 -> P 1/2, R 1, F1 2/3, support 1
#   ABD: tp 0 -> F1 0, support 2;  正确: F1 1;  错误: F1 0;  A: F1 0;  B: F1 1;  AC: F1 1 (support 1 each)
#   weighted = (2/3 + 0 + 1 + 0 + 0 + 1 + 1) / 8 = 11/24
TABLE = [
    _p(1, "消防", SINGLE, "C", "C"),
    _p(2, "fire_safety", MULTI, "ABD", "AB"),
    _p(3, "消防安全", MULTI, "ABD", "C"),
    _p(4, "安全生产", JUDGE, TRUE, TRUE, qualification="安全员"),
    _p(5, "安全生产", JUDGE, FALSE, "", qualification="安全员"),
    _p(6, "production_safety", SINGLE, "A", "", skipped="prompt exceeds context"),
    _p(7, "银行保险", SINGLE, "B", "B", qualification="银行从业"),
    _p(8, "银行保险", MULTI, "AC", "CA"),
]


def test_compute_metrics_hand_table() -> None:
    m = compute_metrics(TABLE, n_boot=200, seed=1, rule=HALF_EQUAL)
    assert (m["n"], m["n_scored"], m["n_skipped"], m["n_unparsed"]) == (8, 7, 1, 1)
    assert m["accuracy"] == pytest.approx(4 / 8)
    assert m["exam_score"] == pytest.approx(4.5 / 8)
    assert m["macro_accuracy"] == pytest.approx(5 / 9)
    assert m["weighted_f1"] == pytest.approx(11 / 24)
    assert list(m["by_domain"]) == ["安全生产", "消防", "银行保险"]  # DOMAIN_NAMES order, aliases merged
    assert m["by_domain"]["安全生产"]["accuracy"] == pytest.approx(1 / 3)
    assert m["by_domain"]["消防"]["exam_score"] == pytest.approx(1.5 / 3)
    assert m["by_domain"]["银行保险"]["n"] == 2 and m["by_domain"]["银行保险"]["accuracy"] == 1.0
    assert list(m["by_type"]) == [SINGLE, MULTI, JUDGE]
    assert m["by_type"][SINGLE]["accuracy"] == pytest.approx(2 / 3)
    assert m["by_type"][MULTI]["exam_score"] == pytest.approx(0.5)
    assert m["by_type"][JUDGE]["n_unparsed"] == 1
    assert m["by_qualification"] == {
        "安全员": {"n": 2, "accuracy": 0.5, "exam_score": 0.5, "n_unparsed": 1,
                 "ci95": m["by_qualification"]["安全员"]["ci95"]},
        "银行从业": {"n": 1, "accuracy": 1.0, "exam_score": 1.0, "n_unparsed": 0, "ci95": [1.0, 1.0]},
    }
    lo, hi = m["accuracy_ci95"]
    assert lo <= m["accuracy"] <= hi
    json.dumps(m, allow_nan=False)  # metrics.json must be plain JSON


def test_no_qualification_section_without_qualifications() -> None:
    m = compute_metrics([p for p in TABLE if not p.get("qualification")], n_boot=50)
    assert "by_qualification" not in m


def test_stored_correct_flag_is_not_trusted() -> None:
    lying = [dict(TABLE[2], correct=True, exam_score=1.0)]
    m = compute_metrics(lying, n_boot=10)
    assert m["accuracy"] == 0.0 and m["exam_score"] == 0.0


def test_prediction_objects_accepted() -> None:
    preds = [Prediction(idx="1", domain="消防", question_type=SINGLE, answer="B", prediction="B", correct=True,
                        raw="答案：B"),
             Prediction(idx="2", domain="消防", question_type=JUDGE, answer=TRUE, prediction=FALSE, correct=False,
                        raw="错误")]
    m = compute_metrics(preds, n_boot=10)
    assert m["accuracy"] == 0.5 and m["by_domain"]["消防"]["n"] == 2


@pytest.mark.parametrize(
    ("answer", "prediction", "qtype", "score"),
    [
        ("ABD", "ABD", MULTI, 1.0),
        ("ABD", "DBA", MULTI, 1.0),
        ("ABD", "AB", MULTI, 0.5),  # 少选得0.5分
        ("ABD", "D", MULTI, 0.5),
        ("ABD", "ABC", MULTI, 0.0),  # 错选不得分
        ("ABD", "ABCD", MULTI, 0.0),  # superset holds a wrong letter
        ("ABD", "", MULTI, 0.0),
        ("AB", "C", MULTI, 0.0),
        ("C", "C", SINGLE, 1.0),
        ("C", "D", SINGLE, 0.0),
        ("C", "", SINGLE, 0.0),
        (TRUE, TRUE, JUDGE, 1.0),
        (TRUE, FALSE, JUDGE, 0.0),
        (FALSE, "", JUDGE, 0.0),
    ],
)
def test_exam_score_rule(answer: str, prediction: str, qtype: str, score: float) -> None:
    assert exam_score(answer, prediction, qtype, HALF_EQUAL) == score
    assert is_correct(answer, prediction, qtype) == (score == 1.0)


def test_is_correct_sets_and_aliases() -> None:
    assert is_correct("ABD", "D、B、A", MULTI)
    assert not is_correct("ABD", "AB", MULTI)
    assert is_correct(TRUE, "对", JUDGE) and is_correct(FALSE, "×", JUDGE)
    assert not is_correct("", "", SINGLE)
    with pytest.raises(ScoringError, match="unknown question_type"):
        is_correct("A", "A", "问答题")


def test_accuracy() -> None:
    assert accuracy([True, False, True, True]) == 0.75
    assert accuracy([1, 0.5, 0]) == 0.5
    assert math.isnan(accuracy([]))


def test_weighted_f1_hand_computed() -> None:
    # gold:  A A A B B 正确 ; pred: A A B B "" 正确
    # A: tp 2, fp 0, fn 1 -> P 1, R 2/3, F1 0.8, support 3
    # B: tp 1, fp 1, fn 1 -> P 1/2, R 1/2, F1 0.5, support 2
    # 正确: F1 1, support 1;  the unparsed class has no support
    # weighted = (3*0.8 + 2*0.5 + 1*1) / 6 = 4.4 / 6
    gold = ["A", "A", "A", "B", "B", TRUE]
    pred = ["A", "A", "B", "B", "", TRUE]
    assert weighted_f1(gold, pred) == pytest.approx(4.4 / 6)
    assert weighted_f1(gold, gold) == 1.0
    # letter order does not make a different class
    assert weighted_f1(["AB", "AB"], ["BA", "AB"], [MULTI, MULTI]) == 1.0
    with pytest.raises(ScoringError, match="2 answers but 1 predictions"):
        weighted_f1(["A", "B"], ["A"])


def test_bootstrap_ci_properties() -> None:
    rng = np.random.default_rng(5)
    values = rng.random(300) < 0.62
    lo, hi = bootstrap_ci(values, n_boot=2000, seed=3)
    assert lo < values.mean() < hi
    assert 0.5 < lo < hi < 0.75
    assert bootstrap_ci(values, n_boot=2000, seed=3) == (lo, hi)  # deterministic per seed
    assert bootstrap_ci(values, n_boot=2000, seed=4) != (lo, hi)
    narrow = bootstrap_ci(values, n_boot=2000, alpha=0.5, seed=3)
    assert lo <= narrow[0] <= narrow[1] <= hi
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    with pytest.raises(ScoringError, match="alpha"):
        bootstrap_ci([0, 1], alpha=1.5)


def test_bootstrap_ci_matches_scipy_percentile_bootstrap() -> None:
    x = np.array([0.0] * 70 + [0.5] * 30 + [1.0] * 100)  # exam-score-like values
    ours = bootstrap_ci(x, n_boot=4000, seed=0)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.015)
    assert ours[1] == pytest.approx(ref.high, abs=0.015)


def test_group_accuracy() -> None:
    g = group_accuracy(TABLE, "qualification", rule=HALF_EQUAL)
    assert set(g) == {"安全员", "银行从业"}
    assert g["安全员"] == {"n": 2, "accuracy": 0.5, "exam_score": 0.5, "n_unparsed": 1}
    by_domain = group_accuracy(TABLE, "domain")  # aliases (fire_safety, 消防安全) resolve to one group
    assert by_domain["消防"]["n"] == 3
    by_len = group_accuracy(TABLE, lambda d: len(d["answer"]), rule=HALF_EQUAL)
    assert by_len[3]["n"] == 2 and by_len[3]["exam_score"] == 0.25


def test_bad_records_name_the_item() -> None:
    with pytest.raises(ScoringError, match=r"prediction #1 \(idx='x'\) lacks field\(s\) answer"):
        compute_metrics([TABLE[0], {"idx": "x", "question_type": SINGLE, "prediction": "A"}])
    with pytest.raises(ScoringError, match=r"prediction #0 \(idx='1'\).*unknown question_type"):
        compute_metrics([dict(TABLE[0], question_type="填空")])
    with pytest.raises(ScoringError, match="no predictions"):
        compute_metrics([])


def test_metrics_markdown() -> None:
    md = metrics_markdown(compute_metrics(TABLE, n_boot=50), "tiny-model on dev")
    assert md.startswith("## tiny-model on dev")
    assert "| accuracy (%) | 50.0 [" in md
    assert "| weighted F1 (%) | 45.8 |" in md
    assert "### By domain" in md and "| 银行保险 | 2 | 100.0 |" in md
    assert "### By question type" in md and "| 多选题 | 3 | 33.3 |" in md
    assert "### By qualification" in md


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "exams"


def test_end_to_end_on_real_items() -> None:
    """Replies built from the real gold answers: every 3rd reply is wrong, the rest right."""
    path = SHARED / "dev_construction_safety.json"
    if not path.exists():
        pytest.skip(f"{path} not available")
    items = json.loads(path.read_text(encoding="utf-8"))[:300]
    flip = {TRUE: FALSE, FALSE: TRUE}
    preds = []
    for i, it in enumerate(items):
        gold = it["answer"]
        wrong = flip.get(gold) or ("A" if gold != "A" else "B")
        reply = f"经分析，本题答案：{wrong if i % 3 == 0 else gold}"
        pred = extract_answer(reply, it["question_type"])
        preds.append(_p(it["idx"], it["domain"], it["question_type"], gold, pred))
    m = compute_metrics(preds, n_boot=100)
    assert m["n"] == 300 and m["n_unparsed"] == 0
    assert m["accuracy"] == pytest.approx(200 / 300)
    assert list(m["by_domain"]) == ["安全生产"]


# --------------------------------------------------------------------------------------------------
# exam score rules (scoring.multi_partial / scoring.points), hand-computed
# --------------------------------------------------------------------------------------------------
PTS_121 = {SINGLE: 1, MULTI: 2, JUDGE: 1}


@pytest.mark.parametrize(
    ("mode", "points", "answer", "prediction", "qtype", "earned"),
    [
        # none: the exact set or nothing
        ("none", PTS_121, "ABD", "ABD", MULTI, 2.0),
        ("none", PTS_121, "ABD", "AB", MULTI, 0.0),
        ("none", PTS_121, "ABD", "D", MULTI, 0.0),
        # half: 0.5 × the item's points for a non-empty proper subset, no wrong option
        ("half", PTS_121, "ABD", "DBA", MULTI, 2.0),
        ("half", PTS_121, "ABD", "AB", MULTI, 1.0),
        ("half", PTS_121, "ABD", "D", MULTI, 1.0),
        ("half", PTS_121, "ABD", "ABC", MULTI, 0.0),  # a wrong option: nothing
        ("half", PTS_121, "ABD", "ABCD", MULTI, 0.0),
        ("half", PTS_121, "ABD", "", MULTI, 0.0),
        ("half", {MULTI: 3}, "AB", "B", MULTI, 1.5),
        # per_option: 0.5 per chosen option of such a subset, capped at the item's points
        ("per_option", PTS_121, "ABD", "AB", MULTI, 1.0),
        ("per_option", PTS_121, "ABD", "D", MULTI, 0.5),
        ("per_option", PTS_121, "ABCDE", "ABCD", MULTI, 2.0),  # 4 × 0.5 = 2 = the cap
        ("per_option", {MULTI: 1}, "ABCD", "ABC", MULTI, 1.0),  # 1.5 capped at 1
        ("per_option", PTS_121, "ABD", "ABD", MULTI, 2.0),  # exact set: full points
        ("per_option", PTS_121, "AB", "AC", MULTI, 0.0),
        # 单选题/判断题 earn their points only when right, under every rule
        ("per_option", {SINGLE: 1.5}, "C", "C", SINGLE, 1.5),
        ("half", PTS_121, "C", "D", SINGLE, 0.0),
        ("none", {JUDGE: 0.5}, TRUE, "对", JUDGE, 0.5),
        ("half", PTS_121, TRUE, FALSE, JUDGE, 0.0),
    ],
)
def test_exam_score_rules_hand_computed(mode, points, answer, prediction, qtype, earned) -> None:
    rule = ExamScoreRule(mode, points)
    assert exam_points(answer, prediction, qtype, rule) == pytest.approx(earned)
    assert exam_score(answer, prediction, qtype, rule) == pytest.approx(earned / rule.points_for(qtype))


def test_default_rule_is_none_with_points_1_2_1() -> None:
    rule = ExamScoreRule()
    assert rule.multi_partial == "none" and dict(rule.points) == {SINGLE: 1.0, MULTI: 2.0, JUDGE: 1.0}
    assert exam_score("ABD", "AB", MULTI) == 0.0  # no partial credit unless asked for
    assert exam_points("ABD", "ABD", MULTI) == 2.0
    # the ASCII names the config uses (scoring.points.multi=3) are accepted and recorded as the type names
    assert ExamScoreRule.from_config({"multi_partial": "half", "points": {"single": 1, "multi": 3, "judge": 1}}
                                     ).to_dict()["points"] == {SINGLE: 1.0, MULTI: 3.0, JUDGE: 1.0}


def test_compute_metrics_under_each_rule() -> None:
    # TABLE earned points (single 1 / multi 2 / judge 1): items 1,4,7 → 1 each, item 8 (AC exact) → 2,
    # item 2 (AB of ABD) → 0 (none), 1 (half: 0.5×2), 1 (per_option: 2×0.5); possible 3×1 + 3×2 + 2×1 = 11
    m = compute_metrics(TABLE, n_boot=50)
    assert m["exam_score_rule"]["multi_partial"] == "none"
    assert m["exam_score_rule"]["points"] == {SINGLE: 1.0, MULTI: 2.0, JUDGE: 1.0}
    assert (m["exam_points"], m["exam_points_max"]) == (5.0, 11.0)
    assert m["exam_score"] == pytest.approx(5 / 11)
    assert m["by_type"][MULTI]["exam_score"] == pytest.approx(2 / 6)
    assert m["by_domain"]["消防"]["exam_score"] == pytest.approx(1 / 5)  # 1 (单选 C) of 1 + 2 + 2
    assert m["accuracy"] == pytest.approx(4 / 8)  # accuracy does not depend on the rule
    for mode in ("half", "per_option"):
        m = compute_metrics(TABLE, n_boot=50, rule={"multi_partial": mode})
        assert m["exam_points"] == 6.0 and m["exam_score"] == pytest.approx(6 / 11)
        assert m["by_domain"]["消防"]["exam_score"] == pytest.approx(2 / 5)
        assert m["exam_score_rule"]["multi_partial"] == mode
    # per_option with 多选题 worth 1: AB of ABD earns min(2 × 0.5, 1) = 1, as much as the exact set
    m = compute_metrics(TABLE, n_boot=50, rule=ExamScoreRule("per_option", {SINGLE: 1, MULTI: 1, JUDGE: 1}))
    assert m["exam_score"] == pytest.approx(5 / 8)
    assert m["exam_score_rule"]["per_option_points"] == 0.5
    json.dumps(m, allow_nan=False)


def test_ratio_ci_equals_mean_ci_with_equal_points() -> None:
    rng = np.random.default_rng(2)
    earned = rng.choice([0.0, 0.5, 1.0], size=200)
    assert ratio_bootstrap_ci(earned, np.ones(200), n_boot=500, seed=4) == bootstrap_ci(earned, n_boot=500, seed=4)
    lo, hi = ratio_bootstrap_ci(earned * 2, np.full(200, 2.0), n_boot=500, seed=4)
    assert (lo, hi) == pytest.approx(bootstrap_ci(earned, n_boot=500, seed=4))


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"multi_partial": "halff"}, "expected one of none, half, per_option"),
        ({"points": {"填空题": 1}}, "unknown question type '填空题'"),
        ({"points": {"multi": 0}}, "points must be a positive number"),
        ({"points": {"multi": "two"}}, "points must be a positive number"),
        ({"partial": "half"}, "unknown key"),
    ],
)
def test_bad_exam_rules_are_one_line_errors(node, message) -> None:
    with pytest.raises(ScoringError, match=message):
        ExamScoreRule.from_config(node)


def test_metrics_markdown_states_rule_and_references() -> None:
    from qualbench.scoring.references import reference_rows

    m = compute_metrics(TABLE, n_boot=20)
    m["uses_eval_labels"] = True
    m["references"] = reference_rows([dict(p, options="ABCD") for p in TABLE])
    md = metrics_markdown(m, "x")
    assert "| exam score rule | multi_partial=none; points: 单选题 1, 多选题 2, 判断题 1 |" in md
    assert "**YES: this model read the evaluated items' labels**" in md
    assert "| reference: chance (uniform random answer; reads no labels) |" in md
    assert "| reference: majority answer per type (reads the evaluated labels) |" in md
    # 多选题 accuracy 1/3 is below the majority answer's 2/3 (ABD twice of three)
    assert "33.3 (below majority)" in md


# --------------------------------------------------------------------------------------------------
# reference rows (qualbench.scoring.references), on a tiny hand-made set
# --------------------------------------------------------------------------------------------------
def _q(i, qtype, answer, options, domain="消防"):
    from qualbench.records import Question

    return Question(str(i), qtype, domain, f"题{i}", {k: k.lower() for k in options}, answer)


TINY = [
    _q(1, SINGLE, "C", "ABCD"),  # chance 1/4
    _q(2, SINGLE, "C", "ABCD"),  # 1/4
    _q(3, SINGLE, "A", "ABCDE", domain="银行保险"),  # 1/5
    _q(4, MULTI, "AB", "ABCD"),  # 1/(2^4 - 1) = 1/15
    _q(5, MULTI, "ABC", "ABC", domain="银行保险"),  # 1/7
    _q(6, JUDGE, TRUE, ""),  # 1/2
    _q(7, JUDGE, FALSE, ""),
    _q(8, JUDGE, TRUE, ""),
]


def test_reference_rows_hand_computed() -> None:
    from qualbench.scoring.references import reference_rows

    refs = reference_rows(TINY)
    ch, mj = refs["chance"], refs["majority"]
    assert ch["reads_labels"] is False and mj["reads_labels"] is True
    assert ch["by_type"][SINGLE] == {"n": 3, "accuracy": pytest.approx(0.7 / 3)}
    assert ch["by_type"][MULTI]["accuracy"] == pytest.approx((1 / 15 + 1 / 7) / 2)
    assert ch["by_type"][JUDGE]["accuracy"] == 0.5
    assert ch["n"] == 8 and ch["accuracy"] == pytest.approx((0.7 + 1 / 15 + 1 / 7 + 1.5) / 8)
    assert list(ch["by_type"]) == [SINGLE, MULTI, JUDGE]
    # majority: 单选题 C (2 of 3); 多选题 AB and ABC tie once each → AB (alphabetically first), 1 of 2;
    # 判断题 正确 (2 of 3); overall (2 + 1 + 2) / 8
    assert {t: (v["answer"], v["accuracy"]) for t, v in mj["by_type"].items()} == {
        SINGLE: ("C", pytest.approx(2 / 3)), MULTI: ("AB", 0.5), JUDGE: (TRUE, pytest.approx(2 / 3))}
    assert mj["accuracy"] == pytest.approx(5 / 8)
    # by domain: 银行保险 holds items 3 (A ≠ C) and 5 (ABC ≠ AB) → 0; chance (1/5 + 1/7) / 2
    assert mj["by_domain"]["银行保险"] == {"n": 2, "accuracy": 0.0}
    assert ch["by_domain"]["银行保险"]["accuracy"] == pytest.approx((1 / 5 + 1 / 7) / 2)
    json.dumps(refs, allow_nan=False)
    # dicts with options (or n_options) give the same numbers as Questions
    dicts = [{"idx": q.idx, "question_type": q.question_type, "domain": q.domain, "answer": q.answer,
              "n_options": len(q.options)} for q in TINY]
    assert reference_rows(dicts) == refs


def test_below_references_flags() -> None:
    from qualbench.scoring.references import below_references, reference_rows

    refs = reference_rows(TINY)
    m = {"accuracy": 0.3, "references": refs,
         "by_type": {SINGLE: {"accuracy": 0.5}, MULTI: {"accuracy": 0.05}, JUDGE: {"accuracy": 0.9}}}
    # overall 0.3 < chance 0.3014 and < majority 0.625; 单选题 0.5 < majority 2/3 only; 多选题 0.05 < both
    assert below_references(m) == {"overall": ["chance", "majority"],
                                   "by_type": {SINGLE: ["majority"], MULTI: ["chance", "majority"]}}
    assert below_references({"accuracy": 0.1}) == {"overall": [], "by_type": {}}


def test_reference_rows_bad_items() -> None:
    from qualbench.scoring.references import reference_rows

    with pytest.raises(ScoringError, match=r"item #0 \(idx='9'\): a choice item without options"):
        reference_rows([{"idx": "9", "question_type": SINGLE, "answer": "A"}])
    with pytest.raises(ScoringError, match=r"item #0 \(idx='9'\) has no readable answer"):
        reference_rows([{"idx": "9", "question_type": JUDGE, "answer": "maybe"}])
    with pytest.raises(ScoringError, match="no items"):
        reference_rows([])


def test_chance_is_what_the_random_baseline_scores() -> None:
    """model=random draws uniformly (one option / a non-empty subset / a verdict): its mean accuracy over
    seeds converges to the chance row (sd of the mean over 60 seeds of 211 items ≈ 0.004)."""
    from qualbench.data import load_dataset
    from qualbench.models.random_baseline import RandomModel
    from qualbench.records import Request
    from qualbench.scoring.references import reference_rows

    items = load_dataset({"loader": "sample", "name": "sample"})
    chance = reference_rows(items)["chance"]["accuracy"]
    accs = []
    for seed in range(60):
        model = RandomModel(seed)
        accs.append(np.mean([is_correct(q.answer, model.answer(Request(q, [])), q.question_type) for q in items]))
    assert float(np.mean(accs)) == pytest.approx(chance, abs=0.02)


def test_references_command_on_a_file(small_json, capsys) -> None:
    from qualbench.scoring.references import _main

    # small.json: per domain one 单选题 (C), one 多选题 (ABD), 判断题 正确 and 错误 (a tie: 正确 comes first)
    assert _main([str(small_json)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("| small.json | chance |")
    assert "| small.json | majority | 0.750 | 1.000 (C) n=6 | 1.000 (ABD) n=6 | 0.500 (正确) n=12 |" in out
    assert _main([str(small_json.parent / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.json" in err


def test_support_weighted_f1_agrees_with_sklearn():
    from sklearn.metrics import f1_score

    from qualbench.scoring.metrics import support_weighted_f1

    rng = np.random.default_rng(0)
    labels = ["A", "B", "C", "D", "ABD", "正确", "错误", "<unparsed>"]
    for n in (1, 2, 7, 50, 400):
        for _ in range(20):
            t = list(rng.choice(labels[:-1], n))
            p = list(rng.choice(labels, n))
            assert support_weighted_f1(t, p) == pytest.approx(
                f1_score(t, p, average="weighted", zero_division=0), abs=1e-12)
    assert support_weighted_f1(["A", "B"], ["A", "B"]) == 1.0
    assert support_weighted_f1(["A"], ["<unparsed>"]) == 0.0
