"""A tiny causal LM + character-level tokenizer built locally (no download), for backend tests and benchmarks."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Iterable

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _texts() -> list[str]:
    from qualbench.prompts.render import ANSWER_FORMATS, DEMONSTRATIONS, PromptConfig, messages_to_text

    cfg = PromptConfig()
    texts = list(ANSWER_FORMATS.values()) + [q + a for q, a in DEMONSTRATIONS.values()]
    texts += [cfg.system, cfg.cot_instruction, cfg.direct_instruction, cfg.rag_header, "答案：题目正确错误对错"]
    texts.append(messages_to_text([{"role": "user", "content": "x"}]))
    texts.append(string.ascii_letters + string.digits + string.punctuation + " \n．（）“”，。、；：！？《》")
    return texts


def build_tiny_tokenizer(extra_texts: Iterable[str] = (), chat_template: bool = True):
    """Character-level WordLevel tokenizer over the prompt vocabulary (+ extra texts)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted({c for t in [*_texts(), *extra_texts] for c in t})
    vocab = {tok: i for i, tok in enumerate(SPECIAL)}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        additional_special_tokens=SPECIAL[4:],
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_model(tok, max_positions: int = 512, seed: int = 0, arch: str = "llama"):
    """A 2-layer Llama (rotary positions) or GPT-2 (absolute positions) with random weights."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if arch == "gpt2":
        cfg = GPT2Config(
            n_embd=64, n_layer=2, n_head=4, vocab_size=len(tok), n_positions=max_positions,
            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        )
        return GPT2LMHeadModel(cfg).eval()
    cfg = LlamaConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=len(tok), max_position_embeddings=max_positions,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    return LlamaForCausalLM(cfg).eval()


def save_tiny_lm(
    path: str | Path, extra_texts: Iterable[str] = (), chat_template: bool = True, max_positions: int = 512,
    arch: str = "llama",
) -> Path:
    """Build and save tokenizer + model under ``path``; returns the path."""
    path = Path(path)
    tok = build_tiny_tokenizer(extra_texts, chat_template=chat_template)
    model = build_tiny_model(tok, max_positions=max_positions, arch=arch)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
