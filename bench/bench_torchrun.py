"""Seconds per epoch of ``train.py`` in one process and under ``torchrun`` with N processes.

The same run each time (same seed, same global batch): the paper's model with the packaged
MiniLM fine-tuned, on MOSI-shaped synthetic data. One process with torch's default threads, one
with a single thread, and N gloo processes (torchrun gives each one thread). An epoch's seconds
include its validation; the first epoch (warm-up) is left out of the mean.

    python -m bench.bench_torchrun                      # 256 training samples, 3 epochs, N = 2
    python -m bench.bench_torchrun --n-train 512 --processes 2,4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def epoch_seconds(run_dir: Path, seed: int) -> list[float]:
    log = (run_dir / f"seed{seed}" / "log.jsonl").read_text().splitlines()
    return [json.loads(line)["seconds"] for line in log]


def run(args: argparse.Namespace, label: str, launcher: list[str], threads: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            *launcher,
            str(ROOT / "train.py"),
            "--data",
            f"synthetic:mosi,n_train={args.n_train},n_valid={args.n_valid},n_test=0",
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--seed",
            "1",
            "--quiet",
            "--run-dir",
            tmp,
        ]
        env = dict(os.environ)
        if threads is not None:
            env["OMP_NUM_THREADS"] = threads
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if done.returncode:
            raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
        seconds = epoch_seconds(Path(tmp), 1)
    later = seconds[1:] or seconds
    return {"run": label, "epochs": seconds, "seconds_per_epoch": sum(later) / len(later)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=256)
    p.add_argument("--n-valid", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--processes", default="2", help="comma-separated process counts for torchrun")
    args = p.parse_args()
    load = os.getloadavg()  # the machine may be shared: other work slows every row
    rows = [
        run(args, "1 process, torch's default threads", [], None),
        run(args, "1 process, 1 thread", [], "1"),
    ]
    for n in map(int, args.processes.split(",")):
        torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}"]
        rows.append(run(args, f"torchrun, {n} processes of 1 thread", torchrun, "1"))
    print(f"{os.cpu_count()} cores; load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load)}")
    for r in rows:
        epochs = ", ".join(f"{s:.1f}" for s in r["epochs"])
        print(f"{r['run']:40s} {r['seconds_per_epoch']:7.1f} s/epoch  (epochs: {epochs})")


if __name__ == "__main__":
    main()
