"""Per-family accuracy of extract_answer on the hand-written case table (tests/extract_cases/table.py).

    python -m benchmarks.extraction_table [--show-misses] [--shared]

A case is read correctly when extract_answer returns exactly what a careful grader reads ("" where the
grader abstains). Also counts wrong non-empty answers: overall, and on the must-abstain cases.
--shared also states every real item's gold answer (../shared/exams) in grader-readable styles, plus
negated/hedged replies that must give "", and counts how they are read back.
"""

from __future__ import annotations

import argparse
import runpy
from collections import defaultdict
from pathlib import Path

from qualbench.scoring import extract_answer

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "tests" / "extract_cases" / "table.py"
SHARED_EXAMS = REPO.parent / "shared" / "exams"
CHOICE = ["答案：{a}", "**答案：{a}**", "经逐项分析，本题正确答案是{a}。", "故选{a}", "{a}", "\\boxed{{{a}}}",
          "The answer is {a}.", "答案：{lo}", "{opt}", "我倾向于{w}，但再仔细想想，应该是{a}",
          "答案：{a}\n注意：很多考生误选{w}", "答案：{a}\n\n2. 下列说法正确的是（ ）\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案：{w}"]
SINGLE_ABSTAIN = ["答案不是{a}", "我无法确定，可能是{a}也可能是{w}", "The answer is not {a}.", "答案：{a}或{w}"]
JUDGE = ["答案：{a}", "该说法{a}。", "{a}", "\\boxed{{{a}}}", "答案：{a}\n\n2. 施工现场可以不设置警示标志。\n答案：{b}"]
JUDGE_ABSTAIN = ["我无法判断该说法是否正确", "该说法可能正确，也可能错误。"]


def load_cases(path: Path = TABLE) -> list[tuple[str, str, str, str | None, str]]:
    """(family, reply, question_type, options, expected) rows of the case table."""
    return runpy.run_path(str(path))["all_cases"]()


def summarize(cases: list[tuple[str, str, str, str | None, str]]) -> dict:
    """Counts per family and overall: n, correct, wrong non-empty, must-abstain n and misreads."""
    fam: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "correct": 0, "wrong_nonempty": 0})
    abstain_n = abstain_wrong = 0
    misses = []
    for family, reply, qtype, options, expected in cases:
        got = extract_answer(reply, qtype, options)
        f = fam[family]
        f["n"] += 1
        f["correct"] += got == expected
        f["wrong_nonempty"] += bool(got) and got != expected
        if expected == "":
            abstain_n += 1
            abstain_wrong += bool(got)
        if got != expected:
            misses.append((family, reply, qtype, options, expected, got))
    n = sum(f["n"] for f in fam.values())
    correct = sum(f["correct"] for f in fam.values())
    return {"families": dict(fam), "n": n, "correct": correct,
            "wrong_nonempty": sum(f["wrong_nonempty"] for f in fam.values()),
            "must_abstain": abstain_n, "must_abstain_wrong": abstain_wrong, "misses": misses}


def shared_cases() -> list[tuple[str, str, str, str | None, str]]:
    """Templated replies stating each real item's gold answer (or nothing), as table rows."""
    from qualbench.data import clean, read_any

    rows = []
    for path in sorted(SHARED_EXAMS.glob("*.json")):
        items, _ = clean(list(read_any(path)))
        for q in items:
            opts = "".join(q.options) or None
            if q.question_type == "判断题":
                other = "错误" if q.answer == "正确" else "正确"
                rows += [("shared_judge", t.format(a=q.answer, b=other), q.question_type, opts, q.answer) for t in JUDGE]
                rows += [("shared_abstain", t, q.question_type, opts, "") for t in JUDGE_ABSTAIN]
                continue
            w = next((c for c in (opts or "ABCD") if c not in q.answer), None)
            if w is None:
                continue
            opt = "，".join(f"{c}. {q.options[c][:10]}" for c in q.answer) if q.options else q.answer
            fill = {"a": q.answer, "lo": q.answer.lower(), "w": w, "opt": opt}
            rows += [("shared_choice", t.format(**fill), q.question_type, opts, q.answer) for t in CHOICE]
            if q.question_type == "单选题":
                rows += [("shared_abstain", t.format(**fill), q.question_type, opts, "") for t in SINGLE_ABSTAIN]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show-misses", action="store_true")
    ap.add_argument("--shared", action="store_true", help="also read back gold answers of ../shared/exams items")
    args = ap.parse_args()
    cases = load_cases()
    if args.shared:
        if not SHARED_EXAMS.is_dir():
            raise SystemExit(f"--shared: {SHARED_EXAMS} not found")
        cases += shared_cases()
    s = summarize(cases)
    print(f"{'family':<20}{'n':>5}{'correct':>9}{'acc %':>8}{'wrong≠∅':>9}")
    for name, f in s["families"].items():
        print(f"{name:<20}{f['n']:>5}{f['correct']:>9}{100 * f['correct'] / f['n']:>8.2f}{f['wrong_nonempty']:>9}")
    print(f"{'total':<20}{s['n']:>5}{s['correct']:>9}{100 * s['correct'] / s['n']:>8.2f}{s['wrong_nonempty']:>9}")
    print(f"{s['n']} cases in {len(s['families'])} families, {100 * s['correct'] / s['n']:.2f}% read as a grader reads, "
          f"{s['must_abstain_wrong']} wrong non-empty on {s['must_abstain']} must-abstain cases")
    if args.show_misses:
        for m in s["misses"]:
            print("  miss:", m)


if __name__ == "__main__":
    main()
