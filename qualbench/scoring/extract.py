"""Read the final answer out of a model's free-text reply, the way a careful human grader would.

``extract_answer(response, question_type, options)`` returns a canonical answer: sorted, deduplicated
letters ("C", "ABD") for 单选题/多选题, 正确/错误 for 判断题, or "" when no answer can be read.

A wrong letter is worse than "": an unparsed reply is counted (``n_unparsed``), a misread one is silent.
So the reader abstains wherever a careful grader would (docs/scoring.md, "Abstention policy").

The reply is read in tiers, strongest first; the first tier that yields a conclusion decides:

choice items (单选题/多选题)
  1. explicit conclusions: ``答案：B``, ``【答案】B``, ``\\boxed{D}``, ``故选AC``, ``选 b``, ``应该是D``,
     ``The answer is C``, ``{"answer": "AB"}``, ``B为正确答案``, ``只剩C``; negated ones
     (``答案不是B``, ``不选C``, ``The answer is not B``) cancel the letters they name
  2. softer statements: ``正确的是B``, ``正确选项为A、C``, ``我倾向于B``, ``The correct option is B``
  3. option-by-option verdicts: ``A项错误，B项正确`` / ``BCD三项正确`` / ``除C以外都正确`` /
     ``以上选项都正确`` / ``排除A、B、D`` -> the letters judged correct (or, 单选题, the one left)
  4. a reply that starts with the answer: ``B``, ``ABD``, ``A.B.D``, ``(A)``, ``D．15日``
  5. the only answer-like letter group mentioned anywhere in the reply
judgement items (判断题)
  1. ``答案：错误``, ``判断：√``, ``\\boxed{正确}``, ``Answer: False``
  2. ``因此该说法不正确``, ``题目说法没有问题``, ``The statement is false``
  3. a reply that starts with a verdict: ``错误。``, ``×``, ``对``, ``True``
  4. every verdict word in the reply has the same polarity

Inside tiers 1–2, several conclusions that disagree are resolved only by a revision marker between them
(再想想, 更正, 等等, 应该是, 最终答案, 综上 ...): the revised one wins, otherwise the reply gives "". Conclusions
inside a note (``注意：很多考生误选A``) or a conditional (``如果问错误选项，则应选A``) do not count when another
conclusion exists; a base model that goes on to write the next exam question is read up to that question.
A hedge (无法确定, 不确定, I'm not sure) with no explicit conclusion gives "". A 单选题 answer is exactly one
letter; a conclusion naming several gives "". Letters outside ``options`` are never returned.

Letters inside standard codes and words are not answers: GB 50016, GB/T 50502, AQ 3013, JGJ 59, CO2,
H2S, A类火灾, B级, 安全员C证, A股, A公司, 附录B, ISO, PPE, CAD. Lower-case letters are read only right
after an answer marker (``答案：a``, ``选 b、d``, ``The answer is (b)``); an English article "a" is not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from qualbench.answers import AnswerError, canonical_type
from qualbench.errors import QualBenchError
from qualbench.records import FALSE, JUDGE, SINGLE, TRUE

__all__ = ["DEFAULT_LETTERS", "ScoringError", "extract_answer", "normalize_question_type"]

DEFAULT_LETTERS = "ABCDEFGH"


class ScoringError(QualBenchError, ValueError):
    """Bad input to extraction or scoring (unknown question type, malformed prediction record)."""


def normalize_question_type(question_type: str) -> str:
    """单选题/多选题/判断题 for the canonical name or an alias (:func:`qualbench.answers.canonical_type`),
    raising :class:`ScoringError` for an unknown type."""
    try:
        return canonical_type(question_type)
    except AnswerError as err:
        raise ScoringError(str(err)) from None


# --------------------------------------------------------------------------------------------------
# normalisation and reply-level cues
# --------------------------------------------------------------------------------------------------
_THINK_OPEN = re.compile(r"<think>", re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
# markdown emphasis/headings/code, LaTeX math delimiters and \text{...} wrappers carry no meaning here
_MARKUP = re.compile(r"[*#`$]|\\(?:text|textbf|mathrm|mathbf)\s*\{|\\[()\[\]]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")


def _normalize(text: str) -> str:
    """NFKC (full-width Ｂ：（） -> B:() ), drop reasoning blocks, markup and control characters."""
    text = unicodedata.normalize("NFKC", text)
    parts = _THINK_CLOSE.split(text)
    if len(parts) > 1 and parts[-1].strip():
        text = parts[-1]  # the reply after the reasoning block is the answer
    text = _THINK_OPEN.sub("", _THINK_CLOSE.sub("", text))
    return _CONTROL.sub(" ", _MARKUP.sub("", text))


_NOT_TOPIC = r"(?!性|因素|度|量|源|的?(?:因素|风险|事件|危险|状态|条件|情况|事故|原因|责任|部分|内容|时))"
# the model says it cannot decide (not 不确定因素 / 无法确定事故原因, which are subject matter)
_HEDGE = re.compile(
    r"(?:无法|不能|难以|没法|很难|不好)(?:准确|完全|明确|直接)?(?:确定|判断|判定|作答|回答|选择|抉择|断定|决定)"
    + _NOT_TOPIC
    + r"|(?:我|本人)(?:也|真的?|确实|实在|还是|并)?(?:不太|不|没有?)(?:确定|清楚|肯定|知道|把握)"
    r"|不太?确定" + _NOT_TOPIC
    + r"|(?:可能|也许|或许|大概|估计|猜测?|似乎|不是[A-H]{1,4}就)[ \t]*(?:是|选|为|选择)?[ \t]*(?:选项)?[A-H](?![A-Za-z0-9])"
    r"|要么|拿不准|说不准|说不好|吃不准|犹豫|模棱两可|都有可能|均有可能|都有道理|各有道理|都说得通|没有把握|不敢(?:肯定|确定)"
    r"|(?<![A-Za-z])(?i:not\s+(?:sure|certain)|unsure|uncertain|can(?:not|'t)\s+(?:determine|decide|tell|be\s+sure)|"
    r"(?:don't|do\s+not)\s+know|hard\s+to\s+(?:say|tell)|either|(?:maybe|probably|perhaps|possibly)\s+\(?[A-H])(?![A-Za-z])"
)
# notes after an answer and conditional clauses: a letter there is not the reply's conclusion
_NOTE = re.compile(r"(?m)^[ \t\-]*(?:注意|注|提示|备注|易错|误区|友情提示|温馨提示|(?i:note|nb|ps|p\.s\.))[^\n:]{0,6}:[^\n]*")
_COND = re.compile(r"(?:如果|若是|若|假如|假设|倘若|要是|万一|(?<![A-Za-z])(?i:if|unless)(?![A-Za-z]))[^。\n;!?]{0,60}")
# a later conclusion that revises an earlier one says so
_REVISE = re.compile(
    r"再(?:仔细|认真)?(?:想想|想一下|思考|考虑|看|检查|核对|确认|审视)|仔细想想|重新(?:考虑|思考|核对|检查|审视|分析|计算|确认|看)|"
    r"核对后|复核|更正|修正|纠正|改为|改选|改成|等等|等一下|稍等|不对|搞错|弄错|说错|错了|其实|实际上|进一步|"
    r"应该是|应当是|应是|应为|而是|才是|最终|最后的?答案|综上|总结|总之|"
    r"(?<![A-Za-z])(?i:wait|actually|on\s+second\s+thought|correction|final\s+answer|in\s+conclusion|re-?check(?:ing)?)(?![A-Za-z])"
)
# a base model that answers and then writes the next exam question: read up to that question
_NEXT_Q = re.compile(
    r"(?m)^[ \t]*(?:\d{1,3}[ \t]*[.、)](?!\d)|\(\d{1,3}\)|第[ \t]*\d+[ \t]*题|\[?题目\d*\]?[ \t]*:|问题[ \t]*\d*[ \t]*:|"
    r"下一题|(?i:question)[ \t]*\d*[ \t]*[:.])|^[^\n]*\([ \t\u3000_]*\)[^\n]*$"
)
_QUESTION_CUES = re.compile(r"\([ \t\u3000_]*\)|(?m:^[ \t]*\(?[A-D][ \t]*[.、:)][^\n]*\n[ \t]*\(?[A-D][ \t]*[.、:)])|答案[ \t]*:")


def _cut_next_question(text: str, first_answer: int) -> str:
    """The reply up to a new exam question written after its first answer (base-model continuation)."""
    for m in _NEXT_Q.finditer(text, first_answer):
        nl = text.find("\n", first_answer)
        if nl < 0 or m.start() <= nl:
            continue  # the question must start on a later line than the answer
        if _QUESTION_CUES.search(text, m.start()):
            return text[: m.start()]
        return text
    return text


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


def _inside(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


def _drop_asides(events: list, text: str) -> list:
    """Events outside notes and conditional clauses, when there are any."""
    if len(events) < 2:
        return events
    spans = _spans(_NOTE, text) + _spans(_COND, text)
    if not spans:
        return events
    kept = [e for e in events if not _inside(e[0], spans)]
    return kept or events


_AMBIGUOUS = "?"


def _resolve(events: list, text: str, revise: re.Pattern[str] | None = None) -> str | None:
    """The reply's conclusion from its (start, end, answer, negated) statements, in order.

    Agreeing statements confirm; a disagreeing one replaces the conclusion only when a revision marker
    stands between them, otherwise the conclusion is ambiguous. A negated statement (答案不是B) cancels a
    conclusion it overlaps. None: no positive conclusion; _AMBIGUOUS: conflicting conclusions.
    """
    cur: str | None = None
    negated = False
    prev_end = 0
    for start, end, ans, neg in events:
        if neg:
            if cur not in (None, _AMBIGUOUS) and set(ans) & set(cur):
                cur, negated = None, True
            elif cur is None:
                negated = True
            continue
        if cur is None or ans == cur:
            cur = ans
        elif (revise or _REVISE).search(text, prev_end, end):
            cur = ans
        else:
            cur = _AMBIGUOUS
        prev_end = end
    if cur is None and negated:
        return None
    return cur


# --------------------------------------------------------------------------------------------------
# choice questions
# --------------------------------------------------------------------------------------------------
# words after which a letter names a thing, not an option: A类火灾, B级, C证, A股, A公司, ...
_NOUN_AFTER = (
    "类|级|型|证|股|区|栋|轴|号|点|端|侧|柱|座|值|声|计权|分类|等级|照|超|卡|口|厂|列|排|线|楼|栏|组|段|相|档|"
    "轮|字头|公司|企业|单位|银行|集团|国|省|市|县|镇|村|地|矿|店|商品|产品|材料|物质|项目|方案|君|先生|女士|小姐|"
    "某|工程|建筑|部位|结构"
)
# one run of option letters, unless it is part of a word, code or name (GB 50016, CO2, A类, 附录B, GB/T);
# "A.B.D" is a list, but "1.A" and "B.0.3" are not answers
_RUN = (
    r"(?<![A-Za-z0-9_\\\-°])(?<![^A-Z]\.)(?<!附录)(?<!附件)(?<!图)(?<!表)(?<!dB\()"
    r"[A-Z]{1,8}"
    r"(?![A-Za-z0-9_])(?!(?<=[A-Z]{2})[ \t]*\d)(?!-\d)(?!\.\d+\.\d)(?!/[A-Z]+[ \t]*\d)(?!'s)"
    rf"(?![ \t]*(?:{_NOUN_AFTER}))"
)
_PRE = r"(?:选项[ \t]*|(?<![A-Za-z])options?[ \t]+)?"  # "选项A和选项C", "option A and option C"
_VERDICT_NEG = (
    r"不正确|不符合|不当选|不对|不是|不选|错误|有误|错(?![\u4e00-\u9fff])|排除|不成立|不妥|"
    r"(?i:incorrect|wrong|false|not\s+correct)"
)
_VERDICT_POS = r"正确|符合题意|符合要求|符合规定|当选|对(?![\u4e00-\u9fff])|对的|无误|入选|成立|(?i:correct|right|true)"
_ITEM = r"(?:[ \t]*(?:项|选项))?"  # "A项、C项和D项"
# list separators keep a group going (A、C、D / A和C / A, C and D / (A)(C) / A.B.D) ...
_SEP_LIST = (
    r"(?:[ \t]*(?:[、/&+]|和|与|及|以及|(?<![A-Za-z])and(?![A-Za-z]))[ \t]*|[ \t]*\)[ \t]*[,、]?[ \t]*\([ \t]*|"
    r"\.(?=[A-Z](?:\.|$|[^A-Za-z0-9])))"
)
_SEP_LOOSE = r"(?:[ \t]*[,;][ \t]*(?:and[ \t]+|和|以及)?|[ \t]+)"
# ... but after a comma a letter list that opens a new clause is not part of the answer
# ("答案：BD，A项不符合题意", "选A；B、C、D均不符合")
_CLAUSE = (
    r"(?!(?:[ \t]*(?:[、/&+]|和|与|及|以及)?[ \t]*(?:选项)?[A-Z](?![A-Za-z0-9]))*"
    r"[ \t]*(?:项|选项)?[ \t]*(?:的|中|所述|说法|表述|描述|内容|做法|均|都|也|亦|是|为|三项|两项|二项|四项)*[ \t]*"
    rf"(?:{_VERDICT_NEG}|{_VERDICT_POS}|不|符合|和|与|及))"
)
_GROUP_BODY = (
    rf"{_PRE}{_RUN}{_ITEM}(?:{_SEP_LIST}{_PRE}{_RUN}{_ITEM}|{_SEP_LOOSE}{_PRE}{_RUN}{_CLAUSE}{_ITEM}){{0,7}}"
)
_GROUP = rf"(?P<g>{_GROUP_BODY})"  # bounded repeats keep scanning linear on long replies
# verdict subjects may be any list: "A项和C项正确", "A、B、D项正确"
_GROUP_V = rf"(?P<g>{_PRE}{_RUN}{_ITEM}(?:(?:{_SEP_LIST}|{_SEP_LOOSE}){_PRE}{_RUN}{_ITEM}){{0,7}})"
# punctuation, quotes, brackets and linking words between an answer marker and the letters
_FILL = (
    r"(?:[\s:=\"'“”‘’【】\[\](){}<>《》「」\-—→,.]|是|为|应|该|就|选|择|项|则|即|只|可以|只能|最终|"
    r"(?i:is|are|would|should|be|the|option|choice|letter)(?![A-Za-z])){0,10}?"
)
_ANSWER_MARK = (
    r"(?:答案|(?<![A-Za-z])(?i:answers?)(?![A-Za-z])|答(?=\s*:)|\\boxed\s*\{|"
    r"(?i:(?<![A-Za-z])(?:choose|select|pick|chose|go\s+with)(?![A-Za-z])))"
)
# 选B / 故选AC / 应选择D (not 选项A, 不选A, 误选A, or the noun 的选择 before an option list)
_CHOOSE = r"(?<![不未可的误错易别勿])(?<!可能)(?<!也许)(?<!或许)(?<!大概)(?<!估计)(?<!不应)(?<!不要)(?<!不能)(?<!不该)(?<!不会)选(?:择|定)?(?!项)"
_C_STRONG = re.compile(
    _ANSWER_MARK + _FILL + _GROUP
    + r"|" + _CHOOSE + r"[ \t:\"'“”(\[【]{0,4}(?:选项)?[ \t]*" + _GROUP.replace("?P<g>", "?P<g4>")
    + r"|" + _GROUP.replace("?P<g>", "?P<g2>")
    + r"[ \t]*(?:项|选项)?[ \t]*(?:是|为|才是)[ \t]*(?:本题|该题|此题)?的?(?:正确|最终|最佳|标准)?答案"
    + r"|" + _GROUP.replace("?P<g>", "?P<g3>")
    + r"[ \t]+(?i:is|are)[ \t]+(?i:the)[ \t]+(?i:correct|right|best|final)[ \t]+(?i:answer|option|choice)"
    # a revision or what is left after elimination: 应该是D / 而是C / 只剩C
    + r"|(?<![不非未别勿])(?<!并非)(?<!不应)(?:而是|才是|应该是|应当是|应是|应为|应选|改为|改选|更正为|修正为|只剩下?|剩下的?(?:只有|就是|是)?|只有)"
    + r"[ \t:\"'“”(\[]{0,4}(?:选项)?[ \t]*" + _GROUP.replace("?P<g>", "?P<g5>") + r"(?![ \t]*(?:项|选项)?[ \t]*"
    + rf"(?:的|中|说法|表述|均|都|也|是|为)*[ \t]*(?:{_VERDICT_NEG}))"
    # right after a marker a letter may run into its option text: 答案：D.1.2m
    + r"|" + _ANSWER_MARK + _FILL + r"(?<![A-Za-z0-9])(?P<g6>[A-Z])(?=\.\d)"
)
_STRONG_NAMES = ("g", "g2", "g3", "g4", "g5", "g6")
_NEG_NAMES = ("g", "g2", "g3", "g4", "g5")
# negated conclusions: 答案不是B, 正确选项并非C, 不应选B, B不是正确答案, The answer is not B
_NEG_WORD = (
    r"(?:不是|并非|并不是|不应该?(?:是|为|选)|不应当是|不为|不可能是|不会是|绝不是|肯定不是|决不是|"
    r"(?i:not|isn't|is\s+not|cannot\s+be|can't\s+be|wouldn't\s+be|shouldn't\s+be)(?![A-Za-z]))"
)
_C_NEGATED = re.compile(
    r"(?:答案|选项|选择|(?<![A-Za-z])(?i:answer|option|choice)s?(?![A-Za-z]))" + _FILL + _NEG_WORD + _FILL + _GROUP
    + r"|(?:不|别|勿|不要|不应|不能|不该|不可|切勿|避免)(?:该|应)?选(?:择)?(?!项)[ \t:]*(?:选项)?[ \t]*"
    + _GROUP.replace("?P<g>", "?P<g2>")
    + r"|(?<![A-Za-z])(?i:(?:not|don't|do\s+not|wouldn't|never)\s+(?:choose|select|pick))(?![A-Za-z])[ \t:]*"
    + _GROUP.replace("?P<g>", "?P<g3>")
    + r"|" + _GROUP.replace("?P<g>", "?P<g4>")
    + r"[ \t]*(?:项|选项)?[ \t]*(?:不是|并非|并不是|不为|不能作为|不应作为|不应是|不属于)[ \t]*(?:本题|该题|此题)?的?"
    r"(?:正确|最终|最佳|标准)?(?:答案|选项|选择)"
    + r"|" + _GROUP.replace("?P<g>", "?P<g5>")
    + r"[ \t]+(?i:is\s+not|isn't)[ \t]+(?i:the)[ \t]+(?i:(?:correct|right|best|final)[ \t]+)?(?i:answer|option|choice)"
)
_NEG_CUE = re.compile(r"不是|并非|不为|不能作为|不应|不属于|不可能|不会是|[绝决]不|肯定不|[不别勿免要能该可]选|(?i:not|n't|never)")
_C_SOFT = re.compile(
    r"(?:(?<!不)(?:正确|符合题意|符合要求|符合规定|恰当|最佳|最合适)的?(?:选项|答案|一项|项|说法|表述|做法|选择)?"
    r"(?:是|为|有|包括|应为|应是|:)|倾向于(?:选择?)?|(?i:(?<![A-Za-z])(?:correct|right|best|final)\s+(?:options?|choices?|letters?)))"
    + _FILL.replace(r"\s", r" \t") + _GROUP  # on the same line: "正确的是（ ）\nA．..." is a question
)
_C_VERDICT = re.compile(
    _GROUP_V + r"[ \t]*(?:项|选项|答案)?[ \t]*(?:中|里)?的?(?:说法|表述|描述|内容|做法|所述|选项)?[ \t]*:?[ \t]*"
    r"(?:[一二三四五六七八两\d][个]?(?:项|选项))?[ \t]*(?:均|都|皆|全|全部|也|亦|则|是|为|(?i:is|are)[ \t])*[ \t]*"
    rf"(?:(?P<neg>{_VERDICT_NEG})|(?P<pos>{_VERDICT_POS}))"
)
# eliminations before the letters: 排除A、B、D / 不选C / rule out A
_C_ELIM = re.compile(
    r"(?:排除|去掉|淘汰|剔除|划掉|否定|(?<![A-Za-z])(?i:rule\s+out|eliminate|exclude)(?![A-Za-z]))(?:掉|了)?[ \t:]*"
    + _GROUP
)
# exclusions: 除C以外都正确 (-> the others), 除A、D外均错误 (-> A, D), All options except C are correct
_C_EXCEPT = re.compile(
    r"(?:除了?|(?<![A-Za-z])(?i:all\s+(?:options\s+|choices\s+|of\s+them\s+)?(?:except|but))(?![A-Za-z]))[ \t]*"
    + _GROUP
    + r"[ \t]*(?:项|选项)?(?:以外|之外|外)?[ \t,]*(?:其余|其他|其它|剩下|剩余|别的|余下)?的?(?:选项|各项|几项|项|说法|答案)?"
    r"[ \t]*(?:都|均|全|全部|皆|(?i:are|is))?[ \t]*(?:是|为)?[ \t]*"
    rf"(?:(?P<neg>{_VERDICT_NEG})|(?P<pos>{_VERDICT_POS}))"
)
# every option: 以上选项都正确 / 全选 / all of the above
_C_ALL = re.compile(
    r"(?:以上|上述|所有|全部|各|四个|五个)的?(?:选项|各项|说法|答案|几项|四项|五项|项)?[ \t]*(?:都|均|全|全部|皆)(?:是|为)?"
    rf"(?:(?P<neg>{_VERDICT_NEG})|(?P<pos>{_VERDICT_POS}))|(?P<pos2>全选|都选|全部选|全部入选)|"
    r"(?<![A-Za-z])(?i:(?P<pos3>all\s+of\s+the\s+above|all\s+(?:the\s+)?(?:four\s+|five\s+)?(?:options|choices|statements)"
    r"\s+are\s+(?:correct|right|true))|(?P<neg2>none\s+of\s+the\s+above))(?![A-Za-z])"
)
# lower-case letters count only right after an answer marker: 答案：a, 选 b、d, The answer is (b)
_LOWER_RUN = r"(?<![A-Za-z0-9_\\.\-'])(?!(?:be|ace|ad|ah)[ \t]+[A-Za-z])[a-h]{1,8}(?![A-Za-z0-9_'])(?![.\-]?\d)"
_C_LOWER = re.compile(
    r"(?:" + _ANSWER_MARK + "|" + _CHOOSE + r"|(?<![A-Za-z])(?i:option|choice)(?![A-Za-z]))" + _FILL
    + rf"(?P<g>{_LOWER_RUN}(?:[ \t]*(?:[、,/&+;]|和|与|及|and)[ \t]*{_LOWER_RUN}){{0,7}})"
    + rf"(?![ \t]*(?:{_NOUN_AFTER}))"
)
_LABEL_BEFORE = re.compile(r"[A-Z][ \t]*[.、:)][ \t]*$")
_LOWER_CUE = re.compile(r"(?<![A-Za-z])[a-h]{1,8}(?![A-Za-z])")
_LOWER_LETTERS = re.compile(r"[a-h]+")
_ARTICLE_NEXT = re.compile(r"[ \t]+[A-Za-z]")
# an answer letter followed by its option text, then more: "A. 建设单位，C. 施工单位，D. 监理单位"
_OPTION_TEXT_NEXT = re.compile(
    r"[ \t]*[.:、)][ \t]*(?![A-Z](?![A-Za-z0-9\-]))[^\s.:、)][^\n。;!?]{0,40}?(?:[ \t]*(?:[,、;]|和|及|以及|与)[ \t]*|[ \t]+)(?:选项)?"
    r"(?P<l>[A-Z])[ \t]*[.:、)](?![ \t]*(?:项|选项)?[ \t]*(?:的|说法|表述)*[ \t]*(?:" + _VERDICT_NEG + "|" + _VERDICT_POS + "))"
)
_ALT = re.compile(r"[ \t]*(?:或者?|还是|(?<![A-Za-z])or(?![A-Za-z]))[ \t]*(?:选项)?[ \t]*[A-Z](?![A-Za-z0-9])")
_C_LEADING = re.compile(r"^[\s(\[【「\"'“]*(?:选项|(?i:option)\s*)?" + _GROUP + r"(?![ \t]*[a-z])")
_C_ANY = re.compile(_GROUP + r"(?![ \t]*[a-z])")
_LETTERS = re.compile(r"(?<![A-Za-z])[A-Z]+(?![a-z])")
# a reply that lists options ("A. ...\nB. ...") rather than answering
_OPTION_LINE = re.compile(r"^[ \t]*\(?([A-Z])[ \t]*[.、:)](?=[ \t]*\S)", re.M)


@lru_cache(maxsize=64)
def _allowed(options: str) -> frozenset[str]:
    letters = frozenset(c for c in options.upper() if "A" <= c <= "Z")
    if not letters:
        raise ScoringError(f"options {options!r} contain no option letters")
    return letters


def _options_key(options: Sequence[str] | Iterable[str] | None) -> str | None:
    if options is None:
        return None
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


def _with_option_text(text: str, end: int, letters: str, allowed: frozenset[str]) -> str:
    """Letters of a stated answer that goes on listing options with their text (A. 建设单位，C. 施工单位)."""
    extra = set()
    for _ in range(7):
        m = _OPTION_TEXT_NEXT.match(text, end)
        if not m or m.group("l") not in allowed:
            break
        extra.add(m.group("l"))
        end = m.end("l")
    return "".join(sorted(set(letters) | extra)) if extra else letters


def _events(pattern: re.Pattern[str], text: str, allowed: frozenset[str], names: Sequence[str],
            neg: bool = False) -> list[tuple[int, int, str, bool]]:
    out = []
    for m in pattern.finditer(text):
        name = next((n for n in names if m.group(n)), None)
        if name is None:
            continue
        letters = _group_letters(m.group(name), allowed, bare=False)
        if not letters:
            continue
        end = m.end(name)
        if not neg:
            if _ALT.match(text, end):
                letters = _AMBIGUOUS  # "答案：B或C" offers alternatives
            else:
                letters = _with_option_text(text, end, letters, allowed)
        out.append((m.start(), end, letters, neg))
    return out


def _lower_events(text: str, allowed: frozenset[str]) -> list[tuple[int, int, str, bool]]:
    out = []
    for m in _C_LOWER.finditer(text):
        g = m.group("g")
        if g == "a" and _ARTICLE_NEXT.match(text, m.end("g")):
            continue  # "the answer is a fire extinguisher": an article
        runs = _LOWER_LETTERS.findall(g)
        if any(a >= b for run in runs for a, b in zip(run, run[1:])):
            continue  # "bad", "add": words, not answers
        letters = "".join(sorted({c.upper() for c in g if "a" <= c <= "h"}))
        if letters and all(c in allowed for c in letters):
            out.append((m.start(), m.end("g"), letters, False))
    return out


def _verdicts(text: str, allowed: frozenset[str], known: bool) -> dict[str, bool]:
    """Option-by-option verdicts (A项错误, BCD三项正确, 排除A, 除C以外都正确): the last one per letter."""
    found: list[tuple[int, str, bool]] = []
    excepts = _spans(_C_EXCEPT, text) if known else []
    for m in _C_VERDICT.finditer(text):
        if excepts and _inside(m.start(), excepts):
            continue  # "All options except B are correct": B is the exception, not a verdict
        letters = _group_letters(m.group("g"), allowed, bare=False)
        if letters:
            found.append((m.start(), letters, m.group("pos") is not None))
    for m in _C_ELIM.finditer(text):
        letters = _group_letters(m.group("g"), allowed, bare=False)
        if letters:
            found.append((m.start(), letters, False))
    if known:  # exclusions and "all of them" need the item's real option letters
        everything = "".join(sorted(allowed))
        for m in _C_EXCEPT.finditer(text):
            letters = _group_letters(m.group("g"), allowed, bare=False)
            if letters:
                pos = m.group("pos") is not None
                found.append((m.start(), letters, not pos))
                found.append((m.start(), "".join(c for c in everything if c not in letters), pos))
        for m in _C_ALL.finditer(text):
            if _LABEL_BEFORE.search(text, max(0, m.start() - 4), m.start()):
                continue  # "D. 以上均不正确" is an option's text
            found.append((m.start(), everything, bool(m.group("pos") or m.group("pos2") or m.group("pos3"))))
    found.sort(key=lambda f: f[0])
    verdict: dict[str, bool] = {}
    for _, letters, ok in found:
        for c in letters:
            verdict[c] = ok
    return verdict


def _extract_choice(text: str, allowed: frozenset[str], known: bool, single: bool) -> str:
    strong = _events(_C_STRONG, text, allowed, _STRONG_NAMES) or (
        _lower_events(text, allowed) if _LOWER_CUE.search(text) else [])
    first = 0 if _C_LEADING.match(text) else (strong[0][0] if strong else -1)
    if first >= 0:
        cut = _cut_next_question(text, first)
        if len(cut) < len(text):
            text, strong = cut, [e for e in strong if e[1] <= len(cut)]
    negated = _events(_C_NEGATED, text, allowed, _NEG_NAMES, neg=True) if _NEG_CUE.search(text) else []
    if negated:  # "I would not choose D" also contains "choose D"
        spans = [(n[0], n[1]) for n in negated]
        strong = [e for e in strong if not _inside(e[0], spans)]
    banned = {c for e in negated for c in e[2]}
    hedged = False
    for soft in (False, True):
        if soft and (hedged := _HEDGE.search(text) is not None):
            break
        tier = _events(_C_SOFT, text, allowed, ("g",)) if soft else strong
        if not tier:
            continue
        ans = _resolve(sorted(_drop_asides(tier, text) + negated), text)
        if ans == _AMBIGUOUS:
            return ""
        if ans is not None:
            return ans
    if hedged:
        return ""  # the model says it cannot decide and states no answer
    verdict = _verdicts(text, allowed, known)
    for c in banned:
        verdict[c] = False
    positive = "".join(sorted(c for c, ok in verdict.items() if ok))
    if positive:
        return positive
    if single and known and len(allowed) >= 3:
        left = [c for c in allowed if verdict.get(c) is not False]
        if len(left) == 1:  # every other option ruled out
            return left[0]

    def plausible(g: str | None) -> bool:  # not only letters the reply itself judged wrong
        return bool(g) and not all(verdict.get(c) is False for c in g)

    if len(set(_OPTION_LINE.findall(text))) >= 2:  # the reply lists options: their labels are not answers
        text = _OPTION_LINE.sub(" ", text)
    else:
        m = _C_LEADING.match(text)
        if m and plausible(ans := _group_letters(m.group("g"), allowed, bare=True)):
            if _ALT.match(text, m.end("g")):
                return ""
            return _with_option_text(text, m.end("g"), ans, allowed) if ans else ""
    groups = {g for m in _C_ANY.finditer(text) if plausible(g := _group_letters(m.group("g"), allowed, bare=True))}
    return groups.pop() if len(groups) == 1 else ""


# --------------------------------------------------------------------------------------------------
# judgement questions
# --------------------------------------------------------------------------------------------------
_J_NEG = (
    r"(?:并|也|均|都)?(?:不|非|并非)是?(?:完全|太|够|十分|很)?(?:正确|对|准确|成立|符合|合理|恰当|妥当|严谨)|不妥|欠妥|"
    r"错误|有误|有错|错(?![\u4e00-\u9fff])|错的|有问题|存在问题|站不住脚|否(?=\s*(?:$|[。.!,;]))|[×✗✘❌✖]|X(?![A-Za-z])|"
    r"(?<![A-Za-z])(?i:(?:not|isn't|is\s+not)\s+(?:true|correct|right|accurate)|false|incorrect|wrong)(?![A-Za-z])|"
    r"F(?![A-Za-z])"
)
_J_POS = (
    r"正确|没有?错(?:误)?|无误|没有?问题|没毛病|站得住脚|对(?![\u4e00-\u9fff])|对的|成立|准确|[√✓✔✅☑]|"
    r"是(?=\s*(?:$|[。.!,;]))|(?<![A-Za-z])(?i:true|correct|right)(?![A-Za-z])|T(?![A-Za-z])"
)
# a verdict word used as an adverb/adjective (正确佩戴, 错误地, 正确的做法, 正确与否) is not a verdict,
# nor is one that is asked about or hedged (是否正确, 可能正确, 看似正确)
_J_NOT_VERDICT = (
    r"(?!地|与否|的?(?:吗|么)|\?|的?(?:做法|方法|答案|选项|说法|操作|处理|理解|部分|认识|选择|行为|观点)|"
    r"的是|做法|方法|答案|选项|说法|操作|处理|处置|使用|佩戴|认识|理解|选择|行为|率|性)"
)
_J_NOT_ASKED = (
    r"(?<!是否)(?<!能否)(?<!是不是)(?<!对不对)(?<!可能)(?<!或许)(?<!也许)(?<!似乎)(?<!看似)(?<!貌似)(?<!看起来)(?<!好像)"
    r"(?<!可能是)(?<!也许是)(?<!或许是)(?<!大概)(?<!未必)(?<!不一定)"
)
_J_TOKEN = rf"{_J_NOT_ASKED}(?:(?P<neg>{_J_NEG})|(?P<pos>{_J_POS})){_J_NOT_VERDICT}"
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
    r"(?:不|非)(?:完全|太)?(?:正确|对|准确|成立)|错误|有误|错|[×✗✘❌✖]|"
    r"(?<![A-Za-z])(?i:(?:not|isn't)\s+(?:true|correct)|false|incorrect|wrong)(?![A-Za-z])"
)
_J_BARE_POS = r"正确|无误|没有?错误?|没有?问题|对|[√✓✔✅☑]|(?<![A-Za-z])(?i:true|correct)(?![A-Za-z])"
_J_BARE = rf"{_J_NOT_ASKED}(?:(?P<neg>{_J_BARE_NEG})|(?P<pos>{_J_BARE_POS})){_J_ALONE}"
_J_LEADING = re.compile(r"^[\s(\[【「\"'“]*(?:" + _J_BARE + r"|(?P<neg2>F|X)(?![A-Za-z])|(?P<pos2>T)(?![A-Za-z]))")
_J_ANY = re.compile(_J_BARE)
_J_OFFER_AFTER = re.compile(r"[\"'”’」』)\]]?\s*(?:或|还是|或者|/|(?i:or)(?![A-Za-z]))")
_J_OFFER_BEFORE = re.compile(r"(?:或|还是|或者|/|(?<![A-Za-z])(?i:or))\s*[\"'“‘「『(\[]?\s*$")
# in the softer tier a concluding word (因此, 所以) also settles an earlier verdict
_J_CONCLUDE = re.compile(_REVISE.pattern + r"|因此|所以|故|因而|可见|可知|但|然而|不过|实则|事实上|(?<![A-Za-z])(?i:but|however|so|thus|therefore)(?![A-Za-z])")


def _verdict(m: re.Match[str]) -> str:
    return FALSE if (m.group("neg") or m.groupdict().get("neg2")) else TRUE


def _is_offer(text: str, m: re.Match[str]) -> bool:
    """“答案：正确”或“答案：错误” (an echoed format instruction) offers both verdicts and states neither."""
    return bool(_J_OFFER_AFTER.match(text, m.end()) or _J_OFFER_BEFORE.search(text, max(0, m.start() - 8), m.start()))


def _extract_judge(text: str) -> str:
    first = _J_STRONG.search(text)
    if first or _J_LEADING.match(text):
        text = _cut_next_question(text, 0 if _J_LEADING.match(text) else first.start())
    hedged = _HEDGE.search(text) is not None
    for pattern, revise in ((_J_STRONG, _REVISE), (_J_SOFT, _J_CONCLUDE)):
        if hedged and pattern is _J_SOFT:
            return ""  # a hedge and no explicit verdict
        events = [(m.start(), m.end(), _verdict(m), False) for m in pattern.finditer(text) if not _is_offer(text, m)]
        if events:
            ans = _resolve(_drop_asides(events, text), text, revise)
            return "" if ans in (None, _AMBIGUOUS) else ans
    if hedged:
        return ""
    m = _J_LEADING.match(text)
    if m:
        return _verdict(m)
    found = {_verdict(m) for m in _J_ANY.finditer(text)}
    return found.pop() if len(found) == 1 else ""


# --------------------------------------------------------------------------------------------------
def extract_answer(response: str | None, question_type: str, options: Sequence[str] | None = None) -> str:
    """The answer stated in ``response``: "C", "ABD", 正确/错误, or "" when none can be read.

    ``question_type`` is 单选题/多选题/判断题 (or single/multi/judge); ``options`` are the letters valid for
    this item ("ABCD", ["A", "B"], or a dict keyed by letter), default A–H; ignored for 判断题. Exclusions
    (除C以外都正确, 以上都正确) and elimination need the real options and are read only when they are given.
    """
    qtype = normalize_question_type(question_type)
    if not response:
        return ""
    text = _normalize(str(response))
    if qtype == JUDGE:
        return _extract_judge(text)
    key = _options_key(options)
    ans = _extract_choice(text, _allowed(key or DEFAULT_LETTERS), key is not None, qtype == SINGLE)
    if ans == _AMBIGUOUS or (qtype == SINGLE and len(ans) != 1):
        return ""
    return ans
