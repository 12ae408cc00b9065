"""Load: N concurrent `gradio_client` clients against a running ``python app.py`` (issue 6).

Starts ``python app.py`` on a free 127.0.0.1 port (never another address), warms it with one
request per example clip, then sends a fixed total of requests from ``--clients`` threads, each
with its own `gradio_client.Client`, cycling through the example clips on the public ``predict``
endpoint, sent as users' own files would be (remuxed copies: same media, other bytes, so the
app treats them as uploads, not as its cached examples). Reports throughput, median and
95th-percentile latency (upload + queue + prediction, as a client sees it), the error count,
the server's resident memory (VmRSS from /proc/PID/status) when ready, after the warm-up and
after the run, and how many uploaded files the server still holds at the end (should be 0:
each is deleted when its last request ends); the app is stopped at the end.

    python -m bench.load [--requests 100] [--clients 4] [--asr-model tiny.en] [--concurrency 1]

Without checkpoints/default a full-size untrained checkpoint is built, as bench/bench_app.py
does: its scores mean nothing, its timings and memory are real.

Pass criteria (issue 6): 0 errors (warm-up included); no uploaded file left; RSS growth over
the measured run under 10%, counted from after one request per clip (or after ``--warmup`` more concurrent requests).
Before app.py capped glibc's malloc arenas, RSS climbed ~20% over the first ~60 concurrent
requests (one arena per worker thread) and was flat after; with the cap it grows ~1% over 100.
Both figures are printed. Exit status 1 when either fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "assets" / "examples").iterdir() if p.suffix in (".mp4", ".wav"))
HOST = "127.0.0.1"


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (from /proc)."""
    from msa.app.trainer import resident_megabytes

    return resident_megabytes(pid)


def user_copies(out: Path) -> list[Path]:
    """The example clips remuxed with a comment: the same media, not byte-identical."""
    from msa.features import ffmpeg_exe

    out.mkdir(parents=True, exist_ok=True)
    copies = []
    for clip in EXAMPLES:
        dst = out / f"user_{clip.name}"
        subprocess.run(
            [
                ffmpeg_exe(),
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(clip),
                "-c",
                "copy",
                "-metadata",
                "comment=load test",
                str(dst),
            ],
            check=True,
        )
        copies.append(dst)
    return copies


def start_app(args: argparse.Namespace, port: int, log: Path, upload_dir: Path) -> tuple[subprocess.Popen, float]:
    from msa.testing import launch_app

    app_args = ["--host", HOST, "--concurrency", str(args.concurrency)]
    if args.asr_model:
        app_args += ["--asr-model", args.asr_model]
    if args.checkpoint:
        app_args += ["--checkpoint", str(args.checkpoint)]
    return launch_app(app_args, port, log, env={"GRADIO_TEMP_DIR": str(upload_dir)})


def percentile(xs: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Phase:
    """``n`` requests from ``clients`` threads, each with its own Client, cycling the examples."""

    def __init__(self, url: str, pid: int, n: int, clients: int, clips: list[Path]) -> None:
        self.url, self.pid, self.n, self.clients, self.clips = url, pid, n, clients, clips
        self.lock = threading.Lock()
        self.next_i = 0
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.trace: list[tuple[int, float]] = []  # (requests done in this phase, server RSS MB)
        self.step = max(1, n // 10)
        self.wall = 0.0

    def _loop(self) -> None:
        from gradio_client import Client, handle_file

        client = Client(self.url, verbose=False)
        while True:
            with self.lock:
                i = self.next_i
                if i >= self.n:
                    return
                self.next_i += 1
            clip = self.clips[i % len(self.clips)]
            t0 = time.perf_counter()
            msg = ""
            try:
                out = client.predict(handle_file(str(clip)), "", api_name="/predict")
                if not isinstance(out, dict) or "score" not in out:
                    raise ValueError(f"unexpected answer {str(out)[:200]}")
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                msg = f"{clip.name}: {type(e).__name__}: {e}"
            dt = time.perf_counter() - t0
            with self.lock:
                if msg:
                    self.errors.append(msg)
                else:
                    self.latencies.append(dt)
                done = len(self.latencies) + len(self.errors)
                if done % self.step == 0 or done == self.n:
                    self.trace.append((done, rss_mb(self.pid)))

    def run(self) -> None:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=self._loop) for _ in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.wall = time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100, help="total requests in the measured run")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients (threads)")
    ap.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="concurrent requests sent (not measured) before the run; RSS growth is counted from "
        "after them (0: from after one request per clip)",
    )
    ap.add_argument("--asr-model", choices=("base", "tiny.en"), default="tiny.en")
    ap.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="default: the app's checkpoints/default, else (not downloaded) a full-size untrained "
        "model with this ASR's feature spec, as bench/bench_app.py builds",
    )
    ap.add_argument("--concurrency", type=int, default=1, help="the app's --concurrency (requests run at once)")
    args = ap.parse_args(argv)

    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp(prefix="msa-load-"))
    if args.checkpoint is None and not (ROOT / "checkpoints" / "default" / "model.safetensors").is_file():
        from msa.testing import full_size_checkpoint

        args.checkpoint = full_size_checkpoint(tmp / "untrained", args.asr_model)
        print(f"checkpoints/default not present: a full-size untrained model ({args.checkpoint})")
    from msa.testing import free_port, stop_app

    port = free_port()
    log = tmp / "app.log"
    clips = user_copies(tmp / "clips")
    upload_dir = tmp / "server_uploads"
    proc, ready_s = start_app(args, port, log, upload_dir)
    url = f"http://{HOST}:{port}/"
    try:
        rss_ready = rss_mb(proc.pid)
        warm = Client(url, verbose=False)
        for clip in EXAMPLES:  # first use of each code path: models, decoders, thread pools
            warm.predict(handle_file(str(clip)), "", api_name="/predict")
        rss_light = rss_mb(proc.pid)
        warm_phase = Phase(url, proc.pid, args.warmup, args.clients, clips)
        warm_phase.run()  # the same concurrent traffic, not measured: the allocator's arenas settle
        rss_warm = rss_mb(proc.pid)
        measured = Phase(url, proc.pid, args.requests, args.clients, clips)
        measured.run()
        left = sorted(p.name for c in clips for p in upload_dir.rglob(c.name))
        alive = proc.poll() is None
        rss_after = rss_mb(proc.pid) if alive else float("nan")
    finally:
        stop_app(proc, timeout=20)
    latencies, errors, wall = measured.latencies, warm_phase.errors + measured.errors, measured.wall
    trace = [(n - args.warmup, mb) for n, mb in warm_phase.trace] + measured.trace

    growth = (rss_after - rss_warm) / rss_warm * 100
    print(
        f"app: ASR {args.asr_model}, --concurrency {args.concurrency}, ready in {ready_s:.1f} s; "
        f"{len(EXAMPLES)} example clips ({', '.join(p.name for p in EXAMPLES)})"
    )
    print()
    print("| requests | clients | wall (s) | throughput (req/s) | median latency (s) | p95 latency (s) | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    med = statistics.median(latencies) if latencies else float("nan")
    p95 = percentile(latencies, 95) if latencies else float("nan")
    print(
        f"| {args.requests} | {args.clients} | {wall:.1f} | {args.requests / wall:.2f} | {med:.2f} | {p95:.2f} "
        f"| {len(errors)} |"
    )
    print(f"\nuploaded files still on the server after the run: {len(left)} {left if left else ''}")
    print()
    light = (rss_after - rss_light) / rss_light * 100
    print(
        f"| server RSS (MB) | when ready | after 1 request per clip | after {args.warmup} warm-up requests "
        "| after the run | growth over the run | growth from 1 request per clip |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| app.py | {rss_ready:.0f} | {rss_light:.0f} | {rss_warm:.0f} | {rss_after:.0f} | {growth:+.1f}% "
        f"| {light:+.1f}% |"
    )
    print("\nRSS (MB) by requests done (negative: warm-up): " + ", ".join(f"{n}: {mb:.0f}" for n, mb in trace))
    for e in errors[:10]:
        print("error:", e)
    ok = not errors and alive and growth < 10 and not left
    print(
        "\nPASS"
        if ok
        else f"\nFAIL (errors {len(errors)}, server alive {alive}, RSS growth {growth:+.1f}%, "
        f"uploads left {len(left)}; log {log})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
