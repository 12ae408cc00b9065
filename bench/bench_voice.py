"""What hearing the voice costs (issue 32): the shipped checkpoint (words and voice) beside the
words-only one and beside Whisper alone, on the same 30 s clips, in one run.

Whisper on these 2 shared cores varies by 10-20 % from one minute to the next, so the three are
measured in rounds: in each round, for each clip, Whisper alone (`FeatureExtractor.transcribe`
on the clip's 16 kHz audio, warm, in this process), then one request to each warm app
(``python app.py`` per checkpoint, both started first, through the public API). A round's
ratio is a request's wall clock over the Whisper run just before it; the medians over rounds
are reported, with where the rest of each request goes. Then the cold command, ``python -m msa
predict CLIP --json`` with each checkpoint, spawn to exit, interleaved.

    python -m bench.bench_voice [--rounds 7] [--json out.json]

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
from bench.bench_speed import api_call, cold_cli, log, med
from msa.predict import STAGES
from msa.testing import ROOT, free_port, launch_app, stop_app

CHECKPOINTS = {"words+voice": ROOT / "checkpoints" / "default", "words only": ROOT / "checkpoints" / "words-only"}
CLIPS = ("looped_30s", "distinct_30s")
TARGET_RATIO = 1.2
TARGET_COLD = 10.0


def rounds(clips: dict[str, Any], n: int, tmp: Path) -> dict[str, Any]:
    """``n`` rounds of (Whisper alone, then a request to each app) per clip; per clip and app:
    the median wall, the median of the rounds' ratios, and the stages' medians."""
    from gradio_client import Client

    from msa.features import FeatureExtractor, decode_audio

    fx = FeatureExtractor()
    audio = {name: decode_audio(c.path) for name, c in clips.items()}
    fx.transcribe(audio[CLIPS[0]])  # loads Whisper and the VAD, first-call costs
    apps = {}
    try:
        for tag, path in CHECKPOINTS.items():
            port = free_port()
            name = tag.replace(" ", "_").replace("+", "_")
            env = {"GRADIO_TEMP_DIR": str(tmp / f"gradio_{name}")}
            proc, ready = launch_app(["--checkpoint", str(path)], port, tmp / f"app_{name}.log", env)
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            api_call(client, proc.pid, clips[CLIPS[0]].path)  # the first request's one-off costs
            apps[tag] = (proc, client)
            log(f"app {tag}: ready in {ready:.1f} s")
        whisper: dict[str, list[float]] = {c: [] for c in clips}
        calls: dict[str, dict[str, list[dict[str, Any]]]] = {t: {c: [] for c in clips} for t in apps}
        for r in range(n):
            for clip in clips:
                t0 = time.perf_counter()
                fx.transcribe(audio[clip])
                whisper[clip].append(time.perf_counter() - t0)
                for tag, (proc, client) in apps.items():
                    row = api_call(client, proc.pid, clips[clip].path)
                    if row["error"]:
                        raise RuntimeError(f"{tag} {clip}: {row['error']}")
                    row["ratio"] = row["wall"] / whisper[clip][-1]
                    calls[tag][clip].append(row)
                log(
                    f"round {r + 1} {clip}: Whisper {whisper[clip][-1]:.2f} s; "
                    + "; ".join(f"{t} {calls[t][clip][-1]['wall']:.2f} s" for t in apps)
                )
    finally:
        for proc, _ in apps.values():
            stop_app(proc)
    out: dict[str, Any] = {"asr": f"{fx.spec.asr_model} {fx.spec.asr_compute_type}", "whisper": {}, "app": {}}
    for clip in clips:
        out["whisper"][clip] = {"seconds": med(whisper[clip]), "runs": whisper[clip]}
    for tag in apps:
        out["app"][tag] = {}
        for clip in clips:
            rows = calls[tag][clip]
            summary = {k: med([r[k] for r in rows]) for k in ("wall", "ratio", *STAGES, "explain", "total", "json_kb")}
            summary["beyond_asr"] = med([r["wall"] - r["asr"] for r in rows])
            summary["present"] = rows[-1]["present"]
            summary["runs"] = rows
            out["app"][tag][clip] = summary
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cold", type=int, default=3, help="cold commands per checkpoint")
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
        res.update(rounds(clips, args.rounds, tmp))
        cold: dict[str, list[float]] = {tag: [] for tag in CHECKPOINTS}
        for _ in range(args.cold):
            for tag, path in CHECKPOINTS.items():
                run = cold_cli(clips["looped_30s"].path, path, tmp)
                cold[tag].append(run["wall"])
                log(f"cold CLI {tag}: {run['wall']:.1f} s")
        res["cold"] = {tag: med(v) for tag, v in cold.items()}
    res["seconds"] = time.perf_counter() - t0

    print(
        f"\nWhisper {res['asr']}; 2 cores; medians of {args.rounds} rounds (ratio: each request over the "
        f"Whisper run just before it); load {res['load_start']:.1f} at the start\n"
    )
    print("| clip | Whisper alone | " + " | ".join(f"{t} (ratio)" for t in CHECKPOINTS) + " |")
    print("| --- | --- |" + " --- |" * len(CHECKPOINTS))
    for name in CLIPS:
        w = res["whisper"][name]["seconds"]
        cells = [f"{res['app'][t][name]['wall']:.2f} s ({res['app'][t][name]['ratio']:.2f}x)" for t in CHECKPOINTS]
        print(f"| {name} | {w:.2f} s | " + " | ".join(cells) + " |")
    print("\nwhere the request goes (s, medians): decode, asr, model, explain, beyond the ASR; JSON kB")
    for t in CHECKPOINTS:
        for name in CLIPS:
            r = res["app"][t][name]
            print(
                f"  {t:12s} {name:13s} decode {r['decode']:.2f} asr {r['asr']:.2f} model {r['model']:.2f} "
                f"explain {r['explain']:.3f} beyond the ASR {r['beyond_asr']:.2f} JSON {r['json_kb']:.0f} kB "
                f"[{r['present']}]"
            )
    print(
        "\ncold `python -m msa predict` (looped 30 s): " + ", ".join(f"{t} {v:.1f} s" for t, v in res["cold"].items())
    )
    worst = max(res["app"]["words+voice"][n]["ratio"] for n in CLIPS)
    cold_voice = res["cold"]["words+voice"]
    print(f"targets: warm ratio {worst:.2f}x (<= {TARGET_RATIO}x), cold {cold_voice:.1f} s (<= {TARGET_COLD} s)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
