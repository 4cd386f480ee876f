"""Flower simulation vs the same FedAvg rounds run sequentially in one process, without Flower.

    python -m benchmarks.bench_federation [--rounds 3] [--local-steps 10] [--out bench_federation.json]

Both arms use the same data (bundled sample, one client per domain), tiny model, LoRA settings, local
training and evaluation code; each runs in a child process whose process tree (Ray workers included) is
sampled for RSS. Prints wall time, the simulation/sequential ratio and peak tree RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prepare_spec(run_dir: Path, rounds: int, local_steps: int):
    from hydra import compose, initialize_config_dir

    from federation.run import prepare
    from qualbench.config import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=[
            "experiment=federated", "task=federated", f"federation.num_rounds={rounds}",
            f"federation.local_steps={local_steps}", "federation.plots=false", "federation.ray_num_cpus=2"])
    return prepare(cfg, run_dir)


def sequential_fedavg(spec) -> list[float]:
    """FedAvg by hand: the clients' local training and evaluation one after another, no Flower/Ray; the same
    functions the ClientApp calls (training_examples, train_local, predict) on the same loaded model."""
    from federation.partition import load_client
    from federation.train import (
        compact, eval_model, get_adapter, initial_adapter, load_peft, predict, round_metrics, set_adapter,
        train_local, training_examples,
    )

    f = spec.fed
    model, tok = load_peft(spec.base_model, spec.lora, f.seed)
    hf = eval_model(model, tok, name="sequential", max_new_tokens=f.eval_max_new_tokens, batch_size=f.eval_batch_size)
    state = initial_adapter(spec.base_model, spec.lora, f.seed)
    clients = [load_client(spec.clients_dir, i) for i in range(spec.num_clients)]

    def eval_all(st):
        set_adapter(model, st)
        rows = {split: [] for split in ("val", "test")}
        for c in clients:
            for split in rows:
                rows[split] += compact(predict(hf, c.split(split), spec.prompt, client=c.cid,
                                               loss_batch_size=f.eval_batch_size))
        return round_metrics(rows, seed=f.seed)

    eval_all(state)
    losses = []
    for rnd in range(1, f.num_rounds + 1):
        updates, weights, round_loss = [], [], 0.0
        for c in clients:
            set_adapter(model, state)
            examples, _ = training_examples(hf, c.train, spec.prompt, f.max_length)
            stats = train_local(model, tok, examples, steps=f.local_steps, epochs=f.local_epochs, lr=f.lr,
                                batch_size=f.batch_size, grad_accum=f.grad_accum, mu=f.mu,
                                seed=f.seed * 1000 + rnd * 100 + c.cid)
            updates.append(get_adapter(model))
            weights.append(stats.num_examples)
            round_loss += stats.mean_loss * stats.num_examples
        total = sum(weights)
        state = {k: sum(u[k] * (w / total) for u, w in zip(updates, weights)) for k in state}
        losses.append(round_loss / total)
        eval_all(state)
    return losses


def worker(arm: str, run_dir: Path, rounds: int, local_steps: int) -> None:
    spec = prepare_spec(run_dir, rounds, local_steps)
    t0 = time.perf_counter()
    if arm == "flower":
        from federation.run import simulate

        hist = simulate(spec)
        losses = [r["train_loss"] for r in hist["rounds"] if r["round"] > 0]
    else:
        losses = sequential_fedavg(spec)
    print(json.dumps({"arm": arm, "wall_s": time.perf_counter() - t0, "train_loss": losses}))


def measure(arm: str, rounds: int, local_steps: int) -> dict:
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / arm
        # prepare once outside the timed child so both arms start with model and partition on disk
        prepare_spec(run_dir, rounds, local_steps)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_federation", "--worker", arm, "--run-dir",
                                 str(run_dir), "--rounds", str(rounds), "--local-steps", str(local_steps)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)
        out = proc.stdout.read()
        if proc.returncode != 0:
            raise SystemExit(f"{arm} arm failed ({proc.returncode})")
        result = json.loads(out.strip().splitlines()[-1])
        result.update(process_s=time.perf_counter() - t0, peak_rss_gib=peak / 2**30)
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--local-steps", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", choices=["flower", "sequential"], help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.run_dir, a.rounds, a.local_steps)
    seq = measure("sequential", a.rounds, a.local_steps)
    fl = measure("flower", a.rounds, a.local_steps)
    report = {"rounds": a.rounds, "local_steps": a.local_steps, "sequential": seq, "flower": fl,
              "wall_ratio_flower_over_sequential": fl["wall_s"] / seq["wall_s"],
              "process_ratio_flower_over_sequential": fl["process_s"] / seq["process_s"]}
    print(json.dumps(report, indent=2))
    if a.out:
        a.out.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
