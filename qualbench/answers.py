"""The one place that decides what a question type and an answer are (every other module calls these).

Question types
    ``canonical_type(value)`` returns 单选题, 多选题 or 判断题 for the canonical name or one of the aliases in
    ``TYPE_ALIASES`` (matched after NFKC, stripping and lower-casing: 单选, 单项选择题, single, single_choice,
    single-choice; 多选, 多项选择题, multi, multiple, multi_choice, multiple_choice, multiple-choice; 判断, 是非题,
    judge, judgement, judgment, true_false, true/false, tf). Anything else raises :class:`AnswerError`
    (``unknown question_type ...``): an unknown type is always a mistake in a file or a config, never data
    to be scored as "".

Answers
    ``canonical_answer(answer, question_type)`` returns the canonical answer, or ``""`` when the answer is
    empty or unreadable for that type. It never raises for a bad *answer* (only for an unknown type): the
    caller decides whether "" is an error (a gold answer in a data file: cleaning drops the record) or an
    unparsed prediction (scoring counts it).

    - text is NFKC-normalised (full-width Ａ，× -> A,×) and stripped; ``None`` is "".
    - 单选题: exactly one option letter A–J, either case; separators and a trailing period are ignored
      ("b", " B ", "B.", "Ｂ" -> "B"). Two or more different letters ("AB") are not a 单选题 answer -> "".
    - 多选题: one or more letters A–J, either case, separated by nothing or by whitespace , ， 、 ; ； / . + &
      -> sorted, de-duplicated ("D、B、A", "dba", "A.C" -> "ABD", "ABD", "AC"). A single letter is a valid
      (partial) 多选题 answer: scoring gives it partial credit under some exam rules.
    - any other character (a digit, a letter after J, a word: "A1", "K", "AX") makes a choice answer "", and so
      does a letter outside ``options`` when the item's option letters are given.
    - 判断题: ``TRUE_SPELLINGS`` -> 正确, ``FALSE_SPELLINGS`` -> 错误 (case-insensitive, a trailing 。 or .
      ignored; Python ``True``/``False`` included). Anything else ("A", "maybe", "") -> "".

``guess_type(answer)`` is for answer lists that come without their types (weighted F1 without types, the
crowd table's ``canon``): 判断题 when the answer is one of the true/false spellings, else 多选题 (which reads
any letter set).

Extraction (:func:`qualbench.scoring.extract.extract_answer`) reads an answer out of free text and already
returns this canonical form; ``canonical_answer`` is for answers that are already just an answer (gold labels,
stored predictions, a backend's ``Response.answer``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from qualbench.errors import QualBenchError
from qualbench.records import FALSE, JUDGE, MULTI, QUESTION_TYPES, SINGLE, TRUE, TYPE_SLUGS

__all__ = [
    "ANSWER_LETTERS",
    "AnswerError",
    "FALSE_SPELLINGS",
    "TRUE_SPELLINGS",
    "TYPE_ALIASES",
    "canonical_answer",
    "canonical_type",
    "guess_type",
    "is_valid_answer",
]

ANSWER_LETTERS = "ABCDEFGHIJ"  # the option letters an item can have (data.options parses A–J)


class AnswerError(QualBenchError, ValueError):
    """An unknown question type (the message names the value and the accepted names)."""


TYPE_ALIASES: dict[str, str] = {
    **{t: t for t in QUESTION_TYPES},
    **{slug: t for t, slug in TYPE_SLUGS.items()},  # single, multi, judge
    "单选": SINGLE, "单项选择题": SINGLE, "单项选择": SINGLE, "single_choice": SINGLE, "single-choice": SINGLE,
    "多选": MULTI, "多项选择题": MULTI, "多项选择": MULTI, "multiple": MULTI, "multi_choice": MULTI,
    "multiple_choice": MULTI, "multiple-choice": MULTI,
    "判断": JUDGE, "是非题": JUDGE, "judgement": JUDGE, "judgment": JUDGE, "true_false": JUDGE,
    "true/false": JUDGE, "tf": JUDGE,
}

TRUE_SPELLINGS = frozenset({TRUE, "对", "是", "√", "✓", "T", "TRUE", "Y", "YES"})
FALSE_SPELLINGS = frozenset({FALSE, "错", "否", "不正确", "×", "✗", "X", "F", "FALSE", "N", "NO"})

_SEPARATORS = re.compile(r"[\s,，、;；/.+&]")


def _nfkc(value: object) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip()


def canonical_type(value: object) -> str:
    """单选题/多选题/判断题 for the canonical name or an alias; :class:`AnswerError` otherwise."""
    s = _nfkc(value) if value is not None else ""
    t = TYPE_ALIASES.get(s) or TYPE_ALIASES.get(s.lower())
    if t is None:
        raise AnswerError(f"unknown question_type {value!r}; expected one of {', '.join(QUESTION_TYPES)} "
                          "(or single/multi/judge)")
    return t


def canonical_answer(answer: object, question_type: str, options: Iterable[str] | None = None) -> str:
    """The canonical answer (see the module docstring), or "" when empty/unreadable for that type.

    ``options`` (the item's letters: "ABCD", a list or a dict keyed by letter): a choice answer naming a letter
    outside them is "" too. Ignored for 判断题."""
    qtype = canonical_type(question_type)
    if answer is None:
        return ""
    s = _nfkc(answer)
    if not s:
        return ""
    if qtype == JUDGE:
        t = s.upper().rstrip("。.").strip()
        if t in TRUE_SPELLINGS:
            return TRUE
        if t in FALSE_SPELLINGS:
            return FALSE
        return ""
    letters = _SEPARATORS.sub("", s).upper()
    if not letters or any(c not in ANSWER_LETTERS for c in letters):
        return ""
    out = "".join(sorted(set(letters)))
    if qtype == SINGLE and len(out) != 1:
        return ""
    if options is not None and not set(out) <= {str(o).strip()[:1].upper() for o in options}:
        return ""
    return out


def is_valid_answer(answer: object, question_type: str) -> bool:
    """Whether ``answer`` canonicalises to a non-empty answer for ``question_type``."""
    return bool(canonical_answer(answer, question_type))


def guess_type(answer: object) -> str:
    """判断题 when ``answer`` is a true/false spelling, else 多选题 (for answers given without their type)."""
    return JUDGE if canonical_answer(answer, JUDGE) else MULTI
