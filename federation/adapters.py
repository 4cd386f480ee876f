"""The global adapter on disk, in peft's ``save_pretrained`` layout (``adapter_config.json`` +
``adapter_model.safetensors``), read and written from NumPy arrays: the ServerApp keeps the adapter as a Flower
``ArrayRecord`` and never imports torch or loads the base model; ``PeftModel.from_pretrained`` loads the result."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord

from qualbench.errors import QualBenchError

ADAPTER_DIR = "global_adapter"  # in a run directory
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def to_numpy(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in arrays.items()}


def to_record(state: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in state.items()})


def same_arrays(a: ArrayRecord, b: ArrayRecord) -> bool:
    """Same keys (in any order), shapes, dtypes and values."""
    x, y = to_numpy(a), to_numpy(b)
    return x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x)


def write_adapter(directory: str | Path, arrays: ArrayRecord, config_json: str,
                  dtypes: dict[str, np.dtype] | None = None) -> Path:
    """Write ``arrays`` (cast to ``dtypes`` where given) and peft's config text into ``directory``, each file
    replaced atomically."""
    from safetensors.numpy import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.astype(dtypes[k], copy=False) if dtypes and k in dtypes else v for k, v in to_numpy(arrays).items()}
    tmp = d / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})  # "pt": what peft/transformers expect
    os.replace(tmp, d / WEIGHTS_FILE)
    tmp_cfg = d / f".{CONFIG_FILE}.tmp"
    tmp_cfg.write_text(config_json, encoding="utf-8")
    os.replace(tmp_cfg, d / CONFIG_FILE)
    return d


def read_adapter(directory: str | Path) -> tuple[ArrayRecord, str]:
    """(weights, adapter_config.json text) of a saved adapter; a missing file is named in one line."""
    from safetensors.numpy import load_file

    d = Path(directory)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (d / name).is_file():
            raise QualBenchError(f"{d / name}: no saved adapter (has the run completed a round?)")
    return to_record(load_file(str(d / WEIGHTS_FILE))), (d / CONFIG_FILE).read_text(encoding="utf-8")
