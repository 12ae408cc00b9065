"""A Space's cold start and memory: the deploy snapshot in an empty folder, as a Space runs it.

Copies the files `scripts/deploy_space.py` would upload into a temporary folder, starts
``python app.py`` there (the default checkpoint, base ASR: the Space's settings), and reports the
seconds to a page that answers, and the server's resident memory (VmRSS)
when ready and after one API request per example clip, against the Space's CPU-basic size
(2 vCPU, 16 GB).

    python -m bench.bench_space [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.load import rss_mb
from msa.testing import ROOT, free_port, launch_app, stop_app
from scripts.deploy_space import snapshot_files

SPACE_MEMORY_MB = 16 * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="cold starts; the median is reported")
    args = ap.parse_args()
    from gradio_client import Client, handle_file

    examples = sorted((ROOT / "assets" / "examples").iterdir())
    ready, rss_ready, rss_after, first = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="msa-space-") as tmp:
        snapshot = Path(tmp) / "space"
        files = snapshot_files()
        for rel in files:
            (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, snapshot / rel)
        size = sum((snapshot / rel).stat().st_size for rel in files) / 1e6
        for _ in range(args.repeats):
            port = free_port()
            proc, seconds = launch_app([], port, log=Path(tmp) / "app.log", root=snapshot)
            try:
                ready.append(seconds)
                rss_ready.append(rss_mb(proc.pid))
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                t0 = time.perf_counter()
                client.predict(handle_file(str(examples[0])), "", api_name="/predict")
                first.append(time.perf_counter() - t0)
                for clip in examples[1:]:
                    client.predict(handle_file(str(clip)), "", api_name="/predict")
                rss_after.append(rss_mb(proc.pid))
            finally:
                stop_app(proc)
    med = statistics.median
    print(
        f"snapshot: {len(files)} files, {size:.1f} MB; default checkpoint, base ASR; "
        f"median of {args.repeats} cold starts"
    )
    print()
    print("| python app.py to ready (s) | first request (s) | RSS ready (MB) | RSS after 3 requests (MB) | of 16 GB |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {med(ready):.1f} | {med(first):.2f} | {med(rss_ready):.0f} | {med(rss_after):.0f} | "
        f"{100 * med(rss_after) / SPACE_MEMORY_MB:.1f}% |"
    )


if __name__ == "__main__":
    main()
