"""What hearing the voice costs (issue 32): the shipped checkpoint (words and voice) beside the
words-only one and beside Whisper alone, on the same 30 s clips, in one run.

1. Whisper alone: `FeatureExtractor.transcribe` on each clip's 16 kHz audio (warm), the floor.
2. The warm app through its API (`bench.bench_speed.app_round_trips`): ``python app.py`` with each
   checkpoint, ``repeats`` requests per clip; the ratio to Whisper alone on the same audio, and
   where the rest goes (the voice's states are the decoding's own; the model, the explanation and
   the JSON are what the voice adds).
3. Cold ``python -m msa predict CLIP --json`` with each checkpoint, spawn to exit (interleaved).

    python -m bench.bench_voice [--repeats 3] [--json out.json]

Targets: the warm 30 s request with the voice at most 1.2x Whisper alone; the cold command no
slower than 10 s. Results: docs/benchmarks.md and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.asr_corpus import build_corpus
from bench.bench_speed import app_round_trips, cold_cli, log, med, whisper_alone
from msa.testing import ROOT

CHECKPOINTS = {"words+voice": ROOT / "checkpoints" / "default", "words only": ROOT / "checkpoints" / "words-only"}
CLIPS = ("looped_30s", "distinct_30s")
TARGET_RATIO = 1.2
TARGET_COLD = 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--corpus-dir", type=Path, default=None, help="default: $MSA_CACHE_DIR/asr-corpus")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    corpus = build_corpus(args.corpus_dir, talk_seconds=60.0)
    clips = {n: corpus[n] for n in CLIPS}
    res: dict[str, Any] = {"load_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        res["whisper"], res["asr"] = whisper_alone(clips, args.repeats)
        res["app"] = {
            tag: app_round_trips(path, clips, list(CLIPS), args.repeats, tmp, tag.replace(" ", "_").replace("+", "_"))
            for tag, path in CHECKPOINTS.items()
        }
        cold: dict[str, list[float]] = {tag: [] for tag in CHECKPOINTS}
        for _ in range(args.repeats):
            for tag, path in CHECKPOINTS.items():
                run = cold_cli(clips["looped_30s"].path, path, tmp)
                cold[tag].append(run["wall"])
                log(f"cold CLI {tag}: {run['wall']:.1f} s")
        res["cold"] = {tag: med(v) for tag, v in cold.items()}
    res["seconds"] = time.perf_counter() - t0

    print(f"\nWhisper {res['asr']}; 2 cores; medians of {args.repeats}; load {res['load_start']:.1f} at the start\n")
    print("| clip | Whisper alone | " + " | ".join(f"{t} (ratio)" for t in CHECKPOINTS) + " |")
    print("| --- | --- |" + " --- |" * len(CHECKPOINTS))
    for name in CLIPS:
        w = res["whisper"][name]["seconds"]
        cells = [
            f"{res['app'][t]['clips'][name]['wall']:.2f} s ({res['app'][t]['clips'][name]['wall'] / w:.2f}x)"
            for t in CHECKPOINTS
        ]
        print(f"| {name} | {w:.2f} s | " + " | ".join(cells) + " |")
    print("\nwhere the request goes (s): asr, acoustic, model, explain, rest; JSON kB")
    for t in CHECKPOINTS:
        for name in CLIPS:
            r = res["app"][t]["clips"][name]
            print(
                f"  {t:12s} {name:13s} asr {r.get('asr', 0):.2f} acoustic {r.get('acoustic', 0):.2f} "
                f"model {r.get('model', 0):.2f} explain {r.get('explain', 0):.3f} rest {r.get('rest', 0):.2f} "
                f"JSON {r.get('json_kb', 0):.0f} kB [{r.get('present')}]"
            )
    print(
        "\ncold `python -m msa predict` (looped 30 s): " + ", ".join(f"{t} {v:.1f} s" for t, v in res["cold"].items())
    )
    worst = max(res["app"]["words+voice"]["clips"][n]["wall"] / res["whisper"][n]["seconds"] for n in CLIPS)
    cold = res["cold"]["words+voice"]
    print(f"targets: warm ratio {worst:.2f}x (<= {TARGET_RATIO}x), cold {cold:.1f} s (<= {TARGET_COLD} s)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
