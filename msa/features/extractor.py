"""The extractor: one file -> `Extraction` (whole-clip and per-segment samples), its disk cache, many files."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_bytes
from ..sample import Sample, TimedWord
from .acoustic import SILENCE_DBFS, acoustic_features, loudest_dbfs
from .asr import (
    BATCH_SIZE,
    VAD_PARAMETERS,
    WINDOW_SECONDS,
    hear_whole_clip,
    transcribe,
    transcribe_with_states,
    whisper_model_dir,
)
from .media import MediaInfo, MediaLimits, decode_audio, iter_frames, probe
from .spec import (
    ASR_DECODING,
    WHISPER_WIDTHS,
    FeatureError,
    FeatureSpec,
    default_face_model,
    face_model_path,
    installed_versions,
    sha256_file,
    spec_differences,
)
from .visual import FaceRunner
from .voice import VoiceStates, encode_speech, speech_spans, speech_windows

log = logging.getLogger(__name__)

STREAMS: tuple[str, str] = ("acoustic", "visual")  # the streams besides the text

# Why a clip with sound has no voice: the VAD found no speech in it (music, noise, a tone).
NO_SPEECH = "no speech in the audio (neither the voice activity detector nor Whisper heard any)"


@dataclass
class Extraction:
    """Everything the extractor learnt about one file.

    Attributes
    ----------
    sample : the whole clip as one `Sample` (text = transcript; absent streams are None).
    segments : one `Sample` per ASR segment when the clip holds two or more (each with
        ``meta["start"]``/``meta["end"]`` in seconds); empty otherwise.
    words : the recognised words with their times; empty when a transcript was given.
    absent : modality name ("text", "acoustic", "visual") -> why it is absent.
    timings : seconds per stage ("decode", "asr", "acoustic", "visual", "total"; on a cache
        hit "hash" and "cache" instead).
    duration : seconds of media.
    spec : the spec the features were made with.
    from_cache : True when loaded from the disk cache.
    media : the file's probe (streams, duration); None when served from the cache.
    """

    sample: Sample
    segments: list[Sample]
    words: list[TimedWord]
    absent: dict[str, str]
    timings: dict[str, float]
    duration: float
    spec: FeatureSpec
    asr_segments: list[tuple[str, float, float]] = field(default_factory=list)
    from_cache: bool = False
    media: MediaInfo | None = None

    @property
    def utterances(self) -> list[Sample]:
        """The samples to predict on: the segments of a long input, else the whole clip."""
        return self.segments or [self.sample]

    @property
    def transcript(self) -> str | None:
        return self.sample.text


def _slice_segments(
    ex_sample: Sample, asr_segments: list[tuple[str, float, float]], spec: FeatureSpec, visual_times: np.ndarray | None
) -> list[Sample]:
    """Per-ASR-segment samples cut from the whole-clip streams by time."""
    if len(asr_segments) < 2:
        return []
    out = []
    for i, (text, start, end) in enumerate(asr_segments):
        end = max(end, start + 1.0 / spec.acoustic_rate)
        acoustic = None
        meta = {k: v for k, v in ex_sample.meta.items() if k not in ("visual_times", "acoustic_times", "start", "end")}
        if ex_sample.acoustic is not None:
            t = acoustic_times(ex_sample, spec)
            sel = (t >= start) & (t < end)
            acoustic = ex_sample.acoustic[sel] if sel.any() else None
            if acoustic is not None and "acoustic_times" in ex_sample.meta:
                meta["acoustic_times"] = t[sel]
        visual = None
        if ex_sample.visual is not None and visual_times is not None:
            sel = (visual_times >= start) & (visual_times < end)
            visual = ex_sample.visual[sel] if sel.any() else None
        meta.update(start=float(start), end=float(end), segment=i)
        out.append(Sample(id=f"{ex_sample.id}#{i}", text=text or None, acoustic=acoustic, visual=visual, meta=meta))
    return out


def acoustic_times(sample: Sample, spec: FeatureSpec) -> np.ndarray:
    """Seconds of each acoustic frame of ``sample``: ``meta["acoustic_times"]`` for a stream made
    over the speech only (Whisper's states), else frame k at k / ``spec.acoustic_rate``."""
    assert sample.acoustic is not None
    times = sample.meta.get("acoustic_times")
    if times is not None:
        return np.asarray(times, dtype=np.float64)
    return np.arange(sample.acoustic.shape[0]) / spec.acoustic_rate


def _cache_dtype(spec: FeatureSpec) -> type:
    """Encoder states are kept in half precision (they are made at it: `msa.features.voice`);
    a stream with librosa's values keeps float32."""
    return np.float16 if spec.voice.whisper is not None and not spec.voice.librosa else np.float32


def _to_cache_bytes(ex: Extraction, visual_times: np.ndarray | None) -> bytes:
    s = ex.sample
    info = {
        "spec": ex.spec.to_dict(),
        "text": s.text,
        "words": [[w.word, w.start, w.end] for w in ex.words],
        "asr_segments": ex.asr_segments,
        "absent": ex.absent,
        "timings": ex.timings,
        "duration": ex.duration,
        "meta": {k: v for k, v in s.meta.items() if k not in ("visual_times", "acoustic_times")},
        "has_acoustic": s.acoustic is not None,
        "has_visual": s.visual is not None,
    }
    times = s.meta.get("acoustic_times")
    arrays = {
        "acoustic": (s.acoustic if s.acoustic is not None else np.zeros((0, ex.spec.acoustic_dim))).astype(
            _cache_dtype(ex.spec)
        ),
        "acoustic_times": np.zeros(0) if times is None else np.asarray(times, dtype=np.float64),
        "visual": s.visual if s.visual is not None else np.zeros((0, ex.spec.visual_dim), np.float32),
        "visual_times": visual_times if visual_times is not None else np.zeros(0, np.float32),
        "info": np.frombuffer(json.dumps(info).encode(), dtype=np.uint8),
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _from_cache_file(path: Path, spec: FeatureSpec, sample_id: str) -> Extraction:
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(bytes(z["info"]).decode())
        acoustic, visual, vt = z["acoustic"].astype(np.float32), z["visual"], z["visual_times"]
        at = z["acoustic_times"]
    if info["spec"] != spec.to_dict():
        raise ValueError("spec differs: " + "; ".join(spec_differences(info["spec"], spec.to_dict())))
    if info["has_acoustic"] and (acoustic.ndim != 2 or acoustic.shape[1] != spec.acoustic_dim or not acoustic.shape[0]):
        raise ValueError(f"acoustic array has shape {acoustic.shape}")
    if info["has_visual"] and (
        visual.ndim != 2 or visual.shape[1] != spec.visual_dim or visual.shape[0] != vt.shape[0]
    ):
        raise ValueError(f"visual array has shape {visual.shape}")
    if info["has_acoustic"] and at.size and at.shape != (acoustic.shape[0],):
        raise ValueError(f"acoustic times have shape {at.shape} for {acoustic.shape[0]} frames")
    meta = dict(info["meta"])
    if info["has_acoustic"] and at.size:
        meta["acoustic_times"] = at
    visual_times = vt.astype(np.float32) if info["has_visual"] else None
    if visual_times is not None:
        meta["visual_times"] = visual_times
    sample = Sample(
        id=sample_id,
        text=info["text"],
        acoustic=acoustic if info["has_acoustic"] else None,
        visual=visual if info["has_visual"] else None,
        meta=meta,
    )
    asr_segments = [(str(t), float(a), float(b)) for t, a, b in info["asr_segments"]]
    return Extraction(
        sample=sample,
        segments=_slice_segments(sample, asr_segments, spec, visual_times),
        words=[TimedWord(str(w), float(a), float(b)) for w, a, b in info["words"]],
        absent=dict(info["absent"]),
        timings=dict(info["timings"]),
        duration=float(info["duration"]),
        spec=spec,
        asr_segments=asr_segments,
        from_cache=True,
    )


class _Whispers:
    """The Whisper models an extractor and its siblings (`FeatureExtractor.with_voice_stream`)
    share, each loaded once, on first use, by name."""

    def __init__(self, cpu_threads: int, cache_root: Path | None, compute_type: str):
        self.cpu_threads, self.cache_root, self.compute_type = cpu_threads, cache_root, compute_type
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        with self._lock:
            if name not in self._models:
                from faster_whisper import WhisperModel

                path = whisper_model_dir(name, self.cache_root)
                self._models[name] = WhisperModel(
                    str(path), device="cpu", compute_type=self.compute_type, cpu_threads=self.cpu_threads
                )
            return self._models[name]


class FeatureExtractor:
    """Turns media files into `Extraction`s; loads the ASR model once, lazily.

    Parameters
    ----------
    spec_or_settings : a `FeatureSpec`, a dict of spec fields to override (e.g.
        ``{"asr_model": "tiny.en"}``; a full `FeatureSpec.to_dict()` is accepted too), or None
        for the defaults. Package versions are always those installed (the extractor cannot
        run other versions); a spec naming other versions is reported in a log warning.
    cache_dir : folder for the feature cache; None disables it.
    cpu_threads : threads for Whisper (0 = CTranslate2's default).
    model_cache_root : where the joined Whisper base model is kept (default
        `default_cache_root()`).
    limits : what one file may cost to decode (default `MediaLimits()`).
    """

    def __init__(
        self,
        spec_or_settings: FeatureSpec | Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        cpu_threads: int = 0,
        model_cache_root: str | os.PathLike[str] | None = None,
        limits: MediaLimits | None = None,
    ):
        if spec_or_settings is None:
            spec = FeatureSpec()
        elif isinstance(spec_or_settings, FeatureSpec):
            spec = spec_or_settings
        else:
            d = {k: v for k, v in spec_or_settings.items() if k not in ("package_versions", "visual_model")}
            # A whole stored spec (it lists the features) reads as stored; a few settings override the defaults.
            spec = FeatureSpec.from_dict(d, stored="acoustic_features" in d)
        running = FeatureSpec(
            **{
                **{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)},
                "package_versions": installed_versions(),
                "visual_model": default_face_model(),
                "asr_decoding": ASR_DECODING,  # the one decoding this package runs
            }
        )
        if running != spec:
            log.warning(
                "feature spec adjusted to the running packages: %s",
                "; ".join(spec_differences(spec.to_dict(), running.to_dict())),
            )
        self.spec = running
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cpu_threads = cpu_threads
        self.model_cache_root = Path(model_cache_root) if model_cache_root else None
        # What one file may cost to decode (checked from the probe); a public endpoint lowers
        # max_seconds to its own limit (`msa.app.service.Service`).
        self.limits = limits or MediaLimits()
        self._whispers = _Whispers(cpu_threads, self.model_cache_root, self.spec.asr_compute_type)

    def with_voice_stream(self, name: str) -> FeatureExtractor:
        """An extractor making another voice stream (`msa.features.spec.VOICE_STREAMS`) and the
        rest as this one does, sharing its Whisper models, cache folder and limits: how one app
        serves checkpoints trained on different streams."""
        if name == self.spec.voice_stream:
            return self
        other = copy.copy(self)
        other.spec = self.spec.with_voice_stream(name)
        return other

    # -- models ---------------------------------------------------------------------------

    @property
    def asr(self) -> Any:
        """The faster-whisper model that reads the words, loaded on first use."""
        return self._whispers.get(self.spec.asr_model)

    @property
    def voice_model(self) -> Any:
        """The Whisper whose encoder states make the voice stream (the ASR's own when the two are
        the same model), loaded on first use; None for a stream without them."""
        name = self.spec.voice.whisper
        return None if name is None else self._whispers.get(name)

    def warm_up(self) -> None:
        """Pay the one-off costs now (Whisper load, librosa's lazy imports, the landmarker
        graph) so that the first real request is as fast as the rest: an app calls this at
        start-up."""
        rng = np.random.default_rng(0)
        noise = (0.01 * rng.standard_normal(self.spec.sample_rate)).astype(np.float32)
        acoustic_features(noise, self.spec)
        self.transcribe(noise)  # loads the VAD, which then keeps the noise from Whisper:
        # so one decode straight through the model, for the decoder's first-call costs
        for _ in self.asr.transcribe(noise, language=self.spec.language, beam_size=1, temperature=0.0)[0]:
            pass
        runner = FaceRunner(face_model_path())
        try:
            runner(np.zeros((self.spec.visual_frame_size,) * 2 + (3,), np.uint8), 0)
        finally:
            runner.close()

    def transcribe(self, audio: np.ndarray) -> tuple[list[tuple[str, float, float]], list[TimedWord]]:
        """ASR segments and words of 16 kHz mono audio, each as (text, start, end) in seconds."""
        return transcribe(self.asr, audio, self.spec)

    def listen(
        self, audio: np.ndarray, keep_states: bool
    ) -> tuple[list[tuple[str, float, float]], list[TimedWord], VoiceStates]:
        """`transcribe`, and what the decoding learnt of the voice on the way: where the VAD heard
        speech and, with ``keep_states``, the encoder's states over it (the voice stream of a
        spec whose Whisper is the ASR's, at no extra cost)."""
        width = WHISPER_WIDTHS[self.spec.asr_model] if keep_states else 0
        return transcribe_with_states(self.asr, audio, self.spec, width)

    def voice_states(self, audio: np.ndarray, encode: bool = True) -> VoiceStates:
        """The voice stream's encoder states over the speech of 16 kHz mono ``audio``, made without
        decoding (a transcript was given, or another Whisper reads the words); without ``encode``
        only the VAD runs: where the speech is."""
        voice = self.spec.voice
        model, name = (
            (self.voice_model, voice.whisper) if voice.whisper is not None else (self.asr, self.spec.asr_model)
        )
        width = WHISPER_WIDTHS[name] if encode and voice.whisper is not None else 0
        if width:
            states = encode_speech(model, audio, VAD_PARAMETERS, width, BATCH_SIZE)
        else:
            _, windows = speech_windows(audio, VAD_PARAMETERS, WINDOW_SECONDS)
            states = VoiceStates(np.zeros((0, 0), np.float32), np.zeros(0), speech_spans(windows))
        if states.speech or loudest_dbfs(audio) < SILENCE_DBFS:
            return states
        # The VAD heard nothing: Whisper's own no-speech test on the whole clip decides, as in `listen`.
        return hear_whole_clip(model, audio, self.spec, width)[2]

    # -- extraction -----------------------------------------------------------------------

    def _cache_path(self, digest: str, transcript: str | None, streams: tuple[str, ...]) -> Path:
        assert self.cache_dir is not None
        t = "asr" if transcript is None else hashlib.sha256(transcript.encode()).hexdigest()[:16]
        # Entries made without some streams must never answer a request that wants them.
        only = "" if set(streams) == set(STREAMS) else "|only:" + ",".join(sorted(streams))
        key = hashlib.sha256(f"{digest}|{self.spec.key()}|{t}{only}".encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.npz"

    def extract(
        self,
        path: str | os.PathLike[str],
        transcript: str | None = None,
        sample_id: str | None = None,
        on_stage: Callable[[str], None] | None = None,
        streams: Sequence[str] = STREAMS,
        limits: MediaLimits | None = None,
        info: MediaInfo | None = None,
    ) -> Extraction:
        """Extract the three streams of one media file.

        Parameters
        ----------
        path : a video (mp4, webm, mov, avi, mkv, flv) or audio file (wav, mp3, m4a, flac).
        transcript : the spoken text, if known; replaces ASR (no word timings then). An empty
            string marks the text absent.
        sample_id : id of the returned sample (default: the file name without extension).
        on_stage : called with each stage's name ("decode", "asr", "acoustic", "visual") as it
            starts, e.g. to show progress; stages that are skipped are not announced.
        streams : which of "acoustic" and "visual" to compute. A model that uses only the text
            skips the rest (the audio is still decoded for ASR); a skipped stream is None in
            the sample and has no entry in ``absent``: the caller says why it is unused.
        limits : what the file may cost to decode (default: this extractor's ``limits``).
        info : the file's `probe` under ``limits`` when the caller has it (saves one ffprobe run).

        Returns
        -------
        Extraction

        Raises
        ------
        FeatureError
            For a missing, empty, corrupt or non-media file.
        """
        p = Path(path)
        sid = sample_id or p.stem
        t_start = time.perf_counter()
        cache_file = None
        if self.cache_dir is not None:
            if not p.is_file():
                raise FeatureError(f"{p}: no such file")
            digest = sha256_file(p)
            t_hash = time.perf_counter() - t_start
            cache_file = self._cache_path(digest, transcript, tuple(streams))
            if cache_file.is_file():
                t0 = time.perf_counter()
                try:
                    ex = _from_cache_file(cache_file, self.spec, sid)
                    ex.sample.meta["file"] = str(p)
                    ex.timings = {"hash": t_hash, "cache": time.perf_counter() - t0}
                    return ex
                except Exception as e:  # corrupt, truncated or foreign: extract again
                    log.warning("discarding unreadable cache entry %s (%s)", cache_file, e)
                    cache_file.unlink(missing_ok=True)
        unknown = set(streams) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; expected a subset of {STREAMS}")
        ex, visual_times = self._extract(
            p, transcript, sid, on_stage or _no_stage, tuple(streams), limits or self.limits, info
        )
        ex.timings["total"] = time.perf_counter() - t_start
        if cache_file is not None:
            atomic_write_bytes(cache_file, _to_cache_bytes(ex, visual_times))
        return ex

    def _extract(
        self,
        p: Path,
        transcript: str | None,
        sid: str,
        on_stage: Callable[[str], None],
        streams: tuple[str, ...],
        limits: MediaLimits,
        info: MediaInfo | None = None,
    ) -> tuple[Extraction, np.ndarray | None]:
        spec = self.spec
        timings = {"decode": 0.0, "asr": 0.0, "acoustic": 0.0, "visual": 0.0}
        absent: dict[str, str] = {}

        on_stage("decode")
        t0 = time.perf_counter()
        info = info or probe(p, limits)
        audio = None
        if info.audio_stream is not None:
            audio = decode_audio(p, info.audio_stream, spec.sample_rate, info.demuxer, limits.max_seconds)
        timings["decode"] += time.perf_counter() - t0
        decoded = audio.size / spec.sample_rate if audio is not None else 0.0
        # What was decoded counts when the container understates it (the caller's length limit sees it).
        duration = max(info.duration or 0.0, decoded)

        # Audio: absent when there is no track or no signal at all. Whether it holds a voice is the
        # VAD's call, below: a soft voice is a voice, however far below full scale.
        if audio is None:
            absent["acoustic"] = "no audio track"
        elif audio.size == 0:
            absent["acoustic"] = "audio track has no samples"
        elif loudest_dbfs(audio) < SILENCE_DBFS:
            absent["acoustic"] = f"silent audio (no signal above {SILENCE_DBFS:g} dB below full scale)"

        # Text: the given transcript, else ASR on audio with a signal.
        words: list[TimedWord] = []
        asr_segments: list[tuple[str, float, float]] = []
        if transcript is not None:
            text = transcript.strip() or None
            if text is None:
                absent["text"] = "empty transcript given"
        elif "acoustic" in absent:
            text = None
            absent["text"] = "no speech: " + absent["acoustic"]
        voice = spec.voice
        want_voice = "acoustic" in streams and "acoustic" not in absent
        decoding = transcript is None and "acoustic" not in absent
        # The voice's encoder states come with the decoding when the same Whisper reads the words.
        states_from_asr = want_voice and decoding and voice.whisper == spec.asr_model
        # ASR (and the voice's states made apart from it) run in threads beside the acoustic and
        # visual stages: they are independent until the model, and CTranslate2, librosa and the
        # landmarker release the GIL in their kernels (bench/bench_speed.py measures the overlap).
        # The pool's exit waits for them, error or not.
        states: VoiceStates | None = None
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="asr") as pool:
            asr_job: Future | None = None
            states_job: Future | None = None
            if decoding:
                on_stage("asr")
                asr_job = pool.submit(self._timed_transcribe, audio, states_from_asr)
            if want_voice and not states_from_asr and (voice.whisper is not None or not decoding):
                # Whisper's states without a decoding, or (a librosa stream, no decoding) where the speech is.
                states_job = pool.submit(self._timed_states, audio, voice.whisper is not None)
            librosa, visual, visual_times, n_frames = self._streams(
                p, info, audio, absent, streams, timings, on_stage, limits
            )
            if asr_job is not None:
                asr_segments, words, asr_states, timings["asr"] = asr_job.result()
                text = " ".join(s[0] for s in asr_segments).strip() or None
                if text is None:
                    absent["text"] = "no speech recognised"
                states = asr_states
            if states_job is not None:
                voice_states, seconds = states_job.result()
                timings["acoustic"] += seconds
                states = voice_states if states is None or voice.whisper is not None else states
        acoustic, times = self._voice(librosa, states, want_voice, absent)
        if not duration and n_frames:
            duration = n_frames / spec.visual_rate
        if audio is None and info.video_stream is not None and "visual" in streams and n_frames == 0 and not duration:
            raise FeatureError(f"{p.name}: no decodable audio or video; the file may be corrupt")

        meta: dict[str, Any] = {
            "file": str(p),
            "start": 0.0,
            "end": float(duration),
            "duration": float(duration),
            "frames_sampled": n_frames,
            "face_frames": 0 if visual is None else int(visual.shape[0]),
        }
        if visual_times is not None:
            meta["visual_times"] = visual_times
        if times is not None:
            meta["acoustic_times"] = times
        sample = Sample(id=sid, text=text, acoustic=acoustic, visual=visual, meta=meta)
        ex = Extraction(
            sample=sample,
            segments=_slice_segments(sample, asr_segments, spec, visual_times),
            words=words,
            absent=absent,
            timings=timings,
            duration=float(duration),
            spec=spec,
            asr_segments=asr_segments,
            media=info,
        )
        return ex, visual_times

    def _voice(
        self, librosa: np.ndarray | None, states: VoiceStates | None, wanted: bool, absent: dict[str, str]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The acoustic frames as the spec's voice stream makes them, and their times (None: frame
        k at k / acoustic_rate); (None, None) with the reason in ``absent`` when the VAD found no
        speech."""
        if not wanted:
            return None, None
        assert states is not None  # the decoding or the VAD ran whenever the voice is wanted
        if not states.speech:
            absent["acoustic"] = NO_SPEECH
            return None, None
        voice = self.spec.voice
        if voice.whisper is None:
            return librosa, None
        frames = states.frames
        if voice.librosa:
            assert librosa is not None
            rows = np.clip(np.round(states.times * self.spec.acoustic_rate).astype(int), 0, len(librosa) - 1)
            frames = np.concatenate([frames, librosa[rows]], axis=1)
        return frames.astype(np.float32), states.times

    def _timed_transcribe(
        self, audio: np.ndarray, keep_states: bool
    ) -> tuple[list[tuple[str, float, float]], list[TimedWord], VoiceStates, float]:
        t0 = time.perf_counter()
        segments, words, states = self.listen(audio, keep_states)
        return segments, words, states, time.perf_counter() - t0

    def _timed_states(self, audio: np.ndarray, encode: bool) -> tuple[VoiceStates, float]:
        t0 = time.perf_counter()
        states = self.voice_states(audio, encode)
        return states, time.perf_counter() - t0

    def _streams(
        self,
        p: Path,
        info: MediaInfo,
        audio: np.ndarray | None,
        absent: dict[str, str],
        streams: tuple[str, ...],
        timings: dict[str, float],
        on_stage: Callable[[str], None],
        limits: MediaLimits,
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, int]:
        """The acoustic and visual streams (each None where absent or not wanted; reasons go to
        ``absent``), the visual frames' times and the number of frames sampled."""
        spec = self.spec
        acoustic = None
        if "acoustic" not in absent and "acoustic" in streams and spec.voice.librosa:
            on_stage("acoustic")
            t0 = time.perf_counter()
            acoustic = acoustic_features(audio, spec)  # type: ignore[arg-type]
            timings["acoustic"] = time.perf_counter() - t0

        visual = visual_times = None
        n_frames = 0
        if info.video_stream is None:
            absent["visual"] = "no video track"
        elif "visual" in streams:
            on_stage("visual")
            rows, times = [], []
            runner = None
            try:
                for k, frame in enumerate(
                    iter_frames(
                        p,
                        spec.visual_rate,
                        spec.visual_frame_size,
                        info.video_stream,
                        timings,
                        info.demuxer,
                        limits.max_seconds,
                    )
                ):
                    t0 = time.perf_counter()
                    if runner is None:
                        runner = FaceRunner(face_model_path())
                    t = k / spec.visual_rate
                    row = runner(frame, int(round(t * 1000)))
                    if row is not None:
                        rows.append(row)
                        times.append(t)
                    n_frames += 1
                    timings["visual"] += time.perf_counter() - t0
            finally:
                if runner is not None:
                    runner.close()
            if n_frames == 0:
                absent["visual"] = "video track has no decodable frames"
            elif not rows:
                absent["visual"] = "no face in any frame"
            else:
                visual = np.stack(rows).astype(np.float32)
                visual_times = np.asarray(times, dtype=np.float32)
        return acoustic, visual, visual_times, n_frames


def _no_stage(stage: str) -> None:
    pass


@dataclass(frozen=True)
class ExtractWork:
    """Extraction as a `msa.parallel` work: one file (an item ``{"file", "transcript", "id"}``)
    into the feature cache, a status row out. Built once per worker (`msa.parallel`), it is
    what ``extract_many(workers=N)``, ``python -m msa extract`` and ``train.py --videos --engine
    ray`` all run: the features a worker caches are the ones the parent then reads."""

    spec: dict[str, Any]
    cache_dir: str
    model_cache_root: str | None = None

    def build(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        import torch

        fx = FeatureExtractor(
            self.spec, self.cache_dir, cpu_threads=torch.get_num_threads(), model_cache_root=self.model_cache_root
        )

        def work(item: dict[str, Any]) -> dict[str, Any]:
            t0 = time.perf_counter()
            try:
                ex = fx.extract(item["file"], transcript=item.get("transcript"), sample_id=item.get("id"))
            except FeatureError as e:
                return {**item, "status": "failed", "error": " ".join(str(e).split())}
            present = [m for m, here in zip(("text", "acoustic", "visual"), ex.sample.present()) if here]
            return {
                **item,
                "status": "done",
                "error": "",
                "duration": round(ex.duration, 3),
                "modalities": ";".join(present),
                "absent": "; ".join(f"{m}: {why}" for m, why in ex.absent.items()),
                "seconds": round(time.perf_counter() - t0, 3),
            }

        return work


def extract_many(
    paths: Sequence[str | os.PathLike[str]],
    extractor: FeatureExtractor | FeatureSpec | Mapping[str, Any] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 1,
    transcripts: Sequence[str | None] | None = None,
    sample_ids: Sequence[str | None] | None = None,
    on_error: str = "raise",
    progress: bool = True,
    engine: str = "local",
    address: str | None = None,
) -> list[Extraction | FeatureError]:
    """Extract many files with a progress bar, in parallel over files.

    Parameters
    ----------
    paths : media files.
    extractor : an extractor (used in-process when ``workers == 1``; its spec, cache folder and
        model folder are passed to worker processes otherwise), a spec, settings, or None.
    cache_dir : cache folder when ``extractor`` is not a `FeatureExtractor`.
    workers : processes. On 2 cores, 1 process with 2 Whisper threads and 2 processes with 1
        thread each are about even; more processes than cores only add memory (one Whisper
        model each). With 1 and the local engine, files are extracted in this process.
    engine, address : "local" (worker processes here) or "ray" (a Ray actor pool; ``address``
        joins a cluster, None starts a local Ray): `msa.parallel.map_items`.
    transcripts, sample_ids : per-file transcript overrides and ids (None entries = default).
    on_error : "raise" stops at the first bad file; "return" puts its `FeatureError` in the list.
    progress : show a tqdm bar.

    Returns
    -------
    list
        One `Extraction` (or `FeatureError` with ``on_error="return"``) per path, in order.
    """
    from tqdm.auto import tqdm

    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', got {on_error!r}")
    n = len(paths)
    transcripts = list(transcripts) if transcripts is not None else [None] * n
    sample_ids = list(sample_ids) if sample_ids is not None else [None] * n
    if len(transcripts) != n or len(sample_ids) != n:
        raise ValueError("transcripts and sample_ids must have one entry per path")
    jobs = [(str(p), t, s) for p, t, s in zip(paths, transcripts, sample_ids)]
    results: list[Extraction | FeatureError] = []

    def check(r: Extraction | FeatureError) -> Extraction | FeatureError:
        if isinstance(r, FeatureError) and on_error == "raise":
            raise r
        return r

    bar = tqdm(total=n, desc="features", unit="file", disable=not progress)
    try:
        if workers <= 1 and engine == "local":
            ex = extractor if isinstance(extractor, FeatureExtractor) else FeatureExtractor(extractor, cache_dir)
            for job in jobs:
                try:
                    r: Extraction | FeatureError = ex.extract(job[0], transcript=job[1], sample_id=job[2])
                except FeatureError as e:
                    r = e
                results.append(check(r))
                bar.update()
            return results
        # Worker processes fill the cache (`ExtractWork`), then each file is read from it here:
        # one implementation for every engine, and a file that crashes a worker is an error.
        import tempfile

        from ..parallel import map_items

        fx = extractor if isinstance(extractor, FeatureExtractor) else FeatureExtractor(extractor, cache_dir)
        with tempfile.TemporaryDirectory(prefix="msa-features-") as tmp:
            store = fx if fx.cache_dir is not None else FeatureExtractor(fx.spec, tmp)
            work = ExtractWork(
                fx.spec.to_dict(), str(store.cache_dir), str(fx.model_cache_root) if fx.model_cache_root else None
            )
            items = [{"file": f, "transcript": t, "id": i, "index": k} for k, (f, t, i) in enumerate(jobs)]
            failed: dict[int, str] = {}
            for row in map_items(work, items, engine, workers, address):
                if row.get("error"):
                    failed[row["index"]] = row["error"]
                bar.update()
            for k, job in enumerate(jobs):
                try:
                    if k in failed:
                        raise FeatureError(failed[k])
                    r = store.extract(job[0], transcript=job[1], sample_id=job[2])
                except FeatureError as e:
                    r = e
                results.append(check(r))
        return results
    finally:
        bar.close()
