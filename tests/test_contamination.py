"""Contamination probe: shuffling keeps the answers' texts, is reproducible, round-trips the official format;
an existing shuffled JSONL pairs by idx; the end-to-end run writes both variants and the paired analysis."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from scipy import stats

from qualbench.analysis import contamination as cont
from qualbench.config import PROJECT_ROOT, register_configs
from qualbench.data import load_dataset
from qualbench.records import JUDGE

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def sample_items():
    return load_dataset({"loader": "sample"})


def answer_texts(q):
    return sorted(q.options[a] for a in q.answer) if q.question_type != JUDGE else [q.answer]


def check_shuffle(items, seed=0):
    shuf, maps = cont.shuffle_dataset(items, seed)
    assert len(shuf) == len(items) == len(maps)
    moved = 0
    for q, s, m in zip(items, shuf, maps):
        assert s.idx == q.idx and s.stem == q.stem
        assert answer_texts(s) == answer_texts(q), q.idx
        if q.question_type == JUDGE:
            assert s == q and m["map"] == {}
            continue
        assert sorted(s.options.values()) == sorted(q.options.values())
        assert list(s.options) == list(q.options)  # same letters, permuted texts
        assert m["map"] != {k: k for k in q.options}  # never the identity
        assert all(s.options[new] == q.options[old] for new, old in m["map"].items())
        moved += s.answer != q.answer
    return shuf, moved


def test_shuffle_preserves_answer_texts_and_is_reproducible():
    items = sample_items()
    shuf, moved = check_shuffle(items)
    assert moved > len(items) // 4
    again, _ = cont.shuffle_dataset(items, 0)
    assert again == shuf
    other, _ = cont.shuffle_dataset(items, 1)
    assert other != shuf
    # the per-item permutation does not depend on which other items are in the set
    assert cont.shuffle_dataset(items[5:9], 0)[0] == shuf[5:9]


def test_shuffle_on_real_exam_files():
    files = sorted((SHARED / "exams").glob("*.json"))
    if not files:
        pytest.skip(f"no real exam files under {SHARED / 'exams'}")
    for f in files:
        check_shuffle(load_dataset({"loader": "qualbench_json", "path": str(f)}))


def test_official_round_trip_and_infer_map(tmp_path):
    items = sample_items()
    shuf, maps = cont.shuffle_dataset(items, 3)
    path = cont.write_official(shuf, tmp_path / "shuffled.json")
    back = load_dataset({"loader": "qualbench_json", "path": str(path)})
    assert [(q.idx, q.options, q.answer, q.question_type, q.domain) for q in back] == [
        (q.idx, q.options, q.answer, q.question_type, q.domain) for q in shuf
    ]
    for q, s, m in zip(items, back, maps):
        assert cont.infer_map(q, s) == m["map"]


def test_existing_shuffled_jsonl_pairs_by_idx(tmp_path):
    """The official shuffled release: JSONL with ``type``, ``explan``, ``sub_domain``; paired by idx."""
    items = sample_items()[:30]
    shuf, maps = cont.shuffle_dataset(items, 9)
    lines = []
    for s in reversed(shuf[2:]):  # other order, two items missing
        d = s.to_official()
        lines.append(json.dumps({"idx": d["idx"], "type": d["question_type"], "domain": d["domain"],
                                 "sub_domain": "x", "question": d["question"], "answer": d["answer"],
                                 "explan": d["explanation"]}, ensure_ascii=False))
    p = tmp_path / "QualBench_shuffled.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_dataset({"loader": "auto", "path": str(p), "dedupe": False})
    o, s, m = cont.pair_existing(items, loaded)
    assert [q.idx for q in o] == [q.idx for q in items[2:]] == [q.idx for q in s]
    assert [x["map"] for x in m] == [x["map"] for x in maps[2:]]


def rows(spec):
    """(idx, domain, type, answer, prediction, correct) tuples → prediction dicts."""
    return [dict(zip(("idx", "domain", "question_type", "answer", "prediction", "correct"), r)) for r in spec]


def test_analyse_mcnemar_and_position_bias():
    o, s = [], []
    for i in range(40):
        a_ok = i < 30  # original right on 30
        b_ok = i < 12 or 30 <= i < 33  # shuffled right on 12 of those and 3 others
        o.append((f"q{i}", "消防", "单选题", "B", "B" if a_ok else "A", a_ok))
        s.append((f"q{i}", "消防", "单选题", "C", "C" if b_ok else "A", b_ok))
    maps = [{"idx": f"q{i}", "map": {}, "original_answer": "B", "shuffled_answer": "C"} for i in range(40)]
    res = cont.analyse(rows(o), rows(s), maps, n_boot=200)
    ov = res["overall"]
    assert (ov["discordant_a_only"], ov["discordant_b_only"]) == (18, 3)
    assert ov["p_mcnemar"] == pytest.approx(stats.binomtest(3, 21, 0.5).pvalue)
    assert ov["delta"] == pytest.approx((15 - 30) / 40)
    pb = {r["letter"]: r for r in res["position_bias"]}
    assert pb["B"]["gold_original"] == 1.0 and pb["C"]["gold_shuffled"] == 1.0
    assert pb["A"]["pred_shuffled"] == pytest.approx(25 / 40)
    assert sum(r["pred_original"] for r in res["position_bias"]) == pytest.approx(1.0)
    assert res["letter_memory"] == {"n": 40, "original_letter_answers": 0, "rate": 0.0}
    md = cont.to_markdown(res)
    assert "Position bias" in md and "McNemar" in md


def compose_cfg(overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def test_run_contamination_end_to_end_and_resume(tmp_path):
    cfg = compose_cfg(["experiment=contamination", "task=contamination", "model=random", "limit=36",
                       "run.n_boot=50", "run.plots=false"])
    out = tmp_path / "probe"
    ret = cont.run_contamination(cfg, out)
    for f in ("original.json", "shuffled.json", "shuffle_map.jsonl", "contamination.json", "contamination.md",
              "contamination.csv", "contamination.png", "original/predictions.jsonl", "shuffled/metrics.json"):
        assert (out / f).exists(), f
    res = json.loads((out / "contamination.json").read_text(encoding="utf-8"))
    assert res["n"] == 36 and res["shuffled_source"] == "generated"
    m_o = json.loads((out / "original" / "metrics.json").read_text(encoding="utf-8"))
    m_s = json.loads((out / "shuffled" / "metrics.json").read_text(encoding="utf-8"))
    assert ret["delta"] == pytest.approx(m_s["accuracy"] - m_o["accuracy"])
    assert len((out / "shuffle_map.jsonl").read_text(encoding="utf-8").splitlines()) == 36
    before = (out / "shuffled" / "predictions.jsonl").read_text(encoding="utf-8")
    cont.run_contamination(cfg, out)  # resumes: nothing recomputed, nothing appended
    assert (out / "shuffled" / "predictions.jsonl").read_text(encoding="utf-8") == before
