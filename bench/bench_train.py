"""Training throughput and peak memory at batch 64 on MOSI- and MOSEI-shaped synthetic data.

Each configuration runs in its own process so that its peak resident memory is its own.
Reports steps per second (one step = estimator stage + main stage on one batch of 64) with the
packaged MiniLM text encoder fine-tuned and frozen.

    python -m bench.bench_train            # all four configurations
    python -m bench.bench_train --steps 5  # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("mosi", False), ("mosi", True), ("mosei", False), ("mosei", True)]


def one(kind: str, frozen: bool, steps: int, warmup: int) -> dict:
    import torch

    from msa.config import ModelConfig, TrainConfig
    from msa.data import Collator, make_synthetic
    from msa.model.network import SentimentModel
    from msa.model.text_encoder import load_tokenizer
    from msa.training.loop import Optimisers, estimator_step, main_step, make_optimisers

    torch.manual_seed(0)
    # MOSI/MOSEI-like lengths: up to 50 tokens (MMSA), 50 / 375 acoustic and 50 / 500 visual frames
    frames = {"mosi": 50, "mosei": 400}[kind]
    data = make_synthetic(
        kind, n_train=64 * (steps + warmup), n_valid=0, n_test=0, seed=0, min_frames=frames // 2, max_frames=frames
    )["train"]
    a_dim, v_dim = data[0].acoustic.shape[1], data[0].visual.shape[1]
    cfg = ModelConfig(acoustic_dim=a_dim, visual_dim=v_dim, freeze_text_encoder=frozen)
    model = SentimentModel(cfg).train()
    tok = load_tokenizer(cfg.text_encoder)
    collate = Collator(tok, a_dim, v_dim, cfg.max_text_len)
    tcfg = TrainConfig()
    opts: Optimisers = make_optimisers(model, tcfg)
    batches = [collate(data[i : i + 64]) for i in range(0, len(data), 64)]

    def step(batch) -> None:
        out = model.fuse(model.encode(batch), batch.present)
        estimator_step(model, out, opts.estimator, tcfg)
        main_step(model, out, batch, opts.main, tcfg)

    for b in batches[:warmup]:
        step(b)
    t0 = time.perf_counter()
    for b in batches[warmup:]:
        step(b)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "data": kind,
        "text_encoder": "frozen" if frozen else "fine-tuned",
        "steps": steps,
        "steps_per_s": steps / seconds,
        "samples_per_s": 64 * steps / seconds,
        "peak_rss_mb": peak_mb,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--one", nargs=2, metavar=("KIND", "FROZEN"), help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1] == "1", args.steps, args.warmup)))
        return
    rows = []
    for kind, frozen in CONFIGS:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.bench_train",
                "--one",
                kind,
                "1" if frozen else "0",
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| data | text encoder | steps/s (batch 64) | samples/s | peak RSS (MB) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['data']} | {r['text_encoder']} | {r['steps_per_s']:.3f} | {r['samples_per_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
