"""``python -m msa finetune``: teach a checkpoint's voice and face branches from one's own clips.

    python -m msa finetune --clips my_clips --labels my_clips/labels.csv --out checkpoints/mine
    python -m msa finetune --clips my_clips --labels files.csv --label-with-text-path --out checkpoints/mine

LABELS.csv has the columns ``file,label`` (and optionally ``text``, the spoken words, and
``speaker``); ``file`` is relative to --clips, ``label`` a number in [-3, 3] or a 7-class name.
The output loads in ``python -m msa predict --checkpoint OUT`` and in the app. Progress goes to
stderr, the result to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..config import add_config_arguments, config_from_args
from .card import save_finetuned
from .clips import ClipLimits, extract_clips, read_labels
from .run import Finetune, FinetuneSettings

DEFAULT_BASE = Path(__file__).resolve().parents[2] / "checkpoints" / "default"


def add_parser(sub: Any) -> None:
    """The ``finetune`` command on the ``python -m msa`` parser's subcommands."""
    p = sub.add_parser(
        "finetune",
        help="fine-tune a checkpoint's voice and face branches on your own labelled clips",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--clips", type=Path, required=True, help="the folder of media files")
    p.add_argument("--labels", type=Path, required=True, help="CSV with columns file,label[,text][,speaker]")
    p.add_argument("--base", type=Path, default=DEFAULT_BASE, help="checkpoint to start from (default: the app's)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument(
        "--label-with-text-path",
        action="store_true",
        help="ignore the label column: the base checkpoint's score of the words is each clip's label",
    )
    p.add_argument("--asr-model", choices=("base", "tiny.en"), default=None, help="for clips without text")
    p.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default: $MSA_CACHE_DIR, else none)")
    p.add_argument("--max-clips", type=int, default=ClipLimits.max_clips, help="most clips taken")
    p.add_argument(
        "--max-clip-seconds", type=float, default=ClipLimits.max_seconds, help="longest clip taken (seconds)"
    )
    p.add_argument("--max-seconds", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_config_arguments(p, FinetuneSettings, skip=("max_seconds",))
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import os

    from ..features import FeatureExtractor
    from ..model.checkpoint import load_checkpoint

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    settings = config_from_args(FinetuneSettings, args, max_seconds=args.max_seconds)
    limits = ClipLimits(max_clips=args.max_clips, max_seconds=args.max_clip_seconds)
    clips = read_labels(args.labels, args.clips, limits, need_labels=not args.label_with_text_path)
    base = load_checkpoint(args.base)  # before the extraction: a bad base fails in a second
    cache = args.cache_dir or os.environ.get("MSA_CACHE_DIR")
    extractor = FeatureExtractor({} if args.asr_model is None else {"asr_model": args.asr_model}, cache)
    extracted = extract_clips(clips, extractor, limits, on_clip=lambda i, n, name: say(f"features {i + 1}/{n}: {name}"))
    tune = Finetune(base, extracted, extractor.spec, settings, label_with_text=args.label_with_text_path)
    for progress in tune.train():
        say(progress.line())
    result = tune.finish(args.out.name)
    save_finetuned(result, args.out)
    if args.json:
        print(json.dumps({"checkpoint": str(args.out), **result.to_dict()}, indent=2))
    else:
        print(
            f"{args.out}: held-out MAE {result.heldout_mae:.3f} (base {result.base_mae:.3f}) on {result.clips} clips, "
            f"{result.folds} folds, {result.epochs} epochs, {result.train_seconds:.0f} s"
        )
        for w in result.warnings:
            print(f"warning: {w}")
    return 0


__all__ = ["add_parser", "main"]
