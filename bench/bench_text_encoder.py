"""What a text encoder costs the app: cold start and its share of a 30 s request, for two
checkpoints side by side (issue 17: the base-size all-mpnet-base-v2 against the 6-layer MiniLM).

1. ``python app.py --checkpoint CKPT`` to a page that answers (`msa.testing.launch_app`), and
   cold ``python -m msa predict LOOPED_30S --json --checkpoint CKPT``, spawn to exit
   (`bench.bench_speed.cold_cli`), the two checkpoints interleaved so that other load falls on
   both alike; medians of ``--repeats``.
2. In one warm process per checkpoint (`msa.predict.load_predictor`, Whisper included): the
   looped 30 s clip through `Predictor.run` with the explanation, as the app runs it; the time
   spent inside the text encoder (every call of ``model.text``: the clip, its segments, the
   explanation's subsets) against the request's pipeline total.

    python -m bench.bench_text_encoder --baseline OLD_CKPT --candidate checkpoints/default

Targets (issue 17): cold start grows by at most 5 s; the text encoder's share of a 30 s request
stays under 0.3 s.

Results: docs/text_encoder_study.md (and docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.asr_corpus import build_corpus
from bench.bench_speed import cold_cli
from msa.testing import free_port, launch_app, stop_app

TARGET_COLD_GROWTH = 5.0  # seconds more than the baseline, app ready and cold CLI
TARGET_TEXT_SHARE = 0.3  # seconds of a 30 s request inside the text encoder


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def app_ready(checkpoint: Path, tmp: Path, tag: str) -> float:
    port = free_port()
    proc, ready = launch_app(
        ["--checkpoint", str(checkpoint)], port, tmp / f"app_{tag}.log", {"GRADIO_TEMP_DIR": str(tmp / "gradio")}
    )
    stop_app(proc)
    return ready


def text_share(checkpoint: Path, clip: Path, repeats: int) -> dict[str, Any]:
    """Warm: seconds inside ``model.text`` per request, calls per request, and the pipeline total."""
    from msa.predict import load_predictor

    predictor = load_predictor(checkpoint)
    text = predictor.model.text
    spent = {"seconds": 0.0, "calls": 0}
    plain_forward = text.forward

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return plain_forward(*args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - t0
            spent["calls"] += 1

    text.forward = timed  # type: ignore[method-assign]
    predictor.run(clip, explain=True)  # the first call's one-off costs stay out of the numbers
    runs = []
    for _ in range(repeats):
        spent.update(seconds=0.0, calls=0)
        run = predictor.run(clip, explain=True)
        t = run.prediction.timings
        runs.append({"text": spent["seconds"], "calls": spent["calls"], "model": t["model"], "total": t["total"]})
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"words": len(run.prediction.words)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, required=True, help="the checkpoint compared against")
    ap.add_argument("--candidate", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    clip = build_corpus(None)["looped_30s"].path
    named = {"baseline": args.baseline, "candidate": args.candidate}
    res: dict[str, Any] = {name: {"ready": [], "cli": []} for name in named}
    res["meta"] = {"load_start": os.getloadavg()[0], "checkpoints": {k: str(v) for k, v in named.items()}}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for _ in range(args.repeats):
            for name, ckpt in named.items():
                res[name]["ready"].append(app_ready(ckpt, tmp, name))
                res[name]["cli"].append(cold_cli(clip, ckpt, tmp)["wall"])
                log(f"{name}: app ready {res[name]['ready'][-1]:.1f} s, cold CLI {res[name]['cli'][-1]:.1f} s")
    for name, ckpt in named.items():
        res[name]["warm"] = text_share(ckpt, clip, args.repeats)
        log(f"{name}: warm {res[name]['warm']}")
    res["meta"]["load_end"] = os.getloadavg()[0]

    rows = []
    for name in named:
        r = res[name]
        r["ready_median"], r["cli_median"] = statistics.median(r["ready"]), statistics.median(r["cli"])
        w = r["warm"]
        rows.append(
            f"| {name} (`{named[name]}`) | {r['ready_median']:.1f} s | {r['cli_median']:.1f} s | "
            f"{w['text']:.3f} s ({w['calls']:.0f} calls) | {w['model']:.2f} s | {w['total']:.2f} s |"
        )
    b, c = res["baseline"], res["candidate"]
    growth = {"ready": c["ready_median"] - b["ready_median"], "cli": c["cli_median"] - b["cli_median"]}
    res["growth"] = growth
    print("\n| checkpoint | app ready | cold CLI | text encoder, warm 30 s request | model stage | pipeline total |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    ok_cold = max(growth.values()) <= TARGET_COLD_GROWTH
    ok_text = c["warm"]["text"] < TARGET_TEXT_SHARE
    print(
        f"\ncold start growth: app ready {growth['ready']:+.1f} s, cold CLI {growth['cli']:+.1f} s "
        f"(target <= {TARGET_COLD_GROWTH:.0f} s: {'met' if ok_cold else 'MISSED'}); text encoder share "
        f"{c['warm']['text']:.3f} s (target < {TARGET_TEXT_SHARE} s: {'met' if ok_text else 'MISSED'})"
    )
    print(f"load average {res['meta']['load_start']:.1f} -> {res['meta']['load_end']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    main()
