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

from ..io import atomic_path
from .spec import SAMPLE_RATE, FeatureError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".flv")
AUDIO_SUFFIXES = (".wav", ".mp3", ".m4a", ".flac")


def suffixes_said(suffixes: tuple[str, ...]) -> str:
    """ "mp4, webm, ..." for a page or a message."""
    return ", ".join(s.lstrip(".") for s in suffixes)


ACCEPTED = f"video ({suffixes_said(VIDEO_SUFFIXES)}) or audio ({suffixes_said(AUDIO_SUFFIXES)})"

# ffmpeg's demuxers for the containers in ACCEPTED (and ogg, which browsers record into). Every
# input is opened with only these allowed, so nothing that reads *other* files or URLs is ever
# reached, whatever a file's bytes say: concat (an "ffconcat" text saved as clip.mp4 makes ffmpeg
# read the files it lists), hls and dash playlists, image2 file patterns, sdp/rtp, devices.
# mov's external data references stay off (ffmpeg's default, enable_drefs=0).
MEDIA_DEMUXERS = (
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "3g2",
    "mj2",
    "matroska",
    "webm",
    "avi",
    "flv",
    "wav",
    "mp3",
    "flac",
    "ogg",
)
# Single-image demuxers that read nothing but their input: allowed to *probe*, so that a photo
# gets "a still image" rather than "not readable"; never used to decode.
_IMAGE_PROBE_DEMUXERS = ("png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif")


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped in `imageio-ffmpeg`."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_command(*args: str) -> list[str]:
    """``ffmpeg`` quiet and non-interactive (errors only, never reads stdin), then ``args``."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *args]


@dataclass(frozen=True)
class MediaLimits:
    """What one upload may cost to decode, checked from the probe before any decoding.

    A small file can expand into a huge decode (a "decompression bomb": a few kB of h264 at
    16384x16384, thousands of audio channels, a frame rate of 100,000); each of these is refused
    with the limit named. The defaults admit 4K/60 fps video and 8-channel 192 kHz audio.
    """

    max_pixels: int = 4096 * 2304  # per frame: 4K UHD (3840x2160) and DCI 4K (4096x2160) pass
    max_side: int = 8192  # width or height
    max_fps: float = 240.0
    max_streams: int = 16
    max_channels: int = 8
    max_sample_rate: int = 192_000
    # Decoding stops here (and a second more) whatever the container states: a file that says it
    # lasts 1 s but holds hours cannot run the decoders for hours. The app lowers it to its own limit.
    max_seconds: float = 3600.0


@dataclass
class MediaInfo:
    """What `probe` learnt about a file from ffmpeg's stream listing.

    ``demuxer`` is the ffmpeg demuxer that read it (one of `MEDIA_DEMUXERS`): every later ffmpeg
    call on the file forces it (`input_args`), so the file is always decoded as what it was probed as.
    """

    container: str
    duration: float | None
    audio_stream: int | None  # absolute stream index, or None
    video_stream: int | None  # first real video stream (cover art excluded)
    demuxer: str = "mov"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    streams: int = 0
    channels: int | None = None
    sample_rate: int | None = None
    video_codec: str | None = None  # ffmpeg's name, e.g. "h264", "flv1"
    audio_codec: str | None = None  # e.g. "aac", "pcm_s16le"


# What every current browser plays in a <video> element: file type -> (video codecs, audio codecs).
_BROWSER_PLAYS = {
    ".mp4": (("h264", "av1"), ("aac", "mp3")),
    ".m4v": (("h264", "av1"), ("aac", "mp3")),
    ".webm": (("vp8", "vp9", "av1"), ("opus", "vorbis")),
}
# The same codecs can be copied into an mp4 without decoding (a remux: fast, no loss).
_MP4_COPIES = (("h264", "av1"), ("aac", "mp3"))


def browser_plays(path: str | os.PathLike[str], info: MediaInfo) -> bool:
    """Whether a browser plays this video as it is (by its type and codecs); an flv, avi, mkv or
    mov does not everywhere, and the page shows a preview made by `make_preview` instead."""
    video, audio = _BROWSER_PLAYS.get(Path(path).suffix.lower(), ((), ()))
    return info.video_codec in video and (info.audio_stream is None or info.audio_codec in audio)


def make_preview(path: str | os.PathLike[str], info: MediaInfo, out: str | os.PathLike[str]) -> Path:
    """An mp4 every browser plays, for the page's preview only (the analysis reads the original).

    The streams are copied when their codecs allow (an h264 mkv or mov: no loss, a fraction of a
    second), else re-encoded small and fast (640 px wide at most). The upload is opened as
    `input_args` opens every upload, and the preview stops at ``info``'s checked duration.
    """
    out = Path(out)
    video, audio = _MP4_COPIES
    copy = info.video_codec in video and (info.audio_stream is None or info.audio_codec in audio)
    codecs = (
        ["-c", "copy"]
        if copy
        else ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-pix_fmt", "yuv420p",
              "-vf", "scale='min(640,iw)':-2", "-c:a", "aac", "-b:a", "96k"]
    )  # fmt: skip
    duration = ["-t", f"{info.duration:.3f}"] if info.duration else []
    streams = ["-map", f"0:{info.video_stream}"] + (
        [] if info.audio_stream is None else ["-map", f"0:{info.audio_stream}"]
    )
    with atomic_path(out) as tmp:  # a page never sees half a preview
        cmd = ffmpeg_command(
            "-y", "-loglevel", "error", "-threads", "1", *input_args(path, info.demuxer), *duration, *streams,
            *codecs, "-movflags", "+faststart", "-f", "mp4", str(tmp),
        )  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or tmp.stat().st_size == 0:
            last = (done.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
            raise FeatureError(f"{Path(path).name}: no preview could be made ({last})")
    return out


def input_args(path: str | os.PathLike[str], demuxer: str | None = None) -> list[str]:
    """ffmpeg arguments that open ``path`` as an untrusted upload must be opened: through the
    file protocol only (a name such as "concat:a|b" or "http:..." is a file name, nothing else),
    with only `MEDIA_DEMUXERS` allowed, and with ``demuxer`` (from `probe`) forced when given."""
    forced = ["-f", demuxer] if demuxer else []
    return [
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        ",".join(MEDIA_DEMUXERS),
        *forced,
        "-i",
        "file:" + str(Path(path).resolve()),
    ]


_STREAM_RE = re.compile(r"Stream #0:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (Audio|Video): (.*)")


def probe(path: str | os.PathLike[str], limits: MediaLimits | None = None) -> MediaInfo:
    """Read a file's container, duration and streams; raise `FeatureError` if it is no media or
    its decode would exceed ``limits``.

    Parameters
    ----------
    path : a local file.
    limits : what one file may cost to decode (default `MediaLimits()`).

    Returns
    -------
    MediaInfo
    """
    limits = limits or MediaLimits()
    p = Path(path)
    if not p.exists():
        raise FeatureError(f"{p}: no such file")
    if not p.is_file():
        raise FeatureError(f"{p}: not a regular file; expected {ACCEPTED}")
    if p.stat().st_size == 0:
        raise FeatureError(f"{p.name}: the file is empty; expected {ACCEPTED}")
    # "-i" without an output makes ffmpeg list the streams and exit non-zero: that is expected.
    args = input_args(p)
    args[args.index("-format_whitelist") + 1] = ",".join(MEDIA_DEMUXERS + _IMAGE_PROBE_DEMUXERS)
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True, text=True, errors="replace"
    )
    err = proc.stderr
    m = re.search(r"Input #0, ([^,]+(?:,[^ ]+)*), from", err)
    if m is None:
        # Not a media file ffmpeg may open: corrupt, text, or one that only a file- or URL-reading
        # demuxer would take (a playlist, a concat list): all are refused alike.
        last = next((ln.strip() for ln in reversed(err.splitlines()) if ln.strip()), "unknown error")
        raise FeatureError(f"{p.name}: not a readable media file ({last}); expected {ACCEPTED}")
    container = m.group(1)
    demuxer = container.split(",")[0]
    if demuxer not in MEDIA_DEMUXERS:
        raise FeatureError(
            f"{p.name}: a still image or text file ({container}), not audio or video; expected {ACCEPTED}"
        )
    dm = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", err)
    duration = int(dm.group(1)) * 3600 + int(dm.group(2)) * 60 + float(dm.group(3)) if dm else None
    audio = video = None
    width = height = channels = sample_rate = None
    fps = None
    codecs: dict[str, str] = {}
    streams = _STREAM_RE.findall(err)
    for idx, kind, desc in streams:
        if kind == "Audio" and audio is None:
            audio = int(idx)
            sample_rate, channels = _audio_shape(desc)
            codecs["audio"] = _codec(desc)
        elif kind == "Video" and video is None and "attached pic" not in desc:
            video = int(idx)  # cover art in an mp3/m4a is a picture, not a video track
            width, height, fps = _video_shape(desc)
            codecs["video"] = _codec(desc)
    if audio is None and video is None:
        raise FeatureError(f"{p.name}: no audio or video stream ({container}); expected {ACCEPTED}")
    if (audio is not None and not (sample_rate and channels)) and (video is None or not (width and height)):
        # A demuxer chosen by the file's name alone (e.g. text saved as .flac) finds a stream with
        # no rate or channels: nothing to decode.
        raise FeatureError(
            f"{p.name}: not a readable media file (no decodable stream in {container}); expected {ACCEPTED}"
        )
    n_streams = len(re.findall(r"^\s*Stream #0:\d+", err, re.M))
    info = MediaInfo(
        container,
        duration,
        audio,
        video,
        demuxer,
        width,
        height,
        fps,
        n_streams,
        channels,
        sample_rate,
        codecs.get("video"),
        codecs.get("audio"),
    )
    _check_limits(p.name, info, limits)
    return info


def _codec(desc: str) -> str:
    """ffmpeg's codec name: the first word of a stream's description ("h264 (High), yuv420p...")."""
    words = desc.split()
    return words[0].rstrip(",") if words else ""


def _video_shape(desc: str) -> tuple[int | None, int | None, float | None]:
    """Width, height and frame rate from ffmpeg's video stream line ("..., 640x360, ..., 30 fps")."""
    size = re.search(r"(?:^|[ ,])(\d{1,6})x(\d{1,6})(?:[ ,\[]|$)", desc)
    rate = re.search(r"([\d.]+)(k?) (?:fps|tbr)", desc)
    fps = None if rate is None else float(rate.group(1)) * (1000 if rate.group(2) else 1)
    return (int(size.group(1)), int(size.group(2)), fps) if size else (None, None, fps)


# ffmpeg's named channel layouts that are not written as counts ("5.1", "9.1.6": summed).
_NAMED_LAYOUTS = {
    "mono": 1,
    "stereo": 2,
    "binaural": 2,
    "downmix": 2,
    "quad": 4,
    "hexagonal": 6,
    "octagonal": 8,
    "cube": 8,
    "hexadecagonal": 16,
}


def _audio_shape(desc: str) -> tuple[int | None, int | None]:
    """Sample rate and channel count from ffmpeg's audio stream line ("..., 44100 Hz, stereo, ...",
    "..., 9.1.6, ..." = 16 channels, "..., 24 channels, ..."). A layout it cannot read counts as
    one over any limit: a file that hides its channel count is not decoded."""
    rate = re.search(r"(\d+) Hz", desc)
    layout = re.search(r"\d+ Hz, ([^,]+)", desc)
    channels = None
    if layout:
        name = layout.group(1).strip().split("(")[0]
        counted = re.fullmatch(r"(\d+) channels", name)
        dotted = re.fullmatch(r"\d+(?:\.\d+)+", name)
        if counted:
            channels = int(counted.group(1))
        elif dotted:
            channels = sum(int(k) for k in name.split("."))
        else:
            channels = _NAMED_LAYOUTS.get(name, 10**6)
    return (int(rate.group(1)) if rate else None), channels


def _check_limits(name: str, info: MediaInfo, limits: MediaLimits) -> None:
    """Refuse, before decoding, a file whose decode would cost more than ``limits`` allow."""
    problems = []
    if info.streams > limits.max_streams:
        problems.append(f"{info.streams} streams (at most {limits.max_streams})")
    if info.width is not None and info.height is not None:
        if max(info.width, info.height) > limits.max_side or info.width * info.height > limits.max_pixels:
            problems.append(
                f"frames of {info.width}x{info.height} (at most {limits.max_pixels / 1e6:.1f} "
                f"megapixels, {limits.max_side} a side)"
            )
    if info.fps is not None and info.fps > limits.max_fps:
        problems.append(f"{info.fps:g} frames a second (at most {limits.max_fps:g})")
    if info.channels is not None and info.channels > limits.max_channels:
        problems.append(f"{info.channels} audio channels (at most {limits.max_channels})")
    if info.sample_rate is not None and info.sample_rate > limits.max_sample_rate:
        problems.append(f"audio at {info.sample_rate} Hz (at most {limits.max_sample_rate})")
    if problems:
        raise FeatureError(f"{name}: too costly to decode: {'; '.join(problems)}; expected {ACCEPTED} of ordinary size")


def decode_audio(
    path: str | os.PathLike[str],
    stream: int | None = None,
    sample_rate: int = SAMPLE_RATE,
    demuxer: str | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode one audio stream to mono float32 at ``sample_rate`` (ffmpeg's resampler).

    ``demuxer`` forces the one `probe` found; ``max_seconds`` stops decoding there, so that a
    container that understates its length cannot make the decode unbounded.

    Raises
    ------
    FeatureError
        When ffmpeg fails and gives no samples (a corrupt stream).
    """
    mapping = ["-map", f"0:{stream}"] if stream is not None else ["-map", "0:a:0"]
    cmd = ffmpeg_command(
        *input_args(path, demuxer),
        *mapping,
        *_duration_cap(max_seconds),
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "-",
    )
    proc = subprocess.run(cmd, capture_output=True)
    audio = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if proc.returncode != 0 and audio.size == 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise FeatureError(
            f"{Path(path).name}: the audio track could not be decoded ({msg[-1] if msg else 'ffmpeg failed'})"
        )
    return audio


def _duration_cap(max_seconds: float | None) -> list[str]:
    """Output option: stop after ``max_seconds`` (and a second of slack) of decoded media."""
    return [] if max_seconds is None else ["-t", f"{max_seconds + 1.0:.3f}"]


def iter_frames(
    path: str | os.PathLike[str],
    fps: float,
    size: int,
    stream: int | None = None,
    timer: dict[str, float] | None = None,
    demuxer: str | None = None,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield RGB frames (size, size, 3) uint8 at a fixed rate, letterboxed into a square.

    ``demuxer`` and ``max_seconds`` as in `decode_audio`.

    The fixed square makes the frame size known before decoding (ffmpeg applies rotation
    metadata, which can swap width and height), so frames can be streamed with bounded memory.
    Time spent waiting on ffmpeg is added to ``timer["decode"]``.

    A clip shorter than one output period (a one-frame video) gets no frame from ffmpeg's fps
    filter; only then is it decoded again keeping its last frame (``eof_action=pass``), which on
    longer clips would add a frame and change their features.
    """
    n = 0
    for frame in _frames(path, fps, size, stream, timer, False, demuxer, max_seconds):
        n += 1
        yield frame
    if n == 0:
        yield from _frames(path, fps, size, stream, timer, True, demuxer, max_seconds)


def _frames(
    path: str | os.PathLike[str],
    fps: float,
    size: int,
    stream: int | None,
    timer: dict[str, float] | None,
    keep_last: bool,
    demuxer: str | None = None,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    rate = f"fps={fps}:eof_action=pass" if keep_last else f"fps={fps}"
    vf = f"{rate},scale={size}:{size}:force_original_aspect_ratio=decrease,pad={size}:{size}:(ow-iw)/2:(oh-ih)/2"
    mapping = ["-map", f"0:{stream}"] if stream is not None else ["-map", "0:v:0"]
    cmd = ffmpeg_command(
        *input_args(path, demuxer),
        *_duration_cap(max_seconds),
        *mapping,
        "-vf",
        vf,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    )
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
