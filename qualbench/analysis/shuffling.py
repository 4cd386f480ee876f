"""Which options of a choice item may move when the options are shuffled, and the shuffle itself.

An option that refers to positions or to the other options as a group (以上都是, 都不是, 全部正确, 前三项,
"none of the above") is *pinned*: it keeps its letter. An option that names other options by letter (A和B,
除A外, B项和C项, "both A and B") would point at the wrong texts after a shuffle, so its item is *excluded*, as is
an item with fewer than two movable options. The movable options are permuted among their own positions by a
uniformly drawn derangement (no movable option keeps its letter). 判断题 have no options and are never shuffled.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from qualbench.records import JUDGE, Question

PINNED = "pinned"
LETTER_REF = "letter_reference"
FREE = "free"
FEW_MOVABLE = "fewer_than_2_movable"
PINNED_MOVED = "pinned_option_moved"  # an externally supplied shuffle moved a pinned option
EXCLUSION_REASONS = (LETTER_REF, FEW_MOVABLE, PINNED_MOVED)
MAX_ENUMERATE = 7  # design permutations are enumerated up to this many movable options, sampled above

# ---------------------------------------------------------------- pinned: refers to the options as a group

_PIN_PATTERNS = [
    # an option that opens with "the above / the aforementioned" refers to the other options
    r"^\s*(?:以上|上述|前述|前面|上面|前边|如上)",
    # "以上都…" later in an option, but not the numeric "3米以上" / "县级以上"
    r"(?:^|[\s，,、；;。：:（(和或与且])以上(?:都|均|皆|全|所有|说法|选项|答案|各项|[一二两三四五六几](?:项|者|个选项|种说法)|情况|内容|做法|措施|观点|方法)",
    r"(?:上述|前述)(?:都|均|皆|全|所有|各|说法|选项|答案|[一二两三四五六几](?:项|者|个|种)|情况|内容|做法|措施|观点|方法)",
    r"(?:其他|其它|其余|所有|全部|各个?|每个)(?:选项|答案|说法)",
    r"[前后][一二两三四五六七八九]项|第[一二三四五六七八九]项|[两二三四五六]项(?:都|均|皆|全)",
    r"(?<!第)(?:三者|四者|五者)|两者都|二者都",
    r"都不是|都不对|都不正确|均不正确|均不对|均不是|皆非|皆是|皆对|全部正确|全部错误|都正确|均正确|都对|均对|全对|全错",
    r"没有正确(?:答案|选项)|无正确(?:答案|选项)|无一正确",
    # short options that are only a collective verdict: 全部, 都可以, 均可, 都是, 均不
    r"^(?:全部|全都|都|均|皆|全|所有|各项)(?:都|均)?不?(?:是|对|正确|错误?|不对|不是|不正确|非|可以|可|包括|有|选|适用|对的|正确的)?$",
    # English
    r"(?i)\b(?:all|none|both|neither|any|each)\s+(?:of\s+)?(?:the\s+)?"
    r"(?:above|these|those|them|preceding|options|answers|choices)\b",
    r"(?i)\b(?:all|none)\s+(?:are|is)\s+(?:correct|true|right|wrong|false|incorrect)\b",
    r"(?i)\bnot\s+given\b|\bcannot\s+be\s+determined\b",
]
_PIN_RE = [re.compile(p) for p in _PIN_PATTERNS]
_TRAILING = re.compile(r"[\s。．.，,；;！!]+$")

# ---------------------------------------------------------------- letter references: names other options

_NAME_SUFFIX = re.compile(
    r"\s*(?:[两二三四五六七八九十]?\s*(?:人|方|家|位|名)|类|级|型|股|号|公司|店|区|段|值|式|柱|轴|档|证|照|牌|线|端|相|"
    r"票|栋|座|楼|国|企业|银行|基金|产品|市|省|县|厂|车|罐|料|组|款|种|等级|点)"
)


def _letter_patterns(cls: str) -> tuple[list[re.Pattern], re.Pattern]:
    """(reference patterns, chain pattern) for option letters in the character class ``cls``."""
    L = rf"(?<![A-Za-z0-9]){cls}(?![A-Za-z0-9])"
    token = rf"(?:选项\s*|(?i:option)\s*)?{L}(?:\s*(?:选项|项(?!目)))?"
    join = r"\s*(?:和|与|及|以及|、|,|，|或者?|跟|加|\+|&|/|／|(?i:and|or|nor))\s*"
    chain = re.compile(rf"{token}(?:{join}{token})+")
    refs = [
        re.compile(rf"除(?:了)?\s*{token}"),
        re.compile(rf"选项\s*{L}|{L}\s*(?:选项|项(?!目))|同\s*{L}"),
        re.compile(rf"^\s*{cls}{{2,}}\s*$"),
        re.compile(rf"(?i:both|either|neither)\s+(?:(?i:option)\s+)?{L}\s+(?i:and|or|nor)\s+(?:(?i:option)\s+)?{L}"),
        re.compile(rf"\b(?i:options?|choices?|answers?|except|same\s+as)\s+{L}"),
    ]
    return refs, chain


def letter_names(stem: str, letters: Iterable[str]) -> set[str]:
    """Option letters the stem itself uses as names (A公司, A、B两人): in the options they are not references."""
    return {x for x in letters if re.search(rf"(?<![A-Za-z0-9]){re.escape(x)}(?![A-Za-z0-9])", stem)}


def option_role(text: str, letters: Sequence[str] = "ABCDEFGH", names: Iterable[str] = ()) -> str:
    """``letter_reference`` (names other options by letter), ``pinned`` (refers to positions or to the options
    as a group) or ``free``. ``letters``: the item's option letters; ``names``: letters the stem uses as names."""
    live = [x for x in letters if x not in set(names) and x.isascii() and x.isalpha()]
    if live:
        cls = "[" + "".join(sorted(set(live))) + "]"
        refs, chain = _letter_patterns(cls)
        if any(p.search(text) for p in refs):
            return LETTER_REF
        for m in chain.finditer(text):
            if not _NAME_SUFFIX.match(text, m.end()):
                return LETTER_REF
    stripped = _TRAILING.sub("", text.strip())
    if any(p.search(stripped) for p in _PIN_RE):
        return PINNED
    return FREE


@dataclass(frozen=True)
class ShufflePlan:
    """What may move in one item. ``excluded``: None or one of ``EXCLUSION_REASONS``."""

    pinned: tuple[str, ...] = ()
    movable: tuple[str, ...] = ()
    excluded: str | None = None

    @property
    def shuffled(self) -> bool:
        return self.excluded is None and len(self.movable) >= 2


def plan_question(q: Question) -> ShufflePlan:
    """The shuffle plan of one item (判断题: nothing to shuffle, not excluded)."""
    if q.question_type == JUDGE or not q.options:
        return ShufflePlan()
    letters = list(q.options)
    names = letter_names(q.stem, letters)
    roles = {k: option_role(v, letters, names) for k, v in q.options.items()}
    pinned = tuple(k for k in letters if roles[k] == PINNED)
    movable = tuple(k for k in letters if roles[k] == FREE)
    if any(r == LETTER_REF for r in roles.values()):
        return ShufflePlan(pinned, movable, LETTER_REF)
    if len(movable) < 2:
        return ShufflePlan(pinned, movable, FEW_MOVABLE)
    return ShufflePlan(pinned, movable)


def item_rng(seed: int, idx: str) -> random.Random:
    """The per-item generator: the same (seed, idx) always gives the same permutation."""
    h = hashlib.sha256(f"shuffle|{seed}|{idx}".encode()).hexdigest()
    return random.Random(int(h[:16], 16))


def draw_derangement(items: Sequence[str], rng: random.Random) -> list[str]:
    """A uniformly drawn derangement of ``items`` (no element keeps its place; needs two or more)."""
    if len(items) < 2:
        raise ValueError("a derangement needs at least two elements")
    perm = list(items)
    while any(a == b for a, b in zip(perm, items)):
        rng.shuffle(perm)
    return perm


def plan_map(q: Question, plan: ShufflePlan, rng: random.Random) -> dict[str, str]:
    """new letter → old letter: pinned letters map to themselves, the movable ones by a derangement."""
    perm = draw_derangement(plan.movable, rng)
    moved = dict(zip(plan.movable, perm))
    return {k: moved.get(k, k) for k in q.options}


def design_maps(letters: Sequence[str], movable: Sequence[str], design: str = "derangement",
                max_enumerate: int = MAX_ENUMERATE, n_draws: int = 5000, seed: int = 0) -> list[dict[str, str]]:
    """All maps (new → old) the shuffle design can draw, each equally likely: ``derangement`` (the generated
    shuffle) or ``permutation`` (any non-identity permutation of the movable letters: the assumption for a
    supplied shuffled file). Above ``max_enumerate`` movable letters, ``n_draws`` seeded uniform draws."""
    if design not in ("derangement", "permutation"):
        raise ValueError(f"unknown shuffle design {design!r}")
    mv = list(movable)

    def ok(p: Sequence[str]) -> bool:
        return all(a != b for a, b in zip(p, mv)) if design == "derangement" else list(p) != mv

    if len(mv) <= max_enumerate:
        perms = [p for p in itertools.permutations(mv) if ok(p)]
    else:
        rng = random.Random(seed)
        perms = []
        while len(perms) < n_draws:
            p = mv[:]
            rng.shuffle(p)
            if ok(p):
                perms.append(tuple(p))
    out = []
    for p in perms:
        m = dict(zip(mv, p))
        out.append({k: m.get(k, k) for k in letters})
    return out
