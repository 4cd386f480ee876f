"""Config schemas for the ``hf`` and ``openai`` model backends (registered in Hydra's ConfigStore)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class HFModelConfig:
    """A transformers causal LM from a local path or hub id."""

    _target_: str = "qualbench.models.hf.HFModel"
    path: str = "???"
    name: Optional[str] = None  # label in reports; default: last part of path
    mode: str = "generate"  # generate | loglik
    batch_size: int = 8
    max_new_tokens: int = 256
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda | mps
    adapter: Optional[str] = None  # LoRA adapter directory (peft)
    trust_remote_code: bool = False
    local_files_only: Optional[bool] = None  # None: True when HF_HUB_OFFLINE is set
    chat_template: str = "auto"  # auto (use the tokenizer's if it has one) | none
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {enable_thinking: false}
    max_context: Optional[int] = None  # None: model.config.max_position_embeddings
    on_overflow: str = "skip"  # skip | error
    answer_prefix: str = "答案："  # loglik: text after the prompt before the scored answer
    multi_threshold: float = 0.5  # loglik 多选题: keep letters with p >= tau * p_max (softmax over options)
    multi_min: int = 2  # loglik 多选题: always keep at least this many letters
    multi_method: str = "threshold"  # loglik 多选题: threshold (one pass) | generate (greedy generation instead)
    prefix_cache: bool = True  # loglik: run a batch's shared prompt prefix once and reuse its KV cache
    judge_words: list[str] = field(default_factory=lambda: ["正确", "错误"])  # loglik 判断题 continuations
    show_progress: bool = True
    num_threads: Optional[int] = None  # torch CPU threads (null: torch's default = all cores); 1-2 on busy machines


@dataclass
class OpenAIModelConfig:
    """Any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, llama.cpp, Ollama, hosted APIs)."""

    _target_: str = "qualbench.models.openai_compat.OpenAIChatModel"
    name: str = "???"  # model id sent in the request body
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable only, never from config
    max_concurrency: int = 8
    max_retries: int = 5
    backoff_s: float = 1.0  # first backoff; doubles each attempt, full jitter, capped at backoff_max_s
    backoff_max_s: float = 60.0
    timeout_s: float = 120.0
    temperature: float = 0.0
    max_tokens: int = 256
    extra_body: dict[str, Any] = field(default_factory=dict)
    on_overflow: str = "skip"  # skip | error, when the server rejects the prompt as too long
    max_empty_share: float = 0.05  # warn (a backend problem) when more completions than this come back empty
    show_progress: bool = True


def register_schemas(cs: ConfigStore) -> None:
    cs.store(group="model", name="base_hf", node=HFModelConfig)
    cs.store(group="model", name="base_openai", node=OpenAIModelConfig)
