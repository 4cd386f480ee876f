"""Prompt configs (conf/prompt/*.yaml) and render_messages: families, demonstrations, RAG context, no truncation."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from qualbench.config import PROJECT_ROOT, register_configs
from qualbench.prompts.render import (
    ANSWER_FORMATS,
    DEMONSTRATIONS,
    PromptConfig,
    format_passages,
    messages_to_text,
    render_messages,
)
from qualbench.records import JUDGE, MULTI, QUESTION_TYPES, SINGLE, Question

ITEMS = {
    SINGLE: Question("s", SINGLE, "消防", "灭火器压力不足时应当（ ）。", {"A": "继续使用", "B": "报告检修", "C": "丢弃"}, "B"),
    MULTI: Question("m", MULTI, "建筑工程", "下列属于个人防护用品的有（ ）。", {"A": "安全帽", "B": "安全带", "C": "塔吊", "D": "防护手套"}, "ABD"),
    JUDGE: Question("j", JUDGE, "经济金融", "商业银行可以向关系人发放信用贷款。", {}, "错误"),
}


def prompt_cfg(name: str) -> PromptConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"prompt={name}"])
    return PromptConfig(**OmegaConf.to_container(cfg.prompt, resolve=True))


def test_prompt_families_compose():
    zs, one, exp, cot, rag = (prompt_cfg(n) for n in ("zero_shot", "one_shot", "expert", "cot", "rag"))
    assert [c.name for c in (zs, one, exp, cot, rag)] == ["zero_shot", "one_shot", "expert", "cot", "rag"]
    assert not (zs.one_shot or zs.chain_of_thought or zs.rag or zs.persona)
    assert one.one_shot and not one.chain_of_thought
    assert "注册安全工程师" in exp.persona and "二十年" in exp.persona
    assert cot.chain_of_thought and cot.max_new_tokens == 1024 and zs.max_new_tokens == 256
    assert rag.rag and not rag.one_shot


@pytest.mark.parametrize("qtype", QUESTION_TYPES)
def test_zero_shot_messages(qtype):
    item = ITEMS[qtype]
    msgs = render_messages(item, PromptConfig())
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[-1]["content"]
    assert ANSWER_FORMATS[qtype] in user and PromptConfig().direct_instruction in user
    assert user.endswith(item.text)  # stem and every option line, verbatim, last
    for k, v in item.options.items():
        assert f"{k}．{v}" in user


@pytest.mark.parametrize("qtype", QUESTION_TYPES)
def test_demonstrations_are_well_formed(qtype):
    demo_q, demo_a = DEMONSTRATIONS[qtype]
    answer = re.fullmatch(r"答案：(\S+)", demo_a.splitlines()[-1]).group(1)
    letters = re.findall(r"^([A-Z])．", demo_q, flags=re.M)
    if qtype == JUDGE:
        assert not letters and answer in ("正确", "错误")
    else:
        assert letters == sorted(letters) and len(letters) >= 4
        assert set(answer) <= set(letters) and list(answer) == sorted(answer)
        assert len(answer) == 1 if qtype == SINGLE else len(answer) >= 2
    assert len(demo_a.splitlines()) >= 2  # a reason precedes the answer line (used by cot)


@pytest.mark.parametrize("qtype", QUESTION_TYPES)
def test_one_shot_uses_same_type_demo(qtype):
    msgs = render_messages(ITEMS[qtype], prompt_cfg("one_shot"))
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    demo_q, demo_a = DEMONSTRATIONS[qtype]
    assert demo_q in msgs[1]["content"] and ANSWER_FORMATS[qtype] in msgs[1]["content"]
    assert msgs[2]["content"] == demo_a.splitlines()[-1]  # direct answer only without chain of thought
    cot = PromptConfig(one_shot=True, chain_of_thought=True)
    msgs = render_messages(ITEMS[qtype], cot)
    assert msgs[2]["content"] == demo_a and cot.cot_instruction in msgs[1]["content"]


def test_expert_persona_in_every_user_turn():
    cfg = prompt_cfg("expert")
    msgs = render_messages(ITEMS[SINGLE], cfg)
    assert msgs[-1]["content"].startswith(cfg.persona)
    cfg.one_shot = True
    msgs = render_messages(ITEMS[SINGLE], cfg)
    assert all(m["content"].startswith(cfg.persona) for m in msgs if m["role"] == "user")


def test_cot_instruction():
    msgs = render_messages(ITEMS[MULTI], prompt_cfg("cot"))
    assert PromptConfig().cot_instruction in msgs[-1]["content"]
    assert PromptConfig().direct_instruction not in msgs[-1]["content"]


def test_rag_context_labelled_budgeted_and_question_whole():
    from langchain_core.documents import Document

    docs = [
        Document(page_content="生产经营单位的主要负责人对本单位安全生产工作全面负责。", metadata={"law_title": "中华人民共和国安全生产法", "article": "第五条"}),
        Document(page_content="条文" * 800, metadata={"law_title": "消防法", "article": "第十六条"}),
    ]
    cfg = prompt_cfg("rag")
    long_item = Question("l", SINGLE, "安全生产", "题干很长" * 300, {"A": "甲", "B": "乙"}, "A")
    user = render_messages(long_item, cfg, docs)[-1]["content"]
    assert user.index(cfg.rag_header) < user.index("题目：")
    assert "[1] 《中华人民共和国安全生产法》第五条" in user
    assert "第十六条" not in user  # second passage would exceed rag_token_budget
    assert user.endswith(long_item.text)  # the question is never cut, however long
    ctx = format_passages(docs, cfg.rag_token_budget, cfg.rag_header)
    assert len(ctx) <= cfg.rag_token_budget + len(cfg.rag_header) + 1
    assert cfg.rag_header not in render_messages(long_item, PromptConfig(), docs)[-1]["content"]  # rag off
    assert render_messages(long_item, cfg, [])[-1]["content"] == render_messages(long_item, PromptConfig(name="rag"), [])[-1]["content"]


def test_messages_to_text_fallback():
    text = messages_to_text(render_messages(ITEMS[JUDGE], PromptConfig()))
    assert text.startswith("系统：") and "用户：" in text and text.endswith("助手：")
    assert ITEMS[JUDGE].stem in text
