"""Seconds from request to result in the app, per stage, and from ``python app.py`` to ready.

For each example clip and a ~30 s clip (built as in bench_features.py: the MOSI videos' frames
under their real speech interleaved with espeak-ng sentences) it runs the app's own handler
(`Handlers.analyse`: checks, decode, ASR, acoustic, visual, model, explanation, figures,
JSON) in-process, and then the public ``predict`` endpoint through `gradio_client` against a
running ``python app.py`` (upload + queue + prediction, no explanation). It reports the
explanation's cost relative to the model's time: the Shapley subsets run inside the model stage
(`msa.explain.fuse_with_coalitions`), so their cost is the model stage with them minus without
them (timed on the fusion alone: medians of ``--model-repeats`` alternating in-process runs on
cached features), plus building the explanation (each word's share and attention per branch and
layer, `Predictor.explain`). Its JSON serialisation and the page's frames/voice context are
reported apart.

    python -m bench.bench_app [--checkpoint DIR] [--asr-model base] [--repeats 3] [--seconds 30]

Without --checkpoint a full-size, untrained model with this extractor's feature spec is built
(MiniLM text encoder, the paper's widths): its numbers mean nothing, its timings are real, and
all three modalities are used, which a text-only checkpoint would skip in the model.

Targets (issue 4): a 30 s clip answered in at most 12 s; the explanation adds at most 10% to
the model time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.bench_features import build_clip
from msa.app.handlers import OUTPUTS, Handlers
from msa.app.page import EXAMPLE_CLIPS, EXAMPLES
from msa.app.service import build_service
from msa.predict import STAGES
from msa.testing import free_port, full_size_checkpoint, launch_app, stop_app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: a full-size untrained model")
    ap.add_argument("--asr-model", choices=("base", "tiny.en"), default=None, help="default: the app's (base)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per clip; the median is reported")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the long clip")
    ap.add_argument("--model-repeats", type=int, default=21, help="model-stage runs with and without the explanation")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        checkpoint = args.checkpoint or full_size_checkpoint(tmp / "full", args.asr_model)
        clips = [EXAMPLES / name for name, _ in EXAMPLE_CLIPS]
        clips.append(build_clip(tmp / f"long_{args.seconds:.0f}s.mp4", args.seconds))

        t0 = time.perf_counter()
        service = build_service(checkpoint, args.asr_model)
        load_s = time.perf_counter() - t0
        handlers = Handlers(service)
        from msa.predict import Predictor

        # The model stage with and without the explanation, on features cached by a first run.
        timer = Predictor(checkpoint, asr_model=args.asr_model, cache_dir=tmp / "feature_cache")
        rows = []
        for clip in clips:
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = dict(zip(OUTPUTS, handlers.analyse(str(clip), None, "", progress=lambda *a, **k: None)))
                wall = time.perf_counter() - t0
                d = _json(out["download"]["value"])
                t = d["timings"]
                t0 = time.perf_counter()
                json.dumps(d["explanation"])
                serialise = time.perf_counter() - t0
                runs.append(
                    {
                        **{s: t.get(s, 0.0) for s in STAGES},
                        "wall": wall,
                        "serialise": serialise,
                        "context": _context_seconds(out["timings"]),
                        "duration": d["duration"],
                        "segments": len(d["segments"]),
                        "present": "+".join(m[0].upper() for m in d["modalities_present"]),
                    }
                )
            row = {k: _median([r[k] for r in runs]) for k in runs[0]}
            row.update(model_stage_with_and_without(timer, clip, args.model_repeats))
            row["explain"] = row["subsets"] + row["build"]
            rows.append((clip.name, row))

        # The public endpoint against a real `python app.py` (upload, queue, predict).
        port = free_port()
        proc, ready_s = launch_app(
            ["--checkpoint", str(checkpoint)] + (["--asr-model", args.asr_model] if args.asr_model else []), port
        )
        api: dict[str, float] = {}
        try:
            from gradio_client import Client, handle_file

            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            for clip in clips:
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    client.predict(handle_file(str(clip)), "", api_name="/predict")
                    times.append(time.perf_counter() - t0)
                api[clip.name] = statistics.median(times)
        finally:
            stop_app(proc)

    print(
        f"checkpoint: {args.checkpoint or 'full-size untrained (paper widths, MiniLM)'}; ASR "
        f"{service.predictor.extractor.spec.asr_model}; {os.cpu_count()} cores; median of {args.repeats} runs"
    )
    print()
    head = (
        "clip",
        "s",
        "used",
        *STAGES,
        "model w/o expl.",
        "explain",
        "expl/model",
        "JSON",
        "frames+voice",
        "handler",
        "API",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for name, r in rows:
        share = 100 * r["explain"] / r["model_plain"]
        cells = [
            name,
            f"{r['duration']:.1f}",
            str(r["present"]),
            *(f"{r[s]:.2f}" for s in STAGES),
            f"{r['model_plain']:.3f}",
            f"{r['explain']:.4f}",
            f"{share:.1f}%",
            f"{r['serialise']:.3f}",
            f"{r['context']:.2f}",
            f"{r['wall']:.2f}",
            f"{api[name]:.2f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    print(
        "model = the handler's model stage (encoders, fusion with the 8 Shapley subsets as extra query positions, "
        "segments); model w/o expl. = the same stage without the subsets; explain = fusion with the subsets - "
        "plain fusion + building the explanation (shares, attention), medians of alternating runs; "
        "JSON = serialising the explanation object; frames+voice = the page's thumbnails and voice trace; "
        "handler = the UI's whole request in-process "
        "(checks, features, model, explanation, figures, JSON); API = gradio_client round trip of `predict` on a "
        "running app.py (upload + queue + prediction)."
    )
    print(f"load + warm-up in-process: {load_s:.1f} s; `python app.py` to ready (page answers): {ready_s:.1f} s")
    long_name, long = rows[-1]
    print(
        f"target 30 s clip <= 12 s: handler {long['wall']:.1f} s, API {api[long_name]:.1f} s -> "
        f"{'ok' if max(long['wall'], api[long_name]) <= 12 else 'MISSED'}"
    )
    worst = max(100 * r["explain"] / r["model_plain"] for _, r in rows)
    print(f"target explanation <= 10% of model time: worst {worst:.1f}% -> {'ok' if worst <= 10 else 'MISSED'}")


def model_stage_with_and_without(predictor, clip: Path, repeats: int) -> dict[str, float]:
    """The model stage without the explanation, and what the explanation adds to it.

    A difference of two whole model stages (~0.2 s each, encoders included) drowns a ~10 ms cost
    in the machine's noise (measured: -6 to +27 ms between runs of this benchmark), so the parts
    are timed directly, alternating, on one clip's cached features and encoder outputs:
    the fusion with the Shapley subsets minus the plain fusion, plus building the explanation.
    """
    import torch

    from msa.explain import fuse_with_coalitions

    run = predictor.run(clip, explain=True)  # fills the cache; the tensors to time on
    model, enc, present = predictor.model, run.encoded, run.batch.present
    plain, fused, coalitions, build = [], [], [], []
    for _ in range(repeats):
        plain.append(predictor.run(clip).prediction.timings["model"])
        with torch.inference_mode():
            t0 = time.perf_counter()
            model.fuse(enc, present)
            t1 = time.perf_counter()
            fuse_with_coalitions(model, enc, present)
            t2 = time.perf_counter()
        predictor.explain(run.sample, run.batch, run.output, run.contributions, run.extraction.words)
        t3 = time.perf_counter()
        fused.append(t1 - t0)
        coalitions.append(t2 - t1)
        build.append(t3 - t2)
    subsets = statistics.median(coalitions) - statistics.median(fused)
    return {"model_plain": statistics.median(plain), "subsets": subsets, "build": statistics.median(build)}


def _json(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _context_seconds(timings_text: str) -> float:
    """The "frames and voice" seconds the page reports (_timings_text)."""
    m = re.search(r"frames and voice ([0-9.]+)", timings_text)
    return float(m.group(1)) if m else float("nan")


def _median(values: list) -> object:
    return statistics.median(values) if isinstance(values[0], (int, float)) else values[0]


if __name__ == "__main__":
    main()
