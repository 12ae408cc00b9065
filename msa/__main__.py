"""Command line: ``python -m msa evaluate ...``.

evaluate  metrics of a checkpoint on one split of a dataset, and per-sample predictions
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default"


def _evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .data import Collator
    from .data.loaders import load_dataset
    from .training import evaluate_samples, write_predictions

    spec = args.data or args.labels
    ckpt = load_checkpoint(args.checkpoint)
    splits = load_dataset(spec)
    if args.split not in splits or not splits[args.split]:
        raise ValueError(f"{spec}: no samples in split {args.split!r}; it has {sorted(k for k, v in splits.items() if v)}")
    samples = splits[args.split]
    c = ckpt.model.config
    collator = Collator(ckpt.tokenizer, c.acoustic_dim, c.visual_dim, c.max_text_len)
    metrics, preds = evaluate_samples(ckpt.model, samples, collator, args.batch_size)
    if args.predictions:
        write_predictions(Path(args.predictions), samples, preds)
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "data": spec, "split": args.split,
                          "n": len(samples), "metrics": metrics}, indent=2))
    else:
        print(f"{spec} [{args.split}, n={len(samples)}] with {args.checkpoint}")
        for k, v in metrics.items():
            print(f"  {k:>10}: {v:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m msa", description="Multimodal sentiment analysis")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="metrics of a checkpoint on one split")
    e.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint folder")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="dataset spec: pickle, label CSV, or synthetic:mosi")
    src.add_argument("--labels", help="a transcript label CSV (text only)")
    e.add_argument("--split", default="test", choices=("train", "valid", "test"))
    e.add_argument("--predictions", help="write id,label,prediction rows to this CSV")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as e:
        # One line on stderr, not a traceback: the messages name the file and the problem.
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
