"""A tiny causal LM and a character-level tokenizer built locally from text (federated default, tests, benchmarks)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Iterable

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from qualbench.errors import ConfigError

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")

# Minimal chat template: "<role>：content" turns (same labels as qualbench.prompts.render.messages_to_text).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}系统{% elif m['role'] == 'user' %}用户{% elif m['role'] == 'assistant' %}助手"
    "{% else %}{{ m['role'] }}{% endif %}：{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}助手：{% endif %}"
)


def _vocab(texts: Iterable[str], extra_tokens: Iterable[str]) -> dict[str, int]:
    chars: set[str] = set(string.ascii_letters + string.digits + string.punctuation + " \n\t")
    for t in texts:
        chars.update(t)
    # the template's fixed characters must be in the vocabulary too
    chars.update("系统用户助手：")
    vocab: dict[str, int] = {}
    for tok in (*SPECIAL_TOKENS, *extra_tokens, *sorted(chars)):
        vocab.setdefault(tok, len(vocab))
    return vocab


def build_tiny_tokenizer(
    texts: Iterable[str], extra_tokens: Iterable[str] = (), chat_template: bool = True
) -> PreTrainedTokenizerFast:
    """Character-level WordLevel tokenizer over every character in ``texts`` plus ASCII and special tokens.

    ``chat_template=False`` leaves the template unset, like a base model's tokenizer.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    extra = tuple(extra_tokens)
    vocab = _vocab(texts, extra)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=list(extra) or None,
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 1024,
    seed: int = 0,
    initializer_range: float = 0.25,
    arch: str = "llama",
    num_kv_heads: int | None = None,
) -> PreTrainedModel:
    """A randomly initialised (seeded) causal LM sized for ``tokenizer`` (CPU float32).

    ``arch``: ``llama`` (rotary positions; ``num_kv_heads`` below ``num_heads`` gives grouped-query attention)
    or ``gpt2`` (absolute positions). ``initializer_range`` is larger than the usual 0.02 so the tied output
    embeddings give logits with enough range for LoRA fine-tuning to drive the answer-token loss well below
    ln(vocab).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=hidden_size * 2,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            num_key_value_heads=num_kv_heads or num_heads,
            max_position_embeddings=max_positions,
            tie_word_embeddings=True,
            initializer_range=initializer_range,
            **ids,
        )
        # Llama (not Qwen2): AutoTokenizer forces Qwen2Tokenizer for qwen2 configs, dropping our tokenizer.json
        model_cls = LlamaForCausalLM
    elif arch == "gpt2":
        if num_kv_heads is not None:
            raise ConfigError("num_kv_heads (grouped-query attention) is a llama setting; gpt2 has none")
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=hidden_size,
            n_layer=num_layers,
            n_head=num_heads,
            n_positions=max_positions,
            initializer_range=initializer_range,
            **ids,
        )
        model_cls = GPT2LMHeadModel
    else:
        raise ConfigError(f"unknown tiny model arch {arch!r}; choose llama or gpt2")
    torch.manual_seed(seed)
    model = model_cls(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model


def save_tiny(
    directory: str | Path, texts: Iterable[str], extra_tokens: Iterable[str] = (), chat_template: bool = True,
    **model_kw,
) -> Path:
    """Build tokenizer + model from ``texts`` and ``save_pretrained`` both into ``directory``; returns it.

    ``model_kw`` go to ``build_tiny_model`` (size, ``arch``, ``seed``, ...).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(texts, extra_tokens, chat_template)
    model = build_tiny_model(tokenizer, **model_kw)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
