"""The offline retrieval answerer: calibration logic (synthetic features) and end-to-end runs (real BM25)."""

from pathlib import Path

import numpy as np
import pytest

from qualbench.models.calibration import Calibration, crossfit, fit_calibration
from qualbench.models.evidence import JUDGE_FEATURES, ItemFeatures, blank_window, coverage, fill_score, is_negative
from qualbench.models.retrieval import RetrievalAnswerer, RetrievalModelConfig, content_key
from qualbench.records import JUDGE, JUDGE_ANSWERS, MULTI, SINGLE, Question, Request
from qualbench.scoring import extract_answer

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = ROOT / "corpora" / "sample"
SHARED = ROOT.parent / "shared"


# ---- evidence helpers ------------------------------------------------------------------------------
def test_text_features():
    assert coverage("人民至上", "坚持人民至上、生命至上") == 1.0
    assert coverage("地方标准", "应当符合国家标准或者行业标准") == pytest.approx(1 / 3)
    assert blank_window("安全生产工作坚持以（ ）为中心", "人民", width=4) == ("作坚持以人民为中心", 4, 6)
    passages = ["坚持以人民为中心的发展思想"]
    assert fill_score("坚持以（ ）为中心", "人民", passages) > fill_score("坚持以（ ）为中心", "经济", passages)
    assert is_negative("以下不属于施工单位的质量行为的是（ ）。")
    assert is_negative("下列各项中，除（ ）外，均属于")
    assert not is_negative("两台塔机之间的距离不得小于（ ）。")


# ---- calibration on synthetic features (no retriever involved) -----------------------------------------
def _synthetic(n: int, seed: int = 0) -> list[ItemFeatures]:
    """Items whose first feature column carries the signal (noisy) and the rest is noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = (SINGLE, MULTI, JUDGE)[i % 3]
        if kind == JUDGE:
            truth = bool(rng.random() < 0.5)
            x = rng.normal(0, 1, len(JUDGE_FEATURES))
            x[0] = (1.0 if truth else 0.0) + rng.normal(0, 0.3)
            out.append(ItemFeatures(f"s{i}", JUDGE, (), x, "正确" if truth else "错误"))
            continue
        letters = ("A", "B", "C", "D", "E")[: 4 if kind == SINGLE else 5]
        ans = {letters[rng.integers(len(letters))]} if kind == SINGLE else set(rng.choice(letters, 3, replace=False))
        X = rng.random((len(letters), 5)) * 0.5
        for j, l in enumerate(letters):
            X[j, 0] = (0.8 if l in ans else 0.2) + rng.normal(0, 0.1)
        out.append(ItemFeatures(f"s{i}", kind, letters, X, "".join(sorted(ans))))
    return out


def _acc(cal: Calibration, feats, kind) -> float:
    sub = [f for f in feats if f.question_type == kind]
    return float(np.mean([cal.decide(f)[0] == f.answer for f in sub]))


def test_fit_learns_the_signal_and_beats_defaults_and_chance():
    train, test = _synthetic(150, 0), _synthetic(90, 1)
    cal = fit_calibration(train, multi_tau=None, fit_judge=True)
    assert np.argmax(cal.choice_coef) == 0
    assert _acc(cal, test, SINGLE) > 0.8
    assert _acc(cal, test, MULTI) > 0.5  # exact match of 3-of-5 sets; chance is 1/26
    assert _acc(cal, test, JUDGE) > 0.8
    assert set(cal.fitted_on) == {f.idx for f in train}


def test_multi_threshold_keeps_at_least_min_multi():
    f = ItemFeatures("m", MULTI, ("A", "B", "C", "D"), np.array([[1.0], [0.0], [0.0], [0.0]]), "AB")
    cal = Calibration(choice_coef=np.array([1.0]), multi_tau=0.5, min_multi=2)
    answer, scores = cal.decide(f)
    assert len(answer) == 2 and answer.startswith("A") and scores["A"] == 1.0


def test_defaults_fix_tau_and_the_judge_rule_unless_asked():
    train = _synthetic(150, 0)
    fixed = fit_calibration(train)
    assert fixed.multi_tau == RetrievalModelConfig.multi_tau and fixed.judge_coef is None
    fitted = fit_calibration(train, multi_tau=None, fit_judge=True)
    assert fitted.judge_coef is not None
    model = RetrievalAnswerer()
    for name, value in vars(RetrievalModelConfig()).items():  # one place for each default
        if hasattr(model, name) and name != "calibration_data":
            assert getattr(model, name) == value, name
    assert model.calibration == "sample" and model.uses_eval_labels is False
    assert RetrievalAnswerer(calibration="crossfit").uses_eval_labels is True


def test_crossfit_never_fits_on_the_items_it_predicts():
    feats = _synthetic(60, 2)
    ids = [f.idx for f in feats]
    folds = [ids[i::4] for i in range(4)]
    seen_by_fit: list[set[str]] = []

    def spy_fit(train):
        seen_by_fit.append({f.idx for f in train})
        return fit_calibration(train)

    decisions, records = crossfit(feats, folds, spy_fit)
    assert set(decisions) == set(ids)  # every item predicted
    assert len(records) == 4
    for rec, fitted in zip(records, seen_by_fit):
        assert not set(rec.predicted) & fitted  # no overlap between what was fitted on and what it predicted
        assert set(rec.fitted_on) == fitted
        assert fitted | set(rec.predicted) == set(ids)
    with pytest.raises(ValueError, match="overlap"):
        crossfit(feats, [ids, ids[:1]])
    with pytest.raises(ValueError, match="cover"):
        crossfit(feats, [ids[:10]])


# ---- the backend with a real BM25 retriever ------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_items():
    from qualbench.data import load_dataset

    items = load_dataset({"loader": "sample"})
    if len(items) < 60:
        pytest.skip("sample set not complete yet")
    return items


def _run(model, items):
    return model.generate([Request(q, []) for q in items])


def _check_answers(items, out) -> dict[str, list[bool]]:
    acc: dict[str, list[bool]] = {}
    for q, r in zip(items, out):
        ans = r.answer
        if q.question_type == JUDGE:
            assert ans in JUDGE_ANSWERS
        else:
            assert ans and set(ans) <= set(q.options) and ans == "".join(sorted(ans))
            assert len(ans) == 1 if q.question_type == SINGLE else len(ans) >= 2
        assert extract_answer(r.text, q.question_type, "".join(q.options) or None) == ans
        acc.setdefault(q.question_type, []).append(ans == q.answer)
    return acc


def test_sample_set_by_default_uses_label_free_rules(sample_retriever, sample_items):
    model = RetrievalAnswerer(show_progress=False)  # default: calibration=sample, and this IS the sample set
    model.attach_retriever(sample_retriever)
    model.prepare(sample_items)
    out = _run(model, sample_items)
    assert model.mode_used == "none" and model.fitted is None and not model.fold_records
    assert not model.uses_eval_labels and all(r.meta["uses_eval_labels"] is False for r in out)
    acc = _check_answers(sample_items, out)
    assert np.mean(acc[SINGLE]) > 0.45  # chance 0.25
    assert np.mean(acc[MULTI]) > 0.2  # chance about 0.04


def test_partial_overlap_fits_on_the_rest_of_the_calibration_set(sample_retriever, sample_items):
    evaluated = sample_items[:40]
    model = RetrievalAnswerer(show_progress=False)
    model.attach_retriever(sample_retriever)
    model.prepare(evaluated)
    _run(model, evaluated)
    assert model.mode_used == "sample"
    assert len(model.fitted.fitted_on) == len(sample_items) - 40
    assert not {content_key(q) for q in evaluated} & model.calibration_keys
    # a later batch holding items the fit saw is decided by the label-free rules, not by that fit
    later = sample_items[100:110]
    out = _run(model, later)
    rules = model._rules()
    assert [r.answer for r in out] == [rules.decide(f)[0] for f in model._features(later)]


def test_crossfit_is_an_opt_in_that_never_fits_on_the_items_it_predicts(sample_retriever, sample_items):
    model = RetrievalAnswerer(calibration="crossfit", folds=4, show_progress=False)
    model.attach_retriever(sample_retriever)
    model.prepare(sample_items)
    out = _run(model, sample_items)
    assert model.mode_used == "crossfit" and model.uses_eval_labels
    assert all(r.meta["uses_eval_labels"] is True for r in out)
    ids = {q.idx for q in sample_items}
    assert set().union(*(r.predicted for r in model.fold_records)) == ids
    for rec in model.fold_records:
        assert not set(rec.fitted_on) & set(rec.predicted)
    acc = _check_answers(sample_items, out)
    assert np.mean(acc[SINGLE]) > 0.45
    assert np.mean(acc[MULTI]) > 0.2


def test_separate_calibration_set_is_disjoint_from_evaluated_items(sample_retriever, sample_items):
    evaluated = [
        Question("x1", SINGLE, "安全生产", "生产经营单位的主要负责人是本单位安全生产的（ ）。",
                 {"A": "第一责任人", "B": "监督人", "C": "旁观者", "D": "协调人"}, "A"),
        Question("x2", JUDGE, "消防", "任何单位都可以擅自停用消防设施。", {}, "错误"),
        Question("x3", MULTI, "建筑工程", "申请领取施工许可证应当具备的条件有（ ）。",
                 {"A": "已经办理建筑工程用地批准手续", "B": "有满足施工需要的资金安排", "C": "已确定建筑施工企业",
                  "D": "施工单位负责人已婚"}, "ABC"),
    ]
    model = RetrievalAnswerer(show_progress=False)
    model.attach_retriever(sample_retriever)
    out = _run(model, evaluated)  # no prepare(): decided batch by batch
    assert model.mode_used == "sample"
    assert model.fitted is not None and len(model.fitted.fitted_on) == len(sample_items)
    assert not {content_key(q) for q in evaluated} & model.calibration_keys
    assert [r.answer for r in out][0] in "ABCD"
    assert out[1].answer in JUDGE_ANSWERS and len(out[2].answer) >= 2
    assert out[0].text.startswith("答案：") and "依据：" in out[0].text


def test_no_evidence_ablation_point_and_errors(sample_retriever, sample_items):
    model = RetrievalAnswerer(top_k=0, calibration="none", show_progress=False)
    model.attach_retriever(sample_retriever)
    out = _run(model, sample_items[:12])
    assert len(out) == 12 and all(r.answer for r in out)
    assert all("未检索到相关条文" in r.text for r in out)
    from qualbench.errors import ConfigError

    with pytest.raises(ConfigError, match="calibration"):
        RetrievalAnswerer(calibration="bogus")
    with pytest.raises(ConfigError, match="retriever"):
        RetrievalAnswerer().generate([Request(sample_items[0], [])])


def test_beats_random_on_shared_exam_slice(tmp_path):
    """A stratified slice of the real construction-safety bank over the 86 shared laws (default: label-free)."""
    exam = SHARED / "exams" / "dev_construction_safety.json"
    if not exam.is_file() or not (SHARED / "corpora").is_dir():
        pytest.skip("../shared not present")
    from qualbench.data import load_dataset
    from retrievers.build import build_retriever

    items = load_dataset({"loader": "qualbench_json", "path": str(exam), "limit": 240}, seed=0)
    retriever = build_retriever({"kind": "bm25", "routing": "all", "top_k": 5}, SHARED / "corpora", tmp_path)
    model = RetrievalAnswerer(show_progress=False)
    model.attach_retriever(retriever)
    model.prepare(items)
    assert model.mode_used == "sample" and not model.uses_eval_labels
    out = _run(model, items)
    acc: dict[str, list[bool]] = {}
    for q, r in zip(items, out):
        acc.setdefault(q.question_type, []).append(r.answer == q.answer)
    assert np.mean(acc[SINGLE]) > 0.30  # random: 0.25
    assert np.mean(acc[MULTI]) > 0.10  # random: about 0.04
