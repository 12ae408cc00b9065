"""Every accepted video format previews in the browser: a type or codec a browser cannot play gets
a playable mp4 made for the page (the analysis still reads the original)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CLIP, feature_checkpoint, ffmpeg, make_media
from msa.features.media import browser_plays, make_preview, probe

# (suffix, ffmpeg output options): the accepted video types, made from the real clip.
FORMATS = {
    ".mp4": ["-c", "copy"],
    ".webm": ["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"],
    ".mov": ["-c", "copy"],
    ".mkv": ["-c", "copy"],
    ".avi": [],
    ".flv": [],
}
PLAYS = {".mp4", ".webm"}


def clip_as(suffix: str, folder: Path) -> Path:
    out = folder / f"clip{suffix}"
    if not out.exists():
        ffmpeg("-i", str(CLIP), *FORMATS[suffix], str(out))
    return out


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_a_preview_plays_wherever_the_original_does_not(suffix: str, tmp_path: Path) -> None:
    original = clip_as(suffix, tmp_path)
    info = probe(original)
    assert browser_plays(original, info) == (suffix in PLAYS)
    preview = make_preview(original, info, tmp_path / "p.mp4")
    shown = probe(preview)
    assert browser_plays(preview, shown), (shown.video_codec, shown.audio_codec)
    assert shown.duration == pytest.approx(info.duration, abs=0.1)
    assert shown.audio_stream is not None and shown.video_stream is not None


def test_a_failed_preview_leaves_no_file(tmp_path: Path) -> None:
    from msa.features import FeatureError

    original = clip_as(".flv", tmp_path)
    info = probe(original)
    info.demuxer = "wav"  # forced wrong: ffmpeg cannot read it as that
    with pytest.raises(FeatureError, match="no preview"):
        make_preview(original, info, tmp_path / "p.mp4")
    assert not list(tmp_path.glob("p.mp4*")) and not list(tmp_path.glob(".p.mp4*"))


def test_the_page_shows_the_preview_and_analyses_the_original(tmp_path: Path, fx, tokenizer) -> None:
    pytest.importorskip("gradio")
    from msa.app.handlers import OUTPUTS, Handlers
    from msa.app.service import Limits, Service
    from msa.predict import Predictor

    service = Service(Predictor(feature_checkpoint(tmp_path / "ckpt", fx, tokenizer), extractor=fx), Limits())
    h = Handlers(service)
    flv = clip_as(".flv", tmp_path)
    shown = h.show_upload(str(flv))
    assert shown is not None and shown.endswith(".preview.mp4"), shown
    assert h.show_upload(str(CLIP)) == str(CLIP)  # plays as it is
    # Refused (the analysis says why) or without a picture: the player is given nothing it cannot play.
    assert h.show_upload(str(make_media("notes", tmp_path))) is None
    assert h.show_upload(str(make_media("silence", tmp_path))) is None
    out = dict(
        zip(OUTPUTS, h.analyse(shown, None, "one of my favorite actors", None, str(flv), progress=lambda *a, **k: None))
    )
    analysed = json.loads(Path(out["download"]["value"]).read_text())
    assert analysed["file"] == "clip.flv"  # the original was analysed, not the preview
