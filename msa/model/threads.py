"""How many torch threads a small model's training gets."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads here (a per-thread setting), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
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


__all__ = ["one_thread", "torch_threads"]
