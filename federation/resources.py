"""How a simulation uses the machine: how many client actors run at once, the CPUs each reserves, the torch
threads each runs, and the Ray instance they run on."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any

from qualbench.errors import ConfigError


@dataclass(frozen=True)
class ActorPlan:
    cpus: int  # logical CPUs Ray is started with
    actors: int  # client actors Flower's pool creates (= clients trained or evaluated at once)
    cpus_per_actor: float  # each actor's reservation (Flower's client_resources num_cpus)
    threads: int  # torch threads in each actor process


def machine_cpus() -> int:
    """CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_actors(num_clients: int, cpus: int, cpus_per_client: float | None = None) -> ActorPlan:
    """min(clients, CPUs) actors sharing ``cpus`` (or ``cpus_per_client`` each, at most one actor per client).

    Flower's pool creates ``int(Ray CPUs / cpus_per_actor)`` actors, each importing torch and loading the base
    model; Ray gets no more CPUs than the actors reserve, so no actor is created that no client needs.
    """
    if num_clients < 1 or cpus < 1:
        raise ConfigError(f"a simulation needs at least one client and one CPU (got {num_clients}, {cpus})")
    if cpus_per_client is None:
        actors = min(num_clients, cpus)
        per = math.floor(cpus / actors * 100) / 100  # rounded down: Ray's fixed-point sum stays within cpus
    else:
        per = float(cpus_per_client)
        if per <= 0 or per > cpus:
            raise ConfigError(f"federation.num_cpus_per_client={cpus_per_client}: must be in (0, {cpus}], the "
                              f"CPUs Ray may use (federation.ray_num_cpus or this machine's)")
        actors = min(num_clients, int(cpus / per))
        cpus = min(cpus, math.ceil(actors * per))
    return ActorPlan(cpus=cpus, actors=actors, cpus_per_actor=per, threads=actor_threads(per))


def actor_threads(cpus_per_actor: float) -> int:
    """torch threads for one client process: its CPU reservation, at least 1.

    torch's default (every core in every actor) oversubscribes a small machine when several actors run at once.
    """
    return max(1, int(cpus_per_actor))


def backend_config(plan: ActorPlan, num_gpus_per_client: float) -> dict[str, Any]:
    """Flower's ``backend_config`` for ``plan`` (Ray itself is started by :func:`start_ray`)."""
    return {"client_resources": {"num_cpus": plan.cpus_per_actor, "num_gpus": num_gpus_per_client}}


def start_ray(plan: ActorPlan) -> None:
    """Start Ray with ``plan.cpus`` CPUs before Flower does (unless it runs already), without a ``runtime_env``.

    Flower's own ``ray.init`` passes ``runtime_env={"env_vars": {"PYTHONPATH": ...}}``, which makes Ray start
    fresh worker processes for the actors instead of the ones it prestarted (about 2 s more per run). Here the
    workers get this process's ``sys.path`` through the PYTHONPATH they inherit from the Ray processes started
    now; Flower sees Ray running and uses it (and shuts it down when the simulation ends).
    """
    import ray

    if ray.is_initialized():  # started by the caller: used as it is
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
        [p for p in sys.path if p] + (before.split(os.pathsep) if before else [])))
    try:
        ray.init(num_cpus=plan.cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=True)
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def shutdown_ray() -> None:
    """Stop Ray if it still runs (Flower stops it after a simulation, but not when it fails before starting one)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
