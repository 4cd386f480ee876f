"""Render a Question (and optional retrieved passages) into chat messages for a prompt config.

Prompts are data (``conf/prompt/*.yaml``); this module only assembles them. Questions are never truncated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from qualbench.records import JUDGE, MULTI, SINGLE, Question

ANSWER_FORMATS = {
    SINGLE: "这是一道单选题，只有一个正确选项。请在最后一行以“答案：X”的格式给出你的选择（X为选项字母）。",
    MULTI: "这是一道多选题，有两个或两个以上正确选项。请在最后一行以“答案：XY”的格式给出全部正确选项的字母。",
    JUDGE: "这是一道判断题。请判断下列说法是否正确，并在最后一行以“答案：正确”或“答案：错误”的格式作答。",
}

# One demonstration per question type, written for this project (not taken from any exam bank).
DEMONSTRATIONS = {
    SINGLE: (
        "某仓库管理员发现一只灭火器压力表指针落在红色区域，他首先应当（ ）。\n"
        "A．继续放置备用\nB．立即报告并安排检修或更换\nC．将压力表拆下\nD．把灭火器倒置存放",
        "压力表指针在红区说明压力不足，灭火器可能失效，应报告并检修或更换。\n答案：B",
    ),
    MULTI: (
        "下列做法中，有利于防止办公场所电气火灾的有（ ）。\n"
        "A．下班时关闭不用的电器电源\nB．在插线板上串接多个插线板\nC．定期检查老化电线\n"
        "D．使用符合标准的电器产品\nE．用铜丝代替保险丝",
        "串接插线板和以铜丝代替保险丝都会增加过载风险；A、C、D均能减少电气火灾隐患。\n答案：ACD",
    ),
    JUDGE: (
        "企业可以在员工不知情的情况下，免除其依法应享有的工伤保险待遇。",
        "依法享有的工伤保险待遇不能通过单方安排免除，该说法违背法律规定。\n答案：错误",
    ),
}


@dataclass
class PromptConfig:
    """A prompt family: system text, optional persona, one-shot demo, chain-of-thought and RAG context."""

    name: str = "zero_shot"
    system: str = "你是一名熟悉中国法律法规和行业规范的考试答题助手。"
    persona: str = ""  # expert persona prepended to the user turn
    one_shot: bool = False
    num_fewshot: int = 0  # k demonstrations per item drawn from fewshot_data (never the evaluated items)
    fewshot_data: Any = None  # a data config for the pool; None: the bundled sample set
    chain_of_thought: bool = False
    cot_instruction: str = "请先逐步分析每个选项所依据的法规或规范，再给出最终答案。"
    direct_instruction: str = "请直接给出答案，不需要解释。"
    rag: bool = False
    rag_header: str = "以下是可能相关的法律法规条文，供参考："
    rag_token_budget: int = 1500  # characters of retrieved context at most (Chinese: ~1 token/char)
    max_new_tokens: int = 256  # answer budget the model backends default to (cot needs more room)
    extra: dict[str, Any] = field(default_factory=dict)


def format_question(item: Question) -> str:
    """The question as shown to the model (stem and options)."""
    return item.text


def format_passages(passages: Sequence[Any], budget: int, header: str) -> str:
    """Label each retrieved passage with law title and article; stop before exceeding ``budget`` chars."""
    blocks: list[str] = []
    used = 0
    for i, doc in enumerate(passages, 1):
        meta = getattr(doc, "metadata", {}) or {}
        label = meta.get("law_title") or meta.get("title") or ""
        art = meta.get("article") or ""
        tag = f"[{i}] 《{label}》{art}" if label else f"[{i}]"
        body = getattr(doc, "page_content", str(doc))
        block = f"{tag}\n{body}"
        if used + len(block) > budget:
            room = budget - used - len(tag) - 1
            if room > 40 and not blocks:
                blocks.append(f"{tag}\n{body[:room]}")
            break
        blocks.append(block)
        used += len(block)
    if not blocks:
        return ""
    return header + "\n" + "\n\n".join(blocks)


def _user_turn(item: Question, cfg: PromptConfig, context: str) -> str:
    parts = []
    if cfg.persona:
        parts.append(cfg.persona)
    if context:
        parts.append(context)
    parts.append(ANSWER_FORMATS[item.question_type])
    parts.append(cfg.cot_instruction if cfg.chain_of_thought else cfg.direct_instruction)
    parts.append("题目：\n" + format_question(item))
    return "\n\n".join(parts)


def _demo_exchange(item: Question, stem_text: str, answer_text: str, cfg: PromptConfig) -> list[dict[str, str]]:
    """One worked example as a user turn (same instructions as the real question) and the assistant's answer."""
    user = "\n\n".join(
        p
        for p in (
            cfg.persona,
            ANSWER_FORMATS[item.question_type],
            cfg.cot_instruction if cfg.chain_of_thought else cfg.direct_instruction,
            "题目：\n" + stem_text,
        )
        if p
    )
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer_text}]


def render_messages(
    item: Question, cfg: PromptConfig, passages: Sequence[Any] | None = None, demos: Sequence[Question] = ()
) -> list[dict[str, str]]:
    """Chat messages for one item: system, optional one-shot or k-shot exchanges, then the question."""
    messages: list[dict[str, str]] = []
    if cfg.system:
        messages.append({"role": "system", "content": cfg.system})
    if cfg.one_shot:
        demo_q, demo_a = DEMONSTRATIONS[item.question_type]
        answer = demo_a if cfg.chain_of_thought else demo_a.splitlines()[-1]
        messages.extend(_demo_exchange(item, demo_q, answer, cfg))
    for d in demos:
        answer = f"答案：{d.answer}"
        if cfg.chain_of_thought and d.explanation.strip():
            answer = f"{d.explanation.strip()}\n{answer}"
        messages.extend(_demo_exchange(d, format_question(d), answer, cfg))
    context = ""
    if cfg.rag and passages:
        context = format_passages(passages, cfg.rag_token_budget, cfg.rag_header)
    messages.append({"role": "user", "content": _user_turn(item, cfg, context)})
    return messages


def messages_to_text(messages: list[dict[str, str]]) -> str:
    """Plain-text fallback for models without a chat template."""
    out = []
    for m in messages:
        role = {"system": "系统", "user": "用户", "assistant": "助手"}.get(m["role"], m["role"])
        out.append(f"{role}：{m['content']}")
    out.append("助手：")
    return "\n\n".join(out)
