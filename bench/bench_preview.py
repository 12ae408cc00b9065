"""Seconds to make the page's preview of a video a browser cannot play, up to the longest clip
the app accepts (5 minutes).

The shipped MOSI clip's frames and sound are looped to ``--seconds`` and written as each format
the page previews instead of showing (flv, avi: re-encoded; mkv, mov with h264: streams copied),
at the clip's 640x360 and scaled to a webcam's 1280x720; then `media.make_preview` (what the page
runs on upload) is timed on each. Reported: seconds, and seconds per second of video (the
preview's cost as a fraction of real time).

    python -m bench.bench_preview [--seconds 300] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from msa.features.media import browser_plays, ffmpeg_command, make_preview, probe
from msa.testing import ROOT

CLIP = ROOT / "assets" / "examples" / "mosi_Sqr0AcuoNnk_12.mp4"
# How each container is written: its common codecs (an flv from a webcam tool is flv1 or h264).
FORMATS = {
    "flv (flv1 + mp3)": (".flv", ["-c:v", "flv", "-q:v", "5", "-c:a", "libmp3lame", "-ar", "44100"]),
    "flv (h264 + aac)": (".flv", ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
    "avi (mpeg4 + mp3)": (".avi", ["-c:v", "mpeg4", "-q:v", "5", "-c:a", "libmp3lame"]),
    "mkv (h264 + aac)": (".mkv", ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
    "mov (h264 + aac)": (".mov", ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
}


def build(out: Path, seconds: float, height: int, codecs: list[str]) -> Path:
    """The shipped clip looped to ``seconds`` at ``height`` lines, written with ``codecs``."""
    cmd = ffmpeg_command(
        "-y", "-stream_loop", "-1", "-i", str(CLIP), "-t", f"{seconds}", "-vf", f"scale=-2:{height}",
        *codecs, str(out),
    )  # fmt: skip
    subprocess.run(cmd, check=True, timeout=1800)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="clip length (the app accepts up to 300 s)")
    ap.add_argument("--repeats", type=int, default=1, help="previews per file; the median is reported")
    args = ap.parse_args()

    print(f"{'file':<22} {'size':>9} {'preview':>9} {'x real time':>12}  how")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for height in (360, 720):
            for name, (suffix, codecs) in FORMATS.items():
                clip = build(tmp / f"clip_{height}{suffix}", args.seconds, height, codecs)
                info = probe(clip)
                assert not browser_plays(clip, info), name  # the page would show it as it is
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    preview = make_preview(clip, info, tmp / "preview.mp4")
                    times.append(time.perf_counter() - start)
                shown = probe(preview)
                assert browser_plays(preview, shown) and abs(shown.duration - info.duration) < 0.5
                how = "copied" if shown.video_codec == info.video_codec else f"re-encoded to {shown.height}p"
                t = statistics.median(times)
                size = f"{clip.stat().st_size / 1e6:.0f} MB"
                print(f"{name + f' {height}p':<22} {size:>9} {t:>8.2f}s {t / info.duration:>11.3f}x  {how}")


if __name__ == "__main__":
    main()
