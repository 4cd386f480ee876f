"""The locally built tiny causal LM and character tokenizer round-trip through save_pretrained offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from qualbench.errors import ConfigError
from qualbench.models.tiny import build_tiny_model, build_tiny_tokenizer, save_tiny

TEXTS = ["企业应当建立安全生产责任制。", "答案：ACD", "消防车通道"]


def test_tokenizer_is_character_level_and_lossless():
    tok = build_tiny_tokenizer(TEXTS)
    text = "安全生产责任制 答案：C\n\n  xyz!"
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.convert_ids_to_tokens(tok("龘")["input_ids"]) == ["<unk>"]  # unseen character
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<s>", "</s>")


def test_chat_template_renders_roles_and_generation_prompt():
    tok = build_tiny_tokenizer(TEXTS)
    msgs = [{"role": "system", "content": "系统提示"}, {"role": "user", "content": "题目"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<s>") and "用户：题目" in text and text.endswith("助手：")


def test_save_and_reload_offline(tmp_path):
    d = save_tiny(tmp_path / "tiny", TEXTS, hidden_size=32, num_layers=1, num_heads=2)
    model = AutoModelForCausalLM.from_pretrained(d)
    tok = AutoTokenizer.from_pretrained(d)
    assert model.config.num_hidden_layers == 1 and model.config.vocab_size == len(tok)
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "消防"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert enc["input_ids"].shape[1] == 1 + len("用户：消防\n\n助手：")  # <s> is one token
    out = model.generate(**enc, max_new_tokens=2, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 2


def test_model_is_seeded():
    tok = build_tiny_tokenizer(TEXTS)
    a, b = build_tiny_model(tok, seed=1), build_tiny_model(tok, seed=1)
    c = build_tiny_model(tok, seed=2)
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_plain_gpt2_saves_without_template(tmp_path):
    d = save_tiny(tmp_path / "gpt2", TEXTS, chat_template=False, arch="gpt2", hidden_size=32, num_layers=1, num_heads=2)
    model, tok = AutoModelForCausalLM.from_pretrained(d), AutoTokenizer.from_pretrained(d)
    assert model.config.model_type == "gpt2" and model.config.n_layer == 1 and model.config.vocab_size == len(tok)
    assert tok.chat_template is None


def test_grouped_query_attention_and_bad_settings():
    tok = build_tiny_tokenizer(TEXTS)
    gqa = build_tiny_model(tok, hidden_size=64, num_heads=4, num_kv_heads=2)
    attn = gqa.model.layers[0].self_attn
    assert attn.q_proj.out_features == 64 and attn.k_proj.out_features == 32  # 4 query heads share 2 of 16 dims
    with pytest.raises(ConfigError, match="unknown tiny model arch 'bert'"):
        build_tiny_model(tok, arch="bert")
    with pytest.raises(ConfigError, match="llama setting"):
        build_tiny_model(tok, arch="gpt2", num_kv_heads=2)
