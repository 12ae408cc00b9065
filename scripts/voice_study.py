"""The voice study of docs/voice_study.md: which voice stream, and what trains, chosen on folds by
actor of the RAVDESS actors at hand, by the rules written there before any candidate ran.

    python -m scripts.voice_study --ravdess ../shared/data/ravdess-speech --base checkpoints/words-only \\
        --cache-dir ~/.cache/msa/features --out docs/voice_study.json

Every clip is read by the app's extractor (Whisper base transcribes it once; the other streams
reuse that transcript, so only their own frames are computed) into the feature cache, which the
shipped model's training then reads. Each candidate is a `msa.finetune.Finetune` with the same
folds, settings and seed; its held-out predictions give the numbers (`msa.finetune.report`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from msa.data import Collator, load_label_csv, ravdess
from msa.features import FeatureExtractor
from msa.finetune.clips import ClipLimits, CorpusReport, ExtractedClip, extract_clips, ravdess_clips, text_mix
from msa.finetune.report import emotion_report
from msa.finetune.run import Finetune, FinetuneResult, FinetuneSettings
from msa.io import atomic_write_json
from msa.model.checkpoint import Checkpoint, load_checkpoint
from msa.training.loop import evaluate_samples

# Decision 1's candidates, cheapest at inference first (the order breaks near-ties).
STREAMS = ("whisper-base", "librosa", "whisper-base+librosa")
FOLDS = 4
NEAR_TIE = 0.01  # AUC: a cheaper stream this close to the best wins
R2_MARGIN = 0.02  # AUC R2 must gain over R1
TEXT_SLACK = 0.005  # pooled MOSI-dev + MOSEI-valid MAE R2 may lose against the base
# Fixed before any candidate ran, the same for all: the fine-tuning's recipe at a corpus's scale
# (batch 16 instead of 8, 25 epochs instead of 40: 900 clips a fold instead of 16-20) on both cores.
# Decision 1 trains the voice encoder alone (R1): the amendment in docs/voice_study.md says why.
SETTINGS = FinetuneSettings(epochs=25, batch_size=16, folds=FOLDS, threads=2, seed=0, trains="streams")
TEXT_DATA = ("data/mosi/label.csv", "data/mosei/label.csv")


def extract(
    root: Path, stream: str, cache: Path, transcripts: dict[str, str] | None = None
) -> tuple[list[ExtractedClip], CorpusReport]:
    """The corpus's clips through the app's extractor with ``stream``; ``transcripts`` (file name ->
    words) replaces the speech recognition with what it already heard."""
    clips, skipped = ravdess_clips(root)
    if transcripts is not None:
        clips = [dataclasses.replace(c, text=transcripts.get(c.name)) for c in clips]
    report = CorpusReport(skipped=list(skipped))
    fx = FeatureExtractor({"voice_stream": stream}, cache)
    limits = ClipLimits(max_clips=len(clips))
    t0 = time.perf_counter()

    def say(i: int, n: int, name: str) -> None:
        if i % 100 == 0:
            print(f"  {stream}: {i}/{n} clips, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    return extract_clips(clips, fx, limits, on_clip=say, report=report), report


def actor_fold_list(clips: Sequence[ExtractedClip]) -> list[int]:
    folds = ravdess.actor_folds([c.clip.about["actor"] for c in clips], FOLDS)
    return [folds[c.clip.about["actor"]] for c in clips]


def ridge_floor(clips: Sequence[ExtractedClip], folds: Sequence[int]) -> dict[str, Any]:
    """A linear read-out of the stream: ridge regression on each clip's frame mean and standard
    deviation onto the mapped value, the penalty chosen inside each training fold."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.stack([np.concatenate([c.sample.acoustic.mean(0), c.sample.acoustic.std(0)]) for c in clips])
    y = np.array([c.clip.label for c in clips])
    folds_a = np.asarray(folds)
    pred = np.zeros(len(clips))
    for f in sorted(set(folds)):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 11)))
        model.fit(x[folds_a != f], y[folds_a != f])
        pred[folds_a == f] = model.predict(x[folds_a == f])
    rows = [{"label": float(t), "heldout": float(p), **c.clip.about} for c, t, p in zip(clips, y, pred)]
    return emotion_report(rows)


def text_valid_mae(ck: Checkpoint) -> float:
    """Pooled MAE on MOSI dev + MOSEI valid (gold transcripts, the words alone)."""
    samples = [s for f in TEXT_DATA for s in load_label_csv(Path(f))["valid"]]
    collator = Collator.for_model(ck.tokenizer, ck.model.config)
    return float(evaluate_samples(ck.model.eval(), samples, collator, batch_size=64)[0]["mae"])


def candidate(
    base: Checkpoint,
    clips: list[ExtractedClip],
    stream: str,
    settings: FinetuneSettings,
    texts: Sequence[Any] = (),
) -> tuple[dict[str, Any], FinetuneResult]:
    """One candidate's fine-tuning on the actor folds; its held-out numbers at the chosen epoch."""
    spec = FeatureExtractor({"voice_stream": stream}).spec
    tune = Finetune(base, clips, spec, settings, folds=actor_fold_list(clips), text_samples=texts)
    t0 = time.perf_counter()
    for p in tune.train():
        if p.fold and p.epoch % 5 == 0:
            print(f"    {p.line()}  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    result = tune.finish()
    report = emotion_report(result.heldout)
    curve_auc = []
    for epoch in range(tune.epochs):
        rows = [{**row, "heldout": tune.fold_predictions[i][epoch]} for i, row in enumerate(result.heldout)]
        curve_auc.append(emotion_report(rows)["auc"])
    out = {
        "settings": settings.to_dict(),
        "epochs": result.epochs,
        "heldout_mae_curve": result.curve,
        "heldout_auc_curve": curve_auc,
        "seconds": round(time.perf_counter() - t0, 1),
        **report,
    }
    return out, result


def decide_stream(results: dict[str, dict[str, Any]]) -> str:
    """Decision 1: the highest AUC, unless a cheaper stream (earlier in `STREAMS`) is within `NEAR_TIE`."""
    best = max(results, key=lambda k: results[k]["auc"])
    for name in STREAMS:
        if name in results and results[name]["auc"] >= results[best]["auc"] - NEAR_TIE:
            return name
    return best


def decide_trains(r1: dict[str, Any], r2: dict[str, Any], base_text: float) -> str:
    """Decision 2: R2 only if it gains `R2_MARGIN` AUC and loses at most `TEXT_SLACK` text MAE."""
    if r2["auc"] >= r1["auc"] + R2_MARGIN and r2["text_valid_mae"] <= base_text + TEXT_SLACK:
        return "streams+fusion"
    return "streams"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ravdess", type=Path, required=True)
    ap.add_argument("--base", type=Path, required=True, help="the words-only checkpoint the voice is added to")
    ap.add_argument("--cache-dir", type=Path, required=True, help="the feature cache (kept for the shipped run)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", choices=("stream", "trains"), default=None, help="run one decision")
    args = ap.parse_args(argv)
    base = load_checkpoint(args.base)
    out: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    clips_by_stream: dict[str, list[ExtractedClip]] = {}

    def clips_of(stream: str) -> list[ExtractedClip]:
        if stream not in clips_by_stream:
            heard = None
            if stream != STREAMS[0]:  # the words once, from the first stream's speech recognition
                heard = {c.clip.name: c.sample.text for c in clips_of(STREAMS[0])}
            clips, report = extract(args.ravdess, stream, args.cache_dir, heard)
            out.setdefault("corpus", {})[stream] = {"clips": len(clips), "skipped": report.skipped}
            clips_by_stream[stream] = clips
        return clips_by_stream[stream]

    if args.only in (None, "stream"):
        results = out.setdefault("stream", {})
        for stream in STREAMS:
            if stream in results:
                continue
            clips = clips_of(stream)
            print(f"decision 1: {stream}", file=sys.stderr, flush=True)
            floor = ridge_floor(clips, actor_fold_list(clips))
            result, _ = candidate(base, clips, stream, SETTINGS)
            results[stream] = {**result, "floor": floor}
            atomic_write_json(args.out, out)
        out["chosen_stream"] = decide_stream(results)
        atomic_write_json(args.out, out)
    if args.only in (None, "trains"):
        stream = out["chosen_stream"]
        clips = clips_of(stream)
        results = out.setdefault("trains", {})
        out["base_text_valid_mae"] = out.get("base_text_valid_mae") or text_valid_mae(base)
        # R1 is decision 1's run of the chosen stream (the same recipe, folds and seed).
        results.setdefault(
            "R1", {**out["stream"][stream], "trains": "streams", "text_valid_mae": out["base_text_valid_mae"]}
        )
        for name, trains, texts in (
            ("R2", "streams+fusion", text_mix([Path(f) for f in TEXT_DATA], len(clips), SETTINGS.seed)),
        ):
            if name in results:
                continue
            print(f"decision 2: {name} ({trains})", file=sys.stderr, flush=True)
            result, tuned = candidate(base, clips, stream, dataclasses.replace(SETTINGS, trains=trains), texts)
            results[name] = {**result, "trains": trains, "text_valid_mae": text_valid_mae(tuned.checkpoint)}
            atomic_write_json(args.out, out)
        out["chosen_trains"] = decide_trains(results["R1"], results["R2"], out["base_text_valid_mae"])
        atomic_write_json(args.out, out)
    print(json.dumps({k: out.get(k) for k in ("chosen_stream", "chosen_trains")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
