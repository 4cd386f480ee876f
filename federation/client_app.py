"""Flower ClientApp: local LoRA fine-tuning on the client's train split; evaluation on its val/test splits.

Only the adapter (LoRA) weights travel to and from training: the base model is loaded locally from
``spec.base_model``. A round-0 evaluation message carries no weights: the client evaluates the seeded initial
adapter it builds itself and sends it back with its peft config and parameter counts (the server loads no
model). torch and the model stack are imported on the first message, not with this module (the simulation's
driver builds the ClientApp object without them). Evaluation runs the ``qualbench`` path (``HFModel.generate`` → ``to_prediction``) and
replies with one compact row per item (:data:`federation.rows.ROW_FIELDS`: gold and predicted answer,
domain, type, answer-token loss; no question text) so the server scores all clients together with
``compute_metrics``.
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federation.partition import ClientData, load_client
from federation.resources import actor_threads
from federation.rows import compact
from federation.spec import RunSpec, load_spec

log = logging.getLogger(__name__)


class DeliberateClientFailure(RuntimeError):
    """Raised by clients listed in ``federation.fail_clients`` (robustness tests)."""


@lru_cache(maxsize=4)
def _spec(path: str) -> RunSpec:
    return load_spec(path)


@lru_cache(maxsize=16)
def _client(clients_dir: str, cid: int) -> ClientData:
    return load_client(clients_dir, cid)


def client_id(context: Context) -> int:
    """The client's partition id: set by the simulation engine or ``--node-config partition-id=K``."""
    return int(context.node_config["partition-id"])


def _model(spec: RunSpec, threads: int):
    """(peft model, HFModel over it) for this process, running ``threads`` torch threads; the base model is
    loaded once per process (``load_peft`` caches it) and each message sets its adapter weights."""
    import torch

    from federation.train import eval_model, load_peft

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    model, tok = load_peft(spec.base_model, spec.lora, spec.fed.seed)
    return model, eval_model(model, tok, name=f"client:{spec.fed.strategy}",
                             max_new_tokens=spec.fed.eval_max_new_tokens, batch_size=spec.fed.eval_batch_size)


def handle_train(msg: Message, context: Context, spec: RunSpec, threads: int) -> Message:
    from federation.train import get_adapter, set_adapter, train_local, training_examples

    cid = client_id(context)
    if cid in spec.fed.fail_clients:
        raise DeliberateClientFailure(f"client {cid}: deliberate failure (federation.fail_clients)")
    data = _client(spec.clients_dir, cid)
    model, hf = _model(spec, threads)
    set_adapter(model, msg.content["arrays"].to_torch_state_dict())
    cfg = msg.content["config"]
    server_round = int(cfg.get("server-round", 0))
    t0 = time.perf_counter()
    examples, too_long = training_examples(hf, data.train, spec.prompt, spec.fed.max_length)
    stats = train_local(
        model, hf.tokenizer, examples,
        steps=spec.fed.local_steps, epochs=spec.fed.local_epochs, lr=float(cfg.get("lr", spec.fed.lr)),
        batch_size=spec.fed.batch_size, grad_accum=spec.fed.grad_accum,
        mu=float(cfg.get("proximal-mu", spec.fed.mu)), seed=spec.fed.seed * 1000 + server_round * 100 + cid,
    )
    metrics = MetricRecord({
        "num-examples": stats.num_examples,
        "client-id": cid,
        "train_loss": stats.mean_loss,
        "train_loss_first": stats.losses[0] if stats.losses else float("nan"),
        "train_loss_last": stats.losses[-1] if stats.losses else float("nan"),
        "steps": len(stats.losses),
        "n_too_long": too_long,
        "train_s": time.perf_counter() - t0,
    })
    return Message(RecordDict({"arrays": ArrayRecord(get_adapter(model)), "metrics": metrics}), reply_to=msg)


def handle_evaluate(msg: Message, context: Context, spec: RunSpec, threads: int) -> Message:
    """Rows of the val and test splits under the sent adapter; with none sent (round 0), under the initial
    adapter, which the reply then carries (weights, peft config, base-model parameter counts)."""
    from federation.train import adapter_config_json, initial_adapter, predict, set_adapter

    cid = client_id(context)
    data = _client(spec.clients_dir, cid)
    model, hf = _model(spec, threads)
    sent = msg.content["arrays"]
    state = sent.to_torch_state_dict() if len(sent) else initial_adapter(spec.base_model, spec.lora, spec.fed.seed)
    set_adapter(model, state)
    rows = {split: compact(predict(hf, data.split(split), spec.prompt, client=cid,
                                   loss_batch_size=spec.fed.eval_batch_size)) for split in ("val", "test")}
    reply = {"metrics": MetricRecord({"num-examples": len(data.test), "client-id": cid}),
             "rows": ConfigRecord({s: json.dumps(r, ensure_ascii=False) for s, r in rows.items()})}
    if not len(sent):
        frozen = [p for p in model.parameters() if not p.requires_grad]  # the base model (LoRA is trainable)
        reply["metrics"]["base-params"] = sum(p.numel() for p in frozen)
        reply["metrics"]["base-bytes"] = sum(p.numel() * p.element_size() for p in frozen)
        reply["arrays"] = ArrayRecord(state)
        reply["init"] = ConfigRecord({"adapter-config": adapter_config_json(model)})
    return Message(RecordDict(reply), reply_to=msg)


def make_client_app(spec_path: str | None = None, threads: int | None = None) -> ClientApp:
    """A ClientApp reading its run spec from ``spec_path`` (simulation) or run config ``spec-path``.

    ``threads``: torch threads per client process (the simulation's ``federation.resources.ActorPlan``);
    None (deployment engine): ``federation.num_cpus_per_client``, 1 when null.
    """
    capp = ClientApp()

    def threads_of(spec: RunSpec) -> int:
        return threads or actor_threads(spec.fed.num_cpus_per_client or 1)

    def spec_of(context: Context) -> RunSpec:
        return _spec(str(spec_path or context.run_config["spec-path"]))

    @capp.train()
    def train(msg: Message, context: Context) -> Message:
        spec = spec_of(context)
        return handle_train(msg, context, spec, threads_of(spec))

    @capp.evaluate()
    def evaluate_(msg: Message, context: Context) -> Message:
        spec = spec_of(context)
        return handle_evaluate(msg, context, spec, threads_of(spec))

    @capp.query()
    def query(msg: Message, context: Context) -> Message:  # the server learns which node is which client
        return Message(RecordDict({"metrics": MetricRecord({"client-id": client_id(context)})}), reply_to=msg)

    return capp


# Deployment engine entry point (pyproject: [tool.flwr.app.components] clientapp).
app = make_client_app()
