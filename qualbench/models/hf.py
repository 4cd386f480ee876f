"""``model=hf``: a transformers causal LM, by greedy generation or by option log-likelihood.

Prompts are never truncated: an item whose prompt does not fit the context is skipped with a reason
(``on_overflow: skip``) or ends the run (``on_overflow: error``).
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from qualbench.errors import ConfigError
from qualbench.models.base import Model, ModelError
from qualbench.models.hf_loglik import candidates, common_prefix_len, decide, left_pad, length_sorted_batches
from qualbench.prompts.render import messages_to_text
from qualbench.records import MULTI, QUESTION_TYPES, Request, Response

log = logging.getLogger(__name__)

MODES = ("generate", "loglik")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")
MIN_SHARED_PREFIX = 16  # tokens; below this a shared-prefix KV cache is not worth its copy


def resolve_device(device: str) -> str:
    """``auto`` -> cuda, then mps, then cpu."""
    import torch

    if device not in DEVICES:
        raise ConfigError(f"model.device must be one of {DEVICES}, got {device!r}")
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto`` -> the checkpoint's dtype on accelerators, float32 on CPU (half precision is slow there)."""
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"model.dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "auto":
        return "auto" if device != "cpu" else torch.float32
    return getattr(torch, dtype)


def set_torch_threads(n: int) -> None:
    """CPU threads for torch (``model.num_threads``): on a busy small machine fewer threads are often faster."""
    import torch

    if n < 1:
        raise ConfigError(f"model.num_threads must be >= 1 or null, got {n}")
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only settable before the first parallel op; intra-op threads are what matter
        pass


class HFModel(Model):
    """A Hugging Face causal LM backend (``mode: generate`` or ``mode: loglik``; loglik sets ``Response.answer``)."""

    def __init__(
        self,
        path: str,
        name: str | None = None,
        mode: str = "generate",
        batch_size: int = 8,
        max_new_tokens: int = 256,
        dtype: str = "auto",
        device: str = "auto",
        adapter: str | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool | None = None,
        chat_template: str = "auto",
        chat_template_kwargs: dict[str, Any] | None = None,
        max_context: int | None = None,
        on_overflow: str = "skip",
        answer_prefix: str = "答案：",
        multi_threshold: float = 0.5,
        multi_min: int = 2,
        multi_method: str = "threshold",
        prefix_cache: bool = True,
        judge_words: Sequence[str] = ("正确", "错误"),
        show_progress: bool = True,
        num_threads: int | None = None,
        _loaded: tuple[Any, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"model.mode must be one of {MODES}, got {mode!r}")
        if on_overflow not in ("skip", "error"):
            raise ConfigError(f"model.on_overflow must be skip or error, got {on_overflow!r}")
        if chat_template not in ("auto", "none"):
            raise ConfigError(f"model.chat_template must be auto or none, got {chat_template!r}")
        if multi_method not in ("threshold", "generate"):
            raise ConfigError(f"model.multi_method must be threshold or generate, got {multi_method!r}")
        if len(judge_words) != 2 or judge_words[0] == judge_words[1]:
            raise ConfigError(f"model.judge_words must be two different words, got {list(judge_words)}")
        if batch_size < 1 or max_new_tokens < 1:
            raise ConfigError("model.batch_size and model.max_new_tokens must be >= 1")
        if num_threads is not None:
            set_torch_threads(int(num_threads))
        self.path = str(path)
        self.name = name or Path(self.path.rstrip("/")).name
        self.mode = mode
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.on_overflow = on_overflow
        self.answer_prefix = answer_prefix
        self.multi_threshold = float(multi_threshold)
        self.multi_min = int(multi_min)
        self.multi_method = multi_method
        self.prefix_cache = bool(prefix_cache)
        self._prefix_memo: tuple[tuple[int, ...], Any] | None = None
        self.judge_words = tuple(judge_words)
        self.show_progress = show_progress
        if local_files_only is None:
            local_files_only = bool(os.environ.get("HF_HUB_OFFLINE"))
        if _loaded is not None:  # see from_loaded: no loading, no moving, no copy
            self.tokenizer, self.model = self._adopt(*_loaded)
        else:
            self.device = resolve_device(device)
            self.tokenizer, self.model = self._load(
                resolve_dtype(dtype, self.device), adapter, trust_remote_code, local_files_only
            )
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.use_chat_template = chat_template == "auto" and bool(getattr(self.tokenizer, "chat_template", None))
        self.context = int(max_context or self._model_context())
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        params = inspect.signature(base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = "logits_to_keep" if "logits_to_keep" in params else None

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, name: str, **kwargs: Any) -> "HFModel":
        """An HFModel over a model (e.g. a peft LoRA model being trained) and tokenizer already in memory.

        The objects are used as they are (same device and dtype, weights shared, not copied), so later
        changes to the weights show in the next ``generate``; the tokenizer gets left padding and a pad token.
        ``kwargs`` are the constructor's generation settings (mode, batch_size, max_new_tokens, ...).
        """
        for k in ("path", "adapter", "dtype", "device", "trust_remote_code", "local_files_only"):
            if k in kwargs:
                raise TypeError(f"HFModel.from_loaded: {k!r} does not apply to an already-loaded model")
        path = getattr(getattr(model, "config", None), "_name_or_path", "") or name
        return cls(path, name=name, _loaded=(tokenizer, model), **kwargs)

    # ---------------------------------------------------------------- loading
    def _adopt(self, tok: Any, model: Any):
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            if tok.eos_token_id is None:
                raise ModelError(f"tokenizer of {self.path!r} has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._base_config = base.config
        self.device = str(next(model.parameters()).device)
        model.eval()
        return tok, model

    def _load(self, dtype: Any, adapter: str | None, trust_remote_code: bool, local_files_only: bool):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kw = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
        try:
            tok = AutoTokenizer.from_pretrained(self.path, **kw)
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype, **kw)
        except (OSError, ValueError) as e:
            hint = ""
            if local_files_only:
                hint = " (offline: local_files_only=true; pass a local directory or warm the HF cache)"
            raise ModelError(f"cannot load model {self.path!r}{hint}: {e}") from e
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            if tok.eos_token_id is None:
                raise ModelError(f"tokenizer of {self.path!r} has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        self._base_config = model.config
        if adapter:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
            except (OSError, ValueError) as e:
                raise ModelError(f"cannot load LoRA adapter {adapter!r} onto {self.path!r}: {e}") from e
        model.to(self.device).eval()
        return tok, model

    def _model_context(self) -> int:
        n = getattr(self._base_config, "max_position_embeddings", None)
        if n:
            return int(n)
        n = getattr(self.tokenizer, "model_max_length", None)
        if n and n < 10**8:
            return int(n)
        raise ConfigError(f"cannot tell the context length of {self.path!r}; set model.max_context")

    # ---------------------------------------------------------------- prompts
    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        """The exact text fed to the model: the chat template when the tokenizer has one, else plain text."""
        if not self.use_chat_template:
            return messages_to_text(messages)
        try:
            return self._apply_template(messages)
        except Exception as e:  # jinja raises TemplateError for e.g. "system role not supported"
            if not messages or messages[0]["role"] != "system":
                raise ModelError(f"chat template of {self.path!r} failed: {e}") from e
            merged = [dict(m) for m in messages[1:]]
            first_user = next(m for m in merged if m["role"] == "user")
            first_user["content"] = messages[0]["content"] + "\n\n" + first_user["content"]
            return self._apply_template(merged)

    def _apply_template(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **self.chat_template_kwargs
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt; special tokens (BOS) are added only when no chat template supplies them."""
        return self.tokenizer(text, add_special_tokens=not self.use_chat_template)["input_ids"]

    def _overflow(self, req: Request, n_prompt: int, n_new: int) -> str | None:
        if n_prompt + n_new <= self.context:
            return None
        reason = (
            f"prompt_too_long: {n_prompt} prompt tokens + {n_new} answer tokens > context {self.context} "
            f"of {self.name} (questions are never truncated)"
        )
        if self.on_overflow == "error":
            raise ModelError(f"item {req.item.idx}: {reason}; set model.on_overflow=skip to skip such items")
        return reason

    def _tensors(self, seqs: Sequence[Sequence[int]]):
        import torch

        ids, mask = left_pad(seqs, self.tokenizer.pad_token_id)
        ids_t = torch.tensor(ids, device=self.device)
        mask_t = torch.tensor(mask, device=self.device)
        return ids_t, mask_t

    # ---------------------------------------------------------------- generate
    def generate(self, requests: list[Request]) -> list[Response]:
        if self.mode == "generate":
            return self._generate(requests)
        if self.multi_method == "threshold":
            return self._loglik(requests)
        # 多选题 by generation, the rest by log-likelihood
        gen = [i for i, r in enumerate(requests) if r.item.question_type == MULTI]
        rest = [i for i, r in enumerate(requests) if r.item.question_type != MULTI]
        out: list[Response | None] = [None] * len(requests)
        for idxs, fn in ((rest, self._loglik), (gen, self._generate)):
            for i, resp in zip(idxs, fn([requests[i] for i in idxs]) if idxs else []):
                out[i] = resp
        return out  # type: ignore[return-value]

    def _generation_config(self):
        gc = copy.deepcopy(self.model.generation_config)
        gc.do_sample = False
        gc.temperature = gc.top_p = gc.top_k = None
        gc.num_beams = 1
        gc.max_new_tokens = self.max_new_tokens
        gc.max_length = None
        gc.pad_token_id = self.tokenizer.pad_token_id
        if gc.eos_token_id is None:
            gc.eos_token_id = self.tokenizer.eos_token_id
        return gc

    def _stop_ids(self, gc) -> set[int]:
        eos = gc.eos_token_id
        stop = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        return stop | {self.tokenizer.pad_token_id}

    def _generate(self, requests: list[Request]) -> list[Response]:
        import torch

        ids = [self.encode(self.prompt_text(r.messages)) for r in requests]
        out: list[Response | None] = [None] * len(requests)
        todo = []
        for i, (r, x) in enumerate(zip(requests, ids)):
            reason = self._overflow(r, len(x), self.max_new_tokens)
            if reason:
                out[i] = Response(text="", skipped=reason, prompt_tokens=len(x))
            else:
                todo.append(i)
        gc = self._generation_config()
        stop = self._stop_ids(gc)
        batches = length_sorted_batches([len(ids[i]) for i in todo], self.batch_size)
        for batch in tqdm(batches, desc=f"{self.name} generate", disable=not self.show_progress, leave=False):
            rows = [todo[j] for j in batch]
            input_ids, mask = self._tensors([ids[i] for i in rows])
            t0 = time.perf_counter()
            with torch.inference_mode():
                gen = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gc)
            dt = (time.perf_counter() - t0) / len(rows)
            new = gen[:, input_ids.shape[1] :].tolist()
            for i, toks in zip(rows, new):
                n = next((k for k, t in enumerate(toks) if t in stop), len(toks))
                text = self.tokenizer.decode(toks[:n], skip_special_tokens=True)
                out[i] = Response(
                    text=text, latency_s=dt, prompt_tokens=len(ids[i]), completion_tokens=n,
                    meta={"finish_reason": "stop" if n < len(toks) else "length"},
                )
        return out  # type: ignore[return-value]

    # ---------------------------------------------------------------- loglik
    def _continuation(self, ctx_text: str, ctx_plain: list[int], word: str) -> list[int]:
        """Token ids ``word`` adds after the context (tokenised in context, so merges at the boundary count)."""
        full = self.tokenizer(ctx_text + word, add_special_tokens=False)["input_ids"]
        if full[: len(ctx_plain)] == ctx_plain and len(full) > len(ctx_plain):
            return full[len(ctx_plain) :]
        return self.tokenizer(word, add_special_tokens=False)["input_ids"]

    def _forward_logprobs(self, seqs: list[list[int]], keep: int):
        """Log-softmax over the vocabulary for the last ``keep`` positions of each left-padded sequence."""
        import torch

        input_ids, mask = self._tensors(seqs)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        kw = {self._keep_kw: keep} if self._keep_kw else {}
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos, **kw).logits
        return torch.log_softmax(logits[:, -keep:, :].float(), dim=-1)

    def _prefix_state(self, prefix: list[int]):
        """KV cache of ``prefix`` (batch 1), memoised for the next batch with the same prefix."""
        import torch

        key = tuple(prefix)
        if self._prefix_memo is None or self._prefix_memo[0] != key:
            ids = torch.tensor([prefix], device=self.device)
            with torch.inference_mode():
                out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            cache = getattr(out, "cache", None) or out.past_key_values
            self._prefix_memo = (key, cache)
        return self._prefix_memo[1]

    def _last_logprobs_shared_prefix(self, seqs: list[list[int]]):
        """Last-position log-softmax, running the batch's common token prefix once and reusing its KV cache.

        Suffixes are left-padded *after* the prefix; the attention mask hides the gap and ``position_ids``
        continue the prefix, so the result equals the plain forward pass (tests check this).
        """
        import torch

        n = common_prefix_len(seqs)
        n = min(n, min(len(s) for s in seqs) - 1)  # every row keeps at least one token of its own
        if not self.prefix_cache or n < MIN_SHARED_PREFIX:
            return self._forward_logprobs(seqs, keep=1)[:, -1, :]
        try:
            cache = copy.deepcopy(self._prefix_state(seqs[0][:n]))
            if len(seqs) > 1:
                cache.batch_repeat_interleave(len(seqs))
        except (AttributeError, TypeError, RuntimeError) as e:  # a model whose cache cannot be copied/expanded
            log.warning("%s: shared-prefix cache unavailable (%s); using plain forward passes", self.name, e)
            self.prefix_cache = False
            return self._forward_logprobs(seqs, keep=1)[:, -1, :]
        ids, smask = self._tensors([s[n:] for s in seqs])
        mask = torch.cat([torch.ones(len(seqs), n, dtype=smask.dtype, device=smask.device), smask], dim=1)
        pos = n + (smask.cumsum(-1) - 1).clamp(min=0)
        kw = {self._cache_kw: cache}
        if self._keep_kw:
            kw[self._keep_kw] = 1
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, **kw).logits
        return torch.log_softmax(logits[:, -1, :].float(), dim=-1)

    def _loglik(self, requests: list[Request]) -> list[Response]:
        """Score each candidate answer's continuation after prompt + ``answer_prefix``; pick by ``decide``."""
        out: list[Response | None] = [None] * len(requests)
        ctx_ids: dict[int, list[int]] = {}
        conts: dict[int, dict[str, list[int]]] = {}
        for i, r in enumerate(requests):
            ctx_text = self.prompt_text(r.messages) + self.answer_prefix
            ctx = self.encode(ctx_text)
            plain = self.tokenizer(ctx_text, add_special_tokens=False)["input_ids"]
            try:
                cands = candidates(r.item, self.judge_words)
            except ValueError as e:
                raise ModelError(str(e)) from e
            cont = {ans: self._continuation(ctx_text, plain, w) for ans, w in cands.items()}
            if len({tuple(c) for c in cont.values()}) < len(cont):
                raise ModelError(f"item {r.item.idx}: answers {list(cands.values())} tokenise identically")
            reason = self._overflow(r, len(ctx), max(len(c) for c in cont.values()))
            if reason:
                out[i] = Response(text="", skipped=reason, prompt_tokens=len(ctx))
                continue
            ctx_ids[i], conts[i] = ctx, cont
        scores: dict[int, dict[str, float]] = {i: {} for i in ctx_ids}
        latency: dict[int, float] = {i: 0.0 for i in ctx_ids}
        # Pass 1: one forward pass per question gives every single-token continuation (letters, 对/错).
        todo = list(ctx_ids)
        # same-type items share system/format/demonstration text: with prefix_cache, batch them together
        groups = [todo]
        if self.prefix_cache:
            groups = [[i for i in todo if requests[i].item.question_type == t] for t in QUESTION_TYPES]
        batches = [
            [g[j] for j in b]
            for g in groups
            for b in length_sorted_batches([len(ctx_ids[i]) for i in g], self.batch_size)
        ]
        for rows in tqdm(batches, desc=f"{self.name} loglik", disable=not self.show_progress, leave=False):
            t0 = time.perf_counter()
            lp = self._last_logprobs_shared_prefix([ctx_ids[i] for i in rows])
            dt = (time.perf_counter() - t0) / len(rows)
            for b, i in enumerate(rows):
                latency[i] += dt
                for ans, c in conts[i].items():
                    if len(c) == 1:
                        scores[i][ans] = float(lp[b, c[0]])
        # Pass 2: multi-token continuations (e.g. 正确/错误 as two tokens) are scored in full: sum of log-probs.
        multi = [(i, ans) for i in todo for ans, c in conts[i].items() if len(c) > 1]
        seqs = [ctx_ids[i] + conts[i][ans][:-1] for i, ans in multi]
        for batch in length_sorted_batches([len(s) for s in seqs], self.batch_size):
            keep = max(len(conts[multi[j][0]][multi[j][1]]) for j in batch)
            t0 = time.perf_counter()
            lp = self._forward_logprobs([seqs[j] for j in batch], keep=keep)
            dt = (time.perf_counter() - t0) / len(batch)
            for b, j in enumerate(batch):
                i, ans = multi[j]
                c = conts[i][ans]
                steps = lp[b, keep - len(c) :, :]
                scores[i][ans] = float(sum(steps[k, t] for k, t in enumerate(c)))
                latency[i] += dt
        for i in todo:
            item = requests[i].item
            ans = decide(item.question_type, scores[i], self.multi_threshold, self.multi_min)
            out[i] = Response(
                text=f"{self.answer_prefix}{ans}", latency_s=latency[i], prompt_tokens=len(ctx_ids[i]),
                completion_tokens=0, answer=ans, meta={"scores": scores[i], "method": "loglik"},
            )
        return out  # type: ignore[return-value]
