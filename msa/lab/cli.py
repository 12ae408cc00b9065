"""``python -m msa lab PRESET``: train the paper's model on a world and measure what it learnt.

    python -m msa lab face-flips --seed 3
    python -m msa lab face-flips --compare gates=none        # two recipes side by side
    python -m msa lab voice-adds --voice 1.5 --noise 0.3 --json
    python -m msa lab words-only --clips 1200 --no-cmd --no-mi

Every setting of the world (`msa.lab.worlds.World`) and of the model (`msa.lab.recipe.Recipe`)
is a flag; a flag changes the preset's value. Progress goes to stderr, the result to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Any

from ..commands import subcommand
from ..config import add_config_arguments
from .baselines import BASELINE_NAMES
from .recipe import Recipe
from .run import LabResult, LabRun
from .worlds import PRESETS, World, WorldError, preset

_SHARED = ("seed",)  # one --seed: the world's clips and the model's initial weights


def add_parser(sub: Any) -> None:
    """The ``lab`` command on the ``python -m msa`` parser's subcommands."""
    what = "the Fusion Lab: train the model on a synthetic world and compare it with the world's truth"
    p = subcommand(sub, "lab", what, __doc__)
    p.add_argument("preset", choices=list(PRESETS), help="the world to start from")
    p.add_argument("--seed", type=int, default=0, help="the world's clips and the model's initial weights")
    p.add_argument(
        "--compare",
        metavar="SETTING=VALUE[,...]",
        help="train a second recipe beside the first, with these settings changed (e.g. gates=none or mi=false)",
    )
    p.add_argument("--max-seconds", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_config_arguments(p, World, skip=_SHARED)
    add_config_arguments(p, Recipe, skip=_SHARED)
    p.set_defaults(func=main)


def _given(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)} - set(_SHARED)
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def parse_changes(text: str) -> dict[str, Any]:
    """``gates=none,mi=false`` -> the Recipe fields it changes, each parsed to the field's type."""
    hints = typing.get_type_hints(Recipe)
    changes: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in hints:
            raise WorldError(f"--compare {item!r}: write SETTING=VALUE with a setting of {', '.join(sorted(hints))}")
        hint = hints[name]
        value = value.strip()
        if hint is bool:
            if value.lower() not in ("true", "false", "on", "off", "yes", "no"):
                raise WorldError(f"--compare {item!r}: {name} is true or false")
            changes[name] = value.lower() in ("true", "on", "yes")
        elif hint in (int, float):
            try:
                changes[name] = hint(value)
            except ValueError:
                raise WorldError(f"--compare {item!r}: {name} is a number") from None
        else:
            changes[name] = value
    return changes


def main(args: argparse.Namespace) -> int:
    world = preset(args.preset, seed=args.seed, **_given(World, args))
    first = Recipe(seed=args.seed, **_given(Recipe, args))
    recipes = [first]
    if args.compare:
        recipes.append(dataclasses.replace(first, **parse_changes(args.compare)))
    run = LabRun(world, recipes, max_seconds=args.max_seconds, preset=args.preset)
    if not args.quiet:
        print(f"{world.rule}\n{len(world.splits()['train'])} training clips", file=sys.stderr)
    try:
        for progress in run.train():
            if not args.quiet:
                print(f"  {progress.line()}  ({progress.elapsed:.0f} s)", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        run.stop()
    result = run.finish()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        print(report(result))
    return 0


def report(result: LabResult) -> str:
    """The result as a few lines of text: errors beside the baselines, Shapley values beside the truth."""
    lines = [result.world.rule, ""]
    width = max(len(n) for n in [*result.variants, *BASELINE_NAMES.values()])
    lines.append(f"{'test MAE':<{width}}  all    flipped clips")
    for r in result.error_rows():
        flipped = "" if r.mae_flipped is None else f"{r.mae_flipped:.3f}"
        lines.append(f"{r.name:<{width}}  {r.mae:.3f}  {flipped}" if r.trained else f"{r.name:<{width}}  {r.mae:.3f}")
    lines += ["", f"{'mean |Shapley value|':<{width}}  words  voice  face"]
    for name, v in [*((n, v["shapley"]) for n, v in result.variants.items()), ("the rule (truth)", result.truth)]:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v[m]:.2f} " for m in ("text", "acoustic", "visual")))
    lines += ["", f"trained in {result.train_seconds:.1f} s"]
    if result.stopped:
        lines.append(result.stopped)
    return "\n".join(lines)


__all__ = ["add_parser", "main", "parse_changes", "report"]
