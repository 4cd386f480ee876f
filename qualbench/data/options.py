"""Split an official question text into stem and options (answers: see :mod:`qualbench.answers`)."""

from __future__ import annotations

import re

from qualbench import answers as _answers

_FULLWIDTH = str.maketrans(
    "ＡＢＣＤＥＦＧＨＩＪａｂｃｄｅｆｇｈｉｊ", "ABCDEFGHIJABCDEFGHIJ"
)
LETTERS = _answers.ANSWER_LETTERS  # "ABCDEFGHIJ"

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


# Answer and question-type canonicalisation lives in qualbench.answers; these names are re-exported because
# qualbench.data exports them (``from qualbench.data import canonical_answer``).
canonical_answer = _answers.canonical_answer
normalize_type = _answers.canonical_type  # raises AnswerError for an unknown type
