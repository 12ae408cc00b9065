"""Voices that say nothing beyond their words: espeak-ng reading labelled transcripts, each clip
labelled with a words-only checkpoint's score of its words.

A corpus of acted emotions (RAVDESS: two sentences, every take an emotion) never shows the voice
branch a voice that says new words and means nothing by its tone; the branch trained on it read
every such voice as negative (docs/voice_study.md). Mixed into its training, these anchors teach it
that such a voice leaves the words' score where it is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import load_label_csv
from ..features import FeatureExtractor
from ..io import atomic_path, atomic_write_json
from ..model.checkpoint import Checkpoint
from .clips import ClipError, ClipLimits, CorpusReport, ExtractedClip, LabelledClip, extract_clips
from .run import base_scores

MANIFEST = "manifest.json"
COUNT, SEED = 480, 20261208  # docs/voice_study.md's pilot
WORDS = (4, 30)  # a transcript's length in words: a sentence, as a RAVDESS take is
VOICES = tuple(f"en-us+{v}" for v in ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"))
SPEED, PITCH = (140, 190), (35, 65)  # espeak-ng's words a minute and pitch (0-99), drawn per clip


def make_anchors(out: Path, transcripts: Sequence[Path], n: int = COUNT, seed: int = SEED) -> Path:
    """``n`` train-fold transcripts of ``transcripts`` (label CSVs), drawn with ``seed``, each read
    by espeak-ng in one of `VOICES` in turn at a drawn speed and pitch, into ``out``; returns the
    manifest (file, row id, words, voice). Test and dev rows are never read aloud."""
    if shutil.which("espeak-ng") is None:
        raise ClipError("the anchors are spoken by espeak-ng, which is not installed (apt-get install espeak-ng)")
    pool = [s for f in transcripts for s in load_label_csv(f).get("train", []) if s.text]
    pool = [s for s in pool if WORDS[0] <= len(s.text.split()) <= WORDS[1]]
    if len(pool) < n:
        raise ClipError(f"{n} anchors asked for, but the train folds hold {len(pool)} transcripts of {WORDS} words")
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, row in enumerate(rng.sample(pool, n)):
        voice, speed, pitch = VOICES[i % len(VOICES)], rng.randint(*SPEED), rng.randint(*PITCH)
        wav = out / f"anchor_{i:03d}.wav"
        with atomic_path(wav) as tmp:  # --stdin: a transcript may begin with "-"
            cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(tmp), "--stdin"]
            subprocess.run(cmd, input=row.text, text=True, check=True, capture_output=True)
        manifest.append({"file": wav.name, "id": row.id, "text": row.text, "voice": voice})
    atomic_write_json(out / MANIFEST, manifest)
    return out / MANIFEST


def anchor_clips(
    folder: Path, extractor: FeatureExtractor, words_only: Checkpoint
) -> tuple[list[ExtractedClip], CorpusReport]:
    """The anchors of ``folder`` through ``extractor`` with their words given, each labelled with
    ``words_only``'s score of its words alone (the voice is to add nothing), marked ``anchor`` in
    its sample's meta; a clip that cannot be used is named in the report and left out."""
    manifest = json.loads((folder / MANIFEST).read_text())
    clips = [
        LabelledClip(folder / m["file"], math.nan, text=m["text"], speaker=m["voice"], about={"anchor": m["id"]})
        for m in manifest
    ]
    report = CorpusReport()
    out = extract_clips(clips, extractor, ClipLimits(max_clips=len(clips)), report=report)
    teacher = base_scores(words_only, [c.sample for c in out], extractor.spec, text_only=True)
    return [
        dataclasses.replace(
            c, sample=dataclasses.replace(c.sample, label=float(y), meta={**c.sample.meta, "anchor": 1})
        )
        for c, y in zip(out, teacher)
    ], report


def pull_summary(moves: np.ndarray) -> dict[str, Any]:
    """How far the voice moved the anchors' scores from their words-only labels."""
    return {"clips": int(moves.size), "mean_abs_pull": float(np.abs(moves).mean()), "mean_pull": float(moves.mean())}


__all__ = ["COUNT", "MANIFEST", "SEED", "VOICES", "anchor_clips", "make_anchors", "pull_summary"]
