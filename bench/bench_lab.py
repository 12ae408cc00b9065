"""The Fusion Lab's speed and what its lesson shows.

    python -m bench.bench_lab                      # each preset once: training seconds, views seconds
    python -m bench.bench_lab --lesson --seeds 0,1,2 --json docs/lab_results.json

Speed: for each preset (seed 0, default recipe) the seconds to make the world and train (the model
and the words-alone baseline), then the seconds from the end of training to the views: the test
clips measured (`LabRun.finish`) and the first clip's figures built (what the tab draws). Targets
(issue 24): training at most 30 s on 2 cores, views within 1 s.

Attention (``--attention``): on the test clips with a cue, the share of the cue word's attention
(mean over heads) that falls in the cue's frames, per layer, beside the share a uniform attention
would give: whether the words look where the world put the cue.

Lesson: every step of `msa.lab.lesson.LESSON` over seeds, with what a learner would read off the
tab: each model's test MAE (all clips, flipped clips), the baselines, and the mean |Shapley value|
per modality beside the rule's. docs/lab.md reports the last run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from msa.app import plots
from msa.app.plots.lab import loss_figure, truth_figure
from msa.data.synthetic import frames_of
from msa.lab.explore import Explorer
from msa.lab.lesson import LESSON
from msa.lab.recipe import Recipe
from msa.lab.run import LabRun
from msa.lab.worlds import ACOUSTIC_RATE, PRESETS, VISUAL_RATE, preset


def time_preset(name: str, seed: int = 0) -> dict[str, float]:
    """Seconds to train one preset, and from the end of training to the first clip's views."""
    t0 = time.perf_counter()
    run = LabRun(preset(name, seed=seed), [Recipe(seed=seed)], preset=name)
    for _ in run.train():
        pass
    trained = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = run.finish()
    explorer = Explorer(run)
    view = explorer.clip(run.names[0], 0)
    e = view.run.explanation
    assert e is not None
    figures = [
        loss_figure({v.name: v.history for v in run.variants}, result.baselines),
        truth_figure({n: v["shapley"] for n, v in result.variants.items()}, result.truth, "mean"),
        truth_figure({run.names[0]: e.contributions.values}, view.truth, "clip"),
        plots.shapley_figure(e.contributions),
        plots.share_rows_figure(e),
        plots.share_grid_figure(e),
        plots.attention_figure(e, "visual", 1, 0),
    ]
    for f in figures:
        f.to_json()  # what Gradio sends
    views = time.perf_counter() - t1
    return {"train_seconds": trained, "views_seconds": views, "test_mae": result.to_dict()["test_mae"]}


def attention_in_window(name: str, branch: str, cue: str, seed: int = 1) -> dict[int, tuple[float, float]]:
    """Layer -> (mean attention mass of the cue word inside the cue's frames, the uniform share)."""
    run = LabRun(preset(name, seed=seed), [Recipe(seed=seed)])
    for _ in run.train():
        pass
    run.finish()
    explorer = Explorer(run)
    rate = ACOUSTIC_RATE if branch == "acoustic" else VISUAL_RATE
    found: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for i, clip in enumerate(explorer.test):
        if cue not in clip.meta["cues"]:
            continue
        e = explorer.clip(run.names[0], i).run.explanation
        assert e is not None
        said = clip.meta["words"][clip.meta["cues"][cue]["word"]]
        index = next(j for j, w in enumerate(e.words) if w.start == said.start)
        for g in e.gates:
            if g.branch == branch and g.attention is not None:
                weights = g.attention.mean(0)
                frames = frames_of(said, rate, weights.shape[1])
                found[g.layer].append((float(weights[index, frames].sum()), len(frames) / weights.shape[1]))
    return {layer: (float(np.mean([m for m, _ in v])), float(np.mean([u for _, u in v]))) for layer, v in found.items()}


def lesson_rows(seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for step in LESSON:
        for seed in seeds:
            world = preset(step.preset, seed=seed, **step.world)
            first = Recipe(seed=seed, **step.recipe)
            recipes = [first] + ([dataclasses.replace(first, **step.compare)] if step.compare else [])
            t0 = time.perf_counter()
            run = LabRun(world, recipes, preset=step.preset)
            for _ in run.train():
                pass
            result = run.finish().to_dict()
            row = {
                "step": step.title,
                "seed": seed,
                "seconds": time.perf_counter() - t0,
                "variants": {
                    n: {k: v[k] for k in ("test_mae", "test_mae_flipped", "shapley")}
                    for n, v in result["variants"].items()
                },
                "baselines": result["baselines"],
                "truth": result["truth"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def lesson_table(rows: list[dict[str, Any]]) -> str:
    """Mean ± sd over seeds per step and model."""

    def ms(values: list[float | None]) -> str:
        v = [x for x in values if x is not None]
        if not v:
            return ""
        return f"{np.mean(v):.2f} ± {np.std(v, ddof=1 if len(v) > 1 else 0):.2f}"

    out = [
        "| step | model | test MAE | flipped clips | words alone | best additive "
        "| Shapley words / voice / face | rule |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for step in LESSON:
        mine = [r for r in rows if r["step"] == step.title]
        for name in mine[0]["variants"]:
            vs = [r["variants"][name] for r in mine]
            shap = " / ".join(f"{np.mean([v['shapley'][m] for v in vs]):.2f}" for m in ("text", "acoustic", "visual"))
            truth = " / ".join(f"{np.mean([r['truth'][m] for r in mine]):.2f}" for m in ("text", "acoustic", "visual"))
            out.append(
                f"| {step.title} | {name} | {ms([v['test_mae'] for v in vs])} | "
                f"{ms([v['test_mae_flipped'] for v in vs])} | {ms([r['baselines'].get('text_only') for r in mine])} | "
                f"{ms([r['baselines']['additive_oracle'] for r in mine])} | {shap} | {truth} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lesson", action="store_true", help="measure the lesson's steps over seeds")
    p.add_argument("--attention", action="store_true", help="where the cue word looks (voice-adds, face-flips)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.attention:
        for name, branch, cue in (("voice-adds", "acoustic", "voice"), ("face-flips", "visual", "flip")):
            for layer, (mass, uniform) in attention_in_window(name, branch, cue).items():
                share = f"{mass:.2f} of the cue word's attention in the cue's frames"
                print(f"{name} layer {layer}: {share} (uniform {uniform:.2f})")
        return 0
    if args.lesson:
        rows = lesson_rows([int(s) for s in args.seeds.split(",")])
        print(lesson_table(rows))
        if args.json:
            args.json.write_text(json.dumps({"seeds": args.seeds, "rows": rows}, indent=2))
        return 0
    print("| preset | train (s) | views (s) | test MAE |\n| --- | --- | --- | --- |")
    rows = {}
    for name in PRESETS:
        r = time_preset(name)
        rows[name] = r
        print(f"| {name} | {r['train_seconds']:.1f} | {r['views_seconds']:.2f} | {r['test_mae']:.3f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
