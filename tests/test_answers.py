"""One canonicalisation of answers and question types (qualbench.answers), used by every layer.

Each row of the tables below is a case on which the former implementations disagreed: ``was`` holds what
data/options.py, scoring/metrics.py and analysis/crowd.py returned (for types: data/options.py and
scoring/extract.py; "ERR" = raised). Every entry point now gives the one answer in ``now``.
"""

from __future__ import annotations

import pytest
from helpers.records import make_record

from qualbench import answers
from qualbench.analysis import crowd
from qualbench.answers import AnswerError, canonical_answer, canonical_type, guess_type
from qualbench.data import canonical_answer as data_canonical_answer
from qualbench.data.cleaning import clean
from qualbench.data.loaders import RawRecord
from qualbench.data.splits import filter_items
from qualbench.errors import ConfigError
from qualbench.records import FALSE, JUDGE, MULTI, SINGLE, TRUE, Question, Response
from qualbench.evaluation import to_prediction
from qualbench.scoring import ScoringError, extract_answer, is_correct
from qualbench.scoring import canonical_answer as scoring_canonical_answer
from qualbench.scoring.extract import normalize_question_type
from qualbench.scoring.metrics import compute_metrics, weighted_f1

# (answer, type, now, was = (data/options.py, scoring/metrics.py, analysis/crowd.py))
ANSWER_TABLE = [
    ("X", JUDGE, FALSE, (FALSE, "", "X")),
    ("Y", JUDGE, TRUE, (TRUE, "", "Y")),
    ("N", JUDGE, FALSE, (FALSE, "", "N")),
    ("no", JUDGE, FALSE, (FALSE, "", "NO")),
    ("不正确", JUDGE, FALSE, (FALSE, "", "不正确")),
    ("正确。", JUDGE, TRUE, (TRUE, "", "正确。")),
    ("对", JUDGE, TRUE, (TRUE, TRUE, "对")),
    ("true", JUDGE, TRUE, (TRUE, TRUE, "ERTU")),
    ("√", JUDGE, TRUE, (TRUE, TRUE, "√")),
    ("A", JUDGE, "", ("", "", "A")),
    ("Z", SINGLE, "", ("", "Z", "Z")),
    ("K", SINGLE, "", ("", "K", "K")),
    ("A1", SINGLE, "", ("", "A", "A1")),
    ("B.", SINGLE, "B", ("", "B", "B.")),
    ("A.C", MULTI, "AC", ("", "AC", "A.C")),
    ("A, C", MULTI, "AC", ("AC", "AC", "A, C")),
    ("D、B、A", MULTI, "ABD", ("ABD", "ABD", "D、B、A")),
    ("ａｂ", MULTI, "AB", ("AB", "AB", "ａｂ")),
    ("A+C", MULTI, "AC", ("", "AC", "A+C")),
    ("AX", MULTI, "", ("", "AX", "AX")),
]

# (name, now, was = (data/options.py normalize_type, scoring/extract.py normalize_question_type))
TYPE_TABLE = [
    ("单项选择题", SINGLE, (SINGLE, "ERR")),
    ("single-choice", SINGLE, (SINGLE, "ERR")),
    ("ＳＩＮＧＬＥ", SINGLE, ("", "ERR")),
    ("multiple", MULTI, (MULTI, "ERR")),
    ("multi_choice", MULTI, ("", MULTI)),
    ("多项选择", MULTI, ("", "ERR")),
    ("是非题", JUDGE, (JUDGE, "ERR")),
    ("tf", JUDGE, (JUDGE, "ERR")),
    ("judgment", JUDGE, (JUDGE, "ERR")),
    ("True/False", JUDGE, (JUDGE, "ERR")),
]


def test_tables_hold_only_former_disagreements() -> None:
    assert all(len(set(was)) > 1 for *_, was in ANSWER_TABLE)
    assert all(len(set(was)) > 1 for *_, was in TYPE_TABLE)


@pytest.mark.parametrize("raw,qtype,now,was", ANSWER_TABLE)
def test_every_entry_point_canonicalises_the_same(raw, qtype, now, was) -> None:
    assert canonical_answer(raw, qtype) == now
    assert data_canonical_answer(raw, qtype) == now
    assert scoring_canonical_answer(raw, qtype) == now
    assert crowd.canon(raw, qtype) == now
    # scoring agrees: the canonical answer is right, an unreadable one is never right
    assert is_correct(now, raw, qtype) == bool(now)


@pytest.mark.parametrize("raw,qtype,now,was", ANSWER_TABLE)
def test_cleaning_keeps_exactly_the_readable_gold_answers(raw, qtype, now, was) -> None:
    items, report = clean([RawRecord(make_record(1, qtype, answer=raw), "t.json:1")])
    assert [q.answer for q in items] == ([now] if now else [])
    if not now:
        assert report.counts()


@pytest.mark.parametrize("raw,qtype,now,was", ANSWER_TABLE)
def test_a_backend_answer_scores_like_the_stated_answer(raw, qtype, now, was) -> None:
    q = Question("1", qtype, "消防", "题干", {} if qtype == JUDGE else dict(zip("ABCD", "甲乙丙丁")), now or
                 (TRUE if qtype == JUDGE else "A"))
    p = to_prediction(q, Response(text="", answer=raw))
    assert p.prediction == now and p.correct == bool(now)
    if now:  # the same answer stated in text and extracted gives the same prediction
        assert to_prediction(q, Response(text=f"答案：{now}")).prediction == now


@pytest.mark.parametrize("name,now,was", TYPE_TABLE)
def test_every_entry_point_reads_the_same_type(name, now, was) -> None:
    assert canonical_type(name) == now
    assert normalize_question_type(name) == now
    assert extract_answer("答案：" + ("正确" if now == JUDGE else "A"), name) in ("A", TRUE)
    items = [Question("1", now, "消防", "题干", {"A": "甲", "B": "乙"}, "A")]
    assert filter_items(items, types=[name]) == items


def test_unknown_type_is_an_error_everywhere() -> None:
    for call in (lambda: canonical_type("填空题"), lambda: canonical_answer("A", "填空题")):
        with pytest.raises(AnswerError, match="unknown question_type '填空题'"):
            call()
    with pytest.raises(ScoringError, match="unknown question_type"):
        normalize_question_type("填空题")
    with pytest.raises(ConfigError, match="data.types"):
        filter_items([], types=["填空题"])
    items, report = clean([RawRecord(make_record(1, "填空题"), "t.json:1")])
    assert not items and "unknown type" in str(report.counts())


def test_decided_rules() -> None:
    # a letter set is not a 单选题 answer; a single letter is a (partial) 多选题 answer
    assert canonical_answer("AB", SINGLE) == "" and canonical_answer("B", MULTI) == "B"
    assert canonical_answer("AB", MULTI) == "AB"
    # letters outside the item's options
    assert canonical_answer("E", SINGLE, "ABCD") == "" and canonical_answer("ac", MULTI, {"A": 1, "C": 2}) == "AC"
    # None, Python booleans, empty
    assert canonical_answer(None, SINGLE) == "" and canonical_answer("  ", MULTI) == ""
    assert canonical_answer(True, JUDGE) == TRUE and canonical_answer(False, JUDGE) == FALSE
    # type guessing for answers given without types
    assert guess_type("对") == JUDGE and guess_type("AB") == MULTI
    assert crowd.canon("dbA") == "ABD" and crowd.canon("×") == FALSE
    assert set(answers.TYPE_ALIASES.values()) == {SINGLE, MULTI, JUDGE}


def test_cleaning_names_a_single_choice_letter_set() -> None:
    items, report = clean([RawRecord(make_record(1, SINGLE, answer="AB"), "t.json:1")])
    assert not items and "单选题 with 2 letters ('AB')" in str(report.drops[0].reason)


def test_metrics_and_weighted_f1_read_aliases_as_the_cleaner_does() -> None:
    preds = [{"idx": str(i), "domain": "消防", "question_type": JUDGE, "answer": gold, "prediction": pred}
             for i, (gold, pred) in enumerate([("X", "×"), ("Y", "对"), ("不正确", "N")])]
    m = compute_metrics(preds, n_boot=10)
    assert m["accuracy"] == 1.0 and m["n_unparsed"] == 0
    assert weighted_f1(["X", "Y"], ["错误", "正确"], [JUDGE, JUDGE]) == 1.0
