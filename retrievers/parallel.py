"""Index builds across cores: forked worker processes for pure-Python work (tokenising, n-gram counting) and
threads for native work that releases the GIL (sparse products). Results never depend on the number of workers."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from qualbench.errors import QualBenchError

PARALLEL_MIN = 1_000  # texts: below this, forking workers costs more than it saves (break-even ~300 law articles on 2 cores)


class WorkerDied(QualBenchError):
    """A forked worker of an index build was killed (out of memory, a signal); nothing was cached."""


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers(workers: int | None = None) -> int:
    """``workers`` if given, else one per usable core (at most 8)."""
    return min(8, usable_cores()) if workers is None else max(1, int(workers))


def single_threaded() -> bool:
    """True when no non-daemon Python thread runs besides the main one. A forked worker only runs pure functions
    on data it inherits, which take no lock a daemon helper such as tqdm's monitor could hold; native BLAS threads
    hold no Python lock either."""
    import threading

    return all(t is threading.main_thread() or t.daemon for t in threading.enumerate())


def can_fork(n_items: int, workers: int) -> bool:
    """Whether ``n_items`` texts are worth (and safe) splitting over ``workers`` forked processes."""
    return workers >= 2 and n_items >= PARALLEL_MIN and single_threaded()


def fork_map(fn: Callable[[Any], Any], parts: Sequence[Any], workers: int) -> list[Any]:
    """``[fn(p) for p in parts]`` in order, in ``workers`` forked processes (nothing is re-imported; ``fn`` must
    be picklable by name). A fork-context pool forks all its processes before it starts its manager thread."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if len(parts) < 2 or workers < 2:
        return [fn(p) for p in parts]
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(parts)),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(fn, parts))
    except BrokenProcessPool:
        raise WorkerDied(f"a worker process of the index build ({getattr(fn, '__name__', fn)}, {len(parts)} parts on "
                         f"{workers} processes) was killed, perhaps for memory; nothing was cached. Give it more "
                         f"memory or fewer cores (e.g. taskset -c 0 qualbench ...) and run again") from None


def split(items: Sequence[Any], n_parts: int) -> list[list[Any]]:
    """``items`` in at most ``n_parts`` contiguous, nearly equal parts."""
    size = max(1, -(-len(items) // max(1, n_parts)))
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
