"""Bad and odd inputs through the app's request pipeline (issue 6, "Bad input").

A corpus generated in a temporary folder (ffmpeg from imageio-ffmpeg, espeak-ng, cuts of the
shared MOSI clips) goes through `Service.run`, the code behind every app handler and the API.
Each case ends in exactly one of two ways, within seconds:

- a prediction whose ``modalities_present`` / ``absent`` are right for that input, or
- an `InputError` whose message names the file, says what was wrong and what is accepted
  (and never shows the server's path).

Anything else (a traceback of another type, a hang) fails the test.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import CLIP, espeak, feature_checkpoint, ffmpeg, make_media
from msa.app.service import InputError, Limits, Service
from msa.config import MODALITIES
from msa.features import ACCEPTED, FeatureExtractor
from msa.predict import Predictor

GERMAN = "Ich habe diesen Film wirklich geliebt. Die Schauspieler waren wunderbar."

pytestmark = [
    pytest.mark.slow,  # a corpus of generated media through the whole pipeline
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"),
]

LIMITS = Limits(max_seconds=60.0, max_megabytes=5.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad inputs")  # a space in the server-side folder, too
    c = {kind: make_media(kind, d) for kind in ("empty", "truncated", "image", "no_face")}  # conftest.MEDIA
    c["text"] = make_media("notes", d)
    c["no_audio"] = d / "no_audio.mp4"
    ffmpeg("-i", str(CLIP), "-an", "-c:v", "copy", str(c["no_audio"]))
    c["audio_only"] = d / "audio_only.m4a"
    ffmpeg("-i", str(CLIP), "-vn", "-c:a", "aac", str(c["audio_only"]))
    c["silent"] = d / "silent.mp4"
    ffmpeg(
        "-i",
        str(CLIP),
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=44100:cl=stereo",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-shortest",
        "-c:v",
        "copy",
        "-c:a",
        "aac",
        str(c["silent"]),
    )
    c["one_frame"] = d / "one_frame.mp4"
    ffmpeg("-i", str(CLIP), "-frames:v", "1", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(c["one_frame"]))
    c["rotated"] = d / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(CLIP), "-c", "copy", str(c["rotated"]))
    c["short"] = d / "short.mp4"
    ffmpeg("-i", str(CLIP), "-t", "0.3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(c["short"]))
    c["german"] = espeak("de", GERMAN, d / "german.wav")
    c["unicode"] = d / "mon clip préféré – 映画 review.mp4"
    shutil.copyfile(CLIP, c["unicode"])
    return c


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, fx: FeatureExtractor, tokenizer) -> Service:
    path = feature_checkpoint(tmp_path_factory.mktemp("ckpt") / "video", fx, tokenizer)
    return Service(Predictor(path, extractor=fx), LIMITS)


def timed(fn, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    try:
        return fn(*args), time.perf_counter() - t0
    except InputError as e:
        return e, time.perf_counter() - t0


def predicted(service: Service, path: Path, transcript: str | None = None) -> dict[str, Any]:
    out, _ = timed(service.answer, str(path), transcript)
    assert not isinstance(out, InputError), f"{path.name}: refused: {out}"
    assert set(out["modalities_present"]) | set(out["absent"]) == set(MODALITIES), out
    assert not set(out["modalities_present"]) & set(out["absent"]), out
    assert all(isinstance(w, str) and w for w in out["absent"].values()), out["absent"]
    return out


def refused(service: Service, path: Path, *needles: str) -> str:
    out, _ = timed(service.answer, str(path))
    assert isinstance(out, InputError), f"{path.name}: expected a refusal, got {out}"
    msg = str(out)
    assert path.name in msg, msg  # names the file the user knows...
    assert str(path.parent) not in msg, msg  # ...never the server's folder
    assert ACCEPTED in msg or "accepted" in msg or "Upload a clip" in msg, msg  # says what would do
    for needle in needles:
        assert needle in msg, msg
    assert "Traceback" not in msg and "\n" not in msg, msg
    return msg


# ----------------------------------------------------------------------------------------------
# Refused, with a reason
# ----------------------------------------------------------------------------------------------


def test_empty_file(service: Service, corpus: dict[str, Path]) -> None:
    refused(service, corpus["empty"], "the file is empty")


def test_text_file_renamed_mp4(service: Service, corpus: dict[str, Path]) -> None:
    refused(service, corpus["text"], "not a readable media file")


def test_truncated_mp4(service: Service, corpus: dict[str, Path]) -> None:
    # A third of the file: the moov atom (at the end of these clips) is missing.
    refused(service, corpus["truncated"])


def test_still_image(service: Service, corpus: dict[str, Path]) -> None:
    refused(service, corpus["image"], "still image")


def test_over_duration_limit(service: Service, corpus: dict[str, Path]) -> None:
    short_limit = Service(service.predictor, Limits(max_seconds=1.0, max_megabytes=5.0))
    refused(short_limit, corpus["unicode"], "lasts 2.5 s", "clips up to 1 s are accepted")


def test_over_size_limit(service: Service, corpus: dict[str, Path]) -> None:
    tiny_upload = Service(service.predictor, Limits(max_seconds=60.0, max_megabytes=0.05))
    refused(tiny_upload, corpus["unicode"], " MB; files up to ", "MB are accepted", "Trim or compress")


def test_over_size_message_shows_a_size_over_the_limit(service: Service, corpus: dict[str, Path]) -> None:
    import re

    for mb in (0.05, 0.1):
        out, _ = timed(Service(service.predictor, Limits(max_megabytes=mb)).answer, str(corpus["unicode"]))
        size, limit = (float(x) for x in re.findall(r"([0-9.]+) MB", str(out)))
        assert size > limit > 0, str(out)


def test_one_frame_video_without_sound(service: Service, corpus: dict[str, Path]) -> None:
    """One frame and no audio: the face alone is analysed, and the rest said absent."""
    out = predicted(service, corpus["one_frame"])
    assert out["absent"]["acoustic"] == "no audio track" and "text" in out["absent"]


# ----------------------------------------------------------------------------------------------
# Answered, with the right modalities marked absent
# ----------------------------------------------------------------------------------------------


def test_video_without_audio_track(service: Service, corpus: dict[str, Path]) -> None:
    out = predicted(service, corpus["no_audio"])
    assert out["modalities_present"] == ["visual"]
    assert out["absent"]["acoustic"] == "no audio track"
    assert out["absent"]["text"].startswith("no speech")


def test_audio_only(service: Service, corpus: dict[str, Path]) -> None:
    out = predicted(service, corpus["audio_only"])
    assert out["modalities_present"] == ["text", "acoustic"]
    assert out["absent"] == {"visual": "no video track"}
    assert "favorite" in out["transcript"].lower()


def test_silent_video(service: Service, corpus: dict[str, Path]) -> None:
    out = predicted(service, corpus["silent"])
    assert out["modalities_present"] == ["visual"]
    assert out["absent"]["acoustic"].startswith("silent audio")
    assert out["absent"]["text"].startswith("no speech")


def test_video_without_face(service: Service, corpus: dict[str, Path]) -> None:
    out = predicted(service, corpus["no_face"])
    assert out["modalities_present"] == ["text", "acoustic"]
    assert out["absent"] == {"visual": "no face in any frame"}
    assert "movie" in out["transcript"].lower()


def test_rotation_flag(service: Service, corpus: dict[str, Path]) -> None:
    """A phone-style 90-degree display matrix: ffmpeg turns the frames, the face is still found."""
    out = predicted(service, corpus["rotated"])
    assert out["modalities_present"] == list(MODALITIES), out["absent"]
    assert out["duration"] == pytest.approx(2.5, abs=0.2)


def test_very_short_clip(service: Service, corpus: dict[str, Path]) -> None:
    """0.3 s: too short for a word; answered from what is there or refused, either way in words."""
    out, _ = timed(service.answer, str(corpus["short"]))
    if isinstance(out, InputError):
        refused(service, corpus["short"], "nothing to analyse")
    else:
        out = predicted(service, corpus["short"])
        assert out["duration"] < 0.5


def test_non_english_speech(service: Service, corpus: dict[str, Path]) -> None:
    """German speech to an English ASR: a prediction (the words may be wrong), voice present,
    no video track; a typed transcript in any language is taken as given."""
    out = predicted(service, corpus["german"])
    assert "acoustic" in out["modalities_present"]
    assert out["absent"]["visual"] == "no video track"
    out = predicted(service, corpus["german"], GERMAN)
    assert out["transcript"] == GERMAN and out["transcript_source"] == "user"
    assert out["modalities_present"] == ["text", "acoustic"]


def test_file_name_with_spaces_and_non_ascii(service: Service, corpus: dict[str, Path]) -> None:
    out = predicted(service, corpus["unicode"])
    assert out["modalities_present"] == list(MODALITIES)
    assert Path(out["file"]).name == corpus["unicode"].name
    # The downloadable JSON gets a safe name of its own: no spaces, separators or punctuation.
    analysis = service.analyse(str(corpus["unicode"]))
    saved = service.write_json(analysis)
    assert saved.is_file() and saved.parent.parent == service.tmp_dir
    assert all(ch.isalnum() or ch in "-_." for ch in saved.name), saved.name
    assert saved.name.endswith("-sentiment.json") and "review" in saved.name


def test_one_frame_video_keeps_its_face(service: Service, corpus: dict[str, Path]) -> None:
    out = predicted(service, corpus["one_frame"])
    assert out["modalities_present"] == ["visual"], out["absent"]
