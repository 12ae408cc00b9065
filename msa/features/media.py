"""Decoding with the ffmpeg binary shipped in imageio-ffmpeg; argument lists only, never a shell."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .spec import SAMPLE_RATE, FeatureError

ACCEPTED = "video (mp4, webm, mov, avi, mkv, flv) or audio (wav, mp3, m4a, flac)"


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
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(p)], capture_output=True, text=True, errors="replace"
    )
    err = proc.stderr
    m = re.search(r"Input #0, ([^,]+(?:,[^ ]+)*), from", err)
    if m is None:
        last = next((ln.strip() for ln in reversed(err.splitlines()) if ln.strip()), "unknown error")
        raise FeatureError(f"{p.name}: not a readable media file ({last}); expected {ACCEPTED}")
    container = m.group(1)
    if _IMAGE_DEMUXERS.search(container):
        raise FeatureError(
            f"{p.name}: a still image or text file ({container}), not audio or video; expected {ACCEPTED}"
        )
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
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        *mapping,
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "-",
    ]
    proc = subprocess.run(cmd, capture_output=True)
    audio = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if proc.returncode != 0 and audio.size == 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise FeatureError(
            f"{Path(path).name}: the audio track could not be decoded ({msg[-1] if msg else 'ffmpeg failed'})"
        )
    return audio


def iter_frames(
    path: str | os.PathLike[str],
    fps: float,
    size: int,
    stream: int | None = None,
    timer: dict[str, float] | None = None,
) -> Iterator[np.ndarray]:
    """Yield RGB frames (size, size, 3) uint8 at a fixed rate, letterboxed into a square.

    The fixed square makes the frame size known before decoding (ffmpeg applies rotation
    metadata, which can swap width and height), so frames can be streamed with bounded memory.
    Time spent waiting on ffmpeg is added to ``timer["decode"]``.

    A clip shorter than one output period (a one-frame video) gets no frame from ffmpeg's fps
    filter; only then is it decoded again keeping its last frame (``eof_action=pass``), which on
    longer clips would add a frame and change their features.
    """
    n = 0
    for frame in _frames(path, fps, size, stream, timer, keep_last=False):
        n += 1
        yield frame
    if n == 0:
        yield from _frames(path, fps, size, stream, timer, keep_last=True)


def _frames(
    path: str | os.PathLike[str],
    fps: float,
    size: int,
    stream: int | None,
    timer: dict[str, float] | None,
    keep_last: bool,
) -> Iterator[np.ndarray]:
    rate = f"fps={fps}:eof_action=pass" if keep_last else f"fps={fps}"
    vf = f"{rate},scale={size}:{size}:force_original_aspect_ratio=decrease,pad={size}:{size}:(ow-iw)/2:(oh-ih)/2"
    mapping = ["-map", f"0:{stream}"] if stream is not None else ["-map", "0:v:0"]
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        *mapping,
        "-vf",
        vf,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
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
