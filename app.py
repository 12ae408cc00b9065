"""The Gradio app: upload or record a clip, read its sentiment, see the gates and each
modality's contribution. Start-up only: the page is `msa.app.page`, its handlers
`msa.app.handlers`, the pipeline `msa.app.service`, the figures `msa.app.plots`.

    python app.py                                  # checkpoints/default, http://127.0.0.1:7860
    python app.py --checkpoint runs/x/best --asr-model tiny.en --port 7861
    MSA_CHECKPOINT=runs/x/best python app.py       # the same, as a Space setting

API: one endpoint, ``predict`` (a file and an optional transcript -> the JSON object that
``python -m msa predict --json`` prints for that file); see README.md, "The app".
"""

from __future__ import annotations

import os
from collections.abc import Callable

# Before gradio is imported: it reads these at import time. Nothing leaves the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any thread starts. With the default (8 per core) each
    queue worker thread grows its own arena and the server's memory rose ~20% over its first
    60 concurrent requests in bench/load.py; with 2 it stayed flat (+1.4%)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8 = M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


_limit_malloc_arenas()

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from msa.app.page import CHECKPOINTS, DEFAULT_CHECKPOINT, THEME, build_demo
from msa.app.service import Checkpoints, Limits, build_service

log = logging.getLogger("msa.app")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="The multimodal sentiment app (Gradio).")
    ap.add_argument(
        "--checkpoint",
        default=os.environ.get("MSA_CHECKPOINT") or str(DEFAULT_CHECKPOINT),
        help="checkpoint folder (default: $MSA_CHECKPOINT, else checkpoints/default)",
    )
    ap.add_argument(
        "--checkpoints-dir",
        type=Path,
        default=CHECKPOINTS,
        help="folder whose checkpoint folders the page's picker lists (default: checkpoints/)",
    )
    ap.add_argument(
        "--asr-model",
        choices=("base", "tiny.en"),
        default=os.environ.get("MSA_ASR_MODEL") or None,
        help="Whisper model (default: $MSA_ASR_MODEL, else base)",
    )
    ap.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)")
    ap.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    ap.add_argument(
        "--max-seconds", type=float, default=None, help="longest clip accepted (default: $MSA_MAX_SECONDS, else 300)"
    )
    ap.add_argument("--max-mb", type=float, default=None, help="largest upload in MB (default: $MSA_MAX_MB, else 200)")
    ap.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("MSA_CONCURRENCY", "1")),
        help="requests processed at once; the rest queue (default 1: each already uses every core)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    env = Limits.from_env()
    limits = Limits(args.max_seconds or env.max_seconds, args.max_mb or env.max_megabytes)
    t0 = time.perf_counter()
    try:
        service = build_service(args.checkpoint, args.asr_model, limits)
    except (OSError, ValueError, RuntimeError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    log.info("model and feature extractors loaded and warmed up in %.1f s", time.perf_counter() - t0)
    background: list[Callable[[], None]] = []
    demo = build_demo(Checkpoints(service, args.checkpoints_dir), args.concurrency, background=background)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=limits.max_bytes,
        theme=THEME,
        footer_links=["api"],
        show_error=True,
        prevent_thread_lock=True,
    )
    # Once the page answers: work that must never delay it (the Lab's lesson, trained on one core).
    for task in background:
        threading.Thread(target=task, name="background", daemon=True).start()
    # A Space (and `docker stop`) ends the app with SIGTERM, which by default kills Python before its
    # exit handlers run: the uploads' and the Train tab's folders would stay on disk. As Ctrl-C
    # instead, Gradio closes the server and the handlers run.
    signal.signal(signal.SIGTERM, _interrupt)
    demo.block_thread()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
