"""Local LoRA fine-tuning of a causal LM on answer tokens, and evaluation with the shared scorer.

Used by the Flower ClientApp and, unchanged, by the local-only and centralized baselines.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Sequence

import torch

from qualbench.prompts.render import PromptConfig, messages_to_text, render_messages
from qualbench.records import TYPE_SLUGS, Question
from qualbench.scoring.extract import extract_answer
from qualbench.scoring.metrics import is_correct

ANSWER_PREFIX = "答案："
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 on prompt tokens


@dataclass
class TrainStats:
    steps: int
    num_examples: int
    losses: list[float] = field(default_factory=list)  # one per optimizer step (task loss, without prox)

    @property
    def mean_loss(self) -> float:
        return float(sum(self.losses) / len(self.losses)) if self.losses else float("nan")


def prompt_text(tokenizer: Any, item: Question, prompt_cfg: PromptConfig) -> str:
    """The rendered prompt through the tokenizer's chat template (plain-text fallback without one)."""
    messages = render_messages(item, prompt_cfg)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return messages_to_text(messages)


def target_text(item: Question) -> str:
    return f"{ANSWER_PREFIX}{item.answer}"


def encode(tokenizer: Any, items: Sequence[Question], prompt_cfg: PromptConfig, max_length: int) -> list[Example]:
    """Prompt + answer tokens; loss only on the answer (and EOS). Over-long prompts lose their start."""
    out = []
    for q in items:
        p = tokenizer(prompt_text(tokenizer, q, prompt_cfg), add_special_tokens=False)["input_ids"]
        t = tokenizer(target_text(q), add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            t = t + [tokenizer.eos_token_id]
        p = p[-(max_length - len(t)):] if len(p) + len(t) > max_length else p
        out.append(Example(p + t, [-100] * len(p) + t))
    return out


def collate(batch: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors; padding is masked from attention and loss."""
    n = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[i, : len(e.labels)] = torch.tensor(e.labels)
        mask[i, : len(e.input_ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@lru_cache(maxsize=2)
def _load(base_path: str, lora_json: str, seed: int) -> tuple[Any, Any, dict[str, torch.Tensor]]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    torch.manual_seed(seed)
    lora = json.loads(lora_json)
    config = LoraConfig(task_type="CAUSAL_LM", r=lora["r"], lora_alpha=lora["alpha"],
                        lora_dropout=lora["dropout"], target_modules=list(lora["target_modules"]))
    with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(base, config)
    return model, tokenizer, get_adapter(model)


def load_peft(base_path: str, lora: dict[str, Any], seed: int = 0) -> tuple[Any, Any]:
    """(peft model, tokenizer) for a base model dir and LoRA settings; cached per process."""
    model, tok, _ = _load(str(base_path), json.dumps(lora, sort_keys=True), seed)
    return model, tok


def initial_adapter(base_path: str, lora: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """The seeded LoRA initialisation (lora_B = 0, so the adapted model starts equal to the base)."""
    _, _, init = _load(str(base_path), json.dumps(lora, sort_keys=True), seed)
    return {k: v.clone() for k, v in init.items()}


def lora_config_dict(r: int = 8, alpha: int = 16, dropout: float = 0.0,
                     target_modules: Iterable[str] = DEFAULT_TARGET_MODULES) -> dict[str, Any]:
    return {"r": int(r), "alpha": int(alpha), "dropout": float(dropout), "target_modules": list(target_modules)}


def get_adapter(model: Any) -> dict[str, torch.Tensor]:
    """The LoRA weights only (peft's saved-adapter key names), detached CPU copies."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}


def set_adapter(model: Any, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, state)
    bad = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k]
    if bad:
        raise ValueError(f"adapter keys do not match the model: {bad[:3]}")


def train_local(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    grad_accum: int = 1,
    epochs: float | None = None,
    mu: float = 0.0,
    seed: int = 0,
    max_grad_norm: float = 1.0,
) -> TrainStats:
    """AdamW on the trainable (LoRA) parameters for ``steps`` optimizer steps (or ``epochs`` passes).

    With ``mu > 0`` adds the FedProx term μ/2·||w − w_global||² over the LoRA parameters, w_global being
    the weights at the start of the call.
    """
    if not examples:
        return TrainStats(steps=0, num_examples=0)
    per_step = batch_size * grad_accum
    if epochs:
        steps = max(1, math.ceil(epochs * len(examples) / per_step))
    params = [p for p in model.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params] if mu > 0 else None
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    stats = TrainStats(steps=steps, num_examples=len(examples))
    pad = tokenizer.pad_token_id
    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(grad_accum):
            if len(order) < batch_size:
                order += torch.randperm(len(examples), generator=gen).tolist()
            batch = [examples[i] for i in order[:batch_size]]
            del order[:batch_size]
            loss = model(**collate(batch, pad)).loss
            step_loss += loss.item() / grad_accum
            if anchor is not None:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
                loss = loss + mu / 2 * prox
            (loss / grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        stats.losses.append(step_loss)
    model.eval()
    return stats


@torch.no_grad()
def answer_losses(model: Any, tokenizer: Any, examples: Sequence[Example], batch_size: int = 16) -> list[float]:
    """Mean cross-entropy over each example's answer tokens (teacher forcing)."""
    out: list[float] = []
    for i in range(0, len(examples), batch_size):
        b = collate(examples[i : i + batch_size], tokenizer.pad_token_id)
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
        labels = b["labels"][:, 1:]
        tok = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1), ignore_index=-100, reduction="none"
        ).view(labels.shape)
        n = (labels != -100).sum(1).clamp(min=1)
        out.extend((tok.sum(1) / n).tolist())
    return out


@torch.no_grad()
def generate_answers(
    model: Any, tokenizer: Any, items: Sequence[Question], prompt_cfg: PromptConfig,
    max_new_tokens: int = 8, batch_size: int = 16, max_length: int = 1024,
) -> list[str]:
    """Greedy completions of each prompt (left-padded batches)."""
    texts: list[str] = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        encs = [tokenizer(prompt_text(tokenizer, q, prompt_cfg), add_special_tokens=False)["input_ids"]
                [-(max_length - max_new_tokens):] for q in chunk]
        n = max(map(len, encs))
        ids = torch.full((len(encs), n), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encs), n), dtype=torch.long)
        for j, e in enumerate(encs):
            ids[j, n - len(e):] = torch.tensor(e)
            mask[j, n - len(e):] = 1
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        texts.extend(tokenizer.batch_decode(out[:, n:], skip_special_tokens=True))
    return texts


def evaluate(
    model: Any, tokenizer: Any, items: Sequence[Question], prompt_cfg: PromptConfig,
    max_new_tokens: int = 8, batch_size: int = 16, max_length: int = 1024,
) -> list[dict[str, Any]]:
    """Per item: greedy answer → ``extract_answer`` → ``is_correct``, plus the answer-token loss."""
    if not items:
        return []
    model.eval()
    raws = generate_answers(model, tokenizer, items, prompt_cfg, max_new_tokens, batch_size, max_length)
    losses = answer_losses(model, tokenizer, encode(tokenizer, items, prompt_cfg, max_length), batch_size)
    rows = []
    for q, raw, loss in zip(items, raws, losses):
        pred = extract_answer(raw, q.question_type, list(q.options) or None)
        rows.append({"idx": q.idx, "domain": q.domain_slug, "type": TYPE_SLUGS.get(q.question_type, q.question_type),
                     "raw": raw, "prediction": pred, "correct": is_correct(q.answer, pred, q.question_type),
                     "loss": float(loss)})
    return rows


def count_metrics(rows: Iterable[dict[str, Any]], prefix: str) -> dict[str, float]:
    """Flat sums ``<prefix>.{n,correct,loss}.<domain>.<type>`` that add up across clients."""
    acc: dict[str, float] = defaultdict(float)
    for r in rows:
        key = f"{r['domain']}.{r['type']}"
        acc[f"{prefix}.n.{key}"] += 1
        acc[f"{prefix}.correct.{key}"] += float(r["correct"])
        acc[f"{prefix}.loss.{key}"] += r["loss"]
    return dict(acc)


def summarize_counts(counts: dict[str, float], prefix: str) -> dict[str, Any]:
    """Accuracy and mean answer loss overall, per domain and per type from summed counts."""
    cells: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: {"n": 0.0, "correct": 0.0, "loss": 0.0})
    for k, v in counts.items():
        parts = k.split(".")
        if len(parts) == 4 and parts[0] == prefix:
            cells[(parts[2], parts[3])][parts[1]] += v

    def agg(sel) -> dict[str, float]:
        n = sum(c["n"] for key, c in cells.items() if sel(key))
        if not n:
            return {"n": 0, "accuracy": None, "loss": None}
        return {"n": int(n), "accuracy": sum(c["correct"] for key, c in cells.items() if sel(key)) / n,
                "loss": sum(c["loss"] for key, c in cells.items() if sel(key)) / n}

    domains = sorted({d for d, _ in cells})
    types = [t for t in TYPE_SLUGS.values() if any(tt == t for _, tt in cells)]
    return {**agg(lambda key: True),
            "by_domain": {d: agg(lambda key, d=d: key[0] == d) for d in domains},
            "by_type": {t: agg(lambda key, t=t: key[1] == t) for t in types}}
