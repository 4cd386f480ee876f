"""Local LoRA fine-tuning of a causal LM on answer tokens, and evaluation through the ``qualbench`` path.

Used by the Flower ClientApp and, unchanged, by the local-only and centralized baselines. Prompts are the
ones ``model=hf`` feeds the model (``HFModel.prompt_text`` / ``HFModel.encode`` over ``render_messages``);
answers go through ``HFModel.generate`` → ``qualbench.evaluation.to_prediction`` (``extract_answer``) and are
scored by ``qualbench.scoring.metrics.compute_metrics``. Nothing is truncated: an item whose prompt and
answer do not fit is left out of training (counted) and skipped in evaluation (scored wrong, as in
``qualbench``).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Sequence

import torch

from qualbench.prompts.render import PromptConfig, render_messages
from qualbench.records import Question, Request

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


def target_text(item: Question) -> str:
    return f"{ANSWER_PREFIX}{item.answer}"


def eval_model(model: Any, tokenizer: Any, name: str, max_new_tokens: int = 8, batch_size: int = 16) -> Any:
    """The ``qualbench`` HF backend over the in-memory (peft) model: greedy generation, prompts never truncated."""
    from qualbench.models.hf import HFModel

    return HFModel.from_loaded(model, tokenizer, name=name, mode="generate", max_new_tokens=max_new_tokens,
                               batch_size=batch_size, answer_prefix=ANSWER_PREFIX, show_progress=False)


def encode(hf: Any, items: Sequence[Question], prompt_cfg: PromptConfig, max_length: int) -> list[Example | None]:
    """Prompt tokens exactly as ``hf`` (an HFModel) feeds them + answer tokens (+ EOS); loss on the answer only.

    ``None`` for an item whose prompt and answer together exceed ``max_length`` tokens (never truncated).
    """
    tok = hf.tokenizer
    out: list[Example | None] = []
    for q in items:
        p = hf.encode(hf.prompt_text(render_messages(q, prompt_cfg)))
        t = tok(target_text(q), add_special_tokens=False)["input_ids"]
        if tok.eos_token_id is not None:
            t = t + [tok.eos_token_id]
        out.append(Example(p + t, [-100] * len(p) + t) if len(p) + len(t) <= max_length else None)
    return out


def training_examples(hf: Any, items: Sequence[Question], prompt_cfg: PromptConfig,
                      max_length: int) -> tuple[list[Example], int]:
    """The examples that fit ``max_length`` and how many items did not (left out, not truncated)."""
    enc = encode(hf, items, prompt_cfg, max_length)
    kept = [e for e in enc if e is not None]
    return kept, len(enc) - len(kept)


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


def adapter_config_json(model: Any) -> str:
    """The ``adapter_config.json`` text peft's ``save_pretrained`` writes for ``model`` (sent to the server, which
    writes the global adapter without loading any model: :mod:`federation.adapters`)."""
    import copy
    import tempfile
    from pathlib import Path

    config = copy.deepcopy(model.peft_config["default"])
    config.inference_mode = True  # as PeftModel.save_pretrained writes it
    for key, value in vars(config).items():  # sets (target_modules) in a fixed order: peft writes hash order
        if isinstance(value, set):
            setattr(config, key, sorted(value, key=str))
    if config.base_model_name_or_path is None:
        config.base_model_name_or_path = model.base_model.model.__dict__.get("name_or_path") or None
    with tempfile.TemporaryDirectory() as tmp:
        config.save_pretrained(tmp)  # peft's own serialisation of the config (no weights)
        return (Path(tmp) / "adapter_config.json").read_text(encoding="utf-8")


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


def predict(hf: Any, items: Sequence[Question], prompt_cfg: PromptConfig, client: int | str | None = None,
            loss_batch_size: int = 16) -> list[dict[str, Any]]:
    """Prediction rows (``qualbench.evaluation.to_prediction``) for ``items``, each with its answer-token loss.

    ``hf`` is an HFModel (see :func:`eval_model`); the loss is None for items that do not fit its context.
    """
    from qualbench.evaluation import to_prediction

    if not items:
        return []
    responses = hf.generate([Request(q, render_messages(q, prompt_cfg)) for q in items])
    enc = encode(hf, items, prompt_cfg, hf.context)
    fit = [e for e in enc if e is not None]
    it = iter(answer_losses(hf.model, hf.tokenizer, fit, loss_batch_size) if fit else [])
    rows = []
    for q, r, e in zip(items, responses, enc):
        row = to_prediction(q, r).to_dict()
        row["answer_loss"] = float(next(it)) if e is not None else None
        if client is not None:
            row["client"] = str(client)
        rows.append(row)
    return rows
