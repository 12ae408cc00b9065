"""What a clip's time axis shows besides attention: a strip of video frames and the voice's loudness and pitch.

The explanation's attention figure lays each word's attention over the stream's frame times; these
traces let a reader see what was happening then (a raised voice, a smile) without playing the clip.
Everything here is cheap: the voice traces are read from the raw acoustic features the prediction
already computed (or, for a stream of Whisper's states, from the audio), and the frames are a
handful of small thumbnails from one or two ffmpeg runs.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .acoustic import acoustic_features
from .media import MediaInfo, decode_audio, ffmpeg_command, input_args, probe
from .spec import FeatureSpec

# 20 * log10(e): natural-log amplitude to decibels (20 log10 x = 20 log10(e) * ln x).
DB_PER_NEPER = 20.0 * math.log10(math.e)

# Reference of the "log_f0" column: log2(f0 / F0_REFERENCE_HZ).
F0_REFERENCE_HZ = 100.0

# Decoder shortcuts that change no thumbnail visibly: skip the deblocking filter (blockier edges, invisible
# at 72 px) and frames nothing refers to (the next frame is shown instead, a few ms later). Together they
# halve the decode time of a typical H.264 clip.
_FAST_DECODE = ("-skip_loop_filter", "all", "-skip_frame", "noref")

# Self-describing 8-bit RGB images (the size is in each header): the width follows the display aspect,
# which is known only once ffmpeg has applied any rotation. rgb24 is forced because a 10-bit source
# would otherwise get 16-bit PPMs.
_PPM = ("-pix_fmt", "rgb24", "-c:v", "ppm", "-f", "image2pipe")

# Opening an input and seeking costs about as much as decoding this many seconds of video; it tips the
# choice between seeking to each thumbnail and decoding the clip once (`_seek_plan`).
_SEEK_OVERHEAD_S = 0.25


@dataclass
class ClipContext:
    """The clip along its time axis, for drawing under the attention.

    Attributes
    ----------
    frames : (time in seconds, RGB uint8 thumbnail (H, W, 3)), times increasing; empty without video.
    voice_times : (frames,) seconds of the acoustic frames (frame k at k / acoustic_rate).
    loudness_db : (frames,) frame level in dB relative to full scale (RMS of the 16 kHz signal).
    pitch_hz : (frames,) fundamental frequency; NaN in unvoiced frames.
    duration : seconds of media.
    """

    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    voice_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loudness_db: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pitch_hz: np.ndarray = field(default_factory=lambda: np.zeros(0))
    duration: float = 0.0


def _column(raw: np.ndarray, spec: FeatureSpec, name: str) -> np.ndarray | None:
    """One named column of the raw acoustic frames; None when the spec has no such feature."""
    names = list(spec.acoustic_features)
    return raw[:, names.index(name)] if name in names else None


def voice_trace(
    acoustic_raw: np.ndarray | None, spec: FeatureSpec, times: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loudness and pitch of the voice per acoustic frame, from the raw (unnormalised) features.

    Parameters
    ----------
    acoustic_raw : (frames, spec.acoustic_dim) raw acoustic features as the extractor returns them
        (before `FeatureNormalizer`), or None when the clip has no usable audio.
    spec : the spec they were made with (its column names and frame rate).
    times : (frames,) seconds of the frames when they are not k / spec.acoustic_rate (a stream
        made over the speech only: ``meta["acoustic_times"]``).

    Returns
    -------
    times : (frames,) seconds, frame k at k / spec.acoustic_rate unless ``times`` says otherwise.
    loudness_db : (frames,) 20 log10 of the frame RMS, from the "log_energy" column (ln RMS).
    pitch_hz : (frames,) 100 Hz * 2 ** "log_f0" where "voiced" is 1, NaN elsewhere.
        A spec without one of these columns gives NaN for that trace: the plot then shows no line
        rather than failing the page.
    """
    if acoustic_raw is None:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    raw = np.asarray(acoustic_raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != spec.acoustic_dim:
        raise ValueError(f"acoustic_raw must be (frames, {spec.acoustic_dim}), got {raw.shape}")
    n = raw.shape[0]
    times = np.arange(n) / spec.acoustic_rate if times is None else np.asarray(times, dtype=np.float64)
    if times.shape != (n,):
        raise ValueError(f"times must be ({n},), got {times.shape}")
    nan = np.full(n, np.nan)
    log_energy = _column(raw, spec, "log_energy")
    loudness = nan.copy() if log_energy is None else DB_PER_NEPER * log_energy
    log_f0, voiced = _column(raw, spec, "log_f0"), _column(raw, spec, "voiced")
    if log_f0 is None or voiced is None:
        pitch = nan.copy()
    else:
        # log_f0 is 0 (= 100 Hz) in unvoiced frames: without the mask those would draw a false 100 Hz line.
        pitch = np.where(voiced > 0.5, F0_REFERENCE_HZ * np.exp2(log_f0), np.nan)
    return times, loudness, pitch


def _keyframe_times(path: str, stream: int, demuxer: str | None = None) -> np.ndarray:
    """Seconds (from the first packet) of the video stream's keyframes, read from packet flags; no decoding."""
    cmd = ffmpeg_command(
        *input_args(path, demuxer),
        "-map",
        f"0:{stream}",
        "-c",
        "copy",
        "-f",
        "framecrc",
        "-",
    )
    out = subprocess.run(cmd, capture_output=True, text=True, errors="replace").stdout
    tb = re.search(r"^#tb \d+: (\d+)/(\d+)", out, re.M)
    if tb is None:
        return np.zeros(0)
    unit = int(tb.group(1)) / int(tb.group(2))
    pts, key = [], []
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6:
            continue
        pts.append(int(parts[2]))
        # framecrc writes the flags only when they differ from "keyframe" (F=0x1).
        flags = next((int(p[2:], 16) for p in parts[6:] if p.startswith("F=")), 1)
        key.append(bool(flags & 1))
    if not pts:
        return np.zeros(0)
    p = np.asarray(pts, dtype=np.float64)
    return np.sort((p[np.asarray(key)] - p.min()) * unit)


def _keyframe_before(targets: np.ndarray, keyframes: np.ndarray) -> np.ndarray:
    """The last keyframe at or before each target (the first keyframe for a target before all of them)."""
    return keyframes[np.clip(np.searchsorted(keyframes, targets, side="right") - 1, 0, None)]


def _seek_plan(targets: np.ndarray, keyframes: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Where to seek for each target, and what seeking to all of them costs.

    A target within a quarter of its slot (at most 1 s) after a keyframe takes the keyframe itself: it is
    decoded alone, and its time is still exact. Any other target decodes from its keyframe up to it.

    Returns
    -------
    times : (targets,) the time each thumbnail shows.
    on_key : (targets,) True where that is a keyframe (seek without decoding forward).
    cost : seconds of video decoded plus the per-seek overhead; inf without keyframes.
    """
    if keyframes.size == 0:
        return targets, np.zeros(targets.shape, dtype=bool), math.inf
    before = _keyframe_before(targets, keyframes)
    on_key = (targets >= before) & (targets - before <= min(step / 4, 1.0))
    times = np.where(on_key, before, targets)
    cost = float(np.sum(np.maximum(targets - before, 0.0)[~on_key]) + _SEEK_OVERHEAD_S * targets.size)
    return times, on_key, cost


def _read_ppm(data: bytes) -> list[np.ndarray]:
    """The images of a stream of binary 8-bit PPMs (``P6 W H 255``, then the RGB bytes); stops at anything else."""
    images, pos = [], 0
    header = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+255\s")
    while pos < len(data):
        m = header.match(data, pos)
        if m is None:
            break
        w, h = int(m.group(1)), int(m.group(2))
        start, end = m.end(), m.end() + w * h * 3
        if end > len(data):
            break
        images.append(np.frombuffer(data[start:end], dtype=np.uint8).reshape(h, w, 3))
        pos = end
    return images


def _scale(height: int) -> str:
    # Width follows the display aspect (rotation applied); "area" averages pixels, which keeps a 1080p frame
    # shrunk to 72 rows from shimmering.
    return f"scale=-2:{height}:flags=area"


def _decode_once(
    path: str, stream: int, targets: np.ndarray, height: int, demuxer: str | None = None
) -> list[tuple[float, np.ndarray]]:
    """Decode the clip once and keep the frame nearest each (evenly spaced) target time."""
    step = float(targets[1] - targets[0]) if targets.size > 1 else 2.0 * float(targets[0])
    # The fps filter keeps, for output slot k, the last input frame before (k + 0.5) * step on its clock.
    # Shifting the clock by targets[0] - step / 2 makes that the last frame before targets[k]: at most one
    # frame period early. eof_action=pass keeps the last slot when the track ends inside it.
    shift = float(targets[0]) - step / 2
    vf = f"setpts=PTS-STARTPTS-{shift:.6f}/TB,fps=fps=1/{step:.6f}:start_time=0:eof_action=pass,{_scale(height)}"
    cmd = ffmpeg_command(
        *_FAST_DECODE,
        *input_args(path, demuxer),
        "-map",
        f"0:{stream}",
        "-vf",
        vf,
        "-frames:v",
        str(targets.size),
        *_PPM,
        "-",
    )
    images = _read_ppm(subprocess.run(cmd, capture_output=True).stdout)
    return [(float(t), img) for t, img in zip(targets, images)]


def _seek_each(
    path: str, stream: int, times: np.ndarray, on_key: np.ndarray, height: int, demuxer: str | None = None
) -> list[tuple[float, np.ndarray]]:
    """One ffmpeg run that opens the clip once per time, seeks there and keeps one frame.

    A time on a keyframe is reached without decoding forward (``-noaccurate_seek``: the keyframe
    before the time is the frame); any other is decoded from its keyframe (ffmpeg's accurate seek).
    Each time gets its own output file, so a time past the end of the video track (a video shorter
    than the audio) leaves just its own file empty instead of shifting the others.
    """
    with tempfile.TemporaryDirectory(prefix="msa-thumbs-") as tmp:
        inputs, outputs = [], []
        for i, (t, key) in enumerate(zip(times, on_key)):
            if key:
                # Decode keyframes only, on one thread (frame threading would decode a few frames ahead just to
                # return the first); seek a hair past the keyframe so that rounding cannot land before it.
                seek = ["-threads", "1", "-skip_frame", "nokey", "-noaccurate_seek", "-ss", f"{t + 1e-3:.6f}"]
            else:
                seek = [*_FAST_DECODE, "-ss", f"{t:.6f}"]
            inputs += [*seek, *input_args(path, demuxer)]
            outputs += [
                "-map",
                f"{i}:{stream}",
                "-frames:v",
                "1",
                "-vf",
                _scale(height),
                *_PPM,
                os.path.join(tmp, f"{i}.ppm"),
            ]
        cmd = ffmpeg_command(*inputs, *outputs)
        subprocess.run(cmd, capture_output=True)
        out = []
        for i, t in enumerate(times):
            f = Path(tmp, f"{i}.ppm")
            images = _read_ppm(f.read_bytes()) if f.exists() else []
            if images:
                out.append((float(t), images[0]))
        return out


def thumbnails(
    path: str | os.PathLike[str], info: MediaInfo, duration: float, count: int = 8, height: int = 72
) -> list[tuple[float, np.ndarray]]:
    """``count`` evenly spaced frames of the clip's video, as small RGB images.

    Frame k is taken at (k + 0.5) * duration / count, the middle of its share of the clip, so the
    strip neither starts on a fade-in nor ends on the last frame; or at a keyframe up to a quarter of
    that share (at most 1 s) before it, which is decoded alone. The decoder (the project's ffmpeg)
    either seeks to each time or decodes the clip once, whichever decodes fewer seconds of video given
    where the keyframes are: seeking wins on phone clips (a keyframe every second or two), one pass on
    clips with a single keyframe (the CMU-MOSI clips), where every seek would decode from the start.

    Measured on the shared 2-core CPU box (load average ~7), 30 s clips, 8 thumbnails, keyframe scan
    (~0.02-0.04 s) included, best of 3: 0.10 s for 640x360 H.264 with a keyframe per second and 0.36 s
    for 1080p at 8 Mb/s with a keyframe per second (seeks, every thumbnail on a keyframe; one pass would
    take 2.1 s); 0.21 s for 480x360 with a keyframe per 8 s (one pass); the 7.5 s CMU-MOSI clip 0.09 s.
    The worst case is a high-resolution clip with rare keyframes, which must be decoded through: 0.85 s
    for a synthetic 720p 2.7 Mb/s clip with a keyframe per 8 s.

    Parameters
    ----------
    path : the media file.
    info : its `probe` result; a file without a video stream gives [].
    duration : seconds of the clip (the time axis); <= 0 gives [].
    count : number of frames.
    height : thumbnail height in pixels; the width keeps the display aspect ratio.

    Returns
    -------
    list of (seconds, (height, width, 3) uint8), times increasing. Shorter than ``count`` only when
    the video track ends before some of the times (a video shorter than its audio) or cannot be decoded.
    """
    if info.video_stream is None or not duration or duration <= 0 or count <= 0:
        return []
    step = float(duration) / count
    targets = (np.arange(count) + 0.5) * step
    p = str(path)
    times, on_key, cost = _seek_plan(targets, _keyframe_times(p, info.video_stream, info.demuxer), step)
    if cost < duration:
        return _seek_each(p, info.video_stream, times, on_key, height, info.demuxer)
    return _decode_once(p, info.video_stream, targets, height, info.demuxer)


def clip_context(
    path: str | os.PathLike[str] | None,
    acoustic_raw: np.ndarray | None,
    spec: FeatureSpec,
    duration: float,
    count: int = 8,
    info: MediaInfo | None = None,
    acoustic_times: np.ndarray | None = None,
) -> ClipContext:
    """Everything the attention figure draws under the attention: frames, loudness and pitch.

    Parameters
    ----------
    path : the media file, or None (no frames: e.g. a typed transcript without media).
    acoustic_raw : the clip's raw acoustic features (see `voice_trace`), or None.
    spec : the spec the features were made with.
    duration : seconds of media.
    count : thumbnails in the strip.
    info : the file's `probe` result when the caller has it (saves one ffmpeg run).
    acoustic_times : the frames' times when the stream covers the speech only.

    A stream without loudness and pitch among its values (Whisper's encoder states) has them read
    from the file's audio here instead, at the librosa stream's rate: the page's time axis then
    shows them as for any other checkpoint (about 0.01 s per second of audio).
    """
    frames: list[tuple[float, np.ndarray]] = []
    if path is not None:
        info = info or probe(path)
        frames = thumbnails(path, info, duration, count)
    if acoustic_raw is not None and "log_energy" not in spec.acoustic_features and path is not None and info:
        if info.audio_stream is not None:
            voice_spec = spec.with_voice_stream("librosa")
            audio = decode_audio(path, info.audio_stream, spec.sample_rate, info.demuxer, None)
            acoustic_raw, spec, acoustic_times = acoustic_features(audio, voice_spec), voice_spec, None
    times, loudness, pitch = voice_trace(acoustic_raw, spec, acoustic_times)
    return ClipContext(frames=frames, voice_times=times, loudness_db=loudness, pitch_hz=pitch, duration=float(duration))


__all__ = ["ClipContext", "clip_context", "thumbnails", "voice_trace"]
