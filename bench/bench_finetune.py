"""Seconds to fine-tune the shipped default's voice and face on 20 clips of about 5 s, after
their features are extracted (issue 26's target: at most 60 s on 2 cores), and what it learns.

The clips: a real MOSI face (the shipped clip's frames, looped) under a neutral espeak-ng sentence
in one of two voices, padded to ``--seconds``; the label is the voice (+2 low, -2 high), so only
the voice can explain it. ``--clips`` train (k-fold inside), and 8 more with sentences never
trained on are scored after. Reported: extraction per clip (Whisper base transcribes, as for a
user's clip; then again from the feature cache), fine-tuning seconds on 2 threads and on 1 (a
Space's lab-style run), the held-out MAE beside the base's, and the unseen clips' scores by voice.

    python -m bench.bench_finetune [--clips 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from msa.features import FeatureExtractor
from msa.features.media import ffmpeg_command
from msa.finetune import Finetune, FinetuneSettings, LabelledClip, extract_clips
from msa.model.checkpoint import load_checkpoint
from msa.predict import Predictor
from msa.testing import NEUTRAL_SENTENCES, ROOT, TWO_VOICES

FACE = ROOT / "assets" / "examples" / "mosi_Sqr0AcuoNnk_12.mp4"
BASE = ROOT / "checkpoints" / "default"
VOICES = TWO_VOICES
SENTENCES = NEUTRAL_SENTENCES


def build(folder: Path, i: int, voice: str, seconds: float) -> Path:
    """Sentence ``i`` in ``voice`` under the looped real face, ``seconds`` long."""
    wav = folder / f"s{i}_{voice}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), SENTENCES[i]], check=True)
    out = folder / f"s{i:02d}_{voice.replace('+', '_')}.mp4"
    cmd = ffmpeg_command(
        "-y", "-stream_loop", "-1", "-i", str(FACE), "-i", str(wav), "-af", "apad", "-t", f"{seconds}",
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", str(out),
    )  # fmt: skip
    subprocess.run(cmd, check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=20, help="training clips (half in each voice)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each clip")
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng not found (apt-get install espeak-ng)")
    pairs = args.clips // 2
    if pairs + 4 > len(SENTENCES):
        raise SystemExit(f"--clips at most {2 * (len(SENTENCES) - 4)}")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        made = {(i, v): build(tmp, i, v, args.seconds) for i in range(pairs + 4) for v in VOICES}
        train = [LabelledClip(made[i, v], y) for i in range(pairs) for v, y in VOICES.items()]
        unseen = [LabelledClip(made[i, v], y) for i in range(pairs, pairs + 4) for v, y in VOICES.items()]

        extractor = FeatureExtractor({}, tmp / "cache")
        extractor.warm_up()
        t0 = time.perf_counter()
        clips = extract_clips(train, extractor)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        extract_clips(train, extractor)
        cached = time.perf_counter() - t0
        faces = sum(c.sample.visual is not None for c in clips)
        print(
            f"{len(clips)} clips of {args.seconds:g} s ({faces} with a face): extraction {first:.1f} s "
            f"({first / len(clips):.2f} s a clip, Whisper base included); again from the cache {cached:.2f} s"
        )

        base = load_checkpoint(BASE)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            tune = Finetune(base, clips, extractor.spec, FinetuneSettings())
            for _ in tune.train():
                pass
            result = tune.finish()
            seconds = time.perf_counter() - t0
            print(
                f"fine-tuning on {threads} thread(s): {seconds:.1f} s ({result.folds} folds x {result.fold_epochs} "
                f"epochs, then {result.epochs} on every clip); held-out MAE {result.heldout_mae:.3f}, "
                f"base {result.base_mae:.3f}"
            )
        torch.set_num_threads(2)
        predictor = Predictor(result.checkpoint, extractor=extractor)
        scores = np.array([predictor.run(c.path).prediction.score for c in unseen])
        labels = np.array([c.label for c in unseen])
        print(
            f"{len(unseen)} clips with unseen sentences: MAE {np.abs(scores - labels).mean():.3f}; "
            f"low voice {scores[labels > 0].mean():+.2f}, high voice {scores[labels < 0].mean():+.2f}"
        )


if __name__ == "__main__":
    main()
