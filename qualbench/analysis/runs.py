"""Find and read run directories (``metrics.json`` + ``predictions.jsonl`` + Hydra's ``.hydra/``)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from omegaconf import OmegaConf

from qualbench.errors import DataError
from qualbench.results import HISTORY, METRICS, ROUNDS, load_json, read_result, read_rounds

log = logging.getLogger(__name__)


def _load_yaml(path: Path) -> Any:
    try:
        conf = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - any YAML problem is reported with the file name
        raise DataError(f"{path}: cannot read YAML: {e}") from None
    try:
        return OmegaConf.to_container(conf, resolve=True)
    except Exception:  # noqa: BLE001 - interpolations that need the app's resolvers: keep them raw
        return OmegaConf.to_container(conf, resolve=False)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists become JSON strings."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
    return out


def parse_overrides(lines: Iterable[str]) -> dict[str, str]:
    """Hydra override strings (``+a.b=1``, ``~x``, ``prompt=cot``) → ``{key: value}`` (deletions dropped)."""
    out: dict[str, str] = {}
    for s in lines:
        s = str(s).strip()
        if not s or s.startswith("~") or "=" not in s:
            continue
        key, value = s.split("=", 1)
        out[key.lstrip("+")] = value
    return out


@dataclass
class RunInfo:
    """One evaluated run: its metrics, flattened config, command-line overrides and (lazily) predictions."""

    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)  # flattened; group choices under their group name
    overrides: dict[str, str] = field(default_factory=dict)
    label: str = ""

    @cached_property
    def predictions(self) -> list[dict[str, Any]]:
        from qualbench.predictions import read_predictions

        return read_predictions(self.path / "predictions.jsonl")

    @cached_property
    def history(self) -> list[dict[str, Any]] | None:
        """A federated run's rounds (``rounds.jsonl``, else the rounds of ``history.json``); None for other runs."""
        if (self.path / ROUNDS).exists():
            return read_rounds(self.path / ROUNDS)
        p = self.path / HISTORY
        if not p.exists():
            return None
        data = load_json(p)
        return data.get("rounds", data) if isinstance(data, dict) else data

    def value(self, key: str) -> Any:
        """A config value as the user would name it: an override, a group choice or a dotted config key."""
        if key in self.overrides:
            return self.overrides[key]
        if key in self.config:
            return self.config[key]
        for sub in ("name", "kind"):  # a group choice not recorded (no .hydra/): the option's own name
            if f"{key}.{sub}" in self.config:
                return self.config[f"{key}.{sub}"]
        return None

    def correctness(self) -> dict[str, dict[str, Any]]:
        """idx → the prediction row (last one wins if an idx repeats)."""
        return {str(r["idx"]): r for r in self.predictions}


def load_run(path: str | Path) -> RunInfo:
    """Read one run directory (must hold ``metrics.json``)."""
    path = Path(path)
    mpath = path / METRICS
    if not mpath.exists():
        raise DataError(f"{path}: not a run directory (no metrics.json)")
    metrics = read_result(mpath)
    cfg: Any = metrics.get("config")
    if not cfg:
        for cand in (path / "config.yaml", path / ".hydra" / "config.yaml"):
            if cand.exists():
                cfg = _load_yaml(cand)
                break
    flat = flatten(cfg or {})
    hydra_yaml = path / ".hydra" / "hydra.yaml"
    if hydra_yaml.exists():
        h = _load_yaml(hydra_yaml) or {}
        choices = (((h.get("hydra") or {}).get("runtime") or {}).get("choices")) or {}
        for group, choice in choices.items():
            if not str(group).startswith("hydra/") and choice is not None:
                flat[str(group)] = choice
    overrides: dict[str, str] = {}
    opath = path / ".hydra" / "overrides.yaml"
    if opath.exists():
        overrides = parse_overrides(_load_yaml(opath) or [])
    return RunInfo(path=path, metrics=metrics, config=flat, overrides=overrides)


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories under the given paths: each path itself if it holds metrics.json, else every
    directory below it that does (multirun sweep roots, study outputs). Order: as given, then sorted."""
    found: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise DataError(f"{p}: no such file or directory")
        if p.is_file():
            p = p.parent
        cands = [p] if (p / "metrics.json").exists() else []
        cands += sorted(
            (m.parent for m in p.rglob("metrics.json") if m.parent != p),
            key=lambda q: [int(s) if s.isdigit() else s for s in q.relative_to(p).parts],
        )
        for c in cands:
            if any(part.startswith(".") for part in c.relative_to(p).parts):
                continue
            r = c.resolve()
            if r not in seen:
                seen.add(r)
                found.append(c)
    return found


def load_runs(paths: Iterable[str | Path]) -> list[RunInfo]:
    dirs = find_run_dirs(paths)
    return [load_run(d) for d in dirs]


def align(runs: list[RunInfo]) -> tuple[list[str], dict[str, list[str]]]:
    """Item ids present in every run (sorted) and, per run path, the ids it lacks that others have."""
    maps = [r.correctness() for r in runs]
    all_ids: set[str] = set().union(*[set(m) for m in maps]) if maps else set()
    common = set.intersection(*[set(m) for m in maps]) if maps else set()
    missing = {str(r.path): sorted(all_ids - set(m)) for r, m in zip(runs, maps)}
    return sorted(common), {k: v for k, v in missing.items() if v}


# Settings that do not change what is measured (bootstrap resamples, batch size, Hydra's own keys and output
# dirs), and leaf keys that only say where caches live and how loud a run is (as in evaluation.settings_hash).
NOISE_PREFIXES = ("hydra", "run.", "experiment_name")
WHERE_ONLY_KEYS = ("cache_dir", "cache_mode", "rebuild", "show_progress")


def is_noise_key(key: str) -> bool:
    """True for keys that never count as a differing setting (``run.n_boot``, ``hydra.sweep.dir``,
    ``retriever.cache_dir``, ``model.show_progress`` ...)."""
    return key.startswith(NOISE_PREFIXES) or key.rsplit(".", 1)[-1] in WHERE_ONLY_KEYS


def _same(values: list[Any]) -> bool:
    return all(v == values[0] for v in values[1:])


def varying_keys(runs: list[RunInfo]) -> list[str]:
    """The config keys whose values differ across runs, as the user named them.

    Keys come from ``.hydra/overrides.yaml`` when any run has overrides (in first-seen order); when those do not
    tell the runs apart, from the flattened configs, leaving out the sub-keys of a group whose choice differs
    (``prompt`` differing hides ``prompt.system`` etc.) and Hydra's own keys.
    """
    if len(runs) < 2:
        return []
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.overrides if k not in keys]
    diff = [k for k in keys if not is_noise_key(k) and not _same([r.value(k) for r in runs])]
    if diff:
        return diff
    all_keys: list[str] = []
    seen: set[str] = set()
    for r in runs:
        for k in r.config:
            if k not in seen:
                seen.add(k)
                all_keys.append(k)
    diff = [k for k in all_keys if not is_noise_key(k) and not _same([r.config.get(k) for r in runs])]
    groups = {k for k in diff if "." not in k}
    return [k for k in diff if k.split(".", 1)[0] not in groups or "." not in k]


def assign_labels(runs: list[RunInfo]) -> list[str]:
    """Short unique labels ``key=value ...`` from the varying keys (the directory name when none vary)."""
    keys = varying_keys(runs)
    labels = []
    for r in runs:
        parts = [f"{k.rsplit('.', 1)[-1] if k.count('.') > 1 else k}={r.value(k)}" for k in keys
                 if r.value(k) is not None]
        lab = " ".join(parts) or r.path.name
        labels.append(lab)
    counts = Counter(labels)
    if any(c > 1 for c in counts.values()):  # still ambiguous: add the directory name to those
        labels = [f"{lab} [{r.path.name}]" if counts[lab] > 1 else lab for lab, r in zip(labels, runs)]
    for r, lab in zip(runs, labels):
        r.label = lab
    return labels
