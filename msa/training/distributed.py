"""One training run over several processes: ``torchrun --nproc-per-node N train.py ...``.

What the loop needs from `torch.distributed`, in one place: the process group torchrun describes
(`start`, `stop`), this process's place (`World`: rank, collectives that do nothing in one
process), each rank's share of a global batch, a gather that carries gradients (`gather_rows`) and
the DDP copy of the model the main step runs through (`Replicas`).

How N processes give one process's result
-----------------------------------------
- ``--batch-size`` stays the global batch. Every rank draws the same batches (seeded shuffle and
  length grouping), collates the whole global batch and draws its modality dropout from the same
  generator, then runs the model on its own contiguous rows (`World.share`: sizes differ by at
  most one; a rank with none runs the batch's first row and contributes nothing).
- Every loss is computed whole, on every rank, from the gathered batch: the score and the
  utterance vectors are gathered with gradients, and the task MAE, CMD (moments over the batch),
  the MI bound (standardised over the batch, its entropy memory fed the whole batch in order) and
  the estimator's loss run on them exactly as in one process. No loss is rescaled by hand:

      every rank's loss is the same L; the gather's backward sums each row's gradient over the
      N ranks (N dL/dx_i) and hands a rank its own rows; DDP averages the parameter gradients:
      1/N sum_r sum_{i in rows(r)} N dL/dx_i dx_i/dtheta = dL/dtheta, one process's gradient,

  for any split of the batch. For the task MAE this is the usual weighting of each rank's mean by
  its share (rank r's term is N n_r / n times the mean over its n_r labelled rows).
- q, the MI estimator, is not DDP's (DDP ignores its weights: the main stage only reads q, and
  `estimator_step` trains it with its own optimiser): every rank fits it on the same gathered,
  detached batch, and rank 0's gradient is broadcast so that the copies cannot drift apart
  through a nondeterministic kernel.
- Validation and test: each rank scores every N-th batch of the one-process batching and the
  scores are summed over the ranks, so each batch is scored as one process scores it; every rank
  then takes rank 0's metrics, so all agree on the best epoch and on stopping.
- Files: rank 0 alone writes checkpoints, logs and results, and fills ``--text-cache-dir`` before
  the others open it read-only (they hold its states in memory, as rank 0 does; a text missing
  from it, as on a second machine without the folder, is computed in memory, never written).
- What does not match: dropout. Each rank draws the masks of its own rows from its own stream
  (seeded by seed, epoch and rank, so a resumed run repeats them); one process draws the whole
  batch's masks from one stream. With ``--dropout 0`` (and an encoder without dropout) N processes
  follow one process's run to rounding; with dropout they take the same expected step with other
  masks. Rounding differs (each rank sums its rows' gradients before DDP adds the ranks): in
  float64 a few steps agree to 1e-10, in float32 a small model's two epochs to a few 1e-6, unless
  a ReLU's input lies within rounding of 0 and falls on either side (tests/test_distributed.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from ..data import Batch
from ..model.network import ModelOutput, SentimentModel


@dataclass(frozen=True)
class World:
    """This process's place among the training processes. One process is rank 0 of 1, and every
    collective below is then the identity (no process group is needed)."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"  # where collectives run: NCCL needs CUDA tensors

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and results, and prints; the others write nothing."""
        return self.rank == 0

    def counts(self, n: int) -> list[int]:
        """Rows of a global batch of ``n`` per rank: contiguous, in rank order, sizes within one."""
        base, extra = divmod(n, self.size)
        return [base + (r < extra) for r in range(self.size)]

    def share(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n`` (empty when ``n`` < the number of ranks)."""
        counts = self.counts(n)
        start = sum(counts[: self.rank])
        return slice(start, start + counts[self.rank])

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on rank 0, then on the others: rank 0 fills a cache they then read."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum over the ranks (float64): scores each rank filled for its batches."""
        if self.size == 1:
            return values
        total = torch.from_numpy(np.array(values, dtype=np.float64)).to(self.device)
        dist.all_reduce(total)
        return total.cpu().numpy()

    def broadcast_floats(self, values: dict[str, float]) -> dict[str, float]:
        """Rank 0's values on every rank (the same keys, in the same order, on each)."""
        if self.size == 1:
            return values
        t = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return dict(zip(values, t.tolist()))

    def broadcast_gradients(self, params: Sequence[nn.Parameter]) -> None:
        """Replace every rank's gradients of ``params`` by rank 0's (one flat broadcast)."""
        grads = [p.grad for p in params if p.grad is not None]
        if self.size == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.broadcast(flat, src=0)
        for g, new in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(new.view_as(g))


SINGLE = World()


def current() -> World:
    """The running process group's `World`, or `SINGLE` when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    return World(dist.get_rank(), dist.get_world_size(), device)


def start(device: str = "cpu") -> tuple[World, str]:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1; ``MASTER_ADDR`` etc.), or do
    nothing in one process. Returns this process's `World` and the device it trains on: gloo on
    the CPU, NCCL on ``cuda:LOCAL_RANK`` when ``device`` is a GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return SINGLE, device
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed: run one process")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        found = torch.cuda.device_count()
        if not found:
            raise ValueError("--device cuda but this machine has no GPU: train on the CPU (--device cpu)")
        if local >= found:
            raise ValueError(
                f"process {local} on this machine has no GPU of its own ({found} found): run at most {found} "
                "processes per machine (--nproc-per-node)"
            )
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=torch.device(device))
    elif device == "cpu":
        dist.init_process_group("gloo")
    else:
        raise ValueError(f"several processes train on 'cpu' or 'cuda', not {device!r}")
    return current(), device


def stop() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _GatherRows(torch.autograd.Function):
    """Every rank's rows in rank order. Backward: each rank computed its own loss of the whole,
    so a row's gradient is the sum over the ranks (all-reduced), and a rank keeps its own rows."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, counts: list[int], rank: int) -> torch.Tensor:  # type: ignore[override]
        ctx.rows, ctx.start, ctx.count = x.shape[0], sum(counts[:rank]), counts[rank]
        padded = x.new_zeros((max(counts), *x.shape[1:]))  # all_gather wants equal shapes
        padded[: ctx.count] = x[: ctx.count]
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, counts)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        out = total.new_zeros((ctx.rows, *total.shape[1:]))
        out[: ctx.count] = total[ctx.start : ctx.start + ctx.count]
        return out, None, None


def gather_rows(x: torch.Tensor, counts: list[int], world: World) -> torch.Tensor:
    """The global batch's rows of ``x`` (this rank's first ``counts[rank]`` rows, the others'
    after and before them), with gradients flowing back to each rank's own rows."""
    if world.size == 1:
        return x
    return _GatherRows.apply(x, counts, world.rank)


def take_rows(batch: Batch, rows: slice) -> Batch:
    """The samples ``rows`` of ``batch``, padded as the whole batch is."""
    return Batch(**{k: v[rows] for k, v in vars(batch).items()})


class _Objective(nn.Module):
    """What DDP wraps: the model's forward, then a loss of its output. DDP expects a gradient for
    every parameter reachable from what forward returns; returning the loss makes those exactly
    the parameters the loss reaches (the voice's utterance projection only when CMD or the MI
    bound reads it, as in one process, where the others keep no gradient)."""

    def __init__(self, model: SentimentModel):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, objective: Callable[[ModelOutput], Any]) -> Any:
        return objective(self.model(batch))


class Replicas:
    """This rank's copy of ``model`` in a run of several processes: its rows of a global batch,
    the gather of the whole batch's outputs, and ``net``, the DDP wrapper the main step runs
    through (``net(rows, objective)`` returns ``objective(model(rows))``)."""

    def __init__(self, model: SentimentModel, world: World):
        if world.size < 2:
            raise ValueError("Replicas need a process group of two or more ranks")
        self.world = world
        wrapper = _Objective(model)
        estimator = {id(p) for p in model.estimator_parameters()}
        ignored = [name for name, p in wrapper.named_parameters() if id(p) in estimator]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(wrapper, ignored)
        device = next(model.parameters()).device
        self.net = DistributedDataParallel(
            wrapper,
            device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False,  # the only buffers are the entropy's fixed projections
            find_unused_parameters=True,  # a batch without two voices leaves its projection unused
        )

    def rows(self, batch: Batch) -> Batch:
        """This rank's rows of the global ``batch``; its first row when the share is empty (run
        so that every rank takes part in the step, and left out of the gather)."""
        rows = self.world.share(len(batch))
        return take_rows(batch, rows if rows.stop > rows.start else slice(0, 1))

    def gather(self, local: ModelOutput, batch: Batch) -> ModelOutput:
        """The whole ``batch``'s output from each rank's rows: what the losses read (the score,
        the utterance vectors, the present-mask), with gradients; no gates or pooled vectors."""
        counts = self.world.counts(len(batch))
        return ModelOutput(
            score=gather_rows(local.score, counts, self.world),
            utterances={m: gather_rows(v, counts, self.world) for m, v in local.utterances.items()},
            gates={},
            text_mask=batch.text_mask,
            present=batch.present,
            pooled={},
        )

    def seed_dropout(self, seed: int, epoch: int) -> None:
        """Seed this rank's dropout masks for ``epoch``: other masks on each rank, and the same
        ones again when a run resumes at that epoch (the saved RNG state is rank 0's only)."""
        torch.manual_seed(int(np.random.SeedSequence([seed, epoch, self.world.rank]).generate_state(1)[0]))


__all__ = ["SINGLE", "Replicas", "World", "current", "gather_rows", "start", "stop", "take_rows"]
