"""How many torch threads each piece of work gets.

torch's thread count is a per-thread setting, with a catch: a thread that runs its first torch
operation takes the count last set by any thread. So a request thread that starts while a
training run holds `one_thread` would keep one thread for good. Work that wants the process's
count (a prediction) asks for it with `process_torch_threads`, which repairs such a thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_process_threads = torch.get_num_threads()


def set_process_threads(n: int) -> None:
    """The process's torch thread count (a worker's share of the cores, ``--num-threads``), set
    here and remembered for `process_torch_threads`."""
    global _process_threads
    torch.set_num_threads(n)
    _process_threads = n


def process_threads() -> int:
    """The torch thread count the process was given (torch's default: the cores)."""
    return _process_threads


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads here (a per-thread setting), restored after. Nothing is set when
    the thread already has ``n``: setting it is what other threads' first operations inherit."""
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread here: the Fusion Lab's and the fine-tuning's models are so small
    that a second thread only adds contention (a lab epoch 0.6 s on one, 2.5 s on two; a
    fine-tuning of 20 clips 41 s on one, 59 s on two, measured on 2 cores), and on a shared
    machine the other core stays free for everyone else. The setting is per calling thread, so
    the app's other requests keep theirs."""
    with torch_threads(1):
        yield


@contextlib.contextmanager
def process_torch_threads() -> Iterator[None]:
    """Run torch here on the process's thread count, whatever this thread inherited."""
    with torch_threads(_process_threads):
        yield


__all__ = ["one_thread", "process_threads", "process_torch_threads", "set_process_threads", "torch_threads"]
