"""``python -m msa finetune``: teach a checkpoint's voice and face branches from one's own clips.

    python -m msa finetune --clips my_clips --labels my_clips/labels.csv --out checkpoints/mine
    python -m msa finetune --clips my_clips --labels files.csv --label-with-text-path --out checkpoints/mine
    python -m msa finetune --ravdess ../shared/data/ravdess-speech --base checkpoints/words-only \
        --text-data data/mosi/label.csv --text-data data/mosei/label.csv --out checkpoints/voice

LABELS.csv has the columns ``file,label`` (and optionally ``text``, the spoken words, and
``speaker``); ``file`` is relative to --clips, ``label`` a number in [-3, 3] or a 7-class name.
--ravdess reads a folder in the RAVDESS corpus's layout instead: each file's emotion and intensity
from its name, mapped onto [-3, 3] (`msa.data.ravdess.emotion_value`), folds by actor; a file it
cannot use is named and the rest are used. --text-data mixes labelled transcripts (the train fold
of a label CSV, without voice or face) into every epoch. The output loads in ``python -m msa
predict --checkpoint OUT`` and in the app. Progress goes to stderr, the result to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..commands import asr_model_argument, subcommand
from ..config import add_config_arguments, config_from_args
from ..data import ravdess
from ..features.spec import DEFAULT_VOICE_STREAM, VOICE_STREAMS
from .card import save_finetuned
from .clips import ClipError, ClipLimits, CorpusReport, extract_clips, ravdess_clips, read_labels, text_mix
from .report import emotion_report, emotion_table
from .run import FRESH_VOICE_STREAM, Finetune, FinetuneSettings, voice_stream_for

DEFAULT_BASE = Path(__file__).resolve().parents[2] / "checkpoints" / "default"


def add_parser(sub: Any) -> None:
    """The ``finetune`` command on the ``python -m msa`` parser's subcommands."""
    what = "fine-tune a checkpoint's voice and face branches on your own labelled clips"
    p = subcommand(sub, "finetune", what, __doc__)
    p.add_argument("--clips", type=Path, help="the folder of media files")
    p.add_argument("--labels", type=Path, help="CSV with columns file,label[,text][,speaker]")
    p.add_argument("--ravdess", type=Path, help="a folder in RAVDESS's layout (Actor_NN/03-01-EE-II-SS-RR-NN.wav)")
    p.add_argument("--actors", type=str, default=None, help="with --ravdess: only these actors, e.g. 1-12,15")
    p.add_argument(
        "--text-data",
        type=Path,
        action="append",
        default=[],
        help="a label CSV whose train-fold transcripts join every epoch, without voice or face (repeatable)",
    )
    p.add_argument("--text-mix", type=int, default=0, help="how many of those transcripts (0: as many as clips)")
    p.add_argument("--base", type=Path, default=DEFAULT_BASE, help="checkpoint to start from (default: the app's)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument(
        "--label-with-text-path",
        action="store_true",
        help="ignore the label column: the base checkpoint's score of the words is each clip's label",
    )
    asr_model_argument(p, help="Whisper model for clips without text (default base)")
    p.add_argument(
        "--voice-stream",
        choices=sorted(VOICE_STREAMS),
        default=None,
        help=f"for a base that hears no voice: the stream its new voice branch reads (default {FRESH_VOICE_STREAM}; "
        f"a corpus of hundreds of clips learns more from {DEFAULT_VOICE_STREAM}); a base that hears keeps its own",
    )
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

    if (args.ravdess is None) == (args.clips is None or args.labels is None):
        raise ClipError("give either --clips and --labels (your own clips) or --ravdess (a corpus folder)")
    if args.ravdess is not None and args.label_with_text_path:
        raise ClipError("--ravdess clips are labelled by their emotion; --label-with-text-path is for your own clips")
    settings = config_from_args(FinetuneSettings, args, max_seconds=args.max_seconds)
    base = load_checkpoint(args.base)  # before the extraction: a bad base fails in a second
    cache = args.cache_dir or os.environ.get("MSA_CACHE_DIR")
    settings_fx = {} if args.asr_model is None else {"asr_model": args.asr_model}
    extractor = FeatureExtractor(settings_fx, cache).with_voice_stream(voice_stream_for(base, args.voice_stream))
    report = None
    folds = None
    if args.ravdess is not None:
        clips, skipped = ravdess_clips(args.ravdess, parse_actors(args.actors))
        report = CorpusReport(skipped=list(skipped))
        limits = ClipLimits(max_clips=max(args.max_clips, len(clips)), max_seconds=args.max_clip_seconds)
    else:
        limits = ClipLimits(max_clips=args.max_clips, max_seconds=args.max_clip_seconds)
        clips = read_labels(args.labels, args.clips, limits, need_labels=not args.label_with_text_path)
    extracted = extract_clips(
        clips, extractor, limits, on_clip=lambda i, n, name: say(f"features {i + 1}/{n}: {name}"), report=report
    )
    if report is not None:
        for line in report.lines():
            print(f"note: {line}", file=sys.stderr)
        actors = [c.clip.about["actor"] for c in extracted]
        if len(set(actors)) < 2:
            raise ClipError(f"the clips are of {len(set(actors))} actor: folds by actor need at least 2")
        by_actor = ravdess.actor_folds(actors, min(settings.folds, len(set(actors))))
        folds = [by_actor[c.clip.about["actor"]] for c in extracted]
    texts = text_mix(args.text_data, args.text_mix or len(extracted), settings.seed)
    tune = Finetune(
        base,
        extracted,
        extractor.spec,
        settings,
        label_with_text=args.label_with_text_path,
        folds=folds,
        text_samples=texts,
    )
    for progress in tune.train():
        say(progress.line())
    result = tune.finish(args.out.name)
    if report is not None:
        result.warnings += [f"Not used: {line}" for line in report.skipped]
    save_finetuned(result, args.out)
    if args.json:
        print(json.dumps({"checkpoint": str(args.out), **result.to_dict()}, indent=2))
    else:
        print(
            f"{args.out}: held-out MAE {result.heldout_mae:.3f} (base {result.base_mae:.3f}, always "
            f"{result.constant_label:+.1f}: {result.constant_mae:.3f}) on {result.clips} clips, "
            f"{result.folds} folds, {result.epochs} epochs, {result.train_seconds:.0f} s"
        )
        if any("emotion" in row for row in result.heldout):
            print("\n".join(emotion_table(emotion_report(result.heldout))))
        for w in result.warnings:
            print(f"warning: {w}")
    return 0


def parse_actors(value: str | None) -> list[int] | None:
    """``"1-12,15"`` -> [1, ..., 12, 15]; None for all."""
    if not value:
        return None
    out: list[int] = []
    try:
        for part in value.split(","):
            a, _, b = part.partition("-")
            out += list(range(int(a), int(b or a) + 1))
    except ValueError:
        raise ClipError(f"--actors {value!r}: give actor numbers and ranges, e.g. 1-12,15") from None
    return out


__all__ = ["add_parser", "main"]
