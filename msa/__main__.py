"""Command line: ``python -m msa predict|evaluate|lab|finetune ...``.

predict   sentiment of media files (score, 7-class name, transcript, modalities, segments)
evaluate  metrics of a checkpoint on one split of a dataset, and per-sample predictions
lab       the Fusion Lab: train the model on a synthetic world whose rule you choose (msa.lab)
finetune  teach a checkpoint's voice and face branches from your own labelled clips (msa.finetune)

Examples
--------
::

    python -m msa predict clip.mp4 --json
    python -m msa predict a.mp4 b.wav --checkpoint runs/mosi-video/seed1111/best --asr-model tiny.en
    python -m msa predict clip.mp4 --transcript "what the speaker actually said"
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .commands import asr_model_argument, one_line_errors

if TYPE_CHECKING:
    from .explain import Explanation
    from .predict import Prediction

# mediapipe's C++ logging writes several lines per file straight to fd 2 ("W0000 ... Feedback
# manager requires a model...", "INFO: Created TensorFlow Lite XNNPACK delegate"); no setting
# turns them off, so `predict` filters them out of its stderr and passes everything else on.
_NATIVE_NOISE = re.compile(
    r"^([WI]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: Logging before InitGoogle|"
    r"INFO: Created TensorFlow Lite)"
)


@contextlib.contextmanager
def _filtered_native_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines() if not _NATIVE_NOISE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default"


def _evaluate(args: argparse.Namespace) -> int:
    from .data import Collator
    from .data.loaders import load_dataset
    from .model.checkpoint import load_checkpoint
    from .training.loop import evaluate_samples, write_predictions

    spec = args.data or args.labels
    ckpt = load_checkpoint(args.checkpoint)
    splits = load_dataset(spec)
    if args.split not in splits or not splits[args.split]:
        raise ValueError(
            f"{spec}: no samples in split {args.split!r}; it has {sorted(k for k, v in splits.items() if v)}"
        )
    samples = splits[args.split]
    collator = Collator.for_model(ckpt.tokenizer, ckpt.model.config)
    metrics, preds = evaluate_samples(ckpt.model, samples, collator, args.batch_size)
    if args.predictions:
        write_predictions(Path(args.predictions), samples, preds)
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "data": spec,
                    "split": args.split,
                    "n": len(samples),
                    "metrics": metrics,
                },
                indent=2,
            )
        )
    else:
        print(f"{spec} [{args.split}, n={len(samples)}] with {args.checkpoint}")
        for k, v in metrics.items():
            print(f"  {k:>10}: {v:.4f}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .batch.cli import predict_to_table
    from .batch.inputs import expand_inputs
    from .features import FeatureError
    from .predict import load_predictor

    if args.out is not None:
        return predict_to_table(args)
    if args.engine != "local" or args.address or args.workers != 1:
        raise ValueError("--engine, --address and --workers go with --out (a results table)")
    items = expand_inputs(args.inputs)

    # Whisper loads beside the checkpoint (not needed when every file comes with its transcript).
    predictor = load_predictor(
        args.checkpoint,
        asr_model=args.asr_model,
        cache_dir=args.cache_dir,
        warm_up=False,
        asr=args.transcript is None or any(item["transcript"] is None for item in items),
    )
    results: list[dict] = []
    failed = 0
    for item in items:
        f = item["file"]
        try:
            with _filtered_native_stderr():
                run = predictor.run(f, transcript=args.transcript or item["transcript"], explain=args.explain)
        except Exception as e:
            # One line per bad file; the others are still processed. An error outside the
            # expected kinds is a bug: its traceback is there with MSA_DEBUG=1.
            if os.environ.get("MSA_DEBUG"):
                raise
            expected = isinstance(e, (FeatureError, ValueError, OSError, RuntimeError))
            msg = " ".join(str(e).split()) if expected else f"unexpected {type(e).__name__}: {' '.join(str(e).split())}"
            print(f"error: {msg if str(Path(f).name) in msg else f'{f}: {msg}'}", file=sys.stderr)
            results.append({"file": str(f), "error": msg})
            failed += 1
            continue
        if args.json:
            results.append(run.to_dict())
        else:
            _print_prediction(run.prediction)
            if run.explanation is not None:
                _print_explanation(run.explanation)
    if args.json:
        print(json.dumps(results, indent=2, allow_nan=False))
    return 1 if failed else 0


def _print_prediction(pred: Prediction) -> None:
    present = ", ".join(pred.modalities_present) or "none"
    print(f"{pred.file}: {pred.score:+.3f} ({pred.label7}, {pred.polarity}); modalities: {present}")
    print(f"  transcript ({pred.transcript_source}): {pred.transcript or '-'}")
    for m, why in pred.absent.items():
        print(f"  {m} absent: {why}")
    for s in pred.segments:
        print(f"  [{s.start:6.2f}-{s.end:6.2f}] {s.score:+.3f} {s.label7:<17} {s.transcript or '-'}")
    print("  seconds: " + " ".join(f"{k} {v:.2f}" for k, v in pred.timings.items()))


def _print_explanation(e: Explanation) -> None:
    from .explain import wording

    c = e.contributions
    parts = " ".join(f"{v:+.3f} {m}" for m, v in c.values.items())
    print(f"  Shapley: base {c.base:+.3f} {parts} = {c.score:+.3f}")
    for g in e.gates:
        info = e.branches[g.branch]
        reason = info.stand_in_reason
        tag = f" ({wording.no_evidence(g.branch)}: {reason})" if reason else ""
        shares = " ".join(f"{w.text}:{s:.2f}" for w, s in zip(e.words, g.share))
        print(f"  share from {info.name} layer {g.layer}{tag}: {shares}")


def build_parser() -> argparse.ArgumentParser:
    from .parallel import add_engine_arguments

    p = argparse.ArgumentParser(prog="python -m msa", description="Multimodal sentiment analysis")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("predict", help="sentiment of video or audio files")
    r.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video (mp4, webm, mov, avi, mkv, flv) or audio (wav, mp3, m4a, flac) files, folders of them, "
        "or a manifest .csv (columns file[,transcript])",
    )
    r.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint folder")
    r.add_argument("--transcript", help="the spoken text; replaces speech recognition (applies to every FILE)")
    asr_model_argument(r, help="Whisper model: base (default, more accurate) or tiny.en (faster)")
    r.add_argument(
        "--cache-dir",
        type=Path,
        default=os.environ.get("MSA_CACHE_DIR") or None,
        help="feature cache folder (default: $MSA_CACHE_DIR, else no cache)",
    )
    r.add_argument("--json", action="store_true", help="print a JSON list, one object per FILE")
    r.add_argument(
        "--explain",
        action="store_true",
        help="add the explanation: exact Shapley values, and per "
        "branch and layer each word's share of its update and its attention over time",
    )
    r.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="TABLE",
        help="write a results table (.csv or .parquet; one row per input, errors included) instead of "
        "printing; an existing one is resumed",
    )
    r.add_argument("--quiet", action="store_true", help="with --out: no progress lines on stderr")
    add_engine_arguments(r)
    r.set_defaults(func=_predict)
    e = sub.add_parser("evaluate", help="metrics of a checkpoint on one split")
    e.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint folder")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="dataset spec: pickle, label CSV, or synthetic:mosi")
    src.add_argument("--labels", help="a transcript label CSV (text only)")
    e.add_argument("--split", default="test", choices=("train", "valid", "test"))
    e.add_argument("--predictions", help="write id,label,prediction rows to this CSV")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=_evaluate)
    from .batch.cli import add_extract_parser
    from .finetune.cli import add_parser as add_finetune_parser
    from .lab.cli import add_parser as add_lab_parser

    add_lab_parser(sub)
    add_finetune_parser(sub)
    add_extract_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return one_line_errors(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
