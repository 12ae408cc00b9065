"""Shared fixtures: tiny random models (transformers' test practice), the packaged tokenizer, and
the generated media several test files use (`make_media`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from msa.sample import Sample
from msa.testing import ROOT, tiny_model

# Each pytest-xdist worker's servers keep Gradio's cache in a folder of their own. Files there are
# named by content, so two workers' servers shared one example clip's path, and a fresh-clone run
# failed when the clip vanished under one page ("No such file or directory") while another worker's
# servers started and stopped. Set before any test module imports gradio (nothing above does);
# workers inherit the controller's environment, so a worker replaces the controller's folder.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set in each worker (the controller has none)
if _WORKER or "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = str(Path(tempfile.gettempdir()) / f"gradio-{_WORKER or 'main'}")

# The data every test needs lives in the repository: the label CSVs (data/README.md) and the
# three real CMU-MOSI clips that are also the app's examples.
DATA = ROOT / "data"
CLIPS = ROOT / "assets" / "examples"
CLIP = CLIPS / "mosi_Sqr0AcuoNnk_12.mp4"  # 2.5 s, a face: "and he is one of my favorite actors ever"
WAV = CLIPS / "mosi_03bSnISJMiM_1.wav"  # 3.3 s, audio only: "anyhow it was really good"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tokenizer():
    from msa.model.text_encoder import load_tokenizer

    return load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")


def random_samples(n: int, seed: int = 0, acoustic_dim: int = 5, visual_dim: int = 20) -> list[Sample]:
    rng = np.random.default_rng(seed)
    words = "the movie was good bad great boring fine awful nice plot actors".split()
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=int(rng.integers(2, 12))))
        a = rng.normal(size=(int(rng.integers(1, 30)), acoustic_dim)).astype(np.float32)
        v = rng.normal(size=(int(rng.integers(1, 15)), visual_dim)).astype(np.float32)
        out.append(Sample(f"s{i}", text, a, v, float(rng.uniform(-3, 3))))
    return out


@pytest.fixture(scope="session")
def fx():
    """One feature extractor for the whole run (tiny.en ASR: tests that need accuracy use base)."""
    from msa.features import FeatureExtractor

    return FeatureExtractor({"asr_model": "tiny.en"})


def feature_checkpoint(path: Path, fx, tokenizer, **model_overrides) -> Path:
    """A tiny checkpoint trained (nominally) on ``fx``'s features, with a random normaliser."""
    from msa.features import FeatureNormalizer
    from msa.model.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    a, v = fx.spec.acoustic_dim, fx.spec.visual_dim
    f32 = np.float32
    normalizer = FeatureNormalizer(
        rng.normal(size=a).astype(f32),
        rng.uniform(0.5, 2, a).astype(f32),
        rng.normal(size=v).astype(f32),
        rng.uniform(0.5, 2, v).astype(f32),
    )
    model = tiny_model(acoustic_dim=a, visual_dim=v, **model_overrides)
    save_checkpoint(path, model, tokenizer, feature_spec=fx.spec, normalizer=normalizer)
    return path


# ----------------------------------------------------------------------------------------------
# Generated media: the inputs that more than one test file builds, one recipe each
# (imageio-ffmpeg's ffmpeg, and Debian's espeak-ng for speech). A clip only one test uses is
# built in that test's file, with `ffmpeg` from here.
# ----------------------------------------------------------------------------------------------

SENTENCE = "I really loved this movie. The acting was wonderful."  # the generated speech
SECOND_SENTENCE = "But the ending was terrible and boring."  # the second utterance of "long"


def ffmpeg(*args: str) -> None:
    """imageio-ffmpeg's ffmpeg, quiet and overwriting its output; a failure fails the test."""
    from msa.features import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-v", "error", *args], check=True)


def espeak(voice: str, text: str, out: Path) -> Path:
    """``text`` spoken by espeak-ng at 150 words a minute; skips the test where espeak-ng is missing."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), text], check=True)
    return out


def _truncated(out: Path) -> None:
    out.write_bytes(CLIP.read_bytes()[: CLIP.stat().st_size // 3])


def _image(out: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=320x240:d=1", "-frames:v", "1", str(out))


def _silence(out: Path) -> None:
    ffmpeg("-f", "lavfi", "-t", "1", "-i", "anullsrc=r=16000:cl=mono", str(out))


def _long(out: Path) -> None:
    first = make_media("speech", out.parent)
    second = espeak("en-us", SECOND_SENTENCE, out.parent / "speech2.wav")
    silence = ["-f", "lavfi", "-t", "2.5", "-i", "anullsrc=r=22050:cl=mono"]
    concat = "[0:a][1:a][2:a]concat=n=3:v=0:a=1"
    ffmpeg("-i", str(first), *silence, "-i", str(second), "-filter_complex", concat, str(out))


def _no_face(out: Path) -> None:
    speech = make_media("speech", out.parent)
    blue = ["-f", "lavfi", "-i", "color=c=blue:s=320x240:r=25"]
    ffmpeg(*blue, "-i", str(speech), "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out))


def _silent_face(out: Path) -> None:
    silence = ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono"]
    ffmpeg(
        "-i", str(CLIP), *silence, "-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "copy", "-c:a", "aac", str(out)
    )


def _remuxed(out: Path) -> None:
    ffmpeg("-i", str(CLIP), "-c", "copy", "-metadata", f"comment={out.name}", str(out))


# kind: (default file name, builder)
MEDIA: dict[str, tuple[str, Callable[[Path], object]]] = {
    "empty": ("empty.mp4", Path.touch),  # 0 bytes
    "notes": ("notes.mp4", lambda out: out.write_text("this is not a video\n" * 20)),  # text, named .mp4
    "truncated": ("truncated.mp4", _truncated),  # CLIP's first third: no moov atom (it is at the end)
    "image": ("picture.png", _image),  # a still image (ffmpeg's test pattern, 320x240)
    "silence": ("silent.wav", _silence),  # 1 s of digital silence, 16 kHz mono
    "speech": ("speech.wav", lambda out: espeak("en-us", SENTENCE, out)),  # SENTENCE, about 3 s
    "long": ("long.wav", _long),  # SENTENCE, 2.5 s of silence, SECOND_SENTENCE: two segments
    "no_face": ("no_face.mp4", _no_face),  # a plain blue video with the speech as its sound
    "remuxed": ("clip.mp4", _remuxed),
    "silent_face": (
        "silent_face.mp4",
        _silent_face,
    ),  # CLIP's face, its sound replaced by silence  # CLIP with its name as a comment: same media, other bytes
}


def make_media(kind: str, folder: Path, name: str | None = None) -> Path:
    """The generated clip ``kind`` (see MEDIA) as ``folder/name`` (default: the kind's file name).

    A file already there is taken as built: clips made from the speech share one speech.wav.
    Kinds that need espeak-ng skip the test where it is missing.
    """
    default, build = MEDIA[kind]
    out = folder / (name or default)
    if not out.exists():
        build(out)
    return out
