"""Clip context for the attention figure: the voice traces from raw acoustic features, and video thumbnails."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import ffmpeg
from msa.features import ACOUSTIC_FEATURES, FeatureSpec, probe
from msa.features import context as ctx
from msa.features.context import ClipContext, clip_context, thumbnails, voice_trace

# A luma ramp: the frame at t seconds has Y = 16 + 60 t, i.e. RGB grey (Y - 16) * 255 / 219 (limited range),
# so a thumbnail's mean grey says which moment it shows.
RAMP = "nullsrc=s=160x120:r=30:d=3,format=yuv420p,geq=lum='16+60*T':cb=128:cr=128"
GREY_PER_SECOND = 60 * 255 / 219


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("context")
    out = {name: d / f"{name}.mp4" for name in ("testsrc", "ramp_one_key", "ramp_many_keys")}
    testsrc = "testsrc=s=320x240:r=25:d=3"
    ffmpeg("-f", "lavfi", "-i", testsrc, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out["testsrc"]))
    # One keyframe (x264's default interval is longer than the clip): the whole clip is decoded once.
    ffmpeg("-f", "lavfi", "-i", RAMP, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out["ramp_one_key"]))
    # A keyframe every 5 frames: seeking to each thumbnail decodes least.
    ffmpeg("-f", "lavfi", "-i", RAMP, "-c:v", "libx264", "-g", "5", "-pix_fmt", "yuv420p", str(out["ramp_many_keys"]))
    out["audio"] = d / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=2", str(out["audio"]))
    return out


def spec_with(features: tuple[str, ...]) -> FeatureSpec:
    return FeatureSpec(
        voice_stream="librosa", acoustic_features=features, acoustic_rate=50.0, visual_model="test", package_versions=()
    )


def raw_frames(spec: FeatureSpec, columns: dict[str, list[float]]) -> np.ndarray:
    n = len(next(iter(columns.values())))
    raw = np.random.default_rng(0).normal(size=(n, spec.acoustic_dim))  # the other columns: noise
    for name, values in columns.items():
        raw[:, spec.acoustic_features.index(name)] = values
    return raw.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Voice traces
# ----------------------------------------------------------------------------------------------

KNOWN = {
    "log_energy": [0.0, math.log(0.1), math.log(0.01), math.log(1e-5)],  # RMS 1, 0.1, 0.01, 1e-5
    "log_f0": [1.0, 0.0, -1.0, 0.5],  # 200 Hz, (unvoiced), 50 Hz, (unvoiced)
    "voiced": [1.0, 0.0, 1.0, 0.0],
}


@pytest.mark.parametrize("features", [ACOUSTIC_FEATURES, tuple(reversed(ACOUSTIC_FEATURES))], ids=["spec", "reordered"])
def test_voice_trace_gives_decibels_and_hertz_from_named_columns(features: tuple[str, ...]) -> None:
    spec = spec_with(features)
    times, loudness, pitch = voice_trace(raw_frames(spec, KNOWN), spec)
    np.testing.assert_allclose(times, [0.0, 0.02, 0.04, 0.06])
    np.testing.assert_allclose(loudness, [0.0, -20.0, -40.0, -100.0], atol=1e-4)  # float32 input
    assert np.isnan(pitch[[1, 3]]).all()  # unvoiced: no pitch, not the 100 Hz that log_f0 = 0 would mean
    np.testing.assert_allclose(pitch[[0, 2]], [200.0, 50.0], rtol=1e-6)


def test_voice_trace_without_audio_or_with_the_wrong_width() -> None:
    spec = spec_with(ACOUSTIC_FEATURES)
    assert all(a.size == 0 for a in voice_trace(None, spec))
    with pytest.raises(ValueError, match="acoustic_raw must be"):
        voice_trace(np.zeros((3, spec.acoustic_dim + 1)), spec)


def test_voice_trace_of_a_spec_without_pitch_draws_no_pitch() -> None:
    spec = spec_with(tuple(f for f in ACOUSTIC_FEATURES if f != "log_f0"))
    _, loudness, pitch = voice_trace(raw_frames(spec, {"log_energy": [0.0, 0.0]}), spec)
    np.testing.assert_allclose(loudness, [0.0, 0.0])
    assert np.isnan(pitch).all()


# ----------------------------------------------------------------------------------------------
# Thumbnails
# ----------------------------------------------------------------------------------------------


def test_thumbnails_are_evenly_spaced_small_and_distinct(media: dict[str, Path]) -> None:
    info = probe(media["testsrc"])
    frames = thumbnails(media["testsrc"], info, 3.0, count=8, height=72)
    assert len(frames) == 8
    times = np.array([t for t, _ in frames])
    assert np.all(np.diff(times) > 0) and 0 <= times[0] and times[-1] < 3.0
    for _, img in frames:
        assert img.dtype == np.uint8 and img.shape == (72, 96, 3)  # 320x240 keeps its 4:3 aspect
    images = [img.astype(int) for _, img in frames]
    assert all(np.abs(a - b).mean() > 1 for a, b in zip(images, images[1:]))  # testsrc moves: each moment differs


@pytest.mark.parametrize("clip, path", [("ramp_one_key", "_decode_once"), ("ramp_many_keys", "_seek_each")])
def test_each_thumbnail_shows_the_moment_it_is_labelled_with(
    media: dict[str, Path], monkeypatch: pytest.MonkeyPatch, clip: str, path: str
) -> None:
    used: list[str] = []
    for name in ("_decode_once", "_seek_each"):
        original = getattr(ctx, name)
        monkeypatch.setattr(ctx, name, lambda *a, _f=original, _n=name: used.append(_n) or _f(*a))
    frames = thumbnails(media[clip], probe(media[clip]), 3.0, count=6)
    assert used == [path]  # both decoding strategies are exercised
    assert len(frames) == 6
    shown = np.array([img.mean() / GREY_PER_SECOND for _, img in frames])
    labelled = np.array([t for t, _ in frames])
    np.testing.assert_allclose(shown, labelled, atol=0.1)  # within 3 frames at 30 fps


def test_no_video_stream_no_thumbnails(media: dict[str, Path]) -> None:
    info = probe(media["audio"])
    assert info.video_stream is None
    assert thumbnails(media["audio"], info, 2.0) == []
    assert thumbnails(media["testsrc"], probe(media["testsrc"]), 0.0) == []


def test_clip_context_combines_frames_and_voice(media: dict[str, Path]) -> None:
    spec = spec_with(ACOUSTIC_FEATURES)
    raw = raw_frames(spec, KNOWN)
    c = clip_context(media["testsrc"], raw, spec, 3.0, count=4)
    assert isinstance(c, ClipContext) and c.duration == 3.0
    assert [round(t, 3) for t, _ in c.frames] == [0.375, 1.125, 1.875, 2.625]  # one keyframe: the exact centres
    np.testing.assert_allclose(c.loudness_db, [0.0, -20.0, -40.0, -100.0], atol=1e-4)
    audio_only = clip_context(media["audio"], None, spec, 2.0)
    assert audio_only.frames == [] and audio_only.voice_times.size == 0
    assert clip_context(None, raw, spec, 3.0).frames == []


def test_a_stream_of_whisper_states_has_its_loudness_and_pitch_read_from_the_audio(media: dict[str, Path]) -> None:
    """Whisper's states carry no named loudness or pitch: the context reads them from the file's
    audio (the librosa values at 50 frames a second), so the time axis shows the voice as for any
    checkpoint: here a 220 Hz tone's pitch."""
    spec = FeatureSpec(package_versions=(), visual_model="test", voice_stream="whisper-base")  # the states alone
    states = np.zeros((40, spec.acoustic_dim), np.float32)
    times = 0.5 + 0.02 * np.arange(40)  # over the speech only
    c = clip_context(media["audio"], states, spec, 2.0, acoustic_times=times)
    assert c.voice_times.size >= 99 and c.voice_times[1] == pytest.approx(0.02)  # the whole clip, 50 a second
    voiced = c.pitch_hz[~np.isnan(c.pitch_hz)]
    assert voiced.size > 50 and np.allclose(voiced, 220, rtol=0.02)
    steady = c.loudness_db[5:-5]
    assert -35 < steady.mean() < -15 and steady.std() < 1  # ffmpeg's sine: a steady 1/8 of full scale
    # Without the file (a typed transcript with no media) nothing is drawn rather than wrong times.
    bare = clip_context(None, states, spec, 2.0, acoustic_times=times)
    assert np.isnan(bare.loudness_db).all() and np.allclose(bare.voice_times, times)
