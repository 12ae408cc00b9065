"""The voice stream made of Whisper's encoder states: kept from the decoding or made the same way
without it, placed in the clip's time, present wherever there is speech however quiet or loud,
absent where there is none, cached in half precision."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import make_media
from msa.features import FeatureExtractor
from msa.features.acoustic import loudest_dbfs
from msa.features.extractor import NO_SPEECH
from msa.features.voice import SAMPLES_PER_STATE, encode_speech, state_times, states_of_windows

RAVDESS = Path(__file__).parent / "data" / "ravdess"
QUIET = RAVDESS / "Actor_20" / "03-01-02-02-02-02-20.flac"  # calm, soft-spoken: loudest 20 ms at -54 dBFS
SHOUT = RAVDESS / "Actor_06" / "03-01-03-02-01-01-06.flac"  # happy, strong: silero's VAD hears nothing
PLAIN = RAVDESS / "Actor_06" / "03-01-04-01-01-01-06.flac"  # sad, normal, the same actor and sentence


# ----------------------------------------------------------------------------------------------
# Times: pure arithmetic, checked by hand
# ----------------------------------------------------------------------------------------------


def test_state_times_walk_back_through_the_joined_spans() -> None:
    # Two spans of the clip joined: 0.5-0.6 s (1600 samples = 5 states) and 2.0-2.1 s.
    spans = [(8000, 9600), (32000, 33600)]
    t = state_times(spans, 10)
    by_hand = [0.5 + 0.02 * (i + 0.5) for i in range(5)] + [2.0 + 0.02 * (i + 0.5) for i in range(5)]
    assert np.allclose(t, by_hand)
    # Past the last span's end (a window's padding) the times run on from the last span.
    assert state_times([(0, 320)], 2)[1] == pytest.approx(0.03)


def test_only_the_states_over_real_audio_are_kept() -> None:
    encoded = np.arange(2 * 1500 * 3, dtype=np.float32).reshape(2, 1500, 3)
    windows = [
        {"duration": 0.1, "segments": [{"start": 16000, "end": 17600}]},  # 5 states
        {"duration": 0.031, "segments": [{"start": 0, "end": 496}]},  # 496 samples: 2 states (one partial)
    ]
    (f1, t1), (f2, t2) = states_of_windows(windows, encoded)
    assert f1.shape == (5, 3) and np.array_equal(f1, encoded[0, :5])
    assert f2.shape == (2, 3) and np.allclose(t2, [0.01, 0.03])
    assert np.allclose(t1, 1.0 + 0.02 * (np.arange(5) + 0.5))
    assert SAMPLES_PER_STATE == 320


# ----------------------------------------------------------------------------------------------
# Real Whisper on real voices
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> FeatureExtractor:
    return FeatureExtractor()  # Whisper base reads the words and makes the voice


@pytest.mark.slow
def test_states_from_the_decoding_equal_states_made_without_it(base: FeatureExtractor, monkeypatch) -> None:
    import msa.features.extractor as extractor_module

    encodings = []  # the encoder run for the voice alone: never when the decoding already ran it

    def counted(*args, **kwargs):
        encodings.append(1)
        return encode_speech(*args, **kwargs)

    monkeypatch.setattr(extractor_module, "encode_speech", counted)
    heard = base.extract(PLAIN)
    assert not encodings
    given = base.extract(PLAIN, transcript="Kids are talking by the door")
    assert len(encodings) == 1
    assert "kids" in (heard.sample.text or "").lower()
    a, b = heard.sample, given.sample
    assert a.acoustic.shape[1] == 533 and np.array_equal(a.acoustic, b.acoustic)  # states + librosa values
    assert np.array_equal(a.meta["acoustic_times"], b.meta["acoustic_times"])
    times = a.meta["acoustic_times"]
    # The speech only: RAVDESS takes open with about a second of silence.
    assert 0.3 < times[0] < 1.5 and times[-1] <= heard.duration and np.all(np.diff(times) > 0)


@pytest.mark.slow
def test_another_whisper_for_the_words_keeps_the_voice_it_was_trained_on(base: FeatureExtractor) -> None:
    tiny = FeatureExtractor({"asr_model": "tiny.en"})
    assert tiny.spec.asr_model == "tiny.en" and tiny.spec.voice_stream == "whisper-base+librosa"
    a, b = tiny.extract(PLAIN).sample, base.extract(PLAIN).sample
    assert np.array_equal(a.acoustic, b.acoustic) and np.array_equal(a.meta["acoustic_times"], b.meta["acoustic_times"])


@pytest.mark.slow
def test_a_quiet_voice_is_a_voice(base: FeatureExtractor, tmp_path: Path) -> None:
    import soundfile as sf

    audio, rate = sf.read(QUIET, dtype="float32")
    assert loudest_dbfs(audio) < -50  # what the old absolute threshold called silence
    quieter = tmp_path / "quieter.wav"
    sf.write(quieter, audio * 10 ** (-12 / 20), rate)  # 12 dB softer still: -66 dBFS
    for path in (QUIET, quieter):
        ex = base.extract(path)
        assert ex.sample.acoustic is not None and "acoustic" not in ex.absent, ex.absent
        assert "door" in (ex.sample.text or "").lower()
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(rate, np.float32), rate)
    ex = base.extract(silent)
    assert ex.sample.acoustic is None and ex.absent["acoustic"].startswith("silent audio")


@pytest.mark.slow
def test_a_shout_the_vad_misses_is_heard(base: FeatureExtractor) -> None:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from msa.features.asr import VAD_PARAMETERS
    from msa.features.media import decode_audio

    audio = decode_audio(SHOUT)
    assert get_speech_timestamps(audio, VadOptions(**VAD_PARAMETERS)) == []  # silero hears nothing
    ex = base.extract(SHOUT)
    assert "kids" in (ex.sample.text or "").lower() and ex.sample.acoustic is not None
    given = base.extract(SHOUT, transcript="Kids are talking by the door")
    assert np.array_equal(given.sample.acoustic, ex.sample.acoustic)
    lib = base.with_voice_stream("librosa").extract(SHOUT, transcript="Kids are talking by the door")
    assert lib.sample.acoustic is not None and lib.sample.acoustic.shape[1] == 21


@pytest.mark.slow
def test_music_a_tone_and_noise_have_no_voice(base: FeatureExtractor, tmp_path: Path) -> None:
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 4) / 16000
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    cases = {
        "chord.wav": 0.1 * chord,
        "tone.wav": 0.3 * np.sin(2 * np.pi * 440 * t),
        "noise.wav": 0.05 * rng.standard_normal(t.size),
    }
    for name, audio in cases.items():
        sf.write(tmp_path / name, audio.astype(np.float32), 16000)
        for fx in (base, base.with_voice_stream("librosa")):
            ex = fx.extract(tmp_path / name)
            assert ex.sample.acoustic is None and ex.absent["acoustic"] == NO_SPEECH, (name, ex.absent)
            assert ex.sample.text is None


@pytest.mark.slow
def test_the_cache_keeps_states_and_times_in_half_precision(tmp_path: Path) -> None:
    fx = FeatureExtractor({"voice_stream": "whisper-base"}, tmp_path / "cache")
    first = fx.extract(PLAIN)
    again = fx.extract(PLAIN)
    assert again.from_cache and np.array_equal(again.sample.acoustic, first.sample.acoustic)
    assert np.array_equal(again.sample.meta["acoustic_times"], first.sample.meta["acoustic_times"])
    (entry,) = (tmp_path / "cache").rglob("*.npz")
    with np.load(entry, allow_pickle=False) as z:
        assert z["acoustic"].dtype == np.float16 and z["acoustic_times"].shape == (first.sample.acoustic.shape[0],)
    # A stream with the librosa values keeps float32 (and its states are the same), another entry each.
    both = fx.with_voice_stream("whisper-base+librosa").extract(PLAIN)
    assert not both.from_cache and both.sample.acoustic.dtype == np.float32
    assert np.array_equal(both.sample.acoustic[:, :512], first.sample.acoustic)
    lib = fx.with_voice_stream("librosa").extract(PLAIN)
    assert not lib.from_cache and lib.sample.acoustic.shape[1] == 21
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_each_segment_of_a_long_input_has_its_own_states(base: FeatureExtractor, tmp_path: Path) -> None:
    ex = base.extract(make_media("long", tmp_path))
    assert len(ex.segments) == 2
    for seg in ex.segments:
        times = seg.meta["acoustic_times"]
        assert times.shape == (seg.acoustic.shape[0],) and seg.acoustic.shape[0] >= 20
        assert seg.meta["start"] <= times[0] and times[-1] < seg.meta["end"]
