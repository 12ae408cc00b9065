"""Save the README's screenshot: the app on a real MOSI clip with a real checkpoint.

Starts ``python app.py`` on the checkpoint, uploads the clip in headless Debian chromium (the
flags of tests/test_browser.py), waits for every plot and saves a full-page PNG.

    python -m scripts.screenshot [--checkpoint checkpoints/default] [--clip assets/examples/...] \
        [--out assets/screenshot.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msa.testing import CHROMIUM, CHROMIUM_FLAGS, ROOT, free_port, launch_app, stop_app


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default")
    ap.add_argument("--clip", type=Path, default=ROOT / "assets" / "examples" / "mosi_Sqr0AcuoNnk_12.mp4")
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshot.png")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    port = free_port()
    proc, ready = launch_app(["--checkpoint", str(args.checkpoint)], port)
    print(f"app ready in {ready:.1f} s")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_selector("#analyse", timeout=60_000)
            page.locator("#video-file input[type=file]").set_input_files(str(args.clip))
            page.wait_for_selector("#video-input video", timeout=30_000)
            page.click("#analyse")
            for elem in ("score-plot", "contrib-plot", "shares", "share-grid", "attention"):
                page.wait_for_selector(f"#{elem} .js-plotly-plot", timeout=120_000)
            page.wait_for_timeout(1000)  # let plotly finish its transitions
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            print(page.locator("#score").inner_text().splitlines()[0], "->", args.out)
            browser.close()
    finally:
        stop_app(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
