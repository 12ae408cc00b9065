"""Train the gated multimodal sentiment model: ``python train.py`` or ``msa-train``. Read top to
bottom: flags, data and config, model and loop per seed, results.

Examples
--------
Text path on the CMU-MOSI transcripts (data/), three seeds::

    python train.py --data data/mosi/label.csv --seeds 1111,1112,1113 --run-dir runs/mosi-text

The paper's Table 2 (MOSI, MMSA features; bert-base-uncased needs a machine with the hub)::

    python train.py --data /path/to/MOSI/unaligned_50.pkl --text-encoder bert-base-uncased \
        --text-pooling cls --seeds 1111,1112,1113,1114,1115 --run-dir runs/mosi-paper

From raw videos (an app-compatible checkpoint): the CMU-MOSI raw layout, segmented videos named
``<video_id>_<clip>.mp4``, with the label CSV (its gold transcripts replace the ASR)::

    python train.py --videos /path/to/MOSI/Raw --labels data/mosi/label.csv \
        --workers 2 --modality-dropout 0.1 --run-dir runs/mosi-video

Features are extracted once per file and cached (``--cache-dir``, default ``$MSA_CACHE_DIR`` or
``RUN_DIR/feature_cache``); the checkpoints carry the feature spec and the normaliser fit on the
train split, which ``python -m msa predict`` and the app check and apply.

Ablations (Table 3): add ``--no-rl`` (no CMD), ``--no-mf`` (no gates), ``--no-mi`` (no MI bound).
Interrupted? Run the same command with ``--resume``.

Several processes (DistributedDataParallel; ``--batch-size`` stays the global batch, rank 0 writes
everything), e.g. one machine with 4 GPUs, or 2 processes on the CPU::

    torchrun --standalone --nproc-per-node 4 train.py --device cuda --data ... --run-dir runs/x
    torchrun --standalone --nproc-per-node 2 train.py --data ... --run-dir runs/x
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import torch

from ..commands import one_line_errors
from ..config import ABLATIONS, ModelConfig, TrainConfig, ablate, add_config_arguments, config_from_args
from ..data.batch import stream_widths
from ..data.sources import merge_datasets, parse_train_repeat
from ..features.spec import ASR_MODELS, DEFAULT_VOICE_STREAM, VOICE_STREAMS
from ..features.videos import MEDIA_SUFFIXES, load_videos
from ..io import atomic_write_bytes
from ..model import SentimentModel
from ..model.text_encoder import load_text_backbone, load_tokenizer
from ..parallel import ENGINES
from ..threads import set_process_threads
from . import distributed
from .loop import fit, format_table, set_seed, write_summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        action="append",
        metavar="SPEC",
        help="a dataset: an MMSA or MulT pickle, a label CSV, or synthetic:mosi / synthetic:mosei. "
        "Repeat to train on several (their splits are merged). Pickles are loaded only from "
        "paths you name: trust their source.",
    )
    v = p.add_argument_group("training from raw videos (instead of --data)")
    v.add_argument(
        "--videos",
        type=Path,
        metavar="DIR",
        help=f"folder of media files named <id>.<ext> ({', '.join(MEDIA_SUFFIXES)}); needs --labels",
    )
    v.add_argument(
        "--labels",
        type=Path,
        metavar="CSV",
        help="label CSV for --videos: id,text,label,mode (MOSI) or video_id,clip_id,text,label,mode; "
        "its transcripts replace the ASR (a blank one is transcribed)",
    )
    v.add_argument(
        "--workers", type=int, default=1, help="extraction processes (default 1; 2 on 2 cores is about even with 1)"
    )
    v.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="extract on worker processes here (local) or on a Ray cluster (ray; a local one unless --address)",
    )
    v.add_argument("--address", default=None, help="with --engine ray: the cluster to join")
    v.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="feature cache (default: $MSA_CACHE_DIR, else RUN_DIR/feature_cache)",
    )
    v.add_argument(
        "--asr-model",
        choices=ASR_MODELS,
        default="base",
        help="Whisper model for rows without a transcript (default base)",
    )
    v.add_argument(
        "--voice-stream",
        choices=tuple(VOICE_STREAMS),
        default=DEFAULT_VOICE_STREAM,
        help=f"what the acoustic branch reads (default {DEFAULT_VOICE_STREAM}; docs/voice.md)",
    )
    p.add_argument(
        "--valid-data",
        action="append",
        metavar="SPEC",
        help="take the validation split (selection, early stopping) from this dataset only; "
        "repeat to pool the validation splits of several",
    )
    p.add_argument(
        "--train-repeat",
        default=None,
        metavar="K,K,...",
        help="repeat each --data set's training split K times per epoch, in --data order "
        "(e.g. 3,1 oversamples the small MOSI beside MOSEI); default 1 each",
    )
    p.add_argument(
        "--test-data",
        metavar="SPEC",
        help="take the test split from this dataset only (e.g. train on MOSI+MOSEI, test on MOSI)",
    )
    p.add_argument("--run-dir", type=Path, default=Path("runs/default"), help="where checkpoints and results go")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 1111,1112,1113 (default: --seed)")
    p.add_argument("--resume", action="store_true", help="continue each seed from its last checkpoint")
    p.add_argument("--no-rl", action="store_true", help="ablation 'w/o rl': no CMD representation loss")
    p.add_argument("--no-mf", action="store_true", help="ablation 'w/o mf': no retain/fusion gates (= --gates none)")
    p.add_argument("--no-mi", action="store_true", help="ablation: no MI lower bound")
    p.add_argument("--limit", type=int, default=0, help="keep at most N samples per split (smoke runs)")
    p.add_argument(
        "--tiny-text-encoder",
        action="store_true",
        help="a tiny random BERT instead of --text-encoder (smoke runs and tests only)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(p, ModelConfig, skip=("text_dim",))
    add_config_arguments(p, TrainConfig)
    args = p.parse_args(argv)
    if bool(args.data) == bool(args.videos):
        p.error("give either --data SPEC (repeatable) or --videos DIR --labels CSV")
    if args.videos and not args.labels:
        p.error("--videos needs --labels CSV (id, label and split of each file)")
    if args.labels and not args.videos:
        p.error("--labels goes with --videos; for a transcript-only CSV use --data CSV")
    if args.train_repeat is not None:
        try:
            args.train_repeat = parse_train_repeat(args.train_repeat, len(args.data or []))
        except ValueError as e:
            p.error(str(e))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Under torchrun only rank 0 speaks; the other ranks' warnings would repeat its own.
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.ERROR, format="%(levelname)s: %(message)s")
    try:
        # DataError included; a RuntimeError here is a fault of the run, with its traceback.
        return one_line_errors(
            lambda: _run(args, argv, *distributed.start(args.device or TrainConfig.device)), (ValueError, OSError)
        )
    finally:
        distributed.stop()


def _run(args: argparse.Namespace, argv: list[str] | None, world: distributed.World, device: str) -> int:
    say = print if world.is_main else lambda *_, **__: None  # rank 0 prints, the others are silent
    # -- data and config
    if args.videos:
        cache_dir = args.cache_dir or os.environ.get("MSA_CACHE_DIR") or args.run_dir / "feature_cache"
        with world.main_first():  # rank 0 extracts into the cache, the others read it
            data, spec, normalizer = load_videos(
                args.videos,
                args.labels,
                Path(cache_dir),
                args.asr_model,
                args.workers,
                args.limit,
                progress=world.is_main and not args.quiet,
                engine=args.engine,
                address=args.address,
                voice_stream=args.voice_stream,
            )
        dims = {"acoustic_dim": spec.acoustic_dim, "visual_dim": spec.visual_dim}
    else:
        data = merge_datasets(args.data, args.limit, args.valid_data, args.test_data, args.train_repeat)
        spec, normalizer, dims = None, None, stream_widths(data)
    # The checkpoint records the command, so the data arguments (folds, --train-repeat) travel with it.
    command = ["train.py", *(sys.argv[1:] if argv is None else argv)]
    without = [name for name in ABLATIONS if getattr(args, f"no_{name}")]
    model_cfg, train_cfg = ablate(
        config_from_args(ModelConfig, args, **dims), config_from_args(TrainConfig, args), without
    )
    train_cfg = dataclasses.replace(train_cfg, device=device)  # cuda:LOCAL_RANK under torchrun
    if train_cfg.num_threads:
        set_process_threads(train_cfg.num_threads)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [train_cfg.seed]
    say("data: " + ", ".join(f"{k} {len(v)}" for k, v in data.items()), flush=True)
    if world.size > 1:
        say(f"{world.size} processes, {train_cfg.batch_size} samples a step in all", flush=True)
    if world.is_main:
        args.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(
            args.run_dir / "command.json",
            json.dumps(
                {"argv": command, "model": model_cfg.to_dict(), "train": train_cfg.to_dict()}, indent=2
            ).encode(),
        )

    # -- model, loop, eval (one run per seed)
    tokenizer = load_tokenizer(model_cfg.text_encoder)
    per_seed: dict[int, dict[str, float]] = {}
    for seed in seeds:
        say(f"== seed {seed}", flush=True)
        set_seed(seed)
        if args.tiny_text_encoder:  # smoke runs only: the tests' random 2-layer BERT
            from ..testing import tiny_text_backbone

            backbone = tiny_text_backbone(seed=seed)
            for module in backbone.modules():  # its dropout follows --dropout (default 0.1, BERT's own)
                if isinstance(module, torch.nn.Dropout):
                    module.p = model_cfg.dropout
        else:
            backbone = load_text_backbone(model_cfg.text_encoder)
        model = SentimentModel(model_cfg, backbone)
        result = fit(
            model,
            tokenizer,
            data,
            dataclasses.replace(train_cfg, seed=seed),
            args.run_dir / f"seed{seed}",
            resume=args.resume,
            progress=not args.quiet,
            feature_spec=spec,
            normalizer=normalizer,
            meta={"command": command},
        )
        split = "test" if result.test is not None else "valid"
        per_seed[seed] = result.test if result.test is not None else result.valid
        say(
            f"seed {seed}: best epoch {result.best_epoch}, {split} "
            + " ".join(f"{k} {v:.4f}" for k, v in per_seed[seed].items()),
            flush=True,
        )

    # -- results
    if world.is_main:
        summary = write_summary(args.run_dir, per_seed)
        print(f"\n{split} metrics over seeds {','.join(map(str, seeds))} (mean±std):")
        print(format_table(summary))
        print(f"results: {args.run_dir / 'summary.json'} and summary.csv")
    return 0
