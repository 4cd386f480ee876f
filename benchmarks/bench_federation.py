"""Flower simulation vs the same FedAvg rounds run sequentially in one process, without Flower.

    python -m benchmarks.bench_federation [--rounds N] [--local-steps N] [--cpus 2] [--seq-threads 1]
                                          [--repeat 3] [--out bench_federation.json]

The default is the default federated run (``experiment=federated``: its rounds and local steps, from
``federation.config.FederationConfig``); ``--rounds``/``--local-steps`` change them.

Both arms use the same data (bundled sample, one client per domain), tiny model, LoRA settings, local
training and evaluation code; each runs in a child process whose process tree (Ray workers included) is
sampled for RSS and CPU seconds. The simulation gets ``--cpus`` CPUs (``federation.ray_num_cpus``: on 2 CPUs,
two client actors with one torch thread each); the sequential arm runs ``--seq-threads`` torch threads (1 by
default: the tiny model gains nothing from intra-op threads, and torch's default of one per core runs it
several times slower on a loaded small machine; 0 = torch's default). With ``--repeat N`` the arms alternate
N times (3 by default). Prints each run's wall time, CPU seconds and peak tree RSS, and the simulation/sequential ratio of
the min and median wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prepare_spec(run_dir: Path, rounds: int, local_steps: int, cpus: int):
    from hydra import compose, initialize_config_dir

    from federation.run import prepare
    from qualbench.config import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=[
            "experiment=federated", "task=federated", f"federation.num_rounds={rounds}",
            f"federation.local_steps={local_steps}", "federation.plots=false", f"federation.ray_num_cpus={cpus}"])
    return prepare(cfg, run_dir)


def sequential_fedavg(spec) -> list[float]:
    """FedAvg by hand: the clients' local training and evaluation one after another, no Flower/Ray; the same
    functions the ClientApp calls (training_examples, train_local, predict) on the same loaded model."""
    from federation.partition import load_client
    from federation.rows import compact, round_metrics
    from federation.train import (
        eval_model, get_adapter, initial_adapter, load_peft, predict, set_adapter, train_local, training_examples,
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


def worker(arm: str, run_dir: Path, rounds: int, local_steps: int, cpus: int, seq_threads: int) -> None:
    spec = prepare_spec(run_dir, rounds, local_steps, cpus)
    t0 = time.perf_counter()
    if arm == "sequential" and seq_threads:
        import torch

        torch.set_num_threads(seq_threads)
    if arm == "flower":
        from federation.run import simulate

        hist = simulate(spec)
        losses = [r["train_loss"] for r in hist["rounds"] if r["round"] > 0]
    else:
        losses = sequential_fedavg(spec)
    print(json.dumps({"arm": arm, "wall_s": time.perf_counter() - t0, "train_loss": losses}))


def measure(arm: str, rounds: int, local_steps: int, cpus: int, seq_threads: int) -> dict:
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / arm
        # prepare once outside the timed child so both arms start with model and partition on disk
        prepare_spec(run_dir, rounds, local_steps, cpus)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_federation", "--worker", arm, "--run-dir", str(run_dir),
                                 "--rounds", str(rounds), "--local-steps", str(local_steps), "--cpus", str(cpus),
                                 "--seq-threads", str(seq_threads)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0
        cpu: dict[int, float] = {}  # pid -> user+system seconds, last seen (processes that exit keep their last)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            peak = max(peak, rss)
            time.sleep(0.2)
        out = proc.stdout.read()
        if proc.returncode != 0:
            raise SystemExit(f"{arm} arm failed ({proc.returncode})")
        result = json.loads(out.strip().splitlines()[-1])
        result.update(process_s=time.perf_counter() - t0, cpu_s=sum(cpu.values()), peak_rss_gib=peak / 2**30)
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from federation.config import FederationConfig

    default = FederationConfig()
    ap.add_argument("--rounds", type=int, default=default.num_rounds, help="default: the default run's")
    ap.add_argument("--local-steps", type=int, default=default.local_steps, help="default: the default run's")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the simulation (federation.ray_num_cpus)")
    ap.add_argument("--seq-threads", type=int, default=1, help="torch threads of the sequential arm (0 = torch's default)")
    ap.add_argument("--repeat", type=int, default=3, help="alternate the arms this many times")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", choices=["flower", "sequential"], help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.run_dir, a.rounds, a.local_steps, a.cpus, a.seq_threads)
    runs: dict[str, list[dict]] = {"sequential": [], "flower": []}
    for _ in range(a.repeat):
        for arm in runs:
            runs[arm].append(measure(arm, a.rounds, a.local_steps, a.cpus, a.seq_threads))
    wall = {arm: [r["wall_s"] for r in rs] for arm, rs in runs.items()}
    report = {"rounds": a.rounds, "local_steps": a.local_steps, "cpus": a.cpus, "seq_threads": a.seq_threads, **runs,
              "wall_ratio_flower_over_sequential": {
                  "min": min(wall["flower"]) / min(wall["sequential"]),
                  "median": statistics.median(wall["flower"]) / statistics.median(wall["sequential"])}}
    print(json.dumps(report, indent=2))
    if a.out:
        a.out.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
