"""Train the gated multimodal sentiment model. Read top to bottom: config, data, model, loop, results.

Examples
--------
Text path on the shared CMU-MOSI transcripts, three seeds::

    python train.py --data ../shared/data/mosi/label.csv --seeds 1111,1112,1113 --run-dir runs/mosi-text

The paper's Table 2 (MOSI, MMSA features; bert-base-uncased needs a machine with the hub)::

    python train.py --data /path/to/MOSI/unaligned_50.pkl --text-encoder bert-base-uncased \
        --text-pooling cls --seeds 1111,1112,1113,1114,1115 --run-dir runs/mosi-paper

From raw videos (an app-compatible checkpoint): the CMU-MOSI raw layout, segmented videos named
``<video_id>_<clip>.mp4``, with the shared label CSV (its gold transcripts replace the ASR)::

    python train.py --videos /path/to/MOSI/Raw --labels ../shared/data/mosi/label.csv \
        --workers 2 --modality-dropout 0.1 --run-dir runs/mosi-video

Features are extracted once per file and cached (``--cache-dir``, default ``$MSA_CACHE_DIR`` or
``RUN_DIR/feature_cache``); the checkpoints carry the feature spec and the normaliser fit on the
train split, which ``python -m msa predict`` and the app check and apply.

Ablations (Table 3): add ``--no-rl`` (no CMD), ``--no-mf`` (no gates), ``--no-mi`` (no MI bound).
Interrupted? Run the same command with ``--resume``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from msa.config import ModelConfig, TrainConfig, add_config_arguments, config_from_args
from msa.data import Sample
from msa.data.loaders import load_dataset, load_label_csv
from msa.model import SentimentModel, tiny_text_backbone
from msa.text_encoder import load_text_backbone, load_tokenizer
from msa.training import fit, format_table, set_seed, write_summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", metavar="SPEC",
                   help="a dataset: an MMSA or MulT pickle, a label CSV, or synthetic:mosi / synthetic:mosei. "
                        "Repeat to train on several (their splits are merged). Pickles are loaded only from "
                        "paths you name: trust their source.")
    v = p.add_argument_group("training from raw videos (instead of --data)")
    v.add_argument("--videos", type=Path, metavar="DIR",
                   help=f"folder of media files named <id>.<ext> ({', '.join(MEDIA_SUFFIXES)}); needs --labels")
    v.add_argument("--labels", type=Path, metavar="CSV",
                   help="label CSV for --videos: id,text,label,mode (MOSI) or video_id,clip_id,text,label,mode; "
                        "its transcripts replace the ASR (a blank one is transcribed)")
    v.add_argument("--workers", type=int, default=1, help="extraction processes (default 1; 2 on 2 cores is "
                   "about even with 1)")
    v.add_argument("--cache-dir", type=Path, default=None,
                   help="feature cache (default: $MSA_CACHE_DIR, else RUN_DIR/feature_cache)")
    v.add_argument("--asr-model", choices=("base", "tiny.en"), default="base",
                   help="Whisper model for rows without a transcript (default base)")
    p.add_argument("--valid-data", action="append", metavar="SPEC",
                   help="take the validation split (selection, early stopping) from this dataset only; "
                        "repeat to pool the validation splits of several")
    p.add_argument("--train-repeat", default=None, metavar="K,K,...",
                   help="repeat each --data set's training split K times per epoch, in --data order "
                        "(e.g. 3,1 oversamples the small MOSI beside MOSEI); default 1 each")
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


def parse_train_repeat(value: str, n_data: int) -> list[int]:
    """``--train-repeat 3,1`` -> [3, 1]: one whole number >= 1 per ``--data``, else ValueError."""
    try:
        repeats = [int(k) for k in value.split(",")]
    except ValueError:
        raise ValueError(f"--train-repeat {value!r}: give whole numbers separated by commas, e.g. 3,1") from None
    if len(repeats) != n_data or min(repeats) < 1:
        raise ValueError(f"--train-repeat needs one whole number >= 1 per --data ({n_data} given), got {repeats}")
    return repeats


def load_data(
    specs: list[str],
    limit: int,
    valid_spec: str | list[str] | None = None,
    test_spec: str | None = None,
    train_repeat: list[int] | None = None,
) -> dict[str, list[Sample]]:
    """Merge the splits of every dataset; optionally take the validation split from some datasets
    only (e.g. select on MOSI dev + MOSEI valid while training on MOSI + MOSEI) and the test split
    from one. ``train_repeat[i]`` copies of dataset i's training split go into each epoch, so a
    small in-domain set is not drowned by a large one."""
    repeats = train_repeat or [1] * len(specs)
    if len(repeats) != len(specs):
        raise ValueError(f"train_repeat has {len(repeats)} entries for {len(specs)} datasets")
    merged: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
    for spec, repeat in zip(specs, repeats):
        for split, samples in load_dataset(spec).items():
            merged.setdefault(split, []).extend(samples * repeat if split == "train" else samples)
    overrides = {"valid": [valid_spec] if isinstance(valid_spec, str) else valid_spec,
                 "test": None if test_spec is None else [test_spec]}
    for split, split_specs in overrides.items():
        if split_specs:
            merged[split] = [s for spec in split_specs for s in load_dataset(spec).get(split, [])]
    if limit:
        merged = {k: v[:limit] for k, v in merged.items()}
    return merged


# Media the extractor reads; a label id matches the file <id>.<ext> with any of them.
MEDIA_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".flv", ".wav", ".mp3", ".m4a", ".flac")


def media_files(folder: Path) -> dict[str, Path]:
    """Media files of ``folder`` by stem; the first suffix in `MEDIA_SUFFIXES` wins a tie."""
    if not folder.is_dir():
        raise SystemExit(f"error: --videos {folder}: not a folder")
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir(), key=lambda f: (f.stem, MEDIA_SUFFIXES.index(f.suffix.lower())
                                                      if f.suffix.lower() in MEDIA_SUFFIXES else 99)):
        if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES:
            found.setdefault(f.stem, f)
    return found


def load_videos(args: argparse.Namespace) -> tuple[dict[str, list[Sample]], dict[str, Any]]:
    """Extract features for every labelled file, normalise with train statistics.

    Returns the splits and the checkpoint extras (feature spec, normaliser) that make the
    checkpoints app-compatible. Files missing from the folder or failing extraction are skipped
    with a warning that lists them; no usable file at all is an error.
    """
    from msa.features import FeatureExtractor, FeatureNormalizer, extract_many

    labelled = load_label_csv(args.labels)
    if args.limit:
        labelled = {k: v[: args.limit] for k, v in labelled.items()}
    files = media_files(args.videos)
    rows = [s for split in labelled.values() for s in split]
    missing = [s.id for s in rows if s.id not in files]
    rows = [s for s in rows if s.id in files]
    if missing:
        print(f"warning: {len(missing)} of {len(missing) + len(rows)} labelled ids have no media file in "
              f"{args.videos}, skipped: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}",
              file=sys.stderr, flush=True)
    if not rows:
        raise SystemExit(f"error: no file in {args.videos} matches an id of {args.labels} "
                         f"(expected <id>.<ext>, e.g. {next(iter(missing), 'VIDEO_CLIP')}.mp4)")

    cache_dir = args.cache_dir or os.environ.get("MSA_CACHE_DIR") or args.run_dir / "feature_cache"
    extractor = FeatureExtractor({"asr_model": args.asr_model}, cache_dir)
    results = extract_many([files[s.id] for s in rows], extractor, workers=args.workers,
                           transcripts=[s.text for s in rows], sample_ids=[s.id for s in rows],
                           on_error="return", progress=not args.quiet)
    data: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
    failed = []
    for row, r in zip(rows, results):
        if isinstance(r, Exception):
            failed.append(f"{row.id} ({r})")
            continue
        split = row.meta["split"]
        data[split].append(dataclasses.replace(r.sample, label=row.label, meta={**r.sample.meta, **row.meta}))
    if failed:
        print(f"warning: {len(failed)} file(s) failed extraction, skipped: {'; '.join(failed[:20])}",
              file=sys.stderr, flush=True)
    if not any(data.values()):
        raise SystemExit(f"error: no file in {args.videos} could be extracted")

    # Statistics from the train split only: valid/test must not leak into training.
    spec = extractor.spec
    normalizer = FeatureNormalizer.fit(data["train"], spec.acoustic_dim, spec.visual_dim)
    data = {k: [normalizer(s) for s in v] for k, v in data.items()}
    extras = {"feature_spec": spec.to_dict(), "normalizer": normalizer.to_dict()}
    return data, extras


def feature_dims(data: dict[str, list[Sample]]) -> dict[str, int]:
    """Acoustic / visual widths of the data; one model reads one feature set, so datasets whose
    streams differ in width (e.g. MMSA's MOSI pickle, 5/20-d, beside MOSEI's, 74/35-d) are refused
    here with both widths named, not deep in the first training batch."""
    seen: dict[str, dict[int, str]] = {"acoustic": {}, "visual": {}}
    for samples in data.values():
        for s in samples:
            for name, widths in seen.items():
                x = getattr(s, name)
                if x is not None:
                    widths.setdefault(int(x.shape[1]), s.id)
    for name, widths in seen.items():
        if len(widths) > 1:
            found = ", ".join(f"{w} (e.g. sample {i!r})" for w, i in sorted(widths.items()))
            raise SystemExit(f"error: the --data sets disagree on the {name} feature width: {found}. One model "
                             f"reads one feature set: train on datasets extracted the same way (or on their "
                             f"transcript CSVs, which carry no streams).")
    return {f"{name}_dim": next(iter(widths)) for name, widths in seen.items() if widths}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    # -- data and config
    if args.videos:
        data, extras = load_videos(args)
        spec = extras["feature_spec"]
        dims = {"acoustic_dim": spec["acoustic_dim"], "visual_dim": spec["visual_dim"]}
    else:
        data, extras = load_data(args.data, args.limit, args.valid_data, args.test_data, args.train_repeat), {}
        dims = feature_dims(data)
    # The checkpoint records the command, so the data arguments (folds, --train-repeat) travel with it.
    command = ["train.py", *(sys.argv[1:] if argv is None else argv)]
    extras["meta"] = {"command": command}
    model_cfg = config_from_args(ModelConfig, args, **dims)
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
    print("data: " + ", ".join(f"{k} {len(v)}" for k, v in data.items()), flush=True)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    (args.run_dir / "command.json").write_text(json.dumps({"argv": command, "model": model_cfg.to_dict(),
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
                     args.run_dir / f"seed{seed}", resume=args.resume, progress=not args.quiet,
                     checkpoint_extras=extras)
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
