"""Map one per-item function over many items, on worker processes here or on a Ray cluster.

The function is a *work*: a picklable recipe (``factory``) whose ``build()`` loads what the work
needs once per worker (Whisper, the face landmarker, a checkpoint) and returns a callable that
turns one item (a dict) into one row (a dict). Both engines run the same work, so a local run and
a cluster run give the same rows; only where it runs differs.

- ``local``: ``workers`` processes on this machine ("spawn": forking a process that already runs
  MediaPipe or CTranslate2 threads can hang), each with its share of the cores.
- ``ray``: a Ray Data actor pool; without ``address`` a local Ray starts by itself, with it the
  job joins that cluster. The pool is sized by what the cluster reports: an actor per GPU where
  there are GPUs, else one per ``cpus_per_worker`` CPUs with one CPU left for Ray's own tasks (a
  pool holding every CPU deadlocks: its input tasks never get one).

A work returns an error row for an item it cannot process (it never raises); an item that kills
its worker (a crash in native code) becomes an error row too, and the other items go on.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

ENGINES = ("local", "ray")
# What installs the scale engine (Ray, pyarrow): `make app` and a Space leave it out.
SCALE_INSTALL = "pip install -r requirements-scale.txt (or make setup)"
CRASHED = "the worker processing it crashed (its process died)"
ITEM_KEY = "_item"  # the item's position, carried through a Ray dataset with each row


class EngineError(RuntimeError):
    """An engine that cannot run (Ray not installed, a cluster that cannot be reached)."""


class WorkFactory(Protocol):
    """A picklable recipe for a work; ``build()`` runs once in each worker."""

    def build(self) -> Callable[[dict[str, Any]], dict[str, Any]]: ...


def error_row(item: dict[str, Any], error: str) -> dict[str, Any]:
    """The row of an item that could not be processed."""
    return {**item, "error": error}


# -- local ------------------------------------------------------------------------------------

_WORK: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # the work built in this worker
_START_ERROR: str | None = None  # why it could not be built (a checkpoint that does not load...)


def _start_worker(factory: WorkFactory, threads: int) -> None:
    global _WORK, _START_ERROR
    from .threads import set_process_threads

    set_process_threads(threads)
    try:
        _WORK = factory.build()
    except Exception as e:  # reported with the first item: the parent raises it as EngineError
        _START_ERROR = " ".join(f"{type(e).__name__}: {e}".split())


def _run_one(item: dict[str, Any]) -> dict[str, Any]:
    if _WORK is None:
        raise EngineError(f"a worker could not start: {_START_ERROR}")
    return _WORK(item)


def map_local(factory: WorkFactory, items: Sequence[dict[str, Any]], workers: int = 1) -> Iterator[dict[str, Any]]:
    """Rows of ``items`` in the order they finish, from ``workers`` processes on this machine.

    At most ``workers`` items are in flight, so when a worker dies the suspects are known: each
    is tried again, and one that brings its pool down a second time is run alone; dying alone,
    it gets an error row.
    """
    workers = max(1, workers)
    threads = max(1, (os.cpu_count() or 2) // workers)
    todo = list(range(len(items)))[::-1]  # a stack: pop() takes the next item in order
    attempts = [0] * len(items)
    alone: list[int] = []  # suspects of two crashes, to be run one at a time
    ctx = mp.get_context("spawn")

    # Workers read these as they start: each gets its share of the cores, and an idle OpenMP
    # thread sleeps instead of spinning (two spinning pools on 2 cores ran 5x slower than one).
    env = {"OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}

    def pool(n: int) -> ProcessPoolExecutor:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return ProcessPoolExecutor(n, mp_context=ctx, initializer=_start_worker, initargs=(factory, threads))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    while todo or alone:
        solo = not todo
        queue = [alone.pop()] if solo else todo
        executor = pool(1 if solo else workers)
        running: dict[Future[dict[str, Any]], int] = {}
        try:
            while queue or running:
                while queue and len(running) < (1 if solo else workers):
                    i = queue.pop()
                    running[executor.submit(_run_one, items[i])] = i
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    row = f.result()  # BrokenProcessPool here: the pool died under the running items
                    del running[f]
                    yield row
        except BrokenProcessPool:
            for i in [*running.values()]:
                attempts[i] += 1
                if solo or attempts[i] >= 3:
                    yield error_row(items[i], CRASHED)
                elif attempts[i] == 2:
                    alone.append(i)
                else:
                    todo.append(i)
            if solo:
                queue.clear()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


# -- ray --------------------------------------------------------------------------------------


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with one line, on a ``host:port`` (or ``ray://host:port``) that nothing
    answers: Ray itself retries an unreachable cluster for minutes."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and the like: Ray resolves them
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise EngineError(
            f"cannot reach a Ray cluster at {address} ({e.strerror or e}); is `ray start --head` running there?"
        ) from e


def connect_ray(address: str | None) -> dict[str, float]:
    """Join the Ray cluster at ``address`` (None: start a local one) and return its resources."""
    try:
        import ray
    except ImportError as e:  # the app's install leaves the scale engine out
        raise EngineError(f"the ray engine needs Ray, which this install left out: {SCALE_INSTALL}") from e
    if not ray.is_initialized():
        if address:
            _check_reachable(address)
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                ignore_reinit_error=True,
            )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            where = f"a Ray cluster at {address}" if address else "a local Ray"
            raise EngineError(f"cannot start or reach {where}: {' '.join(str(e).split())[:300]}") from e
    return dict(ray.cluster_resources())


def pool_size(resources: dict[str, float], cpus_per_worker: float, workers: int | None = None) -> tuple[int, float]:
    """(actors, GPUs per actor): an actor per GPU, else one per ``cpus_per_worker`` CPUs less
    one CPU for Ray's own tasks; at most ``workers`` when given."""
    gpus = int(resources.get("GPU", 0))
    if gpus >= 1:
        size, per_gpu = gpus, 1.0
    else:
        cpus = resources.get("CPU", 1.0)
        size, per_gpu = max(1, int((cpus - 1) // cpus_per_worker)), 0.0
    return (min(size, workers) if workers else size), per_gpu


class _RayWork:
    """A Ray Data actor: builds the work once, then maps one-row batches through it."""

    def __init__(self, factory: WorkFactory):
        self.work = factory.build()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = []
        for i, text in zip(batch[ITEM_KEY], batch["item"]):
            row = self.work(json.loads(text))
            rows.append(json.dumps({**row, ITEM_KEY: int(i)}, allow_nan=True))
        return {"row": rows}


def map_ray(
    factory: WorkFactory,
    items: Sequence[dict[str, Any]],
    address: str | None = None,
    cpus_per_worker: float = 1.0,
    workers: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of ``items`` in the order they finish, from a Ray Data actor pool (`pool_size`).

    Items travel as JSON (one per block, so a crash loses only its own); an item whose worker
    died is not retried on another (it would kill that one too) and gets an error row.
    """
    resources = connect_ray(address)
    import ray.data

    size, gpus = pool_size(resources, cpus_per_worker, workers)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.max_errored_blocks = -1  # a crashed item's block is dropped, the rest go on
    ds = ray.data.from_items(
        [{ITEM_KEY: i, "item": json.dumps(item)} for i, item in enumerate(items)],
        override_num_blocks=max(1, len(items)),
    )
    with warnings.catch_warnings():  # Ray's deprecation notices are not the user's business
        warnings.simplefilter("ignore")
        rows = ds.map_batches(
            _RayWork,
            fn_constructor_args=(factory,),
            batch_size=1,
            # One item at a time per actor: an item queued behind a crashing one would die with it.
            compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1),
            num_cpus=cpus_per_worker,
            num_gpus=gpus,
            max_restarts=-1,  # a dead actor is replaced...
            max_task_retries=0,  # ...but its item is not handed to the replacement
        )
    seen = set()
    for record in rows.iter_rows():
        row = json.loads(record["row"])
        seen.add(row.pop(ITEM_KEY))
        yield row
    for i, item in enumerate(items):
        if i not in seen:
            yield error_row(item, CRASHED)


def add_engine_arguments(p: Any) -> None:
    """``--engine``, ``--address`` and ``--workers`` on an argparse parser (the batch commands, train.py)."""
    g = p.add_argument_group("where it runs")
    g.add_argument("--engine", choices=ENGINES, default="local", help="worker processes here, or a Ray cluster")
    g.add_argument("--address", default=None, help="a Ray cluster to join (default: start a local Ray)")
    g.add_argument(
        "--workers", type=int, default=1, help="local: worker processes (default 1); ray: at most this many actors"
    )
    g.add_argument(
        "--cpus-per-worker", type=float, default=1.0, help="ray: CPUs each actor reserves (default 1; its threads)"
    )


def map_items(
    factory: WorkFactory,
    items: Sequence[dict[str, Any]],
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    cpus_per_worker: float = 1.0,
) -> Iterator[dict[str, Any]]:
    """`map_local` or `map_ray` by ``engine``; ``workers`` is the local engine's process count
    and the Ray pool's upper bound."""
    if engine == "local":
        if address:
            raise EngineError("--address names a Ray cluster: use it with --engine ray")
        return map_local(factory, items, workers)
    if engine == "ray":
        return map_ray(factory, items, address, cpus_per_worker, workers if workers > 1 else None)
    raise EngineError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


__all__ = [
    "add_engine_arguments",
    "CRASHED",
    "ENGINES",
    "EngineError",
    "WorkFactory",
    "connect_ray",
    "error_row",
    "map_items",
    "pool_size",
]
