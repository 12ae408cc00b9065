"""The voice as Whisper hears it: the encoder's states over the speech the VAD found.

Whisper's encoder turns each 30 s window of log-mel frames into 1,500 states, one per 20 ms, 512
wide for base; its decoder reads the words from them, and on RAVDESS a linear read-out of their
mean and spread separates pleasant from unpleasant voices far better than pitch, loudness and MFCCs
do (docs/voice_study.md). The speech recognition computes them anyway: `msa.features.asr` keeps
them as it decodes (`VoiceStates`), so the stream costs nothing beyond the words. When no decoding
runs with that Whisper (a transcript was given, or another ASR model reads the words),
`encode_speech` makes the same states the same way: the same VAD, the same windows, the same
batches.

A window is the VAD's speech spans joined end to end (faster-whisper's batched pipeline drops the
silence between them), so a state's time in the clip is found by walking back through the spans:
`state_times`. Silence longer than the VAD's minimum has no states: the voice stream is the speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .spec import SAMPLE_RATE, WHISPER_STATE_RATE

# Samples of audio per encoder state: 2 mel frames of 10 ms.
SAMPLES_PER_STATE = int(SAMPLE_RATE // WHISPER_STATE_RATE)


@dataclass
class VoiceStates:
    """Encoder states of a clip's speech, each with its time in the clip.

    ``frames`` is (T, width) float32, rounded to float16's precision (the feature cache keeps them
    in float16; rounding here makes a fresh extraction equal a cached one); ``times`` (T,) are
    each state's centre in seconds from the clip's start, non-decreasing, with gaps where the VAD
    found no speech. ``speech`` lists the VAD's spans (start, end) in seconds.
    """

    frames: np.ndarray
    times: np.ndarray
    speech: list[tuple[float, float]]

    @property
    def empty(self) -> bool:
        return self.frames.shape[0] == 0


def state_times(spans: list[tuple[int, int]], n_states: int) -> np.ndarray:
    """Clip times (s) of a window's first ``n_states`` states, the window being the audio of
    ``spans`` (sample ranges of the clip) joined end to end: state i is centred at (i + 1/2) x 20 ms
    of the joined audio, which lies in one span."""
    starts = np.array([s for s, _ in spans], dtype=np.float64)
    lengths = np.array([e - s for s, e in spans], dtype=np.float64)
    before = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    joined = (np.arange(n_states) + 0.5) * SAMPLES_PER_STATE
    span = np.clip(np.searchsorted(before, joined, side="right") - 1, 0, len(spans) - 1)
    return (starts[span] + joined - before[span]) / SAMPLE_RATE


def states_of_windows(windows: list[dict[str, Any]], encoded: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frames, times) of each window from faster-whisper's chunk metadata (``duration`` in s of
    joined speech, ``segments``: the clip's sample ranges) and the encoder's output for them
    (windows, 1500, width): only the states over real audio, not the window's padding."""
    out = []
    for meta, states in zip(windows, encoded):
        spans = [(int(s["start"]), int(s["end"])) for s in meta["segments"]]
        n = min(int(np.ceil(round(meta["duration"] * SAMPLE_RATE) / SAMPLES_PER_STATE)), states.shape[0])
        if not spans or n <= 0:
            continue
        frames = np.asarray(states[:n], dtype=np.float32).astype(np.float16).astype(np.float32)
        out.append((frames, state_times(spans, n)))
    return out


def collect(parts: list[tuple[np.ndarray, np.ndarray]], speech: list[tuple[float, float]], width: int) -> VoiceStates:
    """One `VoiceStates` from the windows' (frames, times), in order."""
    if not parts:
        return VoiceStates(np.zeros((0, width), np.float32), np.zeros(0), speech)
    return VoiceStates(
        np.concatenate([f for f, _ in parts]), np.concatenate([t for _, t in parts]).astype(np.float64), speech
    )


def speech_windows(audio: np.ndarray, vad_parameters: dict[str, Any], window_seconds: float) -> tuple[list, list]:
    """The VAD's speech of ``audio`` joined into windows of at most ``window_seconds``, as
    faster-whisper's batched pipeline makes them: (audio of each window, its metadata)."""
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    options = VadOptions(**{**vad_parameters, "max_speech_duration_s": window_seconds})
    timestamps = get_speech_timestamps(audio, options)
    if not timestamps:
        return [], []
    return collect_chunks(audio, timestamps, max_duration=window_seconds)


def speech_spans(windows: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """The VAD's speech spans (seconds) of every window."""
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for w in windows for s in w["segments"]]


def encode_speech(
    model: Any, audio: np.ndarray, vad_parameters: dict[str, Any], width: int, batch_size: int
) -> VoiceStates:
    """A faster-whisper ``model``'s encoder states (``width`` wide) over the speech of 16 kHz mono
    ``audio``, made exactly as the batched pipeline makes them while it decodes (`msa.features.asr`
    passes its VAD settings and batch size: the same windows, encoded in the same batches)."""
    from faster_whisper.audio import pad_or_trim

    window = float(model.feature_extractor.chunk_length)
    chunks, windows = speech_windows(audio, vad_parameters, window)
    if not windows:
        return collect([], [], width)
    features = np.stack([pad_or_trim(model.feature_extractor(c)[..., :-1]) for c in chunks])
    parts = []
    for i in range(0, len(features), batch_size):
        encoded = np.asarray(model.encode(features[i : i + batch_size]))
        parts += states_of_windows(windows[i : i + batch_size], encoded)
    return collect(parts, speech_spans(windows), width)


__all__ = [
    "VoiceStates",
    "collect",
    "encode_speech",
    "speech_spans",
    "speech_windows",
    "state_times",
    "states_of_windows",
]
