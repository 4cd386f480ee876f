"""extract_answer reads what a careful human grader reads, on realistic LLM replies of all three types."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualbench.records import FALSE, JUDGE, MULTI, SINGLE, TRUE
from qualbench.scoring import ScoringError, extract_answer

S, M, J = SINGLE, MULTI, JUDGE

SINGLE_CASES = [
    # bare and formatted answers
    ("C", "C"),
    ("B。", "B"),
    (" \n D \n", "D"),
    ("答案：C", "C"),
    ("答案:A", "A"),
    ("正确答案是B。", "B"),
    ("选B", "B"),
    ("答案是Ｂ", "B"),
    ("（A）", "A"),
    ("【答案】D", "D"),
    ("\\boxed{D}", "D"),
    ("最终答案：$\\boxed{\\text{C}}$", "C"),
    ("**答案：B**", "B"),
    ("### 答案\n\n**C**", "C"),
    ("答案：**A**\n\n解析：根据《安全生产法》第二十一条，生产经营单位的主要负责人对本单位安全生产工作全面负责。", "A"),
    ("B．立即停止作业，撤离危险区域", "B"),
    ("A. 每年至少一次", "A"),
    ("选项B", "B"),
    ("本题选C。", "C"),
    ("应选D，其余选项均不符合规定。", "D"),
    ("正确的选项是A。", "A"),
    ("正确答案应该是：B", "B"),
    ("答：C", "C"),
    ("答案为 D 选项", "D"),
    ("我认为是B，因为特种作业人员必须经专门的安全技术培训并考核合格。", "B"),
    # chain of thought: the stated final answer wins over option-by-option discussion
    ("A项错误，B项错误，C项正确。故答案为C", "C"),
    ("我们逐项分析：\nA. 该做法不符合规定；\nB. 也不对；\nC. 符合《消防法》的要求；\nD. 错误。\n因此，正确答案是C。", "C"),
    ("首先排除A和D，因为它们与题意不符。B和C之间，B更符合《建设工程安全生产管理条例》第十条的规定。所以选B。", "B"),
    ("答案：A\n\n等等，我重新核对一下条文，第三十条规定的是三个月。答案应为C。", "C"),
    ("A项说法正确；B项说法错误；C项说法错误；D项说法错误。", "A"),
    ("选项A、B、C都是干扰项，D项正确。", "D"),
    ("分析：根据GB 50016-2014《建筑设计防火规范》，一类高层民用建筑的耐火等级不应低于一级。故选A。", "A"),
    ("根据JGJ 59-2011，CO2灭火器适用于B类火灾，故选A", "A"),
    ("AQ 3013规定了危险化学品从业单位安全标准化的要求，本题答案为D。", "D"),
    ("SY/T 5225对石油天然气钻井作业有明确要求，答案是B", "B"),
    ("GB/T 45001是职业健康安全管理体系标准，ISO 45001与之等同。答案：C", "C"),
    ("A类火灾是固体物质火灾，应使用水型灭火器。答案C", "C"),
    ("依据附录B的规定，本题选A。", "A"),
    ("施工单位的项目负责人应当持有安全生产考核合格证书（B证），因此答案为B。", "B"),
    ("专职安全生产管理人员持C证上岗，答案：C", "C"),
    ("A公司向B公司转让股权时应当... 故本题答案为D。", "D"),
    ("作业人员应正确佩戴PPE（个人防护装备），答案：A", "A"),
    ("<think>A项看起来对，但B项更准确……再想想，应该是B。</think>\n答案：B", "B"),
    ("<think>题目问的是最低要求。</think>\n\nC", "C"),
    # English and JSON replies
    ("The answer is C", "C"),
    ("The correct answer is (B).", "B"),
    ("Answer: D", "D"),
    ("A fire extinguisher of the dry-powder type is suitable here, so the answer is D.", "D"),
    ("Option A is incorrect because the limit is 24 hours. The correct option is B.", "B"),
    ("I would choose A.", "A"),
    ('{"answer": "C"}', "C"),
    ('```json\n{"answer": "B", "reason": "依据第二十条"}\n```', "B"),
    # ambiguous or no answer -> ""
    ("", ""),
    ("   ", ""),
    ("asdf", ""),
    ("我不知道。", ""),
    ("无法确定答案，题目信息不足。", ""),
    ("答案：AB", ""),
    ("A或B", ""),
    ("A和C都有道理。", ""),
    ("A. 立即报告\nB. 停止作业\nC. 撤离现场\nD. 继续观察", ""),
    ("According to ISO standards and PPE rules, a worker must comply.", ""),
    ("根据GB 50016和JGJ 59的规定，该建筑属于A类。", ""),
    ("答案是E", ""),  # outside this item's options (restricted below)
    # more chatty replies
    ("根据《中华人民共和国安全生产法》第二十四条规定，矿山、金属冶炼、建筑施工、运输单位和危险物品的生产、经营、储存、装卸单位，应当设置安全生产管理机构或者配备专职安全生产管理人员。\n\n因此，本题的正确答案是：**C. 设置安全生产管理机构或者配备专职安全生产管理人员**", "C"),
    ("这道题考查的是消防设施的维护保养。选项A说法正确，选项B也正确，选项C错误，选项D正确。题目问的是错误的是哪一项，所以答案是C。", "C"),
    ("选项分析：\n- A：错误，应为3个月\n- B：正确\n- C：错误\n- D：错误\n\n答案：B", "B"),
    ("A\n解析：根据规定，应当在事故发生后1小时内报告。", "A"),
    ("正确答案：B\n\n解析：\nA选项错误，因为时限不对。\nC选项错误，因为主体不对。\nD选项错误。", "B"),
    ("我选择C选项。", "C"),
    ("答案选D。", "D"),
    ("B) 3个月", "B"),
    ("Answer: (C) 30日内", "C"),
    ("答案：C（30日）", "C"),
    ("A选项：正确。B选项：错误。C选项：错误。D选项：错误。", "A"),
    ("本题考查A级防火门的设置，答案为B。", "B"),
    ("使用B型灭火器，选C", "C"),
    ("答案：\nB", "B"),
    ("答案是选项B：及时报告", "B"),
    ("The correct answer is: **A. 立即停止作业**", "A"),
    ("H2S浓度超标时应立即撤离，答案A", "A"),
    ("C30混凝土的强度等级满足要求，答案D", "D"),
    ("根据AQ/T 9006-2010，答案是B", "B"),
    ("答案：B。\n\n注：如果题目问的是错误选项，则应选A。", "B"),  # a conditional note is not the conclusion
    ("the answer should be b", "B"),  # lower-case right after an answer marker is read
    ("请在最后一行以“答案：X”的格式给出你的选择（X为选项字母）。", ""),  # echoed instruction
    ("1.A 2.B", ""),
]

MULTI_CASES = [
    ("ABD", "ABD"),
    ("A、C、D", "ACD"),
    ("答案：A，C，D", "ACD"),
    ("答案：ACD", "ACD"),
    ("答案：DCA", "ACD"),
    ("BCD三项正确", "BCD"),
    ("ACD均正确，B项错误。", "ACD"),
    ("故选AC", "AC"),
    ("正确答案为A、B、C、E。", "ABCE"),
    ("【答案】ABCDE", "ABCDE"),
    ("\\boxed{ABD}", "ABD"),
    ("答案：A B D", "ABD"),
    ("**正确答案：BC**", "BC"),
    ("本题正确的有A、C。", "AC"),
    ("A项正确，B项错误，C项正确，D项正确。", "ACD"),
    ("A正确；B正确；C错误；D正确；E错误。", "ABD"),
    ("逐项分析：A项符合规定；B项不正确；C项正确；D项正确。综上，答案为ACD。", "ACD"),
    ("选项A、B正确，C项说法有误，D正确。故选ABD。", "ABD"),
    ("答案：AB\n\n再检查一下，C项也符合《安全生产法》的规定，所以最终答案是ABC。", "ABC"),
    ("ABC分类法是一种管理方法，本题答案为BD。", "BD"),
    ("The answers are A, C and D.", "ACD"),
    ("The correct options are A and B.", "AB"),
    ('{"answer": "AB"}', "AB"),
    ("<think>E项不对。</think>答案：ABCD", "ABCD"),
    ("答案：B", "B"),  # a single letter is a (possibly partial) multi-choice answer
    ("施工现场应配备A类、B类火灾适用的灭火器，本题选ABC。", "ABC"),
    ("正确选项为：A、B、D", "ABD"),
    ("本题答案：ABCE\n解析：D项错误，应由建设单位负责。", "ABCE"),
    ("答案是A,B,C", "ABC"),
    ("A、B、C、D均正确", "ABCD"),
    ("以上选项均正确，答案ABCD", "ABCD"),
    ("选ACD。B项不符合《消防法》规定。", "ACD"),
    ("1. A项正确\n2. B项错误\n3. C项正确\n\n最终答案：AC", "AC"),
    ("A、B两项说法正确", "AB"),
    ("应急预案分为综合预案、专项预案和现场处置方案。A、B、C三项正确，D项错误。", "ABC"),
    ("答案：BD，A项和C项不符合题意。", "BD"),
    ("Final answer: ABC", "ABC"),
    ("正确的是B和D", "BD"),
    ("选项C和D正确，A、B错误。", "CD"),
    ("A and C are correct; B is wrong.", "AC"),
    ("E", "E"),
    ("", ""),
    ("我无法回答这个问题。", ""),
    ("A项错误，B项错误。", ""),
    ("CAD图纸与BIM模型须一致。", ""),
]

JUDGE_CASES = [
    ("正确", TRUE),
    ("错误", FALSE),
    ("错误。", FALSE),
    ("对", TRUE),
    ("错。", FALSE),
    ("√", TRUE),
    ("×", FALSE),
    ("✓ 该说法符合规定", TRUE),
    ("✗", FALSE),
    ("True", TRUE),
    ("False", FALSE),
    ("T", TRUE),
    ("F", FALSE),
    ("答案：错误", FALSE),
    ("答案：正确", TRUE),
    ("【答案】×", FALSE),
    ("判断：√", TRUE),
    ("\\boxed{错误}", FALSE),
    ("**答案：正确**\n\n解析：《消防法》第十六条规定，机关、团体、企业、事业等单位应当落实消防安全责任制。", TRUE),
    ("该说法正确", TRUE),
    ("该说法不正确。", FALSE),
    ("说法不正确", FALSE),
    ("题目说法有误", FALSE),
    ("这种说法是错误的。", FALSE),
    ("该说法是正确的。", TRUE),
    ("题目中的说法无误。", TRUE),
    ("该说法并不正确，正确的做法是先断电再检修。", FALSE),
    ("不对，应该是先通风后检测再作业。", FALSE),
    ("正确答案应为“错误”。", FALSE),
    ("正确答案：错误", FALSE),
    ("该说法是否正确？答：错误", FALSE),
    ("该说法正确吗？不。答案：错误", FALSE),
    ("正确佩戴安全帽是必须的，因此该说法正确。", TRUE),
    ("根据《安全生产法》第二十八条，生产经营单位应当对从业人员进行安全生产教育和培训，因此题干说法正确。", TRUE),
    ("题目把“三个月”说成了“六个月”，所以该说法错误。", FALSE),
    ("分析：特种作业人员须持证上岗，题目说可以先上岗后培训，这是不对的。结论：错误", FALSE),
    ("答案：错误。该说法正确的部分是要求设置警示标志，但时限表述有误。", FALSE),
    ("答案：错误\n解析：正确的做法是立即停止作业并报告。", FALSE),
    ("<think>题目说的是每年一次，法条写的是每季度一次……</think>\n错误", FALSE),
    ("The statement is false.", FALSE),
    ("The answer is True.", TRUE),
    ("Answer: False", FALSE),
    ("This statement is correct according to the Fire Protection Law.", TRUE),
    ('{"answer": "错误"}', FALSE),
    ('{"answer": false}', FALSE),
    ("没有错误，符合规定。", TRUE),
    ("该说法不完全正确。", FALSE),
    ("判断结果：正确", TRUE),
    ("答案：正确。该做法符合《安全生产法》要求。", TRUE),
    ("错误，应当每年至少进行一次", FALSE),
    ("× 根据规定应为30日", FALSE),
    ("这个说法是对的。", TRUE),
    ("此说法不对", FALSE),
    ("判断：错", FALSE),
    ("我认为这个说法是正确的，因为法律规定如此。", TRUE),
    ("题目表述正确。", TRUE),
    ("该表述有误。", FALSE),
    ("**错误**\n\n理由：题目混淆了主体。", FALSE),
    ("结论：该说法成立。", TRUE),
    ("题干说法不成立。", FALSE),
    ("Incorrect.", FALSE),
    ("Correct. The law requires it.", TRUE),
    ("这个说法是错的，应该是三个月", FALSE),
    ("这句话是正确的。", TRUE),
    ("不符合规定，错误。", FALSE),
    ("It is true.", TRUE),
    ("No, it's wrong.", FALSE),
    ("答案：B（错误）", FALSE),
    ("错误。题目说“可以不设置”，正确的是必须设置。", FALSE),
    ("该说法正确吗？", ""),
    ("答案：A", ""),
    ("答案是：错误", FALSE),  # 是 links the marker to the verdict, it is not the verdict
    ("结论是: 不正确", FALSE),
    ("答案：是", TRUE),
    ("答案：否。", FALSE),
    ("答案是“错误”", FALSE),
    ("请以“答案：正确”或“答案：错误”的格式作答。", ""),  # an echoed instruction offers both
    ("请以“答案：正确”或“答案：错误”的格式作答。\n答案：正确", TRUE),
    ("答案：正确/错误", ""),
    ("", ""),
    ("我不确定。", ""),
    ("这个问题需要结合具体情况分析。", ""),
    ("有人认为正确，也有人认为错误。", ""),
]

EXTRA_CASES = [
    ("### 分析\n\n题目考查的是《建设工程安全生产管理条例》。\n\n- **选项A**：符合条例第二十三条，正确。\n- **选项B**：主体错误，错误。\n- **选项C**：时限错误，错误。\n- **选项D**：与题意无关，错误。\n\n### 结论\n\n正确答案为 **A**。", S, "A"),
    ("答案：ABC（多选）", M, "ABC"),
    ("综上，本题应选择 B 项。", S, "B"),
    ("### 判断结果：**错误**", J, FALSE),
    ("该题目的说法是错误的。根据《安全生产法》第八十三条，应当立即报告。", J, FALSE),
    ("题目中“应当在24小时内报告”的说法不正确，应为1小时。", J, FALSE),
    ("答案：错误（×）", J, FALSE),
    ("答案：A（正确选项为A项：设置安全生产管理机构）", S, "A"),
    ("此题选D。解析：选项D中的“定期”是关键。", S, "D"),
    ("Based on the regulation, option C is correct.", S, "C"),
    ("选项 B 正确", S, "B"),
    ("ABCD都对", M, "ABCD"),
    ("全选ABCD", M, "ABCD"),
    ("答案：A;B;D", M, "ABD"),
    ("答案是（ C ）", S, "C"),
    ("答案：C 30日内", S, "C"),
    ("√（正确）", J, TRUE),
    ("A. 正确", J, TRUE),
    ("正确答案是B。B项中“三个月”符合规定，A项错误，C项错误。", S, "B"),
    ("根据规定，特种作业人员必须持证上岗。答案：正确\n\n注意：题干中“可以先上岗后取证”的说法是错误的。", J, TRUE),
]

CASES = (
    [(r, S, e) for r, e in SINGLE_CASES]
    + [(r, M, e) for r, e in MULTI_CASES]
    + [(r, J, e) for r, e in JUDGE_CASES]
    + EXTRA_CASES
)


@pytest.mark.parametrize(("reply", "qtype", "expected"), CASES)
def test_extract_table(reply: str, qtype: str, expected: str) -> None:
    assert extract_answer(reply, qtype, "ABCD" if qtype == S else None) == expected


def test_table_is_broad() -> None:
    assert len(CASES) >= 100
    assert {t for _, t, _ in CASES} == {S, M, J}


def test_options_restrict_letters() -> None:
    assert extract_answer("答案是E", S) == "E"
    assert extract_answer("答案是E", S, "ABCD") == ""
    assert extract_answer("答案是E", S, ["A", "B", "C", "D", "E"]) == "E"
    assert extract_answer("答案：ABE", M, "ABCD") == ""  # names an option the item lacks
    assert extract_answer("答案：A、B、E", M, "ABCD") == ""
    assert extract_answer("答案：A、B ISO标准另有规定", M, "ABCD") == "AB"  # a word ends the group
    assert extract_answer("答案：ABCDE", M, {"A": "x", "B": "y", "C": "z", "D": "w", "E": "v"}) == "ABCDE"


def test_long_adversarial_replies_stay_fast() -> None:
    """No catastrophic backtracking: 10k-character degenerate replies take well under a second each."""
    import time

    for reply in ("A、" * 5000, "A项和" * 3000, "答案：" + "是" * 10000, "说法" * 5000 + "正确", "A, " * 3000):
        for qtype in (S, M, J):
            t0 = time.perf_counter()
            extract_answer(reply, qtype)
            assert time.perf_counter() - t0 < 5.0, (reply[:12], qtype)


def test_type_aliases_and_errors() -> None:
    assert extract_answer("答案：C", "single") == "C"
    assert extract_answer("答案：错误", "judge") == FALSE
    assert extract_answer(None, S) == ""
    with pytest.raises(ScoringError, match="unknown question_type"):
        extract_answer("C", "填空题")
    with pytest.raises(ScoringError, match="no option letters"):
        extract_answer("C", S, "1234")


def test_output_is_canonical() -> None:
    for reply, qtype, _ in CASES:
        out = extract_answer(reply, qtype)
        if qtype == J:
            assert out in ("", TRUE, FALSE)
        else:
            assert out == "".join(sorted(set(out))) and out.isascii()
            assert len(out) <= 1 or qtype == M


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "exams"


def test_gold_answers_read_back_from_real_items() -> None:
    """A reply that states the real gold answer in common formats is read back exactly."""
    import json

    path = SHARED / "dev_construction_safety.json"
    if not path.exists():
        pytest.skip(f"{path} not available")
    items = json.loads(path.read_text(encoding="utf-8"))[::20]
    templates = ["答案：{a}", "经分析，本题正确答案是{a}。", "**答案**：{a}\n解析略", "故选{a}", "{a}"]
    for it in items:
        for t in templates:
            reply = t.format(a=it["answer"])
            if it["question_type"] == JUDGE and t == "故选{a}":
                continue
            assert extract_answer(reply, it["question_type"]) == it["answer"], (it["idx"], reply)


# --------------------------------------------------------------------------------------------------
# the family table (tests/extract_cases/table.py) and the abstention policy
# --------------------------------------------------------------------------------------------------
import runpy  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAMILY_CASES = runpy.run_path(str(Path(__file__).parent / "extract_cases" / "table.py"))["all_cases"]()


@pytest.mark.parametrize(("family", "reply", "qtype", "options", "expected"), FAMILY_CASES)
def test_family_table(family: str, reply: str, qtype: str, options: str | None, expected: str) -> None:
    assert extract_answer(reply, qtype, options) == expected, family


def test_family_table_is_broad_and_has_must_abstain_cases() -> None:
    families = {f for f, *_ in FAMILY_CASES}
    assert len(FAMILY_CASES) >= 300 and len(families) >= 12
    assert {"negation", "hedge", "exclusion", "lists", "self_correction", "continuation"} <= families
    abstain = [c for c in FAMILY_CASES if c[4] == ""]
    assert len(abstain) >= 60 and {c[2] for c in abstain} == {S, M, J}


def test_negated_and_hedged_conclusions_never_name_a_letter() -> None:
    """Every way of stating a negated or hedged conclusion about every letter gives "" (never the letter)."""
    templates = ["答案不是{x}", "正确选项不是{x}", "不应选{x}", "{x}不是正确答案", "The answer is not {x}.",
                 "可能是{x}，但我不确定", "我无法确定，{x}也许对", "答案：{x}或{y}", "本题不选{x}"]
    for x, y in ("AB", "BC", "CD", "DA"):
        for t in templates:
            for qtype in (S, M):
                assert extract_answer(t.format(x=x, y=y), qtype, "ABCD") == "", t.format(x=x, y=y)


def test_exclusions_use_the_given_options() -> None:
    assert extract_answer("除C以外都正确", M, "ABCDE") == "ABDE"
    assert extract_answer("除C以外都正确", M, "ABCD") == "ABD"
    assert extract_answer("以上选项都正确", M, "ABC") == "ABC"
    assert extract_answer("以上选项都正确", M) == ""  # unknown options: "all" cannot be read
    assert extract_answer("排除A、B、D", S, "ABCD") == "C"
    assert extract_answer("排除A、B、D", S, "ABCDE") == ""  # C and E are both left


def test_extraction_table_script_reports_every_family() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("extraction_table", Path(__file__).resolve().parents[1]
                                                  / "benchmarks" / "extraction_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    s = mod.summarize(FAMILY_CASES)
    assert s["n"] == len(FAMILY_CASES) and set(s["families"]) == {f for f, *_ in FAMILY_CASES}
    assert s["must_abstain_wrong"] == 0 and s["correct"] / s["n"] >= 0.99


# --------------------------------------------------------------------------------------------------
# properties (hypothesis)
# --------------------------------------------------------------------------------------------------
_WORDS = ["答案", "：", "是", "不是", "选", "不选", "正确", "错误", "不", "或", "和", "、", "，", "。", "\n",
          "A", "B", "C", "D", "E", "F", "a", "b", "项", "除", "以外", "都", "排除", "说法", "The answer is ",
          "not ", "\\boxed{", "}", "**", "<think>", "</think>", "注意：", "如果", "再想想，应该是", "（", "）",
          "1. ", "（ ）", "GB 50016", "A类", "可能", "无法确定", "√", "×", "True", "False", " "]
_REPLIES = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.lists(st.sampled_from(_WORDS), max_size=40).map("".join),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=50),  # control characters
)
_OPTIONS = st.one_of(st.none(), st.sampled_from(["AB", "ABC", "ABCD", "ABCDE", "ABCDEFGH"]))


def _is_canonical(out: str, qtype: str, options: str | None) -> bool:
    if out == "":
        return True
    if qtype == J:
        return out in (TRUE, FALSE)
    letters = options or "ABCDEFGH"
    ok = out == "".join(sorted(set(out))) and all(c in letters for c in out)
    return ok and (len(out) == 1 if qtype == S else len(out) >= 1)


@settings(max_examples=400, deadline=None)
@given(reply=_REPLIES, qtype=st.sampled_from([S, M, J]), options=_OPTIONS)
def test_property_never_raises_and_is_canonical(reply: str | None, qtype: str, options: str | None) -> None:
    out = extract_answer(reply, qtype, options)
    assert isinstance(out, str) and _is_canonical(out, qtype, options), (reply, qtype, options, out)


@settings(max_examples=30, deadline=None)
@given(unit=st.sampled_from(["A、", "答案：", "不是B", "说法正确", "A项和", "除C以外", "（A）", "a, "]),
       qtype=st.sampled_from([S, M, J]))
def test_property_huge_replies_are_handled(unit: str, qtype: str) -> None:
    out = extract_answer(unit * 4000, qtype, "ABCD")
    assert _is_canonical(out, qtype, "ABCD")


@settings(max_examples=200, deadline=None)
@given(letter=st.sampled_from("ABCD"), noise=st.text(alphabet="，。的了是在有", max_size=20))
def test_property_explicit_answer_is_read_through_noise(letter: str, noise: str) -> None:
    assert extract_answer(f"{noise}\n答案：{letter}", S, "ABCD") == letter
