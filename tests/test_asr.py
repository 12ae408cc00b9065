"""Speech recognition's decoding policy (`msa.features.asr.transcribe`): what it asks of
faster-whisper, how it cuts segments, that its cost cannot run away on speech that repeats
itself, that it invents nothing on silence, music or noise, and that it is as accurate as before
on the real MOSI clips. The corpus and the numbers the policy was chosen from:
``python -m bench.bench_asr``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench.asr_corpus import REAL, gold_transcripts, music, noise, room_tone
from conftest import CLIPS, feature_checkpoint
from msa.features import (
    FeatureExtractor,
    FeatureSpec,
    decode_audio,
    normalize_words,
    spec_differences,
    word_error_rate,
)
from msa.features.asr import (
    BATCH_SIZE,
    MAX_UTTERANCE,
    PAUSE_SPLIT,
    SENTENCE_SPLIT,
    VAD_PARAMETERS,
    split_segments,
    transcribe,
    transcribe_with_states,
)
from msa.features.spec import ASR_DECODING, SAMPLE_RATE

# ----------------------------------------------------------------------------------------------
# What transcribe asks of faster-whisper (a recording stand-in for its pipeline)
# ----------------------------------------------------------------------------------------------


def word(text: str, start: float, end: float) -> SimpleNamespace:
    return SimpleNamespace(word=text, start=start, end=end)


def segment(words: list[SimpleNamespace], no_speech_prob: float = 0.01, avg_logprob: float = -0.2) -> SimpleNamespace:
    text = "".join(w.word for w in words)
    start, end = (words[0].start, words[-1].end) if words else (0.0, 0.0)
    return SimpleNamespace(
        text=text, start=start, end=end, words=words, no_speech_prob=no_speech_prob, avg_logprob=avg_logprob
    )


class RecordingPipeline:
    """Stands in for faster_whisper.BatchedInferencePipeline: records how it is built and called
    and returns the segments it was given; it mutates the VAD options as faster-whisper does.
    ``vad_hears`` says whether the VAD found speech: then the clip is one decoded window (as the
    real pipeline notes each window it decodes)."""

    calls: list[dict[str, Any]] = []
    segments: list[SimpleNamespace] = []
    vad_hears = True

    def __init__(self, model: Any):
        self.model = model

    def transcribe(self, audio: np.ndarray, **kwargs: Any) -> tuple[Any, None]:
        vad = kwargs.get("vad_parameters")
        type(self).calls.append({"model": self.model, "audio": audio, **kwargs, "vad_as_given": dict(vad or {})})
        if isinstance(vad, dict):
            vad.pop("max_speech_duration_s", None)
            vad["speech_pad_ms"] = -1  # must not leak into the next call
        spans = [
            (c["start"], c["end"])
            for c in kwargs.get("clip_timestamps") or [{"start": 0, "end": audio.size / SAMPLE_RATE}]
        ]
        if kwargs.get("vad_filter") and not type(self).vad_hears:
            return iter([]), None
        for start, end in spans:  # each decoded window, as faster-whisper's metadata describes it
            rng = {"start": int(start * SAMPLE_RATE), "end": int(end * SAMPLE_RATE)}
            self.windows.append({"duration": end - start, "segments": [rng]})
        return iter(type(self).segments), None


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> type[RecordingPipeline]:
    import faster_whisper

    RecordingPipeline.calls, RecordingPipeline.segments, RecordingPipeline.vad_hears = [], [], True
    monkeypatch.setattr(faster_whisper, "BatchedInferencePipeline", RecordingPipeline)
    return RecordingPipeline


def test_transcribe_decodes_once_per_window_at_temperature_zero(recording) -> None:
    model = object()
    spec = FeatureSpec(language="en", asr_beam_size=3)
    audio = np.zeros(SAMPLE_RATE, np.float32)
    for _ in range(2):
        transcribe(model, audio, spec)
    first, second = recording.calls
    assert first["model"] is model and first["audio"] is audio
    # One temperature: faster-whisper's fallback list (0.0, 0.2, ..., 1.0) re-decodes a window
    # at each next one; a single value leaves nothing to fall back to.
    temperature = first["temperature"]
    assert np.ndim(temperature) == 0 or len(temperature) == 1
    assert float(np.ravel(temperature)[0]) == 0.0
    assert first["vad_filter"] is True
    assert first["word_timestamps"] is True
    assert first["condition_on_previous_text"] is False
    assert first["beam_size"] == 3 and first["language"] == "en"
    assert first["batch_size"] == BATCH_SIZE >= 1
    # The VAD options are passed as a copy each call: faster-whisper pops keys from the dict.
    assert first["vad_as_given"] == second["vad_as_given"] == VAD_PARAMETERS
    assert VAD_PARAMETERS["speech_pad_ms"] == 400


def test_where_the_vad_hears_nothing_whisper_decides_on_the_whole_clip(recording) -> None:
    """A clip with signal where silero's VAD finds no speech (a shout, in RAVDESS) is decoded once
    more, whole, in windows of at most 30 s and without the VAD; Whisper's own no-speech test
    keeps the speech and drops the rest."""
    recording.vad_hears = False
    recording.segments = [
        segment([word(" Kids", 0.5, 0.9), word(" are", 0.9, 1.1), word(" talking!", 1.1, 1.8)], no_speech_prob=0.05),
        segment([word(" you", 31.0, 31.3)], no_speech_prob=0.8, avg_logprob=-1.7),  # Whisper's "you" on noise
    ]
    audio = (0.01 * np.random.default_rng(0).standard_normal(45 * SAMPLE_RATE)).astype(np.float32)  # a signal
    segs, words, states = transcribe_with_states(object(), audio, FeatureSpec(), width=0)
    vad_call, whole = recording.calls
    assert vad_call["vad_filter"] is True and whole["vad_filter"] is False and "vad_parameters" not in whole
    assert whole["clip_timestamps"] == [{"start": 0.0, "end": 30.0}, {"start": 30.0, "end": 45.0}]
    assert whole["temperature"] == 0.0 and whole["beam_size"] == vad_call["beam_size"]
    assert [s[0] for s in segs] == ["Kids are talking!"]
    assert states.speech == [(0.0, 30.0)]  # the window whose segment was kept
    # Where Whisper hears nothing either, there is no speech at all.
    recording.calls.clear()
    recording.segments = [segment([word(" you", 1.0, 1.2)], no_speech_prob=0.8, avg_logprob=-1.7)]
    segs, words, states = transcribe_with_states(object(), audio, FeatureSpec(), width=0)
    assert segs == [] and words == [] and states.speech == [] and len(recording.calls) == 2
    # Digital silence is not even offered to Whisper a second time.
    recording.calls.clear()
    transcribe_with_states(object(), np.zeros(SAMPLE_RATE, np.float32), FeatureSpec(), width=0)
    assert len(recording.calls) == 1


def test_transcribe_drops_windows_whisper_itself_calls_no_speech(recording) -> None:
    recording.segments = [
        segment([word(" Thank", 0.0, 0.3), word(" you.", 0.3, 0.6)], no_speech_prob=0.9, avg_logprob=-1.3),
        segment([word(" I", 1.0, 1.2), word(" liked", 1.2, 1.5), word(" it.", 1.5, 1.8)], no_speech_prob=0.9),
        segment([word(" Fine.", 5.0, 5.4)], no_speech_prob=0.1, avg_logprob=-1.5),
    ]
    segs, words = transcribe(object(), np.zeros(SAMPLE_RATE, np.float32), FeatureSpec())
    # Dropped only when both say so: no-speech likely AND the text unlikely (Whisper's rule).
    assert [s[0] for s in segs] == ["I liked it.", "Fine."]
    assert [w.word for w in words] == ["I", "liked", "it.", "Fine."]


# ----------------------------------------------------------------------------------------------
# Segments from word timings
# ----------------------------------------------------------------------------------------------


def test_utterances_end_at_pauses_and_sentence_ends_not_at_window_edges() -> None:
    gap = PAUSE_SPLIT + 0.1
    short_sentence = [word(" I", 0.0, 0.2), word(" loved", 0.2, 0.6), word(" it.", 0.6, 0.9)]
    assert 0.9 < SENTENCE_SPLIT  # so it stays with the next sentence
    t = SENTENCE_SPLIT + 1.0
    long_sentence = [word(" The", 1.0, 1.2), word(" acting", 1.2, 1.8), word(" was", 1.8, 2.0)]
    long_sentence += [word(" wonderful", 2.0, 2.6), word(" to", 2.6, 2.8), word(" see!", 2.8, t)]
    # A sentence cut by a decoding window's edge, then a pause.
    run_on = [word(" But", t + 0.1, t + 0.4), word(" the", t + 0.4, t + 0.5)]
    run_on_2 = [word(" end,", t + 0.5, t + 0.9)]
    after_pause = [word(" sadly", t + 0.9 + gap, t + 1.4 + gap), word(" no", t + 1.4 + gap, t + 1.6 + gap)]
    windows = [segment(short_sentence + long_sentence + run_on), segment(run_on_2 + after_pause)]
    untimed = SimpleNamespace(text=" Hello there", start=20.0, end=21.0, words=None)
    segs, words = split_segments([*windows, untimed])
    assert [s[0] for s in segs] == [
        "I loved it. The acting was wonderful to see!",  # the short one joined the next
        "But the end,",  # across the window edge; a comma does not end it, the pause does
        "sadly no",
        "Hello there",  # a segment without word timings is kept as Whisper gave it
    ]
    assert segs[0][1:] == (0.0, t) and segs[1][1:] == (t + 0.1, t + 0.9)
    assert segs[2][1] == pytest.approx(t + 0.9 + gap)
    assert len(words) == 14 and [w.word for w in words[:3]] == ["I", "loved", "it."]


def test_speech_without_pauses_or_sentence_ends_is_still_cut() -> None:
    # Unpunctuated speech with no pause: 0.4 s words, 10 s windows.
    windows = [
        segment([word(f" w{i}", 10.0 * k + 0.4 * i, 10.0 * k + 0.4 * (i + 1)) for i in range(25)]) for k in range(8)
    ]
    segs, words = split_segments(windows)
    assert len(words) == 200 and sum(len(s[0].split()) for s in segs) == 200
    # Each utterance ends at the first window edge once it has lasted MAX_UTTERANCE.
    assert [round(e - s) for _, s, e in segs] == [MAX_UTTERANCE] * 2 + [20.0]


# ----------------------------------------------------------------------------------------------
# The feature spec: the new field and checkpoints stored before it
# ----------------------------------------------------------------------------------------------


def test_spec_records_the_decoding_and_old_specs_read_as_it() -> None:
    spec = FeatureSpec()
    assert spec.asr_decoding == ASR_DECODING and spec.to_dict()["asr_decoding"] == ASR_DECODING
    old = spec.to_dict()
    del old["asr_decoding"]  # a spec stored before the field existed
    assert FeatureSpec.from_dict(old) == spec
    assert spec_differences(old, spec.to_dict()) == [] and spec_differences(spec.to_dict(), old) == []
    # Still a difference when both name one and they differ, and still refused when unknown.
    other = {**spec.to_dict(), "asr_decoding": "something-else"}
    assert spec_differences(other, spec.to_dict()) == [f"asr_decoding: 'something-else' != {ASR_DECODING!r}"]
    with pytest.raises(ValueError, match="asr_decoding"):
        FeatureSpec(asr_decoding="sequential")


def test_checkpoint_stored_before_the_field_loads(tmp_path: Path, tokenizer) -> None:
    from msa.model.checkpoint import CheckpointError
    from msa.predict import Predictor

    fx = FeatureExtractor({"asr_model": "tiny.en"})  # Whisper is never loaded here
    path = feature_checkpoint(tmp_path / "old", fx, tokenizer)
    config = json.loads((path / "config.json").read_text())
    assert config["feature_spec"]["asr_decoding"] == ASR_DECODING
    del config["feature_spec"]["asr_decoding"]
    (path / "config.json").write_text(json.dumps(config))
    predictor = Predictor(path, extractor=fx)  # checks the spec at once
    assert predictor.uses_streams and predictor.extractor.spec.asr_decoding == ASR_DECODING
    # The comparison is live: a real difference is still refused.
    config["feature_spec"]["visual_rate"] = 10.0
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="visual_rate"):
        Predictor(path, extractor=fx)


# ----------------------------------------------------------------------------------------------
# The real base model
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> FeatureExtractor:
    return FeatureExtractor()  # base int8, the app's default


class CountingDecoder:
    """Wraps a CTranslate2 Whisper model: records each sequence `generate` decodes with its
    temperature, 0 for beam search or greedy (everything else passes through)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.decoded: list[float] = []

    def generate(self, features: Any, prompts: list, **kwargs: Any) -> Any:
        sampling = kwargs.get("sampling_topk", 1) != 1  # how faster-whisper asks for sampling
        temperature = float(kwargs.get("sampling_temperature", 1.0)) if sampling else 0.0
        self.decoded += [temperature] * len(prompts)
        return self.inner.generate(features, prompts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.slow  # ~15 s: most of it the decoding used before, for comparison
def test_speech_that_repeats_is_decoded_once(base: FeatureExtractor, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shortest real clip four times over (11 s): the kind of input whose text compresses so
    # well that Whisper's fallback took it for a decoding loop and decoded it again and again.
    clip = decode_audio(CLIPS / "mosi_Sqr0AcuoNnk_12.mp4")
    audio = np.concatenate([clip, room_tone(0.3)] * 4)
    model = base.asr
    counter = CountingDecoder(model.model)
    monkeypatch.setattr(model, "model", counter)
    segs, words = transcribe(model, audio, base.spec)
    windows = math.ceil(len(audio) / SAMPLE_RATE / 30)
    assert counter.decoded == [0.0] * windows, counter.decoded  # one decode per window, temperature 0
    text = " ".join(s[0] for s in segs)
    assert normalize_words(text).count("favorite") == 4, text  # and the four repeats are all there
    assert words == sorted(words, key=lambda w: w.start) and all(w.start <= w.end for w in words)
    # The same audio through the decoding used before: the fallback ran (this is what the
    # assertion above rules out, on audio where it happens).
    counter.decoded.clear()
    before, _ = model.transcribe(
        audio, language="en", beam_size=5, word_timestamps=True, condition_on_previous_text=False
    )
    list(before)
    assert len(counter.decoded) > windows and max(counter.decoded) > 0, counter.decoded


@pytest.mark.parametrize(
    "kind",
    ["digital_silence", "room_tone", "music", "white_pink_noise"],
)
def test_no_words_where_nobody_speaks(base: FeatureExtractor, kind: str) -> None:
    seconds = 6.0
    audio = {
        "digital_silence": lambda: np.zeros(int(seconds * SAMPLE_RATE), np.float32),
        "room_tone": lambda: room_tone(seconds, seed=3, rms_dbfs=-50.0),
        "music": lambda: music(seconds, seed=3),
        "white_pink_noise": lambda: noise(seconds, seed=3),
    }[kind]()
    assert len(audio) == seconds * SAMPLE_RATE and np.isfinite(audio).all()
    segs, words = base.transcribe(audio)
    assert segs == [] and words == [], segs


@pytest.mark.slow
def test_real_clips_pooled_word_error_rate(base: FeatureExtractor, record_property) -> None:
    gold = gold_transcripts()
    edits = ref_words = 0
    for name in REAL:
        audio = decode_audio(CLIPS / name)
        segs, words = base.transcribe(audio)
        text = " ".join(s[0] for s in segs)
        n = len(normalize_words(gold[name]))
        edits += round(word_error_rate(gold[name], text) * n)
        ref_words += n
        assert words and all(0 <= w.start <= w.end <= len(audio) / SAMPLE_RATE + 0.5 for w in words), name
    pooled = edits / ref_words
    record_property("pooled_wer_base", pooled)
    assert pooled <= 0.10, pooled
