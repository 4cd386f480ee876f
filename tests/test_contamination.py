"""Contamination probe: which options may move (pinned / letter references / free), the derangement shuffle,
the letter-memory expectation and its p-value, the paired analysis, and the end-to-end run. Memory-free models
(the real random baseline, a content-based answerer with seeded random tie-breaks) show no significant effect; a
model that memorised the answer letters does."""

import collections
import hashlib
import itertools
import json
import random
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from scipy import stats

from qualbench.analysis import contamination as cont
from qualbench.analysis import shuffling as sh
from qualbench.config import PROJECT_ROOT, register_configs
from qualbench.data import load_dataset
from qualbench.models.random_baseline import RandomModel
from qualbench.records import JUDGE, MULTI, SINGLE, Question, Request

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def sample_items():
    return load_dataset({"loader": "sample"})


def answer_texts(q):
    return sorted(q.options[a] for a in q.answer) if q.question_type != JUDGE else [q.answer]


def make_q(idx, options, answer="A", qtype=SINGLE, stem="下列说法正确的是（ ）。"):
    return Question(idx=str(idx), question_type=qtype, domain="安全生产", stem=stem,
                    options=dict(zip("ABCDEFGH", options)), answer=answer)


# ---------------------------------------------------------------- option roles

PINNED_TEXTS = ["以上都是", "以上都不是", "以上均正确", "以上都对", "以上都不对", "以上皆是", "以上皆非",
                "以上说法都对", "以上选项均不对", "以上所有选项", "以上均包括", "以上方法没有差别", "全部正确",
                "所有选项均正确", "都不是", "都对", "均不正确", "都可以", "全部", "前三项", "前两项都对", "第一项",
                "上述都对", "上述说法均正确", "其他选项都错", "三者都有", "没有正确答案", "None of the above",
                "All of the above.", "all of these", "both of the above", "none are correct"]
LETTER_REF_TEXTS = ["A和B", "A、B都对", "A与C", "B项和C项", "除A外", "除A以外都对", "除了B，其余都对", "both A and B",
                    "A and B", "either A or C", "A和B都对", "AB", "选项A和选项C", "同A", "A项", "A,C", "A/B",
                    "option B", "except D"]
FREE_TEXTS = ["县级以上地方人民政府", "3米以上", "处五日以上十日以下拘留", "两起及以上一般生产安全事故",
              "A 级，B 级", "75dB（A）", "TN-C", "C10", "A类和B类火灾", "A、B类火灾", "D", "均需接受继续教育", "ETF",
              "项目负责人", "A项目", "专项施工方案", "过多过少都不利于夯实", "不一定", "全部贷款", "所有者权益变动表",
              "机动车辆第三者责任保险", "1m 或 1m 以上", "B股和H股", "A、B两人共同承担", "Vitamin A", "plan B"]


@pytest.mark.parametrize("text", PINNED_TEXTS)
def test_pinned_options(text):
    assert sh.option_role(text, "ABCD") == sh.PINNED


@pytest.mark.parametrize("text", LETTER_REF_TEXTS)
def test_letter_reference_options(text):
    assert sh.option_role(text, "ABCD") == sh.LETTER_REF


@pytest.mark.parametrize("text", FREE_TEXTS)
def test_free_options(text):
    assert sh.option_role(text, "ABCD") == sh.FREE


def test_letters_named_in_the_stem_or_outside_the_options_are_not_references():
    assert sh.option_role("由A、B承担连带责任", "ABCD") == sh.LETTER_REF
    assert sh.option_role("由A、B承担连带责任", "ABCD", names={"A", "B"}) == sh.FREE
    assert sh.option_role("E和F", "ABCD") == sh.FREE  # not letters of this item
    q = make_q(1, ["由A承担全部责任", "由A、B按份承担", "由B承担全部责任", "由A、B承担连带责任"],
               stem="A、B拟共同投资设立甲公司，后公司未成立。下列表述正确的是（ ）。")
    assert sh.letter_names(q.stem, q.options) == {"A", "B"}
    assert sh.plan_question(q) == sh.ShufflePlan((), tuple("ABCD"), None)


@pytest.mark.parametrize("options,answer,pinned,movable,excluded", [
    (["甲", "乙", "丙", "以上都是"], "D", "D", "ABC", None),
    (["以上都不对", "甲", "乙", "丙"], "B", "A", "BCD", None),
    (["甲", "都不是", "乙", "丙"], "C", "B", "ACD", None),
    (["甲", "乙", "以上都对", "丙", "以上都不对"], "C", "CE", "ABD", None),
    (["甲", "乙", "A和B", "以上都不是"], "C", "D", "AB", sh.LETTER_REF),
    (["甲", "乙", "丙", "除A外都对"], "D", "", "ABC", sh.LETTER_REF),
    (["甲", "全部正确", "都不对"], "A", "BC", "A", sh.FEW_MOVABLE),
    (["甲", "乙"], "B", "", "AB", None),
    (["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛"], "H", "", "ABCDEFGH", None),
])
def test_plan_question(options, answer, pinned, movable, excluded):
    plan = sh.plan_question(make_q(1, options, answer))
    assert plan == sh.ShufflePlan(tuple(pinned), tuple(movable), excluded)
    assert plan.shuffled == (excluded is None)


def test_judge_items_have_nothing_to_shuffle():
    q = Question(idx="j", question_type=JUDGE, domain="消防", stem="以上说法都正确。", options={}, answer="正确")
    assert sh.plan_question(q) == sh.ShufflePlan() and not sh.plan_question(q).shuffled


# ---------------------------------------------------------------- the shuffle


@pytest.mark.parametrize("n", range(2, 9))
@pytest.mark.parametrize("pin_at", [None, 0, "last", 1])
def test_shuffle_derangs_movable_and_keeps_pinned(n, pin_at):
    texts = [f"选项内容{i}" for i in range(n)]
    if pin_at is not None:
        k = n - 1 if pin_at == "last" else pin_at
        texts[k] = "以上都不是"
    letters = "ABCDEFGH"[:n]
    for i in range(25):
        q = make_q(f"{n}-{pin_at}-{i}", texts, letters[i % n], qtype=MULTI if i % 3 == 0 else SINGLE)
        plan = sh.plan_question(q)
        if len(plan.movable) < 2:
            assert plan.excluded == sh.FEW_MOVABLE
            continue
        s, m, _ = cont.shuffle_question(q, seed=i)
        assert all(m[p] == p and s.options[p] == q.options[p] for p in plan.pinned)
        assert all(m[k] != k for k in plan.movable)  # a derangement of the movable letters
        assert sorted(m.values()) == sorted(q.options) and list(s.options) == list(q.options)
        assert answer_texts(s) == answer_texts(q)
        assert cont.shuffle_question(q, seed=i) == (s, m, plan)  # reproducible


def test_derangements_are_uniform():
    rng = random.Random(0)
    counts = collections.Counter(tuple(sh.draw_derangement("ABCD", rng)) for _ in range(9000))
    assert len(counts) == 9  # D(4) = 9 derangements, each drawn
    assert stats.chisquare(list(counts.values())).pvalue > 0.001
    with pytest.raises(ValueError):
        sh.draw_derangement("A", rng)


@pytest.mark.parametrize("m,expected", [(2, 1), (3, 2), (4, 9), (5, 44), (6, 265)])
def test_design_maps_enumerate_the_derangements(m, expected):
    letters = "ABCDEFGH"[: m + 1]
    maps = sh.design_maps(letters, letters[:m])
    assert len(maps) == expected and len({tuple(x.values()) for x in maps}) == expected
    assert all(x[letters[m]] == letters[m] for x in maps)  # the extra (pinned) letter never moves
    assert len(sh.design_maps("ABCD", "ABCD", "permutation")) == 23
    sampled = sh.design_maps("ABCDEFGHI", "ABCDEFGHI", max_enumerate=4, n_draws=300)
    assert len(sampled) == 300 and all(all(k != v for k, v in x.items()) for x in sampled)


def check_shuffle(items, seed=0):
    kept, shuf, maps = cont.shuffle_dataset(items, seed)
    assert len(maps) == len(items) and len(kept) == len(shuf)
    assert len(kept) == sum(1 for r in maps if not r["excluded"])
    by_idx = {q.idx: q for q in items}
    moved = 0
    for q, s in zip(kept, shuf):
        row = next(r for r in maps if r["idx"] == q.idx)
        assert by_idx[q.idx] == q and s.idx == q.idx and s.stem == q.stem
        assert answer_texts(s) == answer_texts(q), q.idx
        if q.question_type == JUDGE:
            assert s == q and row["map"] == {}
            continue
        assert list(s.options) == list(q.options) and sorted(s.options.values()) == sorted(q.options.values())
        assert all(s.options[p] == q.options[p] for p in row["pinned"])
        assert all(row["map"][k] != k for k in row["movable"])
        assert all(s.options[new] == q.options[old] for new, old in row["map"].items())
        moved += s.answer != q.answer
    return kept, shuf, maps, moved


def test_shuffle_preserves_answer_texts_and_is_reproducible():
    items = sample_items()
    kept, shuf, _, moved = check_shuffle(items)
    assert moved > len(items) // 4
    assert cont.shuffle_dataset(items, 0)[1] == shuf
    assert cont.shuffle_dataset(items, 1)[1] != shuf
    # the per-item permutation does not depend on which other items are in the set
    assert cont.shuffle_dataset(items[5:9], 0)[1] == [s for s in shuf if s.idx in {q.idx for q in items[5:9]}]


def test_excluded_items_leave_the_probe_and_are_counted():
    items = [make_q(1, ["甲", "乙", "丙", "以上都是"], "D"), make_q(2, ["甲", "乙", "A和B", "丁"], "C"),
             make_q(3, ["甲", "以上都对", "都不对"], "A"), make_q(4, ["甲", "乙", "丙", "丁"], "B")]
    kept, shuf, maps = cont.shuffle_dataset(items)
    assert [q.idx for q in kept] == ["1", "4"]
    assert shuf[0].answer == "D" and shuf[0].options["D"] == "以上都是"  # the pinned answer stays at D
    counts = cont.plan_counts(maps)
    assert counts["excluded_by_reason"] == {sh.LETTER_REF: 1, sh.FEW_MOVABLE: 1, sh.PINNED_MOVED: 0}
    assert (counts["shuffled"], counts["with_pinned"], counts["pinned_options"], counts["excluded"]) == (2, 1, 1, 2)
    assert counts["excluded_idx"] == ["2", "3"]


def test_shuffle_on_real_exam_files(shared_exam_files):
    for f in shared_exam_files:
        items = load_dataset({"loader": "qualbench_json", "path": str(f)})
        kept, _, maps, _ = check_shuffle(items)
        counts = cont.plan_counts(maps)
        assert counts["items"] == len(items) and counts["with_pinned"] > 0
        assert counts["excluded"] < 0.01 * len(items)  # exclusion is rare: a probe of nearly everything
        for q in items:  # every option that says 以上都… / 都不是 stays at its letter
            row = next(r for r in maps if r["idx"] == q.idx)
            for k, v in q.options.items():
                if v.startswith("以上") or v in ("都不是", "都不对"):
                    assert k in row["pinned"], (q.idx, v)


def test_official_round_trip_and_infer_map(tmp_path):
    items = sample_items()
    kept, shuf, maps = cont.shuffle_dataset(items, 3)
    path = cont.write_official(shuf, tmp_path / "shuffled.json")
    back = load_dataset({"loader": "qualbench_json", "path": str(path)})
    assert [(q.idx, q.options, q.answer, q.question_type, q.domain) for q in back] == [
        (q.idx, q.options, q.answer, q.question_type, q.domain) for q in shuf
    ]
    rows = {r["idx"]: r for r in maps}
    for q, s in zip(kept, back):
        assert cont.infer_map(q, s) == rows[q.idx]["map"]


def test_existing_shuffled_jsonl_pairs_by_idx(tmp_path):
    """The official shuffled release: JSONL with ``type``, ``explan``, ``sub_domain``; paired by idx."""
    items = sample_items()[:30]
    kept, shuf, maps = cont.shuffle_dataset(items, 9)
    lines = []
    for s in reversed(shuf[2:]):  # other order, two items missing
        d = s.to_official()
        lines.append(json.dumps({"idx": d["idx"], "type": d["question_type"], "domain": d["domain"],
                                 "sub_domain": "x", "question": d["question"], "answer": d["answer"],
                                 "explan": d["explanation"]}, ensure_ascii=False))
    p = tmp_path / "QualBench_shuffled.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_dataset({"loader": "auto", "path": str(p), "dedupe": False})
    o, s, m = cont.pair_existing(kept, loaded)
    assert [q.idx for q in o] == [q.idx for q in kept[2:]] == [q.idx for q in s]
    assert [x["map"] for x in m] == [x["map"] for x in maps[2:]]
    assert all(x["design"] == "permutation" for x in m)


def test_a_supplied_shuffle_that_moves_a_pinned_option_is_excluded():
    q = make_q(7, ["甲", "乙", "丙", "以上都是"], "D")
    bad = make_q(7, ["以上都是", "乙", "丙", "甲"], "A")
    good = make_q(7, ["乙", "丙", "甲", "以上都是"], "D")
    assert cont.pair_existing([q], [good])[0] == [q]
    o, s, m = cont.pair_existing([q], [bad])
    assert o == [] and s == [] and m[0]["excluded"] == sh.PINNED_MOVED


# ---------------------------------------------------------------- letter-memory expectation


def test_expected_original_letter_single_choice_closed_form():
    """Single choice, m movable letters: a memory-free model picking a movable distractor lands on the original
    letter with probability 1/(m−1); picking the answer text, a pinned text or nothing: 0."""
    for n_opts, pinned in ((4, ""), (5, ""), (4, "D"), (5, "E"), (3, "")):
        letters = "ABCDE"[:n_opts]
        movable = [x for x in letters if x not in pinned]
        m = len(movable)
        for gold in movable:
            sigma = dict(zip(movable, movable[1:] + movable[:1]))
            row = {"map": {k: sigma.get(k, k) for k in letters}, "original_answer": gold, "movable": movable,
                   "pinned": list(pinned), "design": "derangement", "question_type": SINGLE}
            inv = {old: new for new, old in row["map"].items()}
            row["shuffled_answer"] = inv[gold]
            assert cont.counts_for_letter_memory(row)
            for old in letters:  # the model chooses the text originally at ``old``
                obs, e = cont.expected_original_letter(inv[old], row)
                assert obs == (inv[old] == gold)
                want = 0.0 if old == gold or old in pinned else 1 / (m - 1)
                assert e == pytest.approx(want), (n_opts, pinned, gold, old)
            assert cont.expected_original_letter("", row) == (False, 0.0)
            assert cont.expected_original_letter("Z", row) == (False, 0.0)


def test_expected_original_letter_multi_matches_simulation():
    rng = random.Random(5)
    letters, movable = "ABCDE", "ABCD"
    for gold, chosen in (("AB", "CD"), ("ABC", "ABD"), ("AC", "AC"), ("BD", "E"), ("AD", "BCE")):
        sigma = dict(zip(movable, sh.draw_derangement(movable, rng)))
        row = {"map": {k: sigma.get(k, k) for k in letters}, "original_answer": gold, "movable": list(movable),
               "pinned": ["E"], "design": "derangement", "question_type": MULTI}
        inv = {old: new for new, old in row["map"].items()}
        pred = "".join(sorted(inv[c] for c in chosen))
        _, e = cont.expected_original_letter(pred, row)
        hits = tries = 0
        for _ in range(4000):  # re-draw the shuffle; the model keeps choosing the same texts
            s = dict(zip(movable, sh.draw_derangement(movable, rng)))
            s = {k: s.get(k, k) for k in letters}
            inv2 = {old: new for new, old in s.items()}
            if {inv2[g] for g in gold} == set(gold):
                continue
            tries += 1
            hits += {inv2[c] for c in chosen} == set(gold)
        assert e == pytest.approx(hits / tries, abs=0.03), (gold, chosen)


def test_poisson_binomial_sf():
    assert cont.poisson_binomial_sf(0, [0.3, 0.2]) == 1.0
    assert cont.poisson_binomial_sf(7, [0.25] * 20) == pytest.approx(stats.binom.sf(6, 20, 0.25))
    probs = [0.1, 0.5, 0.33, 0.0, 1.0]
    brute = sum(
        (1 if sum(bits) >= 3 else 0) * float(__import__("numpy").prod([p if b else 1 - p for p, b in zip(probs, bits)]))
        for bits in itertools.product((0, 1), repeat=len(probs))
    )
    assert cont.poisson_binomial_sf(3, probs) == pytest.approx(brute)


# ---------------------------------------------------------------- memory-free vs memorising models


def synthetic_exam(n=900, seed=0):
    """Choice items with 4–5 options, single and multi, some with a pinned 以上都是 / 都不是 option, and 判断题."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        k = rng.choice((4, 4, 5))
        letters = "ABCDE"[:k]
        texts = [f"第{i}题的选项{j}" for j in range(k)]
        qtype = MULTI if i % 3 == 0 else SINGLE
        if i % 7 == 0:
            texts[-1] = rng.choice(("以上都是", "都不是"))
        if qtype == SINGLE:
            answer = rng.choice(letters)
        else:
            answer = "".join(sorted(rng.sample(letters, rng.choice((2, 3)))))
        items.append(make_q(f"s{i}", texts, answer, qtype, stem=f"第{i}题：下列说法正确的是（ ）。"))
    for i in range(n // 6):
        items.append(Question(idx=f"j{i}", question_type=JUDGE, domain="消防", stem=f"判断{i}",
                              options={}, answer=rng.choice(("正确", "错误"))))
    return items


def _h(*parts):
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def random_model(seed=0):
    m = RandomModel(seed)
    return lambda q: m.answer(Request(item=q, messages=[]))


def content_model(seed=0, knows=0.45):
    """Memory-free, position-blind: knows some items (by stem), otherwise scores option texts coarsely (many
    ties) and breaks ties at random with a generator seeded by the item; judges by the statement."""

    def answer(q):
        if q.question_type == JUDGE:
            return ("正确", "错误")[_h("judge", seed, q.stem) % 2]
        if _h("knows", seed, q.stem) % 1000 < knows * 1000:
            gold_texts = set(answer_texts(ORIGINAL[q.idx]))
            return "".join(k for k, v in q.options.items() if v in gold_texts)
        score = {k: _h("score", seed, v) % 3 for k, v in q.options.items()}
        if q.question_type == MULTI:
            return "".join(k for k in q.options if score[k] >= 1) or next(iter(q.options))
        best = max(score.values())
        tied = [k for k in q.options if score[k] == best]
        return random.Random(_h("tie", seed, q.idx)).choice(tied)

    return answer


def memoriser():
    """Answers the original answer letters of each item, looked up by its stem (the key it memorised)."""
    key = {x.stem: x.answer for x in ORIGINAL.values()}
    return lambda q: key[q.stem]


ORIGINAL: dict[str, Question] = {}


def predict(model, items):
    out = []
    for q in items:
        p = model(q)
        out.append({"idx": q.idx, "domain": q.domain, "question_type": q.question_type, "answer": q.answer,
                    "prediction": p, "correct": "".join(sorted(p)) == q.answer if q.options else p == q.answer})
    return out


def probe(model, items, seed):
    kept, shuf, maps = cont.shuffle_dataset(items, seed)
    return cont.analyse(predict(model, kept), predict(model, shuf), maps, n_boot=20, seed=seed)


@pytest.fixture(scope="module")
def exam():
    items = synthetic_exam()
    ORIGINAL.clear()
    ORIGINAL.update({q.idx: q for q in items})
    return items


@pytest.mark.parametrize("name,family", [("random", random_model), ("content", content_model)])
def test_memory_free_models_show_no_effect(exam, name, family):
    """Eight independent replications (model seed s, shuffle seed s): at most 2 of 8 tests below 0.05
    (P ≈ 0.006 for a calibrated test), observed vs expected letter memory within 3 standard errors overall."""
    results = [probe(family(s), exam, s) for s in range(8)]
    p_acc = [r["shuffled_items"]["p_mcnemar"] for r in results]
    p_mem = [r["letter_memory"]["p_value"] for r in results]
    assert sum(p < 0.05 for p in p_acc) <= 2, (name, p_acc)
    assert sum(p < 0.05 for p in p_mem) <= 2, (name, p_mem)
    lm = results[0]["letter_memory"]
    assert lm["n"] > 500 and lm["expected"] > 0
    obs = sum(r["letter_memory"]["original_letter_answers"] for r in results)
    exp = sum(r["letter_memory"]["expected"] for r in results)
    assert abs(obs - exp) < 3 * exp ** 0.5 + 1, (name, obs, exp)
    # ties broken at random make some answers differ between the variants, in both directions
    assert sum(r["shuffled_items"]["discordant_a_only"] + r["shuffled_items"]["discordant_b_only"]
               for r in results) > 0


def test_memorising_model_is_caught(exam):
    res = probe(memoriser(), exam, 0)
    acc = res["shuffled_items"]
    assert acc["acc_a"] == 1.0 and acc["acc_b"] < 0.1 and acc["p_mcnemar"] < 1e-10
    lm = res["letter_memory"]
    assert lm["rate"] == 1.0 and lm["expected_rate"] < 0.5 and lm["p_value"] < 1e-10


def test_naive_reading_of_letter_memory_would_flag_the_random_model(exam):
    """Without the expectation, the random model answers the original letter on ~1/n of the items: the
    expectation explains it (what the brief's confound is about)."""
    lm = probe(random_model(1), exam, 1)["letter_memory"]
    assert lm["rate"] > 0.1 and lm["expected_rate"] > 0.1 and lm["p_value"] > 0.05


# ---------------------------------------------------------------- analysis and end to end


def rows(spec):
    """(idx, domain, type, answer, prediction, correct) tuples → prediction dicts."""
    return [dict(zip(("idx", "domain", "question_type", "answer", "prediction", "correct"), r)) for r in spec]


def test_analyse_mcnemar_and_position_bias():
    o, s = [], []
    for i in range(40):
        a_ok = i < 30  # original right on 30
        b_ok = i < 12 or 30 <= i < 33  # shuffled right on 12 of those and 3 others
        o.append((f"q{i}", "消防", SINGLE, "B", "B" if a_ok else "A", a_ok))
        s.append((f"q{i}", "消防", SINGLE, "C", "C" if b_ok else ("B" if i < 20 else "A"), b_ok))
    maps = [{"idx": f"q{i}", "question_type": SINGLE, "map": {"A": "D", "B": "C", "C": "B", "D": "A"},
             "original_answer": "B", "shuffled_answer": "C", "pinned": [], "movable": list("ABCD"),
             "excluded": None, "design": "derangement"} for i in range(40)]
    res = cont.analyse(rows(o), rows(s), maps, n_boot=200, seed=0)
    ov = res["overall"]
    assert (ov["discordant_a_only"], ov["discordant_b_only"]) == (18, 3)
    assert ov["p_mcnemar"] == pytest.approx(stats.binomtest(3, 21, 0.5).pvalue)
    assert ov["delta"] == pytest.approx((15 - 30) / 40)
    assert res["shuffled_items"]["p_mcnemar"] == ov["p_mcnemar"]
    pb = {r["letter"]: r for r in res["position_bias"]}
    assert pb["B"]["gold_original"] == 1.0 and pb["C"]["gold_shuffled"] == 1.0
    assert pb["A"]["pred_shuffled"] == pytest.approx(17 / 40)
    assert sum(r["pred_original"] for r in res["position_bias"]) == pytest.approx(1.0)
    lm = res["letter_memory"]
    # 8 wrong answers "B" (= the original letter, now the text of C): each expected with p 1/3; "A" also 1/3
    assert (lm["n"], lm["original_letter_answers"]) == (40, 8)
    assert lm["expected"] == pytest.approx(25 / 3)
    assert lm["p_value"] == pytest.approx(cont.poisson_binomial_sf(8, [1 / 3] * 25 + [0] * 15))
    md = cont.to_markdown(res)
    assert "Position bias" in md and "McNemar" in md and "Letter memory" in md


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
    assert res["task"] == "contamination" and res["schema_version"] >= 1
    assert res["shuffled_source"] == "generated"
    sp = res["shuffle_plan"]
    assert sp["items"] == 36 and res["n"] == 36 - sp["excluded"] == sp["shuffled"] + sp["judge_unchanged"]
    m_o = json.loads((out / "original" / "metrics.json").read_text(encoding="utf-8"))
    m_s = json.loads((out / "shuffled" / "metrics.json").read_text(encoding="utf-8"))
    assert ret["delta"] == pytest.approx(m_s["accuracy"] - m_o["accuracy"])
    assert ret["letter_memory_p"] == res["letter_memory"]["p_value"]
    assert len((out / "shuffle_map.jsonl").read_text(encoding="utf-8").splitlines()) == 36
    md = (out / "contamination.md").read_text(encoding="utf-8")
    assert "excluded" in md and "expected" in md
    before = (out / "shuffled" / "predictions.jsonl").read_text(encoding="utf-8")
    cont.run_contamination(cfg, out)  # resumes: nothing recomputed, nothing appended
    assert (out / "shuffled" / "predictions.jsonl").read_text(encoding="utf-8") == before


def test_retrieval_answerer_shows_no_effect(tmp_path):
    """The offline retrieval answerer (memory-free by construction) on the bundled sample, end to end."""
    if not (PROJECT_ROOT / "corpora" / "sample").is_dir():
        pytest.skip("sample corpus not present")
    cfg = compose_cfg(["experiment=contamination", "model=retrieval", "model.show_progress=false",
                       f"retriever.cache_dir={tmp_path / 'idx'}", "run.n_boot=50", "run.plots=false"])
    cont.run_contamination(cfg, tmp_path / "probe")
    res = json.loads((tmp_path / "probe" / "contamination.json").read_text(encoding="utf-8"))
    assert res["shuffle_plan"]["shuffled"] > 100
    assert res["shuffled_items"]["acc_a"] > 0.4  # it answers from evidence, well above chance
    assert res["shuffled_items"]["p_mcnemar"] > 0.05
    assert res["letter_memory"]["n"] > 100 and res["letter_memory"]["p_value"] > 0.05
