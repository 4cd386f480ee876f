"""Keep secrets out of everything a run writes: configs, logs, error messages, raw completions, Hydra's files.

Two ways a secret is found: by *name* (values under keys such as ``api_key``, ``token``, ``authorization``,
``password``; the userinfo of a URL ``http://user:KEY@host``; ``Authorization: Bearer …`` in free text) and by
*value* (the current value of every variable named by an ``*key_env`` entry, plus OPENAI_API_KEY/HF_TOKEN, and
every secret registered from the config at start, see :func:`collect_secrets`), replaced wherever it occurs.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Iterable

REDACTED = "***REDACTED***"
DEFAULT_KEY_ENVS: tuple[str, ...] = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MIN_SECRET_LEN = 4  # shorter values would mangle ordinary text when replaced by value
PATTERN_SECRET_LEN = 8  # the same, for values found by pattern in a string (URL userinfo, key=value)

_WORDS = r"api[_\-]?key|apikey|access[_\-]?key|secret(?:[_\-]?key)?|token|password|passwd|authorization|cookie"
_SPECIAL_TOKENS = r"(?:pad|eos|bos|unk|sep|cls|mask)_token"
# Keys whose values are secrets. Counts such as ``max_tokens``/``prompt_tokens``, the variable *name*
# ``api_key_env`` and special-token names (pad_token, eos_token, ...) do not match.
SECRET_KEY = re.compile(rf"^(?!{_SPECIAL_TOKENS}$)(?:.*[_\-.])?(?:{_WORDS})$", re.IGNORECASE)
# ``scheme://userinfo@``: the whole userinfo goes (some APIs take the key as the user name); Hydra's launcher
# prints overrides with ``:`` escaped (``http\://u\:KEY@``).
URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*\\?://)(?P<info>[^\s/@?#'\"]+)@")
# ``api_key=…``, ``"token": "…"``, ``Authorization: Bearer …`` in free text (logs, override strings).
_KV = re.compile(
    rf"(?P<key>(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_\-.])*(?:{_WORDS})[\"']?)(?P<sep>\s*[:=]\s*[\"']?)"
    r"(?P<val>(?:(?:Bearer|Basic|Token)\s+)?[^\s\"',;}\]&)]+)",
    re.IGNORECASE,
)
_KEEP_VALUES = {"null", "none", "~", "???", "true", "false", REDACTED.lower()}

_lock = threading.Lock()
_values: set[str] = set()  # registered secret strings
_env_names: set[str] = set()  # registered names of secret environment variables


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(SECRET_KEY.match(key))


def register_secret(value: Any) -> None:
    """Redact ``value`` (and, for ``Bearer X``/``Basic X``, ``X``) by value from now on, in this process."""
    if not isinstance(value, str):
        return
    parts = {value.strip()}
    if " " in value.strip():
        parts.add(value.strip().split()[-1])
    with _lock:
        _values.update(p for p in parts if len(p) >= MIN_SECRET_LEN and p.lower() not in _KEEP_VALUES)


def register_env(name: str) -> None:
    """Redact the value of environment variable ``name`` (read when redacting, so it may change)."""
    if name:
        with _lock:
            _env_names.add(name)


def clear_registry() -> None:
    """Forget registered secrets (for tests)."""
    with _lock:
        _values.clear()
        _env_names.clear()


def _key_env_names(obj: Any) -> set[str]:
    """Every value of an ``api_key_env`` / ``*key_env`` key naming a secret variable, anywhere in ``obj``."""
    names: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and k.endswith("key_env") and isinstance(v, str) and v:
                names.add(v)
            names |= _key_env_names(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            names |= _key_env_names(v)
    return names


def _variants(value: str) -> set[str]:
    """The value and its percent-encoded forms (how it appears inside a URL)."""
    return {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}


def secret_values(obj: Any = None, env_vars: Iterable[str] = ()) -> list[str]:
    """Every string to replace by value, longest first: env secrets, registered secrets, their URL encodings."""
    with _lock:
        names = set(DEFAULT_KEY_ENVS) | _env_names | set(env_vars) | _key_env_names(obj)
        raw = set(_values)
    raw |= {os.environ.get(n, "") for n in names}
    vals: set[str] = set()
    for v in raw:
        if len(v) >= MIN_SECRET_LEN:
            vals |= _variants(v)
    return sorted(vals, key=len, reverse=True)


def collect_secrets(obj: Any) -> list[str]:
    """Register every secret in a config (plain or OmegaConf): values under secret key names, URL userinfo,
    variables named by ``*key_env``; return all values now redacted."""
    obj = _to_plain(obj)

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if isinstance(k, str) and k.endswith("key_env") and isinstance(v, str):
                    register_env(v)
                if is_secret_key(k) and isinstance(v, (str, int)) and not isinstance(v, bool):
                    register_secret(str(v))
                else:
                    walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, str):  # secrets found by pattern inside a string: only long ones (real keys)
            found = []
            for m in URL_USERINFO.finditer(x):
                info = m.group("info")
                found.append(_userinfo_secret(info))
                user, _, password = (urllib.parse.unquote(p) for p in info.partition(":"))
                found.append(base64.b64encode(f"{user}:{password}".encode()).decode())  # as sent: Basic auth
            found += [m.group("val") for m in _KV.finditer(x) if _kv_sub(m) != m.group(0)]
            for v in found:
                v = urllib.parse.unquote(v)
                if len(v.split()[-1] if v.strip() else v) >= PATTERN_SECRET_LEN:
                    register_secret(v)

    walk(obj)
    return secret_values(obj)


def _userinfo_secret(info: str) -> str:
    """The secret part of URL userinfo: the password, or the user name when there is none (``KEY:@``)."""
    user, _, password = info.partition(":")
    return password or user


def _to_plain(obj: Any, resolve: bool = True) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            try:
                return OmegaConf.to_container(obj, resolve=resolve)
            except Exception:  # noqa: BLE001 - an interpolation that cannot resolve here: keep it as text
                return OmegaConf.to_container(obj, resolve=False)
    except ImportError:  # pragma: no cover
        pass
    return obj


def _kv_sub(m: re.Match) -> str:
    key, val = m.group("key"), m.group("val")
    if re.fullmatch(_SPECIAL_TOKENS, key.strip("\"'"), re.IGNORECASE) or val.lower() in _KEEP_VALUES:
        return m.group(0)
    if val.startswith("$"):  # an interpolation ${oc.env:OPENAI_API_KEY} (``$\{…`` escaped): a name, no value
        return m.group(0)
    return f"{key}{m.group('sep')}{REDACTED}"


def scrub(text: str, values: Iterable[str] | None = None) -> str:
    """``text`` with every secret value and URL userinfo replaced (no key-name patterns: for model output)."""
    if not isinstance(text, str) or not text:
        return text
    for v in secret_values() if values is None else values:
        if v in text:
            text = text.replace(v, REDACTED)
    if "://" in text:
        text = URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    return text


def redact_text(text: str, values: Iterable[str] | None = None) -> str:
    """Free text (a log line, an error message, an override) without secrets, by value and by key name."""
    text = scrub(text, values)
    if isinstance(text, str) and text:
        text = _KV.sub(_kv_sub, text)
    return text


def redact(obj: Any, env_vars: Iterable[str] = ()) -> Any:
    """A copy of ``obj`` (dicts/lists/OmegaConf/str) without secrets.

    Values under keys like api_key/token/secret/password/authorization become ``***REDACTED***``; inside
    strings, secret values (see :func:`secret_values`), URL userinfo and ``key=value`` forms are replaced.
    """
    obj = _to_plain(obj)
    values = secret_values(obj, env_vars)

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: (REDACTED if is_secret_key(k) and v not in (None, "") else walk(v)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(walk(v) for v in x)
        if isinstance(x, str):
            return redact_text(x, values)
        return x

    return walk(obj)


def scrub_values(obj: Any) -> Any:
    """A copy of ``obj`` with secret values replaced inside every string (keys untouched): for prediction rows."""
    values = secret_values()
    if not values:
        return obj

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(walk(v) for v in x)
        return scrub(x, values) if isinstance(x, str) else x

    return walk(obj)


class RedactingFilter(logging.Filter):
    """Rewrites each log record's message, traceback and stack text without secrets; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logging's problem, not ours
            return True
        clean = redact_text(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


LOG_FILTER = RedactingFilter()
_factory_installed = False


def install_log_redaction() -> None:
    """Redact every log record of this process: a record factory (survives logging reconfiguration, e.g.
    Hydra's per-job ``dictConfig``) plus the filter on every handler of the root logger (Hydra's ``app.log``)."""
    global _factory_installed
    with _lock:
        if not _factory_installed:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                LOG_FILTER.filter(record)
                return record

            logging.setLogRecordFactory(factory)
            _factory_installed = True
    for handler in logging.getLogger().handlers:
        if LOG_FILTER not in handler.filters:
            handler.addFilter(LOG_FILTER)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def redact_yaml_file(path: str | Path) -> bool:
    """Rewrite a YAML file Hydra wrote (``.hydra/*.yaml``, ``multirun.yaml``) without secrets; True if changed.

    Loaded and dumped with OmegaConf without resolving, so interpolations stay as written.
    """
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        clean = redact(data)
        new = text if clean == data else OmegaConf.to_yaml(OmegaConf.create(clean))
    except Exception:  # noqa: BLE001 - not loadable as YAML: fall back to text (value and key=value forms)
        new = redact_text(text)
    if new != text:
        _write_atomic(path, new)
        return True
    return False
