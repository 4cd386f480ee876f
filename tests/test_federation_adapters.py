"""The ServerApp keeps the global adapter as NumPy arrays and writes it in peft's layout without a model; the
clients build the initial adapter and the server checks that they agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from federation.adapters import read_adapter, same_arrays, to_numpy, write_adapter
from federation.server_app import FederationFailed, _initial_adapter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_peft(tmp_path_factory):
    from federation.train import load_peft, lora_config_dict  # torch: imported when run, not when collected
    from qualbench.models.tiny import save_tiny

    base = save_tiny(tmp_path_factory.mktemp("base"), ["答案：正确错误ABCD"], hidden_size=32, num_layers=1,
                     num_heads=2)
    lora = lora_config_dict(r=4, alpha=8)
    model, _ = load_peft(str(base), lora, seed=3)
    return base, lora, model


def test_written_adapter_is_what_peft_saves_and_loads(tiny_peft, tmp_path):
    from peft import PeftModel
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM

    from federation.train import adapter_config_json, initial_adapter, set_adapter

    base, lora, model = tiny_peft
    state = initial_adapter(str(base), lora, seed=3)
    state = {k: v + 0.5 for k, v in state.items()}  # not the init: lora_B = 0 would hide a mix-up
    ours = write_adapter(tmp_path / "ours", ArrayRecord(state), adapter_config_json(model))
    set_adapter(model, state)
    model.save_pretrained(tmp_path / "peft")
    theirs = load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))
    mine = load_file(str(ours / "adapter_model.safetensors"))
    assert list(mine) and sorted(mine) == sorted(theirs)
    assert all(np.array_equal(mine[k], theirs[k]) for k in mine)
    cfg_ours = json.loads((ours / "adapter_config.json").read_text(encoding="utf-8"))
    cfg_peft = json.loads((tmp_path / "peft" / "adapter_config.json").read_text(encoding="utf-8"))
    cfg_peft["target_modules"] = sorted(cfg_peft["target_modules"])  # peft writes a set in hash order
    assert cfg_ours == cfg_peft
    assert adapter_config_json(model) == adapter_config_json(model)  # a fixed order: clients compare it
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), ours)
    lora_params = {n: p for n, p in loaded.named_parameters() if "lora_" in n}
    assert lora_params and all(float(p.abs().min()) > 0 for p in lora_params.values())
    arrays, text = read_adapter(ours)
    assert same_arrays(arrays, ArrayRecord(state)) and text == adapter_config_json(model)


def test_written_dtypes_follow_the_reference_not_the_aggregate(tmp_path):
    agg = ArrayRecord({"w": Array(np.ones(3, dtype=np.float64))})
    write_adapter(tmp_path, agg, "{}", dtypes={"w": np.dtype(np.float32)})
    assert to_numpy(read_adapter(tmp_path)[0])["w"].dtype == np.float32


def test_missing_adapter_is_named(tmp_path):
    with pytest.raises(Exception, match="adapter_model.safetensors: no saved adapter"):
        read_adapter(tmp_path)


def _reply(cid: int, state: dict, config: str = "{}") -> SimpleNamespace:
    """A client's round-0 reply content (a Flower Message needs a running app to be made)."""
    return SimpleNamespace(content=RecordDict({
        "metrics": MetricRecord({"client-id": cid, "base-params": 100, "base-bytes": 400}),
        "arrays": ArrayRecord({k: Array(v) for k, v in state.items()}),
        "init": ConfigRecord({"adapter-config": config})}))


def test_clients_that_build_another_initial_adapter_are_named():
    a = {"x": np.zeros(4, np.float32), "y": np.ones(2, np.float32)}
    arrays, config, counts = _initial_adapter([_reply(0, a), _reply(1, dict(a)), _reply(2, dict(a))])
    assert same_arrays(arrays, ArrayRecord({k: Array(v) for k, v in a.items()})) and config == "{}"
    assert counts == {"adapter": 6, "base_model": 100, "adapter_bytes": 24, "base_model_bytes": 400}
    other = {**a, "y": np.full(2, 2.0, np.float32)}
    with pytest.raises(FederationFailed, match=r"client\(s\) 2 built a different initial adapter than client 0"):
        _initial_adapter([_reply(0, a), _reply(1, a), _reply(2, other)])
    with pytest.raises(FederationFailed, match=r"client\(s\) 1 built"):
        _initial_adapter([_reply(0, a), _reply(1, a, config='{"r": 4}')])


def test_the_simulation_driver_imports_no_torch():
    """Flower's engine and both apps import without torch/transformers/peft: only client processes load them."""
    code = ("import sys, flwr.simulation, federation.run, federation.server_app, federation.client_app; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
