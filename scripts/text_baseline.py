"""The plain text regressor that issue 5 measures the default checkpoint against.

MiniLM (or any --text-encoder), masked mean pooling, one linear layer to the score, L1 loss,
AdamW at a constant 5e-5, batch 32, a fixed number of epochs and no selection (the model after
the last epoch is tested on every --test-data fold). Same data loaders, tokeniser, batching,
truncation, trained layers (--text-trainable-layers, through the same cache of the frozen layers,
--text-cache-dir) and metrics as `train.py`, so the only differences from the full model are the
model and its losses::

    python -m scripts.text_baseline --data data/mosi/label.csv \
        --data data/mosei/label.csv --test-data data/mosi/label.csv \
        --seeds 1111,1112,1113 --out runs/text-baseline.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from msa.config import DEFAULT_TEXT_ENCODER
from msa.data import Collator
from msa.data.sources import merge_datasets, parse_train_repeat
from msa.metrics import evaluate
from msa.model.network import masked_mean
from msa.model.text_cache import FrozenLayerCache, encoder_layers, freeze_lower_layers
from msa.sample import Sample
from msa.training.loop import batch_indices, set_seed, summarise


class MeanPooledRegressor(nn.Module):
    def __init__(self, backbone: nn.Module, cache: FrozenLayerCache | None = None):
        super().__init__()
        self.backbone = backbone
        self.cache = cache  # the frozen lower layers' outputs, when only the top layers train
        self.out = nn.Linear(backbone.config.hidden_size, 1)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.cache is not None:
            states = self.cache.forward(input_ids, mask)
        else:
            states = self.backbone(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
        return self.out(masked_mean(states, mask)).squeeze(-1)


@torch.no_grad()
def predict(model: MeanPooledRegressor, samples: Sequence[Sample], collator: Collator, batch_size: int) -> np.ndarray:
    model.eval()
    preds = np.empty(len(samples))
    for idx in batch_indices(samples, batch_size, shuffle=False, group_by_length=True):
        b = collator([samples[i] for i in idx])
        preds[idx] = model(b.input_ids, b.text_mask).double().numpy()
    return preds


def train_one_seed(
    backbone: nn.Module,
    tokenizer: Any,
    train: Sequence[Sample],
    tests: Mapping[str, Sequence[Sample]],
    seed: int,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 5e-5,
    max_text_len: int = 64,
    trainable_layers: int = -1,
    cache_dir: Path | None = None,
) -> dict[str, dict[str, float]]:
    """Fine-tune ``backbone`` (changed in place; only its top ``trainable_layers`` layers unless
    -1) with a linear head; each test fold's metrics after the last epoch, by name."""
    # Transcripts only: frames of any width are dropped before batching.
    train = [dataclasses.replace(s, acoustic=None, visual=None) for s in train]
    set_seed(seed)
    freeze_lower_layers(backbone, trainable_layers)
    cache = None
    if cache_dir is not None:
        if trainable_layers < 0:
            raise ValueError("--text-cache-dir needs --text-trainable-layers K (the layers below the top K are cached)")
        cache = FrozenLayerCache(backbone, len(encoder_layers(backbone)) - trainable_layers, cache_dir)
    model = MeanPooledRegressor(backbone, cache)
    collator = Collator(tokenizer, 1, 1, max_text_len)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in batch_indices(train, batch_size, shuffle=True, seed=seed * 1000 + epoch, group_by_length=True):
            b = collator([train[i] for i in idx])
            loss = nn.functional.l1_loss(model(b.input_ids, b.text_mask), b.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    out = {}
    for name, test in tests.items():
        test = [dataclasses.replace(s, acoustic=None, visual=None) for s in test]
        out[name] = evaluate(predict(model, test, collator, batch_size), np.array([s.label for s in test]))
    if cache is not None:
        cache.flush()
    return out


def main(argv: list[str] | None = None) -> None:
    from msa.model.text_encoder import load_text_backbone, load_tokenizer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, metavar="SPEC", help="training datasets (merged)")
    p.add_argument(
        "--test-data", action="append", metavar="SPEC", help="report on this dataset's test split (repeatable)"
    )
    p.add_argument(
        "--train-repeat", metavar="K,K,...", help="copies of each --data set's training split per epoch, as train.py's"
    )
    p.add_argument("--text-encoder", default=DEFAULT_TEXT_ENCODER)
    p.add_argument("--text-trainable-layers", type=int, default=-1, help="train only the top K layers (-1: all)")
    p.add_argument("--text-cache-dir", type=Path, help="cache of the frozen layers' outputs (as train.py's)")
    p.add_argument("--seeds", default="1111,1112,1113")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-text-len", type=int, default=64)
    p.add_argument("--num-threads", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="keep at most N samples per split (smoke runs)")
    p.add_argument("--out", type=Path, help="write per-seed metrics and their mean/std here (JSON)")
    args = p.parse_args(argv)
    if args.train_repeat is not None:
        try:
            args.train_repeat = parse_train_repeat(args.train_repeat, len(args.data))
        except ValueError as e:
            p.error(str(e))
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    data = merge_datasets(args.data, args.limit, train_repeat=args.train_repeat)
    # Each --test-data fold is reported on its own (MOSI test and MOSEI test, not pooled).
    tests = {spec: merge_datasets([spec], args.limit)["test"] for spec in args.test_data or []}
    tests = tests or {"test": data["test"]}
    if not data["train"] or not all(tests.values()):
        raise SystemExit("error: the data has no train split or a test fold is empty")
    tokenizer = load_tokenizer(args.text_encoder)
    per_seed: dict[int, dict[str, dict[str, float]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        per_seed[seed] = train_one_seed(
            load_text_backbone(args.text_encoder),
            tokenizer,
            data["train"],
            tests,
            seed,
            args.epochs,
            args.batch_size,
            args.lr,
            args.max_text_len,
            args.text_trainable_layers,
            args.text_cache_dir,
        )
        for fold, m in per_seed[seed].items():
            print(
                f"seed {seed} ({time.perf_counter() - t0:.0f} s) {fold}: mae {m['mae']:.4f} acc7 {m['acc7']:.2f} "
                f"acc2_non0 {m['acc2_non0']:.2f} acc2_has0 {m['acc2_has0']:.2f} corr {m['corr']:.4f}",
                flush=True,
            )
    folds = {}
    for fold in tests:
        runs = {seed: results[fold] for seed, results in per_seed.items()}
        folds[fold] = {"per_seed": runs, "summary": summarise(runs)}
        print(
            f"{fold} mean: "
            + ", ".join(f"{k} {v['mean']:.4f}±{v['std']:.4f}" for k, v in folds[fold]["summary"].items())
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"argv": sys.argv, "folds": folds}, indent=2))


if __name__ == "__main__":
    main()
