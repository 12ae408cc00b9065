"""Every fold of every dataset for a set of checkpoints (one per seed): validation folds for the
decision rule, test folds for the report, pooled validation as `train.py` selects on.

The frozen text layers' outputs come from the training cache when ``--text-cache-dir`` is given
(the scores are the same as without it, tested in tests/test_text_cache.py; only faster)::

    python -m scripts.fold_report --data data/mosi/label.csv --data data/mosei/label.csv \\
        --checkpoint runs/m2/seed1111/best --checkpoint runs/m2/seed1112/best \\
        --checkpoint runs/m2/seed1113/best --text-cache-dir ~/.cache/msa/text-cache/mpnet-top2 \\
        --out runs/m2/folds.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from msa.data import Collator
from msa.data.sources import merge_datasets
from msa.model.checkpoint import Checkpoint, load_checkpoint
from msa.model.text_cache import FrozenLayerCache, attach
from msa.sample import Sample
from msa.training.loop import evaluate_samples, summarise


def folds_of(specs: Sequence[str]) -> dict[str, list[Sample]]:
    """``<spec>:valid`` and ``<spec>:test`` for each dataset, and ``pooled:valid`` of them all."""
    folds: dict[str, list[Sample]] = {}
    for spec in specs:
        splits = merge_datasets([spec])
        for split in ("valid", "test"):
            folds[f"{spec}:{split}"] = splits[split]
    folds["pooled:valid"] = [s for spec in specs for s in folds[f"{spec}:valid"]]
    return folds


def attach_cache(ckpt: Checkpoint, cache: FrozenLayerCache | Path) -> FrozenLayerCache:
    """Route ``ckpt``'s text encoder through the training cache: a folder (read once), or a cache
    already loaded for another checkpoint of the same frozen encoder (its states shared)."""
    text = ckpt.model.text
    if isinstance(cache, FrozenLayerCache):
        bound = cache.rebind(text.backbone)
    else:
        bound = FrozenLayerCache(text.backbone, text.frozen_layers(), cache)
    attach(text, bound)
    return bound


def report(ckpt: Checkpoint, folds: dict[str, list[Sample]]) -> dict[str, dict[str, float]]:
    """Metrics of ``ckpt`` on every fold."""
    c = ckpt.model.config
    collator = Collator.for_model(ckpt.tokenizer, c)
    out = {name: evaluate_samples(ckpt.model, samples, collator, batch_size=64)[0] for name, samples in folds.items()}
    if ckpt.model.text.frozen_cache is not None:
        ckpt.model.text.frozen_cache.flush()  # folds first seen here serve the next run too
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, metavar="SPEC", help="datasets whose folds to report")
    p.add_argument("--checkpoint", action="append", required=True, type=Path, help="one per seed")
    p.add_argument("--text-cache-dir", type=Path, help="the frozen text layers' cache used in training")
    p.add_argument("--num-threads", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="JSON: per checkpoint and fold, and the mean/std")
    args = p.parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    folds = folds_of(args.data)
    per_checkpoint = {}
    cache: FrozenLayerCache | Path | None = args.text_cache_dir
    for path in args.checkpoint:
        ckpt = load_checkpoint(path)
        if cache is not None:
            cache = attach_cache(ckpt, cache)
        per_checkpoint[str(path)] = report(ckpt, folds)
    summary = {name: summarise({i: r[name] for i, r in enumerate(per_checkpoint.values())}) for name in folds}
    for name, s in summary.items():
        print(f"{name}: " + ", ".join(f"{k} {v['mean']:.4f}±{v['std']:.4f}" for k, v in s.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"per_checkpoint": per_checkpoint, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
