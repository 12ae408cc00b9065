"""Feature extractor: real MOSI clips, generated clips, the cache, the spec.

Needs Debian's `espeak-ng` for the generated speech (tests that need it skip with a reason when
it is missing) and the real MOSI clips in assets/examples/.
One extractor per ASR model is shared by the whole module; tiny.en wherever the test is not
about ASR accuracy.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIP, CLIPS, SENTENCE, ffmpeg, make_media
from msa.features import (
    ACOUSTIC_FEATURES,
    VISUAL_FEATURES,
    FeatureError,
    FeatureExtractor,
    FeatureNormalizer,
    FeatureSpec,
    acoustic_features,
    extract_many,
    spec_differences,
    word_error_rate,
)
from msa.features.voice import VoiceStates
from msa.sample import Sample, TimedWord

# Slow (the feature extractor (Whisper, the face landmarker) on real and generated media):
# `pytest -m "not slow"` leaves it out.
pytestmark = pytest.mark.slow

# Gold transcripts from data/README.md.
GOLD = {
    "mosi_Oz06ZWiO20M_6.mp4": (
        "and sucker punch is a failer but like a really ambitious weird the interesting idiosyncratic failure"
    ),
    "mosi_Sqr0AcuoNnk_12.mp4": "and he is one of my favorite actors ever",
    "mosi_03bSnISJMiM_1.wav": "anyhow it was really good",
}
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"
)


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> FeatureExtractor:
    return FeatureExtractor({"asr_model": "tiny.en"})


@pytest.fixture(scope="module")
def real_base() -> dict[str, object]:
    fx = FeatureExtractor()  # base: the accuracy claim is about the default model
    return {name: fx.extract(CLIPS / name) for name in GOLD}


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated inputs: espeak-ng speech (conftest's `make_media`), and videos built around it with ffmpeg."""
    d = tmp_path_factory.mktemp("gen")
    out = {"speech": make_media("speech", d)}  # skips where espeak-ng is missing
    out["long"] = make_media("long", d)  # two utterances with a 2.5 s pause: a "long input" to be split in two
    out["colour_speech"] = make_media("no_face", d, "colour_speech.mp4")  # a plain blue video with the speech
    # A video whose audio track is digital silence.
    out["silent_track"] = d / "silent_track.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=320x240:r=25:d=2",
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=44100:cl=stereo",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        str(out["silent_track"]),
    )
    # A video with no audio track at all.
    out["no_audio"] = d / "no_audio.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=320x240:r=25:d=2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(out["no_audio"]),
    )
    # Audio-only encodings of the speech.
    for ext in ("mp3", "m4a", "flac"):
        out[ext] = d / f"speech.{ext}"
        ffmpeg("-i", str(out["speech"]), str(out[ext]))
    # An mp3 with cover art: a picture stream that is not a video track.
    out["cover"] = make_media("image", d, "cover.png")
    out["mp3_cover"] = d / "speech_cover.mp3"
    ffmpeg(
        "-i",
        str(out["speech"]),
        "-i",
        str(out["cover"]),
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        str(out["mp3_cover"]),
    )
    return out


# ----------------------------------------------------------------------------------------------
# Spec and normaliser
# ----------------------------------------------------------------------------------------------


def test_spec_dims_rates_and_roundtrip() -> None:
    spec = FeatureSpec()
    assert spec.voice_stream == "whisper-base+librosa" and spec.voice.whisper == "base" and spec.voice.librosa
    assert spec.acoustic_dim == 533 and spec.acoustic_features[0] == "whisper_base_0"
    assert spec.visual_dim == len(VISUAL_FEATURES) == 58  # 52 blendshapes + yaw/pitch/roll + translation
    assert spec.acoustic_rate == 50.0 and spec.visual_rate == 5.0 and spec.sample_rate == 16000
    assert spec.asr_model == "base" and spec.language == "en"
    versions = dict(spec.package_versions)
    assert {"librosa", "mediapipe", "faster-whisper"} <= set(versions) and "missing" not in versions.values()
    for each in (spec, FeatureSpec(voice_stream="librosa"), FeatureSpec(voice_stream="whisper-base+librosa")):
        d = json.loads(json.dumps(each.to_dict()))  # survives JSON, as in a checkpoint
        assert d["acoustic_dim"] == each.acoustic_dim and d["visual_dim"] == 58
        assert FeatureSpec.from_dict(d) == each
        assert spec_differences(d, each.to_dict()) == []
    librosa = FeatureSpec(voice_stream="librosa")
    assert librosa.acoustic_features == ACOUSTIC_FEATURES and librosa.acoustic_dim == 21
    assert FeatureSpec(voice_stream="whisper-base+librosa").acoustic_features[512:] == ACOUSTIC_FEATURES
    assert FeatureSpec().with_voice_stream("librosa") == librosa


def test_a_spec_stored_before_the_voice_stream_setting_reads_as_librosa() -> None:
    old = FeatureSpec(voice_stream="librosa").to_dict()
    del old["voice_stream"]  # what every checkpoint before issue 32 stored
    assert FeatureSpec.from_dict(old) == FeatureSpec(voice_stream="librosa")
    assert spec_differences(old, FeatureSpec(voice_stream="librosa").to_dict()) == []
    diffs = spec_differences(old, FeatureSpec().to_dict())
    assert any(d.startswith("voice_stream: 'librosa' != 'whisper-base+librosa'") for d in diffs)
    # Settings (not a stored spec) override the defaults and nothing else.
    assert FeatureSpec.from_dict({"asr_model": "tiny.en"}, stored=False).voice_stream == "whisper-base+librosa"
    with pytest.raises(ValueError, match="voice_stream must be one of"):
        FeatureSpec(voice_stream="wav2vec")
    with pytest.raises(ValueError, match="rate .* features and extractor are fixed"):
        FeatureSpec(voice_stream="whisper-base", acoustic_rate=100.0)


def test_spec_differences_name_what_differs() -> None:
    a = FeatureSpec().to_dict()
    b = FeatureSpec(asr_model="tiny.en", visual_rate=10.0).to_dict()
    b["package_versions"]["librosa"] = "0.0.1"
    diffs = spec_differences(a, b)
    assert any(x.startswith("asr_model:") and "'base'" in x and "'tiny.en'" in x for x in diffs)
    assert any(x.startswith("visual_rate:") for x in diffs)
    assert any(x.startswith("package_versions.librosa:") for x in diffs)
    assert len(diffs) == 3
    assert spec_differences(a, b, ignore=("asr_model", "package_versions")) == ["visual_rate: 5.0 != 10.0"]
    with pytest.raises(ValueError, match="unknown feature spec keys"):
        FeatureSpec.from_dict({**a, "bogus": 1})
    with pytest.raises(ValueError, match="asr_model"):
        FeatureSpec(asr_model="large")


def test_normalizer_standardises_and_roundtrips() -> None:
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            "a",
            acoustic=rng.normal(3, 2, (40, 21)).astype(np.float32),
            visual=rng.normal(-1, 5, (7, 58)).astype(np.float32),
        ),
        Sample("b", acoustic=rng.normal(3, 2, (60, 21)).astype(np.float32), visual=None),
    ]
    samples[0].acoustic[:, 5] = 7.0  # a constant dimension must pass through, not blow up
    norm = FeatureNormalizer.fit(samples, 21, 58)
    z = np.concatenate([norm(s).acoustic for s in samples])
    assert np.allclose(np.delete(z.mean(0), 5), 0, atol=1e-4) and np.allclose(np.delete(z.std(0), 5), 1, atol=1e-3)
    assert np.isfinite(z).all()
    assert norm(samples[1]).visual is None
    back = FeatureNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert np.array_equal(back(samples[0]).visual, norm(samples[0]).visual)


def test_normalizer_is_bounded_on_unseen_values() -> None:
    """A dimension that barely varied in a small train set is only centred (not divided by a
    tiny std), and every standardised value is clipped: serving-time inputs stay bounded."""
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, (30, 21)).astype(np.float32)
    train[:, 3] = 200.0 + rng.normal(0, 1e-4, 30)  # e.g. a pitch stuck at one value in 30 frames
    norm = FeatureNormalizer.fit([Sample("t", acoustic=train)], 21, 58)
    assert norm.acoustic_std[3] == 1.0 and norm.acoustic_mean[3] == pytest.approx(200.0)
    unseen = np.zeros((5, 21), np.float32)
    unseen[:, 3] = 230.0
    unseen[:, 0] = 1e4  # a wild frame in an ordinary dimension
    z = norm(Sample("u", acoustic=unseen)).acoustic
    assert z[0, 3] == FeatureNormalizer.CLIP  # centred only: 30, then clipped (a 1e-4 std would give 3e5)
    assert np.abs(z).max() <= FeatureNormalizer.CLIP and z[0, 0] == FeatureNormalizer.CLIP


def test_acoustic_pitch_and_rate_on_a_tone() -> None:
    spec = FeatureSpec(voice_stream="librosa")
    t = np.arange(32000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    feats = acoustic_features(tone, spec)
    assert feats.shape == (1 + 32000 // 320, 21) and feats.dtype == np.float32
    col = {n: i for i, n in enumerate(ACOUSTIC_FEATURES)}
    mid = feats[10:-10]
    assert np.all(mid[:, col["voiced"]] == 1)
    assert np.allclose(2 ** mid[:, col["log_f0"]] * 100, 200, rtol=0.01)  # 200 Hz found
    assert mid[:, col["periodicity"]].min() > 0.9
    noise = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    nf = acoustic_features(noise, spec)[10:-10]
    assert (
        nf[:, col["voiced"]].mean() < 0.1
        and nf[:, col["spectral_flatness"]].mean() > mid[:, col["spectral_flatness"]].mean()
    )


# ----------------------------------------------------------------------------------------------
# Real MOSI clips
# ----------------------------------------------------------------------------------------------


def test_real_clips_transcript_close_to_gold(real_base: dict, record_property) -> None:
    errors = words = 0
    for name, gold in GOLD.items():
        ex = real_base[name]
        wer = word_error_rate(gold, ex.sample.text or "")
        print(f"{name}: WER {wer:.3f}  {ex.sample.text!r}")
        assert wer <= 0.35, (name, ex.sample.text)
        n = len(gold.split())
        errors += wer * n
        words += n
        assert ex.words and all(0 <= w.start <= w.end <= ex.duration + 0.5 for w in ex.words)
    pooled = errors / words
    record_property("pooled_wer_base", pooled)
    print(f"pooled WER (base): {pooled:.3f}")
    assert pooled <= 0.2


def test_real_clips_streams_dims_rates_and_faces(real_base: dict) -> None:
    spec = FeatureSpec()
    for name, ex in real_base.items():
        s = ex.sample
        assert s.acoustic is not None and s.acoustic.dtype == np.float32 and s.acoustic.shape[1] == spec.acoustic_dim
        # Whisper's states over the speech: at most 50 a second, each with its time in the clip.
        times = s.meta["acoustic_times"]
        assert times.shape == (s.acoustic.shape[0],) and np.all(np.diff(times) > 0)
        assert 0 <= times[0] and times[-1] <= ex.duration + 0.02
        assert 0.5 * ex.duration * spec.acoustic_rate <= s.acoustic.shape[0] <= ex.duration * spec.acoustic_rate + 1
        assert np.isfinite(s.acoustic).all()
        assert set(ex.timings) >= {"decode", "asr", "acoustic", "visual"} and ex.timings["asr"] > 0
        if name.endswith(".wav"):
            assert s.visual is None and ex.absent == {"visual": "no video track"}
            continue
        assert ex.absent == {}
        sampled = s.meta["frames_sampled"]
        assert abs(sampled - ex.duration * spec.visual_rate) <= 2  # 5 frames a second
        assert s.visual is not None and s.visual.shape == (s.meta["face_frames"], spec.visual_dim)
        assert s.visual.shape[0] >= 0.8 * sampled, f"{name}: face in {s.visual.shape[0]}/{sampled} frames"
        assert len(s.meta["visual_times"]) == s.visual.shape[0]
        blend = s.visual[:, :52]
        assert blend.min() >= 0 and blend.max() <= 1
        yaw_pitch_roll = s.visual[:, 52:55]
        assert np.abs(yaw_pitch_roll).max() < math.radians(60)  # people facing the camera
        assert (s.visual[:, 57] < 0).all()  # the face is in front of the camera (negative z)


def test_container_formats_decode(tiny: FeatureExtractor, tmp_path: Path) -> None:
    src = CLIPS / "mosi_Sqr0AcuoNnk_12.mp4"
    # libvpx at its default quality takes ~14 s here; realtime settings take under 1 s.
    codecs = {
        "webm": ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "16", "-b:v", "400k", "-c:a", "libopus"],
        "mov": ["-c:v", "libx264", "-c:a", "aac"],
        "avi": ["-c:v", "mpeg4", "-c:a", "libmp3lame"],
        "mkv": ["-c:v", "libx264", "-c:a", "flac"],
        "flv": ["-c:v", "flv", "-c:a", "libmp3lame", "-ar", "44100"],
    }
    for ext, args in codecs.items():
        dst = tmp_path / f"clip.{ext}"
        ffmpeg("-i", str(src), *args, str(dst))
        ex = tiny.extract(dst, transcript=GOLD[src.name])  # no ASR: this is about decoding
        assert ex.absent == {}, (ext, ex.absent)
        assert ex.sample.text == GOLD[src.name] and ex.words == [] and ex.timings["asr"] == 0
        assert abs(ex.sample.acoustic.shape[0] - 2.47 * 50) <= 5, ext
        assert ex.sample.visual.shape[0] >= 0.8 * ex.sample.meta["frames_sampled"] >= 8, ext


# ----------------------------------------------------------------------------------------------
# Generated clips: absent modalities
# ----------------------------------------------------------------------------------------------


@needs_espeak
def test_still_image_is_refused(tiny: FeatureExtractor, gen: dict) -> None:
    with pytest.raises(FeatureError, match="still image"):
        tiny.extract(gen["cover"])


@needs_espeak
def test_speech_wav_audio_only(tiny: FeatureExtractor, gen: dict) -> None:
    ex = tiny.extract(gen["speech"])
    assert ex.absent == {"visual": "no video track"}
    assert word_error_rate(SENTENCE, ex.sample.text or "") <= 0.3, ex.sample.text
    assert ex.sample.present() == (True, True, False)
    assert ex.sample.id == "speech" and ex.sample.meta["start"] == 0.0


@needs_espeak
def test_audio_only_encodings(tiny: FeatureExtractor, gen: dict) -> None:
    ref = tiny.extract(gen["speech"], transcript=SENTENCE).sample.acoustic
    for ext in ("mp3", "m4a", "flac", "mp3_cover"):
        ex = tiny.extract(gen[ext], transcript=SENTENCE)
        assert ex.absent == {"visual": "no video track"}, ext
        # Same audio, so (up to codec padding) the same number of frames.
        assert abs(ex.sample.acoustic.shape[0] - ref.shape[0]) <= 5, ext
    flac = tiny.extract(gen["flac"], transcript=SENTENCE).sample.acoustic
    assert np.allclose(flac, ref, atol=1e-3)  # lossless: identical features


@needs_espeak
def test_plain_colour_video_with_speech(tiny: FeatureExtractor, gen: dict) -> None:
    ex = tiny.extract(gen["colour_speech"])
    assert ex.absent == {"visual": "no face in any frame"}
    assert ex.sample.visual is None and ex.sample.acoustic is not None
    assert "movie" in (ex.sample.text or "").lower()
    assert ex.sample.meta["frames_sampled"] >= 10


@needs_espeak
def test_silent_video_and_video_without_audio(tiny: FeatureExtractor, gen: dict) -> None:
    ex = tiny.extract(gen["silent_track"])
    assert ex.absent["acoustic"].startswith("silent audio")
    assert ex.absent["text"].startswith("no speech")
    assert ex.absent["visual"] == "no face in any frame"
    assert ex.sample.present() == (False, False, False) and ex.timings["asr"] == 0
    ex = tiny.extract(gen["no_audio"])
    assert ex.absent == {
        "acoustic": "no audio track",
        "text": "no speech: no audio track",
        "visual": "no face in any frame",
    }
    assert ex.duration == pytest.approx(2.0, abs=0.1)
    # A given transcript still gives text without audio.
    ex = tiny.extract(gen["no_audio"], transcript="hello there")
    assert ex.sample.text == "hello there" and "text" not in ex.absent


@needs_espeak
def test_long_input_split_into_segments(tiny: FeatureExtractor, gen: dict) -> None:
    ex = tiny.extract(gen["long"])
    assert len(ex.segments) == 2, ex.asr_segments
    first, second = ex.segments
    assert first.meta["end"] <= second.meta["start"] and second.meta["end"] <= ex.duration + 0.1
    assert "movie" in first.text.lower() and "ending" in second.text.lower()
    for seg in ex.segments:
        span = seg.meta["end"] - seg.meta["start"]
        assert abs(seg.acoustic.shape[0] - span * 50) <= 2
    assert ex.utterances == ex.segments
    assert tiny.extract(gen["speech"], transcript=SENTENCE).utterances[0].id == "speech"


def test_bad_files_raise_feature_error(tiny: FeatureExtractor, tmp_path: Path) -> None:
    text = make_media("notes", tmp_path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cases = {text: "not a readable media file", empty: "empty", tmp_path / "missing.mp4": "no such file"}
    truncated = make_media("truncated", tmp_path)
    cases[truncated] = "not a readable media file"
    for path, why in cases.items():
        with pytest.raises(FeatureError, match=why) as info:
            tiny.extract(path)
        assert isinstance(info.value, ValueError)
        if why != "no such file":
            assert "mp4, webm" in str(info.value)  # says what is accepted


# ----------------------------------------------------------------------------------------------
# Cache and many files
# ----------------------------------------------------------------------------------------------


@needs_espeak
def test_cache_hits_detects_corruption_and_spec_change(gen: dict, tmp_path: Path) -> None:
    src = gen["colour_speech"]
    fx = FeatureExtractor({"asr_model": "tiny.en"}, cache_dir=tmp_path / "cache")
    first = fx.extract(src)
    assert not first.from_cache
    entries = list((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 1 and not list((tmp_path / "cache").rglob("*.tmp"))
    again = fx.extract(src, sample_id="renamed")
    assert again.from_cache and set(again.timings) == {"hash", "cache"}
    assert again.sample.id == "renamed" and again.sample.text == first.sample.text
    assert np.array_equal(again.sample.acoustic, first.sample.acoustic) and again.words == first.words
    assert again.absent == first.absent
    # The cache holds no pickles.
    with np.load(entries[0], allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    # A corrupt entry is re-extracted and rewritten.
    entries[0].write_bytes(b"garbage")
    fixed = fx.extract(src)
    assert not fixed.from_cache and np.array_equal(fixed.sample.acoustic, first.sample.acoustic)
    assert fx.extract(src).from_cache
    # A transcript override is another entry; a spec change misses the cache.
    assert not fx.extract(src, transcript="something else").from_cache
    other = FeatureExtractor({"asr_model": "tiny.en", "visual_rate": 10.0}, cache_dir=tmp_path / "cache")
    changed = other.extract(src)
    assert not changed.from_cache and changed.sample.meta["frames_sampled"] > first.sample.meta["frames_sampled"]
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3


@needs_espeak
def test_text_only_extraction_skips_the_streams(gen: dict, tmp_path: Path) -> None:
    """streams=() (a text-only checkpoint): ASR runs, acoustic and visual are not computed nor
    announced, and such a cache entry never answers a request that wants the streams."""
    src = gen["colour_speech"]
    fx = FeatureExtractor({"asr_model": "tiny.en"}, cache_dir=tmp_path / "cache")
    stages: list[str] = []
    lean = fx.extract(src, on_stage=stages.append, streams=())
    assert stages == ["decode", "asr"] and lean.sample.text
    assert lean.sample.acoustic is None and lean.sample.visual is None and lean.sample.meta["frames_sampled"] == 0
    assert "acoustic" not in lean.absent and "visual" not in lean.absent  # the caller says why
    full = fx.extract(src)
    assert not full.from_cache and full.sample.acoustic is not None and full.absent["visual"] == "no face in any frame"
    assert fx.extract(src, streams=()).from_cache and fx.extract(src).from_cache
    with pytest.raises(ValueError, match="unknown streams"):
        fx.extract(src, streams=("face",))


@needs_espeak
def test_extract_many_in_order_with_errors(tiny: FeatureExtractor, gen: dict, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    paths = [gen["flac"], bad, gen["no_audio"]]
    out = extract_many(paths, tiny, transcripts=[SENTENCE, None, None], on_error="return", progress=False)
    assert [type(r).__name__ for r in out] == ["Extraction", "FeatureError", "Extraction"]
    assert out[0].sample.text == SENTENCE and out[2].absent["acoustic"] == "no audio track"
    with pytest.raises(FeatureError):
        extract_many(paths, tiny, transcripts=[SENTENCE, None, None], progress=False)
    # Two processes give the same features as one.
    par = extract_many(
        [gen["flac"], gen["mp3"]], {"asr_model": "tiny.en"}, workers=2, transcripts=[SENTENCE, SENTENCE], progress=False
    )
    assert np.array_equal(par[0].sample.acoustic, out[0].sample.acoustic)


def test_asr_runs_beside_the_acoustic_and_visual_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ASR thread waits until the visual stage has begun: run one after the other, this
    could not finish (the wait times out and the test fails). An ASR error still reaches the
    caller, after the other stages, and the extractor works afterwards."""
    import threading

    import msa.features.extractor as extractor

    fx = FeatureExtractor({"asr_model": "tiny.en", "voice_stream": "librosa"})
    visual_started = threading.Event()
    original_runner = extractor.FaceRunner

    class SignallingRunner(original_runner):  # type: ignore[misc, valid-type]
        def __call__(self, *args, **kwargs):
            visual_started.set()
            return super().__call__(*args, **kwargs)

    monkeypatch.setattr(extractor, "FaceRunner", SignallingRunner)
    threads: list[str] = []

    heard = VoiceStates(np.zeros((0, 0), np.float32), np.zeros(0), [(0.0, 1.0)])

    def waiting_asr(audio: np.ndarray, keep_states: bool):
        threads.append(threading.current_thread().name)
        assert visual_started.wait(timeout=30), "the visual stage never started while the ASR ran"
        return [("hello there", 0.0, 1.0)], [("hello", 0.0, 0.4), ("there", 0.5, 1.0)], heard

    monkeypatch.setattr(fx, "listen", waiting_asr)
    ex = fx.extract(CLIP)
    assert ex.sample.text == "hello there" and ex.sample.visual is not None and ex.sample.acoustic is not None
    assert threads and threads[0] != threading.main_thread().name
    # That they overlapped is shown by the wait above, not by the clock: under load, overlapping
    # stages can take as long as sequential ones (total 1.04 s against a 0.96 s sum, seen once).
    assert {"decode", "asr", "acoustic", "visual", "total"} <= set(ex.timings)

    def failing_asr(audio: np.ndarray, keep_states: bool):
        raise RuntimeError("ASR broke")

    monkeypatch.setattr(fx, "listen", failing_asr)
    with pytest.raises(RuntimeError, match="ASR broke"):
        fx.extract(CLIP)
    monkeypatch.setattr(fx, "listen", lambda audio, keep: ([("ok", 0.0, 0.5)], [TimedWord("ok", 0.0, 0.5)], heard))
    assert fx.extract(CLIP).sample.text == "ok"
