"""Split an official question text into stem and options, and canonicalise answers."""

from __future__ import annotations

import re

from qualbench.records import FALSE, JUDGE, MULTI, SINGLE, TRUE

_FULLWIDTH = str.maketrans(
    "ＡＢＣＤＥＦＧＨＩＪａｂｃｄｅｆｇｈｉｊ", "ABCDEFGHIJABCDEFGHIJ"
)
LETTERS = "ABCDEFGHIJ"

# An option marker at the start of a line: A．  A.  A、  A:  A：  A)  (A)  （A）  Ａ．
_OPTION_LINE = re.compile(
    r"^\s*(?:[\(（]\s*(?P<p>[A-Ja-jＡ-Ｊａ-ｊ])\s*[\)）]|(?P<l>[A-Ja-jＡ-Ｊａ-ｊ])\s*[．.、:：）)])\s*(?P<text>.*)$"
)
# Inline options on one line: "A．x B．y C．z"
_INLINE = re.compile(r"(?:(?<=\s)|^)(?P<l>[A-JＡ-Ｊ])\s*[．.、:：]\s*")


def _letter(ch: str) -> str:
    return ch.translate(_FULLWIDTH).upper()


def parse_options(question: str) -> tuple[str, dict[str, str]]:
    """Return ``(stem, {letter: text})`` from a question whose options sit on their own lines.

    Options must start at A and run consecutively; the stem is everything before the first option line.
    Falls back to inline options ("A．x B．y") on the last line. Returns ``(question, {})`` if none.
    """
    lines = question.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    options: dict[str, str] = {}
    first = None
    expected = 0
    for i, line in enumerate(lines):
        m = _OPTION_LINE.match(line)
        if m:
            letter = _letter(m.group("p") or m.group("l"))
            if letter == LETTERS[expected] if expected < len(LETTERS) else False:
                if first is None:
                    first = i
                options[letter] = m.group("text").strip()
                expected += 1
                continue
        if first is not None and line.strip():
            # continuation of the previous option's text
            last = LETTERS[expected - 1]
            options[last] = (options[last] + " " + line.strip()).strip()
    if first is not None and len(options) >= 2:
        stem = "\n".join(lines[:first]).strip()
        return stem, options
    # inline fallback on the last non-empty line
    nonempty = [ln for ln in lines if ln.strip()]
    if nonempty:
        last = nonempty[-1]
        marks = list(_INLINE.finditer(last))
        letters = [_letter(m.group("l")) for m in marks]
        if len(marks) >= 2 and letters == list(LETTERS[: len(letters)]):
            opts = {}
            for j, m in enumerate(marks):
                end = marks[j + 1].start() if j + 1 < len(marks) else len(last)
                opts[letters[j]] = last[m.end() : end].strip()
            head = last[: marks[0].start()].strip()
            stem_lines = nonempty[:-1] + ([head] if head else [])
            return "\n".join(stem_lines).strip(), opts
    return question.strip(), {}


_TRUE_WORDS = {"正确", "对", "√", "✓", "T", "TRUE", "是", "Y", "YES"}
_FALSE_WORDS = {"错误", "错", "×", "✗", "X", "F", "FALSE", "否", "N", "NO", "不正确"}


def canonical_answer(answer: object, question_type: str) -> str:
    """Canonical answer: sorted unique letters for choice questions, 正确/错误 for 判断题; "" if unreadable."""
    s = str(answer).strip().translate(_FULLWIDTH)
    if question_type == JUDGE:
        t = s.upper().rstrip("。.")
        if t in _TRUE_WORDS:
            return TRUE
        if t in _FALSE_WORDS:
            return FALSE
        return ""
    letters = re.sub(r"[\s,，、;；/]", "", s).upper()
    if not letters or not all(c in LETTERS for c in letters):
        return ""
    return "".join(sorted(set(letters)))


def normalize_type(value: object) -> str:
    """Accept 单选题/单选/single/... and return the canonical type; "" if unknown."""
    s = str(value).strip().lower()
    table = {
        SINGLE: ("单选题", "单选", "单项选择题", "single", "single_choice", "single-choice"),
        MULTI: ("多选题", "多选", "多项选择题", "multi", "multiple", "multiple_choice", "multiple-choice"),
        JUDGE: ("判断题", "判断", "是非题", "judge", "judgement", "judgment", "true_false", "true/false", "tf"),
    }
    for canon, names in table.items():
        if s in names:
            return canon
    return ""
