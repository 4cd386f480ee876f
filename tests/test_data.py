"""The data layer on good files (incl. every real exam file) and on malformed ones."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from helpers.records import make_record

from qualbench.data import (
    canonical_answer,
    filter_items,
    kfold,
    load_dataset,
    load_dataset_with_report,
    parse_options,
    stratified_limit,
    stratified_split,
)
from qualbench.domains import canonical_domain, domain_slug
from qualbench.errors import ConfigError, DataError


@pytest.mark.parametrize(
    "text,stem,letters",
    [
        ("题干（ ）。\nA．甲\nB．乙\nC．丙\nD．丁", "题干（ ）。", "ABCD"),
        ("题干\nA.甲\nB.乙", "题干", "AB"),
        ("题干\nA、甲\nB、乙\nC、丙", "题干", "ABC"),
        ("题干\nA:甲\nB：乙", "题干", "AB"),
        ("题干\n（A）甲\n（B）乙\n（C）丙", "题干", "ABC"),
        ("题干\nＡ．甲\nＢ．乙\nＣ．丙", "题干", "ABC"),
        ("题干\nA．1\nB．2\nC．3\nD．4\nE．5\nF．6\nG．7", "题干", "ABCDEFG"),
        ("题干第一行\n第二行说明\nA．甲\nB．乙", "题干第一行\n第二行说明", "AB"),
        ("题干 A．甲 B．乙 C．丙 D．丁", "题干", "ABCD"),
        ("A类火灾是指（ ）。\nA．固体物质火灾\nB．液体火灾", "A类火灾是指（ ）。", "AB"),
    ],
)
def test_parse_options(text, stem, letters):
    s, opts = parse_options(text)
    assert s == stem
    assert "".join(opts) == letters
    assert all(v for v in opts.values())


def test_option_continuation_lines_join_previous_option():
    _, opts = parse_options("题干\nA．第一项\n续行\nB．第二项")
    assert opts == {"A": "第一项 续行", "B": "第二项"}


@pytest.mark.parametrize(
    "raw,qtype,out",
    [("C", "单选题", "C"), ("dba", "多选题", "ABD"), ("A,C", "多选题", "AC"), ("Ｂ", "单选题", "B"),
     ("正确", "判断题", "正确"), ("对", "判断题", "正确"), ("×", "判断题", "错误"), ("False", "判断题", "错误"),
     ("不正确", "判断题", "错误"), ("Z", "单选题", ""), ("maybe", "判断题", "")],
)
def test_canonical_answer(raw, qtype, out):
    assert canonical_answer(raw, qtype) == out


def test_domain_aliases():
    assert canonical_domain("消防安全") == "消防"
    assert canonical_domain("fire_safety") == "消防"
    assert canonical_domain("Banking & Insurance") == "银行保险"
    assert domain_slug("石油天然气") == "oil_gas"
    with pytest.raises(ValueError, match="unknown domain"):
        canonical_domain("航空")


def test_official_json_loader(small_json):
    items = load_dataset({"loader": "qualbench_json", "path": str(small_json)})
    assert len(items) == 24
    q = items[1]
    assert q.question_type == "多选题" and q.answer == "ABD" and list(q.options) == list("ABCD")
    assert q.source.startswith(str(small_json) + ":")
    assert Counter(q.question_type for q in items) == {"单选题": 6, "多选题": 6, "判断题": 12}
    assert q.to_official()["question"].endswith("D．丁1")


def test_jsonl_shuffled_variant(tmp_path):
    recs = [
        {"idx": 7, "type": "单选题", "domain": "消防安全", "question": "题\nA．x\nB．y", "answer": "B",
         "explan": "因为", "sub_domain": "注册消防工程师"},
        {"idx": 8, "type": "判断题", "domain": "fire_safety", "question": "说法", "answer": "错误", "explan": ""},
    ]
    p = tmp_path / "shuffled.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n", encoding="utf-8")
    items = load_dataset({"loader": "jsonl", "path": str(p)})
    assert [q.domain for q in items] == ["消防", "消防"]
    assert items[0].explanation == "因为" and items[0].qualification == "注册消防工程师"
    assert items[0].extra["sub_domain"] == "注册消防工程师"


def test_every_real_exam_file_loads(shared_exam_files):
    for f in shared_exam_files:
        raw = json.loads(f.read_text(encoding="utf-8"))
        items, report = load_dataset_with_report({"loader": "qualbench_json", "path": str(f)})
        assert report.n_read == len(raw)
        assert len(items) + len(report.drops) == len(raw)
        assert len(items) > 0.98 * len(raw)
        for q in items:
            assert q.answer
            if q.question_type != "判断题":
                assert set(q.answer) <= set(q.options) and len(q.options) >= 2


def _write(tmp_path, text, name="bad.json"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_bad_json_names_file_and_line(tmp_path):
    p = _write(tmp_path, '[\n {"idx": 1,\n  "question": "x"\n  "answer": "A"}\n]')
    with pytest.raises(DataError, match=r"bad\.json:4:\d+: invalid JSON"):
        load_dataset({"loader": "qualbench_json", "path": str(p)})


def test_bad_jsonl_line_dropped_or_rejected_in_strict(tmp_path):
    good = [json.dumps(make_record(i), ensure_ascii=False) for i in (1, 3)]
    p = _write(tmp_path, good[0] + "\n{broken\n[1, 2]\n" + good[1] + "\n", "bad.jsonl")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON line"):
        load_dataset({"loader": "jsonl", "path": str(p), "strict": True})
    items, report = load_dataset_with_report({"loader": "jsonl", "path": str(p)})
    assert [q.idx for q in items] == ["1", "3"]
    assert [(d.source.rsplit(":", 1)[1], d.reason.split(":")[0]) for d in report.drops] == [
        ("2", "invalid JSON line"), ("3", "not an object")]
    report.write(tmp_path / "run")
    assert "bad.jsonl:3" in (tmp_path / "run" / "dropped.csv").read_text(encoding="utf-8")


def test_non_object_record_in_json_list_is_dropped(tmp_path):
    p = _write(tmp_path, json.dumps([make_record(1), "oops", make_record(2)], ensure_ascii=False, indent=1))
    items, report = load_dataset_with_report({"loader": "qualbench_json", "path": str(p)})
    assert [q.idx for q in items] == ["1", "2"] and report.counts() == {"not an object": 1}


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-16"])
def test_chinese_encodings_detected(tmp_path, encoding):
    recs = [make_record(i, stem=f"根据《中华人民共和国安全生产法》规定，生产经营单位第{i}项职责是（ ）。") for i in range(6)]
    p = tmp_path / f"{encoding}.json"
    p.write_bytes(json.dumps(recs, ensure_ascii=False, indent=1).encode(encoding))
    items = load_dataset({"loader": "qualbench_json", "path": str(p)})
    assert [q.stem for q in items] == [r["question"].split("\n")[0] for r in recs]


def test_explicit_encoding_and_wrong_encoding_name_the_file(tmp_path):
    p = tmp_path / "bank.jsonl"
    p.write_bytes(json.dumps(make_record(1, stem="消防安全责任制（ ）。"), ensure_ascii=False).encode("gbk"))
    assert load_dataset({"loader": "jsonl", "path": str(p), "encoding": "gbk"})[0].stem == "消防安全责任制（ ）。"
    with pytest.raises(DataError, match=r"bank\.jsonl: not valid utf-8 at byte \d+"):
        load_dataset({"loader": "jsonl", "path": str(p), "encoding": "utf-8"})
    with pytest.raises(DataError, match=r"bank\.jsonl: unknown data.encoding 'klingon'"):
        load_dataset({"loader": "jsonl", "path": str(p), "encoding": "klingon"})


@pytest.mark.parametrize("text", ["", "  \n\n", "[]"])
def test_empty_file_is_named(tmp_path, text):
    p = _write(tmp_path, text, "empty.json")
    with pytest.raises(DataError, match=r"empty\.json: the (file|question list) is empty"):
        load_dataset({"loader": "qualbench_json", "path": str(p)})


@pytest.mark.parametrize("key", ["data", "questions", "items"])
@pytest.mark.parametrize("indent", [None, 1])
def test_wrapped_list_loads_with_line_numbers(tmp_path, key, indent):
    recs = [make_record(1), make_record(2, answer="E")]
    p = _write(tmp_path, json.dumps({"version": 1, key: recs}, ensure_ascii=False, indent=indent), "wrapped.json")
    items, report = load_dataset_with_report({"loader": "qualbench_json", "path": str(p)})
    assert [q.idx for q in items] == ["1"]
    assert report.drops[0].source.startswith(str(p)) and "answer outside options" in report.drops[0].reason
    if indent:  # the dropped record's line is where its object starts
        line = int(report.drops[0].source.rsplit(":", 1)[1])
        lines = p.read_text(encoding="utf-8").splitlines()
        assert lines[line - 1].strip() == "{" and '"answer": "E"' in "\n".join(lines[line:line + 12])


def test_single_line_jsonl_is_not_mistaken_for_a_wrapper(tmp_path):
    p = _write(tmp_path, json.dumps(make_record(7), ensure_ascii=False) + "\n", "one.jsonl")
    assert [q.idx for q in load_dataset({"loader": "qualbench_json", "path": str(p)})] == ["7"]


@pytest.mark.parametrize(
    "rec,reason",
    [
        (make_record(2, qtype="填空题"), "unknown type"),
        (make_record(2, answer="E"), "answer outside options"),
        (make_record(2, answer="AB"), "answer outside options"),
        ({k: v for k, v in make_record(2).items() if k != "answer"}, "missing field: answer"),
        (make_record(2, domain="航空"), "unknown domain"),
        (make_record(2, stem="没有选项的单选题", options=()), "no options"),
    ],
)
def test_bad_records_dropped_with_report_or_rejected_in_strict(tmp_path, rec, reason):
    recs = [make_record(1), rec, make_record(3)]
    p = _write(tmp_path, json.dumps(recs, ensure_ascii=False, indent=1))
    items, report = load_dataset_with_report({"loader": "qualbench_json", "path": str(p)})
    assert [q.idx for q in items] == ["1", "3"]
    assert len(report.drops) == 1 and reason in report.drops[0].reason
    line = report.drops[0].source.rsplit(":", 1)[1]
    assert p.read_text(encoding="utf-8").splitlines()[int(line) - 1].strip().startswith("{")
    with pytest.raises(DataError, match=rf"bad\.json:{line}: .*{reason}"):
        load_dataset({"loader": "qualbench_json", "path": str(p), "strict": True})
    report.write(tmp_path / "run")
    assert reason in (tmp_path / "run" / "dropped.csv").read_text(encoding="utf-8")


def test_duplicates_dropped(tmp_path):
    a = make_record(1)
    b = dict(a, idx=2)
    p = _write(tmp_path, json.dumps([a, b], ensure_ascii=False))
    items, report = load_dataset_with_report({"loader": "qualbench_json", "path": str(p)})
    assert len(items) == 1 and "duplicate question" in report.drops[0].reason


def test_missing_file_and_hub_offline(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset({"loader": "qualbench_json", "path": str(tmp_path / "nope.json")})
    import importlib.util

    # with `datasets` (extra `hub`, in the `test` extra): the offline load fails cleanly; without it: a clear hint
    hub_error = "could not load hub dataset" if importlib.util.find_spec("datasets") else r"needs the `datasets` package"
    with pytest.raises(DataError, match=hub_error):
        load_dataset({"loader": "hub", "path": "no-such-user/no-such-qualbench", "split": "train"})
    with pytest.raises(ConfigError):
        load_dataset({"loader": "csv", "path": "x"})


def test_splits_deterministic_stratified_disjoint(small_json):
    items = load_dataset({"loader": "qualbench_json", "path": str(small_json)})
    s1 = stratified_split(items, (0.5, 0.25, 0.25), seed=3)
    s2 = stratified_split(items, (0.5, 0.25, 0.25), seed=3)
    assert {k: [q.idx for q in v] for k, v in s1.items()} == {k: [q.idx for q in v] for k, v in s2.items()}
    ids = [q.idx for part in s1.values() for q in part]
    assert sorted(ids) == sorted(q.idx for q in items)
    folds = kfold(items, 3, seed=0)
    assert sorted(q.idx for f in folds for q in f) == sorted(q.idx for q in items)
    assert max(len(f) for f in folds) - min(len(f) for f in folds) <= 1


def test_split_changes_with_seed(shared_exam_files):
    items = load_dataset({"loader": "qualbench_json", "path": str(shared_exam_files[0])})
    a = stratified_split(items, seed=0)["test"]
    b = stratified_split(items, seed=1)["test"]
    assert {q.idx for q in a} != {q.idx for q in b}
    assert abs(len(a) - 0.1 * len(items)) <= 6  # per-stratum rounding
    mix = Counter(q.question_type for q in a)
    full = Counter(q.question_type for q in items)
    for t in full:
        assert abs(mix[t] / len(a) - full[t] / len(items)) < 0.03


def test_filters_and_limit(small_json):
    items = load_dataset({"loader": "qualbench_json", "path": str(small_json)})
    assert len(filter_items(items, ["fire_safety"], [])) == 4
    assert len(filter_items(items, [], ["judge"])) == 12
    with pytest.raises(ConfigError):
        filter_items(items, [], ["essay"])
    lim = stratified_limit(items, 12, seed=0)
    assert len(lim) == 12 and lim == stratified_limit(items, 12, seed=0)
    assert len({q.domain for q in lim}) == 6
    cfg = {"loader": "qualbench_json", "path": str(small_json), "domains": ["消防安全"], "types": ["判断题"]}
    assert [q.domain for q in load_dataset(cfg)] == ["消防", "消防"]
