"""Read the final answer out of a model's free-text reply, the way a careful human grader would.

``extract_answer(response, question_type, options)`` returns a canonical answer: sorted, deduplicated
letters ("C", "ABD") for 单选题/多选题, 正确/错误 for 判断题, or "" when no answer can be read.

The reply is read in tiers, strongest first; the first tier that yields an answer decides, and inside a
tier the LAST statement wins (a model that corrects itself is graded on its correction):

choice items (单选题/多选题)
  1. explicit answer statements: ``答案：B``, ``【答案】B``, ``\\boxed{D}``, ``故选AC``, ``选B``,
     ``The answer is C``, ``{"answer": "AB"}``, ``B为正确答案``
  2. softer statements: ``正确的是B``, ``正确选项为A、C``, ``The correct option is B``
  3. option-by-option verdicts: ``A项错误，B项正确`` / ``BCD三项正确`` -> the letters judged correct
  4. a reply that starts with the answer: ``B``, ``ABD``, ``A、C、D``, ``(A)``, ``B．立即报告``
  5. the only answer-like letter group mentioned anywhere in the reply
judgement items (判断题)
  1. ``答案：错误``, ``判断：√``, ``\\boxed{正确}``, ``Answer: False``
  2. ``因此该说法不正确``, ``题目说法正确``, ``The statement is false``
  3. a reply that starts with a verdict: ``错误。``, ``×``, ``对``, ``True``
  4. every verdict word in the reply has the same polarity

Letters inside standard codes and words are not answers: GB 50016, GB/T 50502, AQ 3013, JGJ 59, CO2,
H2S, A类火灾, B级, 安全员C证, A股, A公司, 附录B, ISO, PPE, CAD. A 单选题 answer is exactly one letter:
several letters (a multi-letter stated answer, or several candidates and no stated answer) give "".
Only upper-case letters are read (an English "a" is an article, not option A).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from qualbench.errors import QualBenchError
from qualbench.records import FALSE, JUDGE, MULTI, QUESTION_TYPES, SINGLE, TRUE, TYPE_SLUGS

__all__ = ["DEFAULT_LETTERS", "ScoringError", "extract_answer", "normalize_question_type"]

DEFAULT_LETTERS = "ABCDEFGH"


class ScoringError(QualBenchError, ValueError):
    """Bad input to extraction or scoring (unknown question type, malformed prediction record)."""


_TYPE_ALIASES: dict[str, str] = {t: t for t in QUESTION_TYPES}
_TYPE_ALIASES.update({slug: t for t, slug in TYPE_SLUGS.items()})
_TYPE_ALIASES.update({"单选": SINGLE, "多选": MULTI, "判断": JUDGE, "single_choice": SINGLE,
                      "multiple_choice": MULTI, "multi_choice": MULTI, "true_false": JUDGE})


def normalize_question_type(question_type: str) -> str:
    """单选题/多选题/判断题 for the canonical name or an alias (single, multi, judge, 单选, ...)."""
    t = _TYPE_ALIASES.get(str(question_type).strip()) or _TYPE_ALIASES.get(str(question_type).strip().lower())
    if t is None:
        raise ScoringError(f"unknown question_type {question_type!r}; expected one of {', '.join(QUESTION_TYPES)}")
    return t


# --------------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------------
_THINK_OPEN = re.compile(r"<think>", re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
# markdown emphasis/headings/code, LaTeX math delimiters and \text{...} wrappers carry no meaning here
_MARKUP = re.compile(r"[*#`$]|\\(?:text|textbf|mathrm|mathbf)\s*\{|\\[()\[\]]")


def _normalize(text: str) -> str:
    """NFKC (full-width Ｂ：（） -> B:() ), drop reasoning blocks and markup."""
    text = unicodedata.normalize("NFKC", text)
    parts = _THINK_CLOSE.split(text)
    if len(parts) > 1 and parts[-1].strip():
        text = parts[-1]  # the reply after the reasoning block is the answer
    text = _THINK_OPEN.sub("", _THINK_CLOSE.sub("", text))
    return _MARKUP.sub("", text)


# --------------------------------------------------------------------------------------------------
# choice questions
# --------------------------------------------------------------------------------------------------
# words after which a letter names a thing, not an option: A类火灾, B级, C证, A股, A公司, ...
_NOUN_AFTER = (
    "类|级|型|证|股|区|栋|轴|号|点|端|侧|柱|座|值|声|计权|分类|等级|照|超|卡|口|厂|列|排|线|楼|栏|组|段|相|档|"
    "轮|字头|公司|企业|单位|银行|集团|国|省|市|县|镇|村|地|矿|店|商品|产品|材料|物质|项目|方案|君|先生|女士|小姐|"
    "某|工程|建筑|部位|结构"
)
# one run of option letters, unless it is part of a word, code or name (GB 50016, CO2, A类, 附录B, GB/T)
_RUN = (
    r"(?<![A-Za-z0-9_\\.\-°])(?<!附录)(?<!附件)(?<!图)(?<!表)(?<!dB\()"
    r"[A-Z]{1,8}"
    r"(?![A-Za-z0-9_])(?!(?<=[A-Z]{2})[ \t]*\d)(?![.\-]\d)(?!/[A-Z]+[ \t]*\d)(?!'s)"
    rf"(?![ \t]*(?:{_NOUN_AFTER}))"
)
_VERDICT_NEG = r"不正确|不符合|不当选|不对|不是|不选|错误|有误|错(?![\u4e00-\u9fff])|排除|(?i:incorrect|wrong|false)"
_VERDICT_POS = r"正确|符合题意|当选|对(?![\u4e00-\u9fff])|对的|无误|入选|(?i:correct|right|true)"
_ITEM = r"(?:[ \t]*(?:项|选项))?"  # "A项、C项和D项"
# list separators keep a group going (A、C、D / A和C / A, C and D) ...
_SEP_LIST = r"[ \t]*(?:[、/&+]|和|与|及|以及|或|(?<![A-Za-z])(?:and|or)(?![A-Za-z]))[ \t]*"
_SEP_LOOSE = r"(?:[ \t]*[,;][ \t]*(?:and[ \t]+|和|以及)?|[ \t]+)"
# ... but after a comma a letter that opens a new clause is not part of the answer ("答案：BD，A项不符合题意")
_CLAUSE = (
    r"(?![ \t]*(?:项|选项)?[ \t]*(?:的|中|所述|说法|表述|描述|内容|做法|均|都|也|亦|是|为)*[ \t]*"
    rf"(?:{_VERDICT_NEG}|{_VERDICT_POS}|不|符合|和|与|及))"
)
_GROUP_BODY = rf"{_RUN}{_ITEM}(?:{_SEP_LIST}{_RUN}{_ITEM}|{_SEP_LOOSE}{_RUN}{_CLAUSE}{_ITEM}){{0,7}}"
_GROUP = rf"(?P<g>{_GROUP_BODY})"  # bounded repeats keep scanning linear on long replies
# verdict subjects may be any list: "A项和C项正确", "A、B、D项正确"
_GROUP_V = rf"(?P<g>{_RUN}{_ITEM}(?:(?:{_SEP_LIST}|{_SEP_LOOSE}){_RUN}{_ITEM}){{0,7}})"
# punctuation, quotes, brackets and linking words between an answer marker and the letters
_FILL = (
    r"(?:[\s:=\"'“”‘’【】\[\](){}<>《》「」\-—→,.]|是|为|应|该|就|选|择|项|则|即|只|可以|只能|最终|"
    r"(?i:is|are|would|should|be|the|option|choice|letter)(?![A-Za-z])){0,10}?"
)
_C_STRONG = re.compile(
    r"(?:答案|(?<![A-Za-z])(?i:answers?)(?![A-Za-z])|答(?=\s*:)|\\boxed\s*\{|"
    r"(?i:(?<![A-Za-z])(?:choose|select|pick|chose|go with)(?![A-Za-z])))"
    + _FILL + _GROUP
    # 选B / 故选AC / 应选择D (not 选项A, 不选A, or the noun 的选择 before an option list)
    + r"|(?<![不未可的])选(?:择)?(?!项)[ \t:\"'“”(\[【]{0,4}(?:选项)?[ \t]*" + _GROUP.replace("?P<g>", "?P<g4>")
    + r"|" + _GROUP.replace("?P<g>", "?P<g2>")
    + r"[ \t]*(?:项|选项)?[ \t]*(?:是|为|才是)[ \t]*(?:本题|该题|此题)?的?(?:正确|最终|最佳|标准)?答案"
    + r"|" + _GROUP.replace("?P<g>", "?P<g3>")
    + r"[ \t]+(?i:is|are)[ \t]+(?i:the)[ \t]+(?i:correct|right|best|final)[ \t]+(?i:answer|option|choice)"
)
_C_SOFT = re.compile(
    r"(?:(?<!不)(?:正确|符合题意|符合要求|符合规定|恰当|最佳|最合适)的?(?:选项|答案|一项|项|说法|表述|做法|选择)?"
    r"(?:是|为|有|包括|应为|应是)|(?i:(?<![A-Za-z])(?:correct|right|best|final)\s+(?:options?|choices?|letters?)))"
    + _FILL.replace(r"\s", r" \t") + _GROUP  # on the same line: "正确的是（ ）\nA．..." is a question
)
_C_VERDICT = re.compile(
    _GROUP_V + r"[ \t]*(?:项|选项|答案)?[ \t]*(?:中|里)?的?(?:说法|表述|描述|内容|做法|所述|选项)?[ \t]*:?[ \t]*"
    r"(?:[一二三四五六七八两\d][个]?(?:项|选项))?[ \t]*(?:均|都|皆|全|全部|也|亦|则|是|为|(?i:is|are)[ \t])*[ \t]*"
    rf"(?:(?P<neg>{_VERDICT_NEG})|(?P<pos>{_VERDICT_POS}))"
)
_C_LEADING = re.compile(r"^[\s(\[【「\"'“]*(?:选项|(?i:option)\s*)?" + _GROUP + r"(?![ \t]*[a-z])")
_C_ANY = re.compile(_GROUP + r"(?![ \t]*[a-z])")
_LETTERS = re.compile(r"[A-Z]+")
# a reply that lists options ("A. ...\nB. ...") rather than answering
_OPTION_LINE = re.compile(r"^[ \t]*\(?([A-Z])[ \t]*[.、:)](?=[ \t]*\S)", re.M)


@lru_cache(maxsize=64)
def _allowed(options: str) -> frozenset[str]:
    letters = frozenset(c for c in options.upper() if "A" <= c <= "Z")
    if not letters:
        raise ScoringError(f"options {options!r} contain no option letters")
    return letters


def _options_key(options: Sequence[str] | Iterable[str] | None) -> str:
    if options is None:
        return DEFAULT_LETTERS
    if isinstance(options, str):
        return options
    return "".join(str(o).strip()[:1] for o in options)


def _group_letters(group: str, allowed: frozenset[str], bare: bool) -> str | None:
    """Letters of one group, or None when it names a letter that is not an option of this item.

    A run with letters beyond A–H (ISO, PPE) is a word that ends the group; bare runs (tiers 4–5) must
    also be strictly increasing, since words like CAD, BAD, ADD are not written answers.
    """
    out: list[str] = []
    for run in _LETTERS.findall(group):
        if not all(c in allowed for c in run):
            if all(c in allowed or c in DEFAULT_LETTERS for c in run):
                return None  # names an option this item does not have
            break
        if bare and any(a >= b for a, b in zip(run, run[1:])):
            break
        out.append(run)
    if not out:
        return None
    return "".join(sorted(set("".join(out))))


def _last_group(pattern: re.Pattern[str], text: str, allowed: frozenset[str], names: Sequence[str]) -> str | None:
    found = None
    for m in pattern.finditer(text):
        g = next((m.group(n) for n in names if m.group(n)), None)
        letters = _group_letters(g, allowed, bare=False) if g else None
        if letters:
            found = letters
    return found


def _verdicts(text: str, allowed: frozenset[str]) -> dict[str, bool]:
    """Option-by-option verdicts (A项错误, BCD三项正确): the last verdict for each letter."""
    verdict: dict[str, bool] = {}
    for m in _C_VERDICT.finditer(text):
        letters = _group_letters(m.group("g"), allowed, bare=False)
        if letters:
            for c in letters:
                verdict[c] = m.group("pos") is not None
    return verdict


def _extract_choice(text: str, allowed: frozenset[str]) -> str:
    ans = _last_group(_C_STRONG, text, allowed, ("g", "g2", "g3", "g4"))
    if ans is None:
        ans = _last_group(_C_SOFT, text, allowed, ("g",))
    if ans is not None:
        return ans
    verdict = _verdicts(text, allowed)
    positive = "".join(sorted(c for c, ok in verdict.items() if ok))
    if positive:
        return positive

    def plausible(g: str | None) -> bool:  # not only letters the reply itself judged wrong
        return bool(g) and not all(verdict.get(c) is False for c in g)

    if len(set(_OPTION_LINE.findall(text))) >= 2:  # the reply lists options: their labels are not answers
        text = _OPTION_LINE.sub(" ", text)
    else:
        m = _C_LEADING.match(text)
        if m and plausible(ans := _group_letters(m.group("g"), allowed, bare=True)):
            return ans
    groups = {g for m in _C_ANY.finditer(text) if plausible(g := _group_letters(m.group("g"), allowed, bare=True))}
    return groups.pop() if len(groups) == 1 else ""


# --------------------------------------------------------------------------------------------------
# judgement questions
# --------------------------------------------------------------------------------------------------
_J_NEG = (
    r"(?:并|也|均|都)?(?:不|非|并非)(?:完全|太|够|十分|很)?(?:正确|对|准确|成立|符合|合理|恰当|妥当)|不妥|"
    r"错误|有误|有错|错(?![\u4e00-\u9fff])|错的|否(?=\s*(?:$|[。.!,;]))|[×✗✘❌✖]|X(?![A-Za-z])|"
    r"(?<![A-Za-z])(?i:false|incorrect|wrong)(?![A-Za-z])|F(?![A-Za-z])"
)
_J_POS = (
    r"正确|没有?错(?:误)?|无误|对(?![\u4e00-\u9fff])|对的|成立|准确|[√✓✔✅☑]|是(?=\s*(?:$|[。.!,;]))|"
    r"(?<![A-Za-z])(?i:true|correct|right)(?![A-Za-z])|T(?![A-Za-z])"
)
# a verdict word used as an adverb/adjective (正确佩戴, 错误地, 正确的做法, 正确与否) is not a verdict
_J_NOT_VERDICT = (
    r"(?!地|与否|的?(?:吗|么)|\?|的?(?:做法|方法|答案|选项|说法|操作|处理|理解|部分|认识|选择|行为|观点)|"
    r"的是|做法|方法|答案|选项|说法|操作|处理|处置|使用|佩戴|认识|理解|选择|行为|率|性)"
)
_J_TOKEN = rf"(?:(?P<neg>{_J_NEG})|(?P<pos>{_J_POS})){_J_NOT_VERDICT}"
_SUBJ = (
    r"(?:该|此|这种|这个|这一|这|题目中?的?|题干中?的?|原题的?|本题的?|上述的?|以上的?|题中的?)?"
    r"(?:说法|表述|观点|描述|命题|陈述|题目|题干|判断|论述|做法|结论)"
)
_J_FILL = (
    rf"(?:[\s:=\"'“”‘’【】\[\](){{}}<>《》「」\-—→,.]|是|为|应|应该|该|就|均|都|也|亦|则|即|其实|实际上|本身|"
    rf"{_SUBJ}|(?i:is|the|statement|answer)(?![A-Za-z])){{0,8}}"
)
_J_STRONG = re.compile(
    r"(?:答案|答(?=\s*:)|判断结果|判断|结论|回答|\\boxed\s*\{|(?<![A-Za-z])(?i:answer|verdict|judgement|judgment)s?(?![A-Za-z]))"
    + _J_FILL + _J_TOKEN
)
_J_SOFT = re.compile(
    r"(?:(?:故|因此|所以|综上所述|综上|因而|可见|总之|由此可见|可知|最终)[,\s]*|"
    + _SUBJ + r"|(?<![A-Za-z])(?i:the statement|this statement|statement|it)(?![A-Za-z]))"
    + _J_FILL + _J_TOKEN
)
# weak tiers: the verdict must stand alone (followed by punctuation, space, 的/了 or the end)
_J_ALONE = r"(?=$|[^\u4e00-\u9fff]|[的了](?:$|[^\u4e00-\u9fff]))"
_J_BARE_NEG = (
    r"(?:不|非)(?:完全|太)?(?:正确|对|准确|成立)|错误|有误|错|[×✗✘❌✖]|(?<![A-Za-z])(?i:false|incorrect|wrong)(?![A-Za-z])"
)
_J_BARE_POS = r"正确|无误|没有?错误?|对|[√✓✔✅☑]|(?<![A-Za-z])(?i:true|correct)(?![A-Za-z])"
_J_BARE = rf"(?:(?P<neg>{_J_BARE_NEG})|(?P<pos>{_J_BARE_POS})){_J_ALONE}"
_J_LEADING = re.compile(r"^[\s(\[【「\"'“]*(?:" + _J_BARE + r"|(?P<neg2>F|X)(?![A-Za-z])|(?P<pos2>T)(?![A-Za-z]))")
_J_ANY = re.compile(_J_BARE)
_J_OFFER_AFTER = re.compile(r"[\"'”’」』)\]]?\s*(?:或|还是|或者|/|(?i:or)(?![A-Za-z]))")
_J_OFFER_BEFORE = re.compile(r"(?:或|还是|或者|/|(?<![A-Za-z])(?i:or))\s*[\"'“‘「『(\[]?\s*$")


def _verdict(m: re.Match[str]) -> str:
    return FALSE if (m.group("neg") or m.groupdict().get("neg2")) else TRUE


def _is_offer(text: str, m: re.Match[str]) -> bool:
    """“答案：正确”或“答案：错误” (an echoed format instruction) offers both verdicts and states neither."""
    return bool(_J_OFFER_AFTER.match(text, m.end()) or _J_OFFER_BEFORE.search(text, max(0, m.start() - 8), m.start()))


def _extract_judge(text: str) -> str:
    for pattern in (_J_STRONG, _J_SOFT):
        last = None
        for m in pattern.finditer(text):
            if not _is_offer(text, m):
                last = m
        if last is not None:
            return _verdict(last)
    m = _J_LEADING.match(text)
    if m:
        return _verdict(m)
    found = {_verdict(m) for m in _J_ANY.finditer(text)}
    return found.pop() if len(found) == 1 else ""


# --------------------------------------------------------------------------------------------------
def extract_answer(response: str | None, question_type: str, options: Sequence[str] | None = None) -> str:
    """The answer stated in ``response``: "C", "ABD", 正确/错误, or "" when none can be read.

    ``question_type`` is 单选题/多选题/判断题 (or single/multi/judge); ``options`` are the letters valid for
    this item ("ABCD", ["A", "B"], or a dict keyed by letter), default A–H; ignored for 判断题.
    """
    qtype = normalize_question_type(question_type)
    if not response:
        return ""
    text = _normalize(str(response))
    if qtype == JUDGE:
        return _extract_judge(text)
    ans = _extract_choice(text, _allowed(_options_key(options)))
    if qtype == SINGLE and len(ans) != 1:
        return ""
    return ans
