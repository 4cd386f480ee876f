"""Remove secrets from anything about to be written (resolved config, metrics, predictions)."""

from __future__ import annotations

import os
import re
from typing import Any, Iterable

REDACTED = "***REDACTED***"
DEFAULT_KEY_ENVS: tuple[str, ...] = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

# Keys whose values are secrets. Counts such as ``max_tokens``/``prompt_tokens`` and the variable *name*
# ``api_key_env`` and special-token names (pad_token, eos_token, ...) do not match.
SECRET_KEY = re.compile(
    r"^(?!(?:pad|eos|bos|unk|sep|cls|mask)_token$)(?:.*[_\-.])?(?:api[_\-]?key|apikey|token|access[_\-]?key|secret|secret[_\-]?key|password|passwd)$",
    re.IGNORECASE,
)


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(SECRET_KEY.match(key))


def _env_names(obj: Any) -> set[str]:
    """Every value of an ``api_key_env`` / ``*_env`` key naming a secret variable, anywhere in ``obj``."""
    names: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and k.endswith("key_env") and isinstance(v, str) and v:
                names.add(v)
            names |= _env_names(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            names |= _env_names(v)
    return names


def secret_values(obj: Any = None, env_vars: Iterable[str] = ()) -> list[str]:
    """Current values of the secret environment variables named in ``obj``, ``env_vars`` and the defaults."""
    names = set(DEFAULT_KEY_ENVS) | set(env_vars) | _env_names(obj)
    vals = {os.environ.get(n, "") for n in names}
    return sorted((v for v in vals if len(v) >= 4), key=len, reverse=True)  # too-short values would mangle text


def _to_plain(obj: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            return OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return obj


def redact(obj: Any, env_vars: Iterable[str] = ()) -> Any:
    """A copy of ``obj`` (dicts/lists/OmegaConf/str) without secrets.

    Values under keys like api_key/token/secret/password become ``***REDACTED***``; any occurrence of the
    current value of a configured ``api_key_env`` variable (or OPENAI_API_KEY/HF_TOKEN) is replaced too.
    """
    obj = _to_plain(obj)
    values = secret_values(obj, env_vars)

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: (REDACTED if is_secret_key(k) and v not in (None, "") else walk(v)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(walk(v) for v in x)
        if isinstance(x, str):
            for v in values:
                x = x.replace(v, REDACTED)
            return x
        return x

    return walk(obj)
