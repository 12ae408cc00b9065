"""A corpus of hard cases for speech recognition, built on demand from the shipped MOSI clips.

Whisper's cost and its mistakes depend on what the audio holds, not only on its length: speech
that repeats itself looks like a decoding loop and sets off the temperature fallback; long
silence, music and noise are where Whisper invents words. `build_corpus` writes one clip per
case into a folder:

- ``looped_30s.mp4``: one real clip (``mosi_Oz06ZWiO20M_6``, 7.5 s) played four times, video
  kept (the issue's 16 s case);
- ``distinct_30s.wav``: ~30 s of speech that does not repeat: the three real clips, padded with
  espeak-ng sentences (the real clips alone last 13 s);
- ``long_silence.wav``: a real clip, 20 s of near-silence (faint room noise), another real clip;
- ``music.wav``: generated chords, melody and drum, no voice;
- ``noise.wav``: white then pink noise, no voice;
- ``talk_5min.wav``: real clips and espeak-ng sentences in turn to 5 minutes (the length check).

Every speech clip comes with its reference transcript (MOSI's gold text for the real clips, the
sentence itself for espeak-ng), so word error rates can be computed on the long clips too.

Files are named by a hash of everything that makes them (this recipe's version, its settings,
the source files' contents, the ffmpeg and espeak-ng versions), so a second call reuses them and
a change to any input makes new ones. Nothing here is committed: the default folder is
``$MSA_CACHE_DIR/asr-corpus`` (see `msa.features.default_cache_root`).

    python -m bench.asr_corpus [OUT_DIR]
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msa.features import decode_audio, default_cache_root, probe
from msa.features.media import ffmpeg_command
from msa.features.spec import SAMPLE_RATE, sha256_file
from msa.testing import ROOT

CLIPS = ROOT / "assets" / "examples"
LOOPED_SOURCE = "mosi_Oz06ZWiO20M_6.mp4"
REAL = ("mosi_Oz06ZWiO20M_6.mp4", "mosi_Sqr0AcuoNnk_12.mp4", "mosi_03bSnISJMiM_1.wav")

# Bump when a recipe below changes what it writes for the same inputs.
RECIPE_VERSION = 1

# Sentences that never repeat within a 30 s window: Whisper decodes each window on its own
# (condition_on_previous_text=False), so these keep the distinct and the 5-minute clips free of
# the repetition that the looped clip is there to test.
SENTENCES = (
    "I went to see this film last weekend with a couple of friends from work.",
    "The first half drags a little, but the photography is honestly beautiful.",
    "My main problem was the dialogue, which felt stiff and very predictable.",
    "Still, the lead actress carries the whole thing and I would watch it again.",
    "If you liked the director's earlier work, you will probably enjoy this one too.",
    "The soundtrack is loud in all the wrong places and quiet in the right ones.",
    "Nobody in the theater laughed at the jokes, and there were a lot of them.",
    "The villain gets almost no time on screen, which is a real shame.",
    "By the end I cared about the two brothers more than I expected to.",
    "It is too long by half an hour, and the last chase goes on forever.",
    "The costumes and the sets look expensive, and every penny is on the screen.",
    "I would wait until it comes out on television before paying for a ticket.",
)


@dataclass(frozen=True)
class CorpusClip:
    """One clip of the corpus.

    Attributes
    ----------
    name : short name ("looped_30s", ...).
    path : the media file.
    seconds : its length.
    reference : what is said, in order ("" for music, noise: any word out is a hallucination).
    speech : whether the clip holds speech at all.
    silence : (start, end) in seconds of a stretch where nobody speaks inside a speech clip.
    """

    name: str
    path: Path
    seconds: float
    reference: str
    speech: bool
    silence: tuple[float, float] | None = None


def gold_transcripts() -> dict[str, str]:
    """MOSI's gold transcripts of the shipped clips, keyed by file name."""
    ids = {Path(n).stem.removeprefix("mosi_"): n for n in REAL}
    out: dict[str, str] = {}
    with open(ROOT / "data" / "mosi" / "label.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["id"] in ids:
                out[ids[row["id"]]] = row["text"]
    missing = sorted(set(REAL) - set(out))
    if missing:
        raise SystemExit(f"no gold transcript in data/mosi/label.csv for {missing}")
    return out


# ----------------------------------------------------------------------------------------------
# Generated sounds (numpy, seeded): also used by the tests on short lengths
# ----------------------------------------------------------------------------------------------


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of 1/f noise (white noise shaped in the frequency domain), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / np.sqrt(np.mean(x**2))).astype(np.float32)


def noise(seconds: float, seed: int = 0, rms_dbfs: float = -20.0) -> np.ndarray:
    """White noise for the first half, pink noise for the second, at ``rms_dbfs``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    half = n // 2
    white = rng.standard_normal(half).astype(np.float32)
    x = np.concatenate([white, pink_noise(n - half, rng)])
    return (10 ** (rms_dbfs / 20) * x).astype(np.float32)


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Instrumental music: a I-vi-IV-V chord progression (harmonic partials, plucked envelope),
    a melody over it and a kick drum on the beat, at 120 bpm; no voice. Peak at -6 dBFS."""
    rng = np.random.default_rng(seed)
    sr = SAMPLE_RATE
    n = int(seconds * sr)
    out = np.zeros(n, np.float64)
    beat = 0.5  # seconds
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]  # C, Am, F, G (MIDI)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]

    def hz(midi: float) -> float:
        return 440.0 * 2 ** ((midi - 69) / 12)

    def note(freq: float, dur: float, amp: float, decay: float) -> np.ndarray:
        t = np.arange(int(dur * sr)) / sr
        partials = sum((0.6**k) * np.sin(2 * np.pi * freq * (k + 1) * t) for k in range(5))
        attack = np.minimum(t / 0.01, 1.0)
        return amp * attack * np.exp(-t / decay) * partials

    def add(x: np.ndarray, start: float) -> None:
        i = int(start * sr)
        if i < n:
            out[i : i + len(x)] += x[: n - i]

    bar = 4 * beat
    for b in range(int(np.ceil(seconds / bar))):
        for m in chords[b % len(chords)]:
            add(note(hz(m - 12), bar, 0.12, 1.2), b * bar)
        for k in range(4):
            add(note(hz(float(rng.choice(scale))), beat, 0.15, 0.25), b * bar + k * beat)
            t = np.arange(int(0.25 * sr)) / sr
            add(0.5 * np.sin(2 * np.pi * (50 + 80 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.08), b * bar + k * beat)
    out *= 0.5 / np.abs(out).max()
    return out.astype(np.float32)


def room_tone(seconds: float, seed: int = 0, rms_dbfs: float = -60.0) -> np.ndarray:
    """Near-silence as a microphone records it: faint pink noise (a pause in a real recording
    is never digital zero)."""
    return (10 ** (rms_dbfs / 20) * pink_noise(int(seconds * SAMPLE_RATE), np.random.default_rng(seed))).astype(
        np.float32
    )


# ----------------------------------------------------------------------------------------------
# Building the corpus
# ----------------------------------------------------------------------------------------------


def _tool_version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[0].strip()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "missing"


def _write_wav(path: Path, audio: np.ndarray) -> None:
    """16 kHz mono 16-bit WAV, written to a temporary name first so that an interrupted write
    never leaves a file that looks finished."""
    import soundfile

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.wav")
    soundfile.write(tmp, np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, path)


def _espeak(text: str, tmp_dir: Path, i: int) -> np.ndarray:
    wav = tmp_dir / f"sentence{i}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), text], check=True)
    return decode_audio(wav)


class _Pieces:
    """Speech pieces (audio, text) in turn: the real clips and, where espeak-ng is installed,
    the sentences, so that a long clip made of them repeats as rarely as possible."""

    def __init__(self, tmp_dir: Path, use_espeak: bool):
        gold = gold_transcripts()
        self.real = [(decode_audio(CLIPS / n), gold[n]) for n in REAL]
        self.sentences = [(_espeak(s, tmp_dir, i), s) for i, s in enumerate(SENTENCES)] if use_espeak else []

    def sequence(self, seconds: float, gap: float) -> tuple[np.ndarray, str]:
        """Pieces alternating real clip / sentence, separated by ``gap`` s of room tone, as many
        as fit in ``seconds`` (whole pieces only: cutting a word would break the reference)."""
        order: list[tuple[np.ndarray, str]] = []
        for i in range(max(len(self.real), len(self.sentences))):
            order.append(self.real[i % len(self.real)])
            if self.sentences:
                order.append(self.sentences[i % len(self.sentences)])
        parts: list[np.ndarray] = []
        texts: list[str] = []
        total, k = 0.0, 0
        while True:
            audio, text = order[k % len(order)]
            if parts and total + gap + len(audio) / SAMPLE_RATE > seconds:
                break
            if parts:
                parts.append(room_tone(gap, seed=k))
                total += gap
            parts.append(audio)
            texts.append(text)
            total += len(audio) / SAMPLE_RATE
            k += 1
        return np.concatenate(parts), " ".join(texts)


def _looped_video(out: Path, times: int) -> None:
    src = CLIPS / LOOPED_SOURCE
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.mp4")
    subprocess.run(
        ffmpeg_command(
            "-y",
            "-stream_loop",
            str(times - 1),
            "-i",
            str(src),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-threads",
            "1",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-fflags",
            "+bitexact",
            str(tmp),
        ),
        check=True,
    )
    os.replace(tmp, out)


def build_corpus(out_dir: str | os.PathLike[str] | None = None, talk_seconds: float = 300.0) -> dict[str, CorpusClip]:
    """Write (or reuse) the corpus in ``out_dir``; returns its clips by name, in a fixed order.

    Parameters
    ----------
    out_dir : folder for the files (default ``default_cache_root() / "asr-corpus"``).
    talk_seconds : length of the long talk (5 minutes).
    """
    out = Path(out_dir) if out_dir is not None else default_cache_root() / "asr-corpus"
    out.mkdir(parents=True, exist_ok=True)
    gold = gold_transcripts()
    use_espeak = shutil.which("espeak-ng") is not None
    sources = {n: sha256_file(CLIPS / n) for n in REAL}
    common = {
        "recipe": RECIPE_VERSION,
        "sources": sources,
        "label_csv": sha256_file(ROOT / "data" / "mosi" / "label.csv"),
        "ffmpeg": _tool_version(ffmpeg_command("-version")),
        "espeak": _tool_version(["espeak-ng", "--version"]) if use_espeak else "missing",
    }
    times = 4  # 4 x 7.5 s = 30 s: the case the issue measured
    # name -> (extension, settings, writer(path) -> reference, speech?)
    recipes: dict[str, tuple[str, dict, Callable[[Path], str], bool]] = {}
    silence: dict[str, list[float]] = {}
    pieces: _Pieces | None = None

    def get_pieces(tmp_dir: Path) -> _Pieces:
        nonlocal pieces
        if pieces is None:
            pieces = _Pieces(tmp_dir, use_espeak)
        return pieces

    def looped(path: Path) -> str:
        _looped_video(path, times)
        return " ".join([gold[LOOPED_SOURCE]] * times)

    def speech_clip(seconds: float, gap: float) -> Callable[[Path], str]:
        def write(path: Path) -> str:
            audio, text = get_pieces(out).sequence(seconds, gap)
            _write_wav(path, audio)
            return text

        return write

    def long_silence(path: Path) -> str:
        a, c = REAL[0], REAL[2]
        first = decode_audio(CLIPS / a)
        _write_wav(path, np.concatenate([first, room_tone(20.0, seed=1), decode_audio(CLIPS / c)]))
        start = len(first) / SAMPLE_RATE
        silence[path.stem] = [start, start + 20.0]
        return f"{gold[a]} {gold[c]}"

    def music_clip(path: Path) -> str:
        _write_wav(path, music(20.0))
        return ""

    def noise_clip(path: Path) -> str:
        _write_wav(path, noise(20.0))
        return ""

    recipes["looped_30s"] = ("mp4", {"source": LOOPED_SOURCE, "times": times}, looped, True)
    recipes["distinct_30s"] = ("wav", {"seconds": 30.0, "gap": 0.6, "espeak": use_espeak}, speech_clip(30.0, 0.6), True)
    recipes["long_silence"] = ("wav", {"silence": 20.0, "room_tone_dbfs": -60.0}, long_silence, True)
    recipes["music"] = ("wav", {"seconds": 20.0}, music_clip, False)
    recipes["noise"] = ("wav", {"seconds": 20.0, "rms_dbfs": -20.0}, noise_clip, False)
    recipes["talk_5min"] = (
        "wav",
        {"seconds": talk_seconds, "gap": 0.6, "espeak": use_espeak},
        speech_clip(talk_seconds, 0.6),
        True,
    )

    clips: dict[str, CorpusClip] = {}
    for name, (ext, settings, write, speech) in recipes.items():
        blob = json.dumps({"name": name, **common, **settings}, sort_keys=True).encode()
        key = hashlib.sha256(blob).hexdigest()[:12]
        path = out / f"{name}-{key}.{ext}"
        meta = path.with_suffix(".json")
        if not (path.is_file() and meta.is_file()):
            reference = write(path)
            tmp = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
            info = {"reference": reference, "silence": silence.get(path.stem), "recipe": json.loads(blob)}
            tmp.write_text(json.dumps(info, indent=1))
            os.replace(tmp, meta)
        info = json.loads(meta.read_text())
        quiet = tuple(info["silence"]) if info.get("silence") else None
        seconds = probe(path).duration or 0.0
        clips[name] = CorpusClip(name, path, seconds, info["reference"], speech, quiet)
    for f in out.glob("sentence*.wav"):  # espeak-ng's intermediate files
        f.unlink()
    return clips


def main() -> None:
    clips = build_corpus(sys.argv[1] if len(sys.argv) > 1 else None)
    for c in clips.values():
        print(f"{c.name:14s} {c.seconds:6.1f} s  {len(c.reference.split()):4d} words  {c.path}")


if __name__ == "__main__":
    main()
