"""Training over several processes (msa/training/distributed.py, issue 27): every rank's share of
a global batch, the gathered losses' gradient against one process's, sharded evaluation, and
``torchrun --nproc-per-node 2 train.py`` against ``train.py`` with the same seed and global batch
(2 gloo processes on the CPU; only rank 0 writes)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from conftest import ROOT, random_samples
from msa.config import TrainConfig
from msa.data import Collator
from msa.model.text_encoder import load_tokenizer
from msa.testing import free_port, tiny_model
from msa.training import distributed
from msa.training.distributed import World
from msa.training.loop import make_optimisers, predict_scores, set_seed, train_epoch


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 64])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_shares_cover_the_batch_in_order_and_differ_by_at_most_one(n: int, size: int) -> None:
    shares = [World(rank, size).share(n) for rank in range(size)]
    rows = [i for s in shares for i in range(n)[s]]
    assert rows == list(range(n))  # contiguous, in rank order: gathered, they are the batch
    lengths = [s.stop - s.start for s in shares]
    assert max(lengths) - min(lengths) <= 1 and lengths == World(0, size).counts(n)


def test_one_process_collectives_are_the_identity() -> None:
    one = World()
    values = np.array([1.5, -2.0])
    assert one.sum(values) is values and one.broadcast_floats({"mae": 0.5}) == {"mae": 0.5}
    assert distributed.current() == distributed.SINGLE and one.is_main


def test_start_joins_no_group_without_torchrun_and_refuses_a_missing_gpu(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.start("cpu") == (distributed.SINGLE, "cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count()))  # one past the last GPU, if any
    with pytest.raises(ValueError, match="no GPU"):
        distributed.start("cuda")
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        distributed.start("mps")
    assert not dist.is_initialized()


# --- two gloo processes: one step's gradient against one process's ---------------------------

# (name, TrainConfig overrides): which losses read the whole batch. "neither" checks that a
# parameter without a gradient in one process (the voice's utterance projection) has none here.
CASES = {
    "task, CMD and MI": {},
    "CMD only": {"use_mi": False},
    "MI only": {"use_cmd": False},
    "neither": {"use_cmd": False, "use_mi": False},
    "MI, epoch schedule": {"estimator_schedule": "epoch"},
}


def _no_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Dropout draws other masks for other rows (distributed.py says why): off for the equality."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _samples(n: int, seed: int) -> list:
    """Random samples, some without a voice or a face, so pairs are masked as in real data."""
    out = random_samples(n, seed=seed)
    return [
        dataclasses.replace(s, acoustic=None)
        if i % 5 == 3
        else dataclasses.replace(s, visual=None)
        if i % 7 == 4
        else s
        for i, s in enumerate(out)
    ]


def _train_both(world: World, collator: Collator, samples: list, cfg: TrainConfig) -> dict:
    """One epoch on ``samples`` in one process (this rank alone, the whole batches) and over the
    process group (its rows); the two models, their losses and their last step's gradients."""
    base = _no_dropout(tiny_model(seed=0))
    runs = {}
    for name in ("one", "group"):
        model = copy.deepcopy(base)
        opts = make_optimisers(model, cfg)
        replicas = distributed.Replicas(model, world) if name == "group" else None
        set_seed(cfg.seed)
        losses = train_epoch(model, samples, collator, opts, cfg, epoch=1, progress=False, replicas=replicas)
        grads = {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()}
        runs[name] = (model, losses, grads)
    return runs


def _off(a: torch.Tensor, b: torch.Tensor) -> float:
    """How far ``a`` is from ``b``, relative to ``b``'s largest entry (floored at 1e-6): an entry
    that is a sum of cancelling terms, or a gradient that is 0 in exact arithmetic (the attention
    key biases': softmax ignores them), is rounding alone and far from ``b`` in relative terms."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-6))


# float64 puts rounding near 1e-16; the MI bound's standardisation over a few rows amplifies it
# to 1e-10 at most here. A wrong scale (a factor of the 2 ranks, one rank's rows left out) is O(1).
TOLERANCE = 1e-8


def _step_worker(rank: int, size: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        world = distributed.current()
        assert world == World(rank, size)
        collator = Collator.for_model(load_tokenizer("sentence-transformers/all-MiniLM-L6-v2"), tiny_model().config)
        # A batch of 5 splits 3 / 2; a batch of 1 leaves rank 1 nothing; 11 in batches of 4 are
        # three steps (4, 4, 3) through the entropy memory and Adam's state.
        for n, batch_size in ((5, 5), (1, 1), (11, 4)):
            for case, overrides in CASES.items():
                # No clipping: it would rescale a gradient off by a constant factor to the same norm.
                cfg = TrainConfig(
                    batch_size=batch_size, modality_dropout=0.2, seed=5, lr=1e-3, grad_clip=1e9, **overrides
                )
                runs = _train_both(world, collator, _samples(n, seed=n), cfg)
                (one, one_losses, one_grads), (group, group_losses, group_grads) = runs["one"], runs["group"]
                where = f"{case}, {n} samples in batches of {batch_size}"
                assert one_losses.keys() == group_losses.keys(), where
                for k, v in one_losses.items():
                    assert group_losses[k] == pytest.approx(v, rel=TOLERANCE, abs=TOLERANCE), (where, k)
                without = [k for k, g in one_grads.items() if g is None]
                assert without == [k for k, g in group_grads.items() if g is None], where
                if case == "neither":  # CMD and MI read the voice's utterance vector; the task does not
                    assert "acoustic.utterance_proj.weight" in without, where
                for k, g in one_grads.items():
                    if g is not None:
                        assert _off(group_grads[k], g) < TOLERANCE, (where, "gradient", k, _off(group_grads[k], g))
                for (k, a), b in zip(one.state_dict().items(), group.state_dict().values()):
                    assert _off(b, a) < TOLERANCE, (where, k, _off(b, a))  # q (mi.predictors) included
                for m in ("acoustic", "visual"):  # the entropy memory saw the same batches in order
                    for cls in ("pos", "neg"):
                        mine, theirs = one.mi.entropy[m].memory[cls], group.mi.entropy[m].memory[cls]
                        assert len(mine) == len(theirs), where
                        if mine:
                            assert _off(torch.stack(list(theirs)), torch.stack(list(mine))) < TOLERANCE, where
        # Evaluation: each rank scores every other batch; every rank gets every score, each
        # batch scored as one process scores it (the same numbers, not only close ones).
        model, samples = _no_dropout(tiny_model(seed=2)), _samples(13, seed=4)
        alone = predict_scores(model, samples, collator, batch_size=4)
        assert np.array_equal(predict_scores(model, samples, collator, batch_size=4, world=world), alone)
    finally:
        dist.destroy_process_group()


def test_two_processes_take_one_processs_step() -> None:
    """Per parameter, the gradient of a step over 2 gloo processes (uneven and empty shares, each
    batch-wide loss alone and together, both estimator schedules) equals one process's on the
    whole batch, computed by plain autograd on the same weights and batches in each worker; so
    do the weights after three steps (q's included), the logged losses and the entropy memory,
    and the parameters without a gradient are the same ones. In float64: see TOLERANCE."""
    mp.spawn(_step_worker, args=(2, free_port()), nprocs=2)


# --- torchrun train.py against train.py -------------------------------------------------------

# train.py with an audit hook (Python's sys.addaudithook) that records every file a process opens
# for writing, creates, renames or removes under the folders given; each rank writes its record
# to AUDIT_DIR/rank<R>.json, outside them, when train.py returns. Rank 0 is hooked too: its long
# record shows that the hook sees the writes (through msa/io.py: a temporary file, a rename).
AUDIT = """
import json, os, sys

watched = [os.path.realpath(p) for p in sys.argv[2].split(os.pathsep)]
writes = []
CHANGES = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.truncate", "os.symlink", "os.link"}


def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & (os.O_WRONLY | os.O_RDWR))
        paths = [path] if writing else []
    elif event in CHANGES:
        paths = args[:2]
    else:
        return
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
            real = os.path.realpath(os.fsdecode(path))
            if any(real == w or real.startswith(w + os.sep) for w in watched):
                writes.append([event, real])


sys.addaudithook(hook)
from msa.training.experiment import main

code = main(sys.argv[3:])
with open(os.path.join(sys.argv[1], "rank" + os.environ.get("RANK", "0") + ".json"), "w") as f:
    json.dump(writes, f)
sys.exit(code)
"""

TINY = [
    "--hidden", "32", "--lstm-hidden", "16", "--fusion-heads", "2", "--head-hidden", "32", "--mi-hidden", "16",
    "--entropy-proj-dim", "4", "--entropy-memory", "64", "--dropout", "0", "--modality-dropout", "0.1",
    "--seed", "3", "--quiet",
]  # fmt: skip
DATA = ["--data", "synthetic:mosi,n_train=64,n_valid=16,n_test=16"]

# float32 over 16 steps. Measured here: weights within 3e-6, logged losses and metrics within 2e-6
# (relative), predictions within 1e-6: rounding (each rank sums its rows' gradients, then DDP adds
# the ranks). A wrong gradient scale, a rank's rows left out or another batch order moves weights
# by whole Adam steps (lr 5e-4). The seed is pinned: of seeds 1, 2, 4, 5, 1111 here, two (1, 1111)
# put an input of a ReLU in the acoustic branch's FFN within rounding of 0 on a side that differs
# between the runs, and the weights end up 1.2e-3 (4e-4) apart. That is float32, not the
# distribution: with seed 1 one process on 1 thread and on 2 threads part by the same 1.2e-3, and
# in float64 the 16 steps of one and two processes agree to 5e-15.
WEIGHTS_TOL = 1e-4
VALUES_TOL = 1e-4  # relative, for the logged losses (H is the log-determinant of a covariance
# near its jitter floor, so its rounding is larger) and absolute for metrics and predictions


def _train(tmp: Path, args: list[str], processes: int, watched: list[Path]) -> tuple[str, dict[int, list]]:
    """train.py (one process) or torchrun with ``processes`` gloo ranks, each under the audit
    hook; its output and each rank's record of writes under ``watched``."""
    script, audit = tmp / "audited_train.py", tmp / f"audit-{len(list(tmp.glob('audit-*')))}"
    script.write_text(AUDIT)
    audit.mkdir()
    launch = [] if processes == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    cmd = [sys.executable, *launch, str(script), str(audit), os.pathsep.join(map(str, watched)), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    writes = {int(f.stem[4:]): json.loads(f.read_text()) for f in audit.glob("rank*.json")}
    assert sorted(writes) == list(range(processes))
    return done.stdout, writes


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _assert_same_run(one: Path, two: Path) -> None:
    """The same files, weights, log, results and test predictions, within the tolerances."""
    assert _files(two) == _files(one)
    for folder in ("best", "last"):
        a, b = load_file(one / folder / "model.safetensors"), load_file(two / folder / "model.safetensors")
        assert a.keys() == b.keys()
        for k in a:
            assert float((a[k] - b[k]).abs().max()) < WEIGHTS_TOL, (folder, k, float((a[k] - b[k]).abs().max()))
    logs = [[json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (one, two)]
    assert [r["epoch"] for r in logs[0]] == [r["epoch"] for r in logs[1]] and logs[0][0].keys() == logs[1][0].keys()
    for ra, rb in zip(*logs):
        for k in ra.keys() - {"seconds"}:
            assert rb[k] == pytest.approx(ra[k], rel=VALUES_TOL, abs=VALUES_TOL), (ra["epoch"], k)
    results = [json.loads((d / "results.json").read_text()) for d in (one, two)]
    assert results[1]["best_epoch"] == results[0]["best_epoch"] and results[1]["epochs_run"] == results[0]["epochs_run"]
    for split in ("valid", "test"):
        assert results[1][split] == pytest.approx(results[0][split], abs=VALUES_TOL), split
    preds = [np.loadtxt(d / "predictions_test.csv", delimiter=",", skiprows=1, usecols=(1, 2)) for d in (one, two)]
    assert np.abs(preds[1] - preds[0]).max() < VALUES_TOL


@pytest.mark.slow  # two torchrun launches; the spawned gradient test stays in the fast set
def test_torchrun_two_processes_equal_one(tmp_path: Path) -> None:
    """``torchrun --nproc-per-node 2 train.py`` (CMD and the MI bound on, modality dropout, a
    trainable text encoder) ends where ``train.py`` ends with the same seed and global batch;
    rank 1 writes nothing and prints nothing."""
    args = [*DATA, "--tiny-text-encoder", "--epochs", "2", *TINY, "--batch-size", "8"]
    one_out, _ = _train(tmp_path, [*args, "--run-dir", str(tmp_path / "one")], 1, [tmp_path / "one"])
    two_out, writes = _train(tmp_path, [*args, "--run-dir", str(tmp_path / "two")], 2, [tmp_path / "two"])
    _assert_same_run(tmp_path / "one/seed3", tmp_path / "two/seed3")
    assert _files(tmp_path / "two") == _files(tmp_path / "one")  # command.json and the summaries too
    assert writes[1] == [] and any(path.endswith("results.json") for _, path in writes[0])
    assert two_out.count("== seed 3") == 1 and "2 processes, 8 samples a step in all" in two_out


@pytest.mark.slow
def test_torchrun_uneven_batches_text_cache_and_resume(tmp_path: Path) -> None:
    """A global batch of 7 (4 + 3 rows, and the epoch's last batch of 1 leaves rank 1 none),
    the frozen MiniLM through ``--text-cache-dir`` (rank 0 fills it, rank 1 reads it), stopped
    after one epoch and resumed for the second: the one-process run's result, and rank 1 writes
    nothing in the run folder or the cache."""
    args = [*DATA, "--text-trainable-layers", "0", *TINY, "--batch-size", "7"]
    one, two, cache = tmp_path / "one", tmp_path / "two", tmp_path / "cache2"
    _train(
        tmp_path,
        [*args, "--epochs", "2", "--run-dir", str(one), "--text-cache-dir", str(tmp_path / "cache1")],
        1,
        [one],
    )
    run = [*args, "--run-dir", str(two), "--text-cache-dir", str(cache)]
    _, first = _train(tmp_path, [*run, "--epochs", "1"], 2, [two, cache])
    assert [r["epoch"] for r in map(json.loads, (two / "seed3/log.jsonl").read_text().splitlines())] == [1]
    _, resumed = _train(tmp_path, [*run, "--epochs", "2", "--resume"], 2, [two, cache])
    _assert_same_run(one / "seed3", two / "seed3")
    assert first[1] == [] and resumed[1] == []
    assert any(path.startswith(str(cache.resolve())) for _, path in first[0])  # rank 0 filled it
    assert not any(path.startswith(str(cache.resolve())) for _, path in resumed[0])  # and read it again
    assert _files(cache) == _files(tmp_path / "cache1") == {"meta.json", "part-00000.safetensors"}
