"""Everything a ServerApp/ClientApp needs to know about a run, saved as ``<run>/spec.json``.

The simulation and deployment engines hand the apps only this file's path (``spec-path`` in the run config).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from federation.config import FederationConfig
from qualbench.errors import ConfigError
from qualbench.prompts.render import PromptConfig


@dataclass
class RunSpec:
    run_dir: str
    base_model: str  # HF model dir every party loads
    clients_dir: str  # client_<cid>.json files
    client_names: list[str]
    fed: FederationConfig
    prompt: PromptConfig

    @property
    def num_clients(self) -> int:
        return len(self.client_names)

    @property
    def lora(self) -> dict[str, Any]:
        from federation.train import lora_config_dict

        lo = self.fed.lora
        return lora_config_dict(lo.r, lo.alpha, lo.dropout, lo.target_modules)

    def save(self, path: str | Path) -> Path:
        d = asdict(self)
        Path(path).write_text(json.dumps(d, ensure_ascii=False, indent=2), encoding="utf-8")
        return Path(path)


def to_dataclass(cls: type, data: Any) -> Any:
    """A schema dataclass from a dict/DictConfig (interpolations resolved), type-checked by OmegaConf."""
    if OmegaConf.is_config(data):
        data = OmegaConf.to_container(data, resolve=True)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), data))


def load_spec(path: str | Path) -> RunSpec:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: federation run spec not found (set run config 'spec-path')")
    d = json.loads(p.read_text(encoding="utf-8"))
    d["fed"] = to_dataclass(FederationConfig, d["fed"])
    d["prompt"] = to_dataclass(PromptConfig, d["prompt"])
    return RunSpec(**d)
