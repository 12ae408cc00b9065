"""Train the gated multimodal sentiment model. Read top to bottom: config, data, model, loop, results.

Examples
--------
Text path on the shared CMU-MOSI transcripts, three seeds::

    python train.py --data ../shared/data/mosi/label.csv --seeds 1111,1112,1113 --run-dir runs/mosi-text

The paper's Table 2 (MOSI, MMSA features; bert-base-uncased needs a machine with the hub)::

    python train.py --data /path/to/MOSI/unaligned_50.pkl --text-encoder bert-base-uncased \
        --text-pooling cls --seeds 1111,1112,1113,1114,1115 --run-dir runs/mosi-paper

Ablations (Table 3): add ``--no-rl`` (no CMD), ``--no-mf`` (no gates), ``--no-mi`` (no MI bound).
Interrupted? Run the same command with ``--resume``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from msa.config import ModelConfig, TrainConfig, add_config_arguments, config_from_args
from msa.data import Sample
from msa.data.loaders import load_dataset
from msa.model import SentimentModel, tiny_text_backbone
from msa.text_encoder import load_text_backbone, load_tokenizer
from msa.training import fit, format_table, set_seed, write_summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="a dataset: an MMSA or MulT pickle, a label CSV, or synthetic:mosi / synthetic:mosei. "
                        "Repeat to train on several (their splits are merged). Pickles are loaded only from "
                        "paths you name: trust their source.")
    p.add_argument("--test-data", metavar="SPEC",
                   help="take the test split from this dataset only (e.g. train on MOSI+MOSEI, test on MOSI)")
    p.add_argument("--run-dir", type=Path, default=Path("runs/default"), help="where checkpoints and results go")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 1111,1112,1113 (default: --seed)")
    p.add_argument("--resume", action="store_true", help="continue each seed from its last checkpoint")
    p.add_argument("--no-rl", action="store_true", help="ablation 'w/o rl': no CMD representation loss")
    p.add_argument("--no-mf", action="store_true", help="ablation 'w/o mf': no retain/fusion gates")
    p.add_argument("--no-mi", action="store_true", help="ablation: no MI lower bound")
    p.add_argument("--limit", type=int, default=0, help="keep at most N samples per split (smoke runs)")
    p.add_argument("--tiny-text-encoder", action="store_true",
                   help="a tiny random BERT instead of --text-encoder (smoke runs and tests only)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(p, ModelConfig, skip=("text_dim",))
    add_config_arguments(p, TrainConfig)
    return p.parse_args(argv)


def load_data(specs: list[str], test_spec: str | None, limit: int) -> dict[str, list[Sample]]:
    """Merge the splits of every dataset; optionally take the test split from one dataset only."""
    merged: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
    for spec in specs:
        for split, samples in load_dataset(spec).items():
            merged.setdefault(split, []).extend(samples)
    if test_spec is not None:
        merged["test"] = load_dataset(test_spec).get("test", [])
    if limit:
        merged = {k: v[:limit] for k, v in merged.items()}
    return merged


def feature_dims(data: dict[str, list[Sample]]) -> dict[str, int]:
    """Acoustic / visual widths seen in the data (first present sample of each)."""
    dims: dict[str, int] = {}
    for samples in data.values():
        for s in samples:
            for name in ("acoustic", "visual"):
                x = getattr(s, name)
                if x is not None and name not in dims:
                    dims[name] = int(x.shape[1])
    return {f"{k}_dim": v for k, v in dims.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    # -- config
    data = load_data(args.data, args.test_data, args.limit)
    model_cfg = config_from_args(ModelConfig, args, **feature_dims(data))
    if args.no_mf:
        model_cfg = dataclasses.replace(model_cfg, use_gates=False)
    train_cfg = config_from_args(TrainConfig, args)
    if args.no_rl:
        train_cfg = dataclasses.replace(train_cfg, use_cmd=False)
    if args.no_mi:
        train_cfg = dataclasses.replace(train_cfg, use_mi=False)
    if train_cfg.num_threads:
        torch.set_num_threads(train_cfg.num_threads)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [train_cfg.seed]
    print(f"data: " + ", ".join(f"{k} {len(v)}" for k, v in data.items()), flush=True)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    (args.run_dir / "command.json").write_text(json.dumps({"argv": sys.argv, "model": model_cfg.to_dict(),
                                                           "train": train_cfg.to_dict()}, indent=2))

    # -- model, loop, eval (one run per seed)
    tokenizer = load_tokenizer(model_cfg.text_encoder)
    per_seed: dict[int, dict[str, float]] = {}
    for seed in seeds:
        print(f"== seed {seed}", flush=True)
        set_seed(seed)
        backbone = tiny_text_backbone(seed=seed) if args.tiny_text_encoder else load_text_backbone(model_cfg.text_encoder)
        model = SentimentModel(model_cfg, backbone)
        result = fit(model, tokenizer, data, dataclasses.replace(train_cfg, seed=seed),
                     args.run_dir / f"seed{seed}", resume=args.resume, progress=not args.quiet)
        split = "test" if result.test is not None else "valid"
        per_seed[seed] = result.test if result.test is not None else result.valid
        print(f"seed {seed}: best epoch {result.best_epoch}, {split} " +
              " ".join(f"{k} {v:.4f}" for k, v in per_seed[seed].items()), flush=True)

    # -- results
    summary = write_summary(args.run_dir, per_seed)
    print(f"\n{split} metrics over seeds {','.join(map(str, seeds))} (mean±std):")
    print(format_table(summary))
    print(f"results: {args.run_dir / 'summary.json'} and summary.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
