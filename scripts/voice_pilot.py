"""The anchor pilot of docs/voice_study.md: does adding emotionless voices (espeak-ng reading
MOSI/MOSEI train transcripts, labelled with the words-only score) teach the voice branch that a
voice saying new words adds nothing, without losing what it hears in RAVDESS's actors?

    python -m scripts.voice_pilot make-anchors --out runs/anchors
    python -m scripts.voice_pilot run P0 --ravdess ../shared/data/ravdess-speech --anchors runs/anchors \\
        --cache-dir ~/.cache/msa/features --probes runs/probes ../shared/data/clips --out runs/pilot

``run`` trains one candidate (P0: RAVDESS alone; P1: RAVDESS and the anchors) on the study's actor
folds and writes ``OUT/CANDIDATE.json``: the RAVDESS held-out report, the held-out anchors' pull,
and the final model's Shapley values on each probe clip (reported, never used to judge).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from msa.features import FeatureExtractor
from msa.features.spec import DEFAULT_VOICE_STREAM
from msa.finetune.anchors import anchor_clips, make_anchors, pull_summary
from msa.finetune.report import emotion_report
from msa.finetune.run import Finetune, FinetuneSettings, base_scores
from msa.io import atomic_write_json
from msa.model.checkpoint import load_checkpoint, save_loaded
from msa.predict import Predictor
from msa.testing import ROOT
from scripts.build_default import explained
from scripts.voice_study import FOLDS, actor_fold_list, extract

WORDS = ROOT / "checkpoints" / "words-only"
TEXT_DATA = (ROOT / "data" / "mosi" / "label.csv", ROOT / "data" / "mosei" / "label.csv")
# The rule's settings: seed 1111, the shipped recipe (R1), decision 1's 25-epoch budget, one thread.
SETTINGS = FinetuneSettings(epochs=25, batch_size=16, folds=FOLDS, threads=1, seed=1111, trains="streams")


def probe(folder: Path, files: Sequence[Path]) -> dict[str, Any]:
    """The final model on each probe clip: score, transcript, and the words' and voice's Shapley values."""
    predictor = Predictor(folder, asr_model="base")
    return {f.name: explained(predictor, f) for f in files}


def run(args: argparse.Namespace) -> None:
    fx = FeatureExtractor({"voice_stream": DEFAULT_VOICE_STREAM}, args.cache_dir)
    ravdess, report = extract(args.ravdess, DEFAULT_VOICE_STREAM, args.cache_dir)
    clips, folds = list(ravdess), actor_fold_list(ravdess)
    words_only = load_checkpoint(WORDS)
    anchors, _ = anchor_clips(args.anchors, fx, words_only)
    if args.candidate == "P1":  # trained on, dealt to the folds in turn
        clips += anchors
        folds += [i % FOLDS for i in range(len(anchors))]
    tune = Finetune(words_only, clips, fx.spec, SETTINGS, folds=folds)
    t0 = time.perf_counter()
    for p in tune.train():
        if p.fold and p.epoch % 5 == 0:
            print(f"{args.candidate}: {p.line()} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    result = tune.finish(f"pilot {args.candidate}")
    rows = result.heldout
    if args.candidate == "P1":  # each anchor scored by the fold model that never heard its words
        pull = np.array([r["heldout"] - r["label"] for r in rows[len(ravdess) :]])
    else:  # no anchor was trained on: the final model scores them all
        scored = base_scores(result.checkpoint, [c.sample for c in anchors], fx.spec)
        pull = scored - np.array([c.sample.label for c in anchors])
    folder = args.out / args.candidate
    save_loaded(folder, result.checkpoint)
    probes = [p for d in args.probes for p in sorted(Path(d).iterdir()) if p.suffix in (".wav", ".mp4")]
    out = {
        "candidate": args.candidate,
        "settings": SETTINGS.to_dict(),
        "skipped": report.skipped,
        "epochs": result.epochs,
        "heldout_mae_curve": result.curve,
        "seconds": round(time.perf_counter() - t0, 1),
        "ravdess": emotion_report(rows[: len(ravdess)]),
        "anchors": pull_summary(pull),
        "probes": probe(folder, probes),
    }
    atomic_write_json(args.out / f"{args.candidate}.json", out)
    print(json.dumps({k: out[k] for k in ("epochs", "anchors")} | {"auc": out["ravdess"]["auc"]}), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-anchors")
    make.add_argument("--out", type=Path, required=True)
    go = sub.add_parser("run")
    go.add_argument("candidate", choices=("P0", "P1"))
    go.add_argument("--ravdess", type=Path, required=True)
    go.add_argument("--anchors", type=Path, required=True)
    go.add_argument("--cache-dir", type=Path, required=True)
    go.add_argument("--probes", type=Path, nargs="+", required=True, help="folders of clips to score at the end")
    go.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.command == "make-anchors":
        make_anchors(args.out, TEXT_DATA)
    else:
        run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
