"""The trimodal sanity table: does the full model recover what only voice and face carry?

    python -m bench.bench_planted [--seeds 1,2,3] [--variants full,text-only,...] [--json out.json]

No labelled audio-visual corpus is reachable here, so the trimodal path is measured on data
whose answer is known (`msa.data.synthetic.make_trimodal`): MOSI-shaped samples whose label is
flip x words + voice + face, where the words are sentiment words, voice and face are directions
in the acoustic and visual frames, and the flip (-1 for a quarter of the clips) is a cue in the
face that reverses what the words mean. A model that reads the words alone can reach at best
the "text-only oracle" row; one that adds voice and face but not the interaction the "additive
oracle" row; the full model should approach the rounding floor.

Each variant is trained with `msa.training.loop.fit` (selection on the validation split, the test
split touched once), with the tests' tiny model (`msa.testing.tiny_config`, a 2-layer random
BERT) so that a run takes about a minute on two cores; the equations and both training stages
are the real ones. Variants:

- full: the paper's model and losses (alpha 0.1, beta 1, LN gates);
- text-only: the same model given the transcripts alone (voice and face absent everywhere);
- w/o rl, w/o mf, w/o mi: `train.py`'s --no-rl (no CMD), --no-mf (no gates), --no-mi;
- w/o rl & mi: both terms off (the reference spread for w/o rl's collapse check).

Columns: test MAE, Pearson correlation, non-zero Acc-2, MAE on the flipped clips and on the
rest, and the text utterance vector's spread (per-dimension std over the test clips, mean over
dimensions): the representation-collapse check (an MI bound won by collapse shrinks it by
orders of magnitude against w/o mi); the voice's and face's spreads likewise.

The table of the last run (seeds 1-3, about 25 minutes on two cores) and what it shows are in
docs/results.md; every run's row in docs/planted_results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from msa.config import DEFAULT_TEXT_ENCODER, MODALITIES, ModelConfig, TrainConfig, ablate
from msa.data import Collator
from msa.data.synthetic import TrimodalParts, make_trimodal
from msa.metrics import evaluate
from msa.model import SentimentModel
from msa.model.checkpoint import load_checkpoint
from msa.model.text_encoder import load_tokenizer
from msa.sample import Sample
from msa.testing import tiny_config, tiny_text_backbone
from msa.training.loop import fit, set_seed

# variant -> the ablations it removes (msa.config.ablate); "text-only" removes the streams instead
VARIANTS: dict[str, tuple[str, ...]] = {
    "full": (),
    "text-only": (),
    "w/o rl": ("rl",),
    "w/o mf": ("mf",),
    "w/o mi": ("mi",),
    # Not in the paper's table: with both off, the text vector's spread without any term that
    # shapes it, the reference for the collapse check of w/o rl (MI on, CMD off).
    "w/o rl & mi": ("rl", "mi"),
}
COLUMNS = (
    "mae",
    "corr",
    "acc2_non0",
    "mae_flipped",
    "mae_unflipped",
    "text_spread",
    "acoustic_spread",
    "visual_spread",
)


@dataclasses.dataclass
class Setup:
    """Everything a run depends on besides variant and seed (recorded in the JSON)."""

    n_train: int = 1024
    n_valid: int = 256
    n_test: int = 512
    epochs: int = 25
    patience: int = 6
    batch_size: int = 32
    lr: float = 2e-3
    text_lr: float = 2e-3
    parts: TrimodalParts = dataclasses.field(default_factory=TrimodalParts)

    def model_config(self) -> ModelConfig:
        return tiny_config(acoustic_dim=5, visual_dim=20)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            patience=self.patience,
            batch_size=self.batch_size,
            lr=self.lr,
            text_lr=self.text_lr,
            seed=seed,
        )


def text_only(data: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
    """The same clips with voice and face absent: what a transcript-only model is given."""
    return {k: [dataclasses.replace(s, acoustic=None, visual=None) for s in v] for k, v in data.items()}


def oracle_rows(test: list[Sample], p_flip: float) -> dict[str, dict[str, float]]:
    """What a model reading only some parts could reach at best (by construction, not trained)."""
    labels = np.array([s.label for s in test])
    words = np.array([s.meta["words"] for s in test])
    av = np.array([s.meta["voice"] + s.meta["face"] for s in test])
    flip = np.array([s.meta["flip"] for s in test])
    guesses = {
        "text-only oracle": (1 - 2 * p_flip) * words,
        "additive oracle": (1 - 2 * p_flip) * words + av,
        "full oracle": flip * words + av,
    }
    return {name: scores(np.clip(g, -3, 3), labels, flip) for name, g in guesses.items()}


def scores(preds: np.ndarray, labels: np.ndarray, flip: np.ndarray) -> dict[str, float]:
    m = evaluate(preds, labels)
    flipped = flip < 0
    return {
        "mae": m["mae"],
        "corr": m["corr"],
        "acc2_non0": m["acc2_non0"],
        "mae_flipped": float(np.abs(preds - labels)[flipped].mean()),
        "mae_unflipped": float(np.abs(preds - labels)[~flipped].mean()),
    }


def run_one(variant: str, seed: int, setup: Setup, tokenizer, work: Path) -> dict[str, float]:
    """Train one variant on one seed's data; its test row (the best-validation checkpoint)."""
    data = make_trimodal(setup.n_train, setup.n_valid, setup.n_test, seed=seed, parts=setup.parts)
    flip = np.array([s.meta["flip"] for s in data["test"]])
    if variant == "text-only":
        data = text_only(data)
    model_cfg, train_cfg = ablate(setup.model_config(), setup.train_config(seed), VARIANTS[variant])
    set_seed(seed)
    model = SentimentModel(model_cfg, tiny_text_backbone(seed=seed))
    run_dir = work / f"{''.join(ch if ch.isalnum() else '-' for ch in variant)}-seed{seed}"
    fit(model, tokenizer, data, train_cfg, run_dir, progress=False)
    best = load_checkpoint(run_dir / "best").model.eval()
    c = best.config
    collator = Collator.for_model(tokenizer, c)
    with torch.no_grad():
        out = best(collator(data["test"]))
    preds = out.score.double().numpy()
    labels = np.array([s.label for s in data["test"]])
    row = scores(preds, labels, flip)
    for m in MODALITIES:  # absent streams (text-only) read as 0: their stand-in is one vector
        row[f"{m}_spread"] = float(out.utterances[m].std(0).mean())
    return row


def summarise(rows: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation over seeds (0 for a single seed)."""
    ddof = 1 if len(rows) > 1 else 0
    return {k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows], ddof=ddof))) for k in rows[0]}


def format_table(results: dict[str, dict[str, tuple[float, float]]], oracles: dict[str, dict[str, float]]) -> str:
    """A Markdown table: mean ± std over seeds for the variants, then the oracle rows."""
    head = "| variant | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 1)]
    for name, summary in results.items():
        cells = [f"{summary[k][0]:.3f} ± {summary[k][1]:.3f}" if k in summary else "" for k in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, row in oracles.items():
        lines.append(f"| *{name}* | " + " | ".join(f"{row[k]:.3f}" if k in row else "" for k in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--epochs", type=int, default=Setup.epochs)
    p.add_argument("--n-train", type=int, default=Setup.n_train)
    p.add_argument("--json", type=Path, help="write every run's row and the table's numbers here")
    args = p.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    setup = Setup(epochs=args.epochs, n_train=args.n_train)
    logging.basicConfig(level=logging.ERROR)  # the text-only runs' stand-in warning is expected
    tokenizer = load_tokenizer(DEFAULT_TEXT_ENCODER)
    runs: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            for seed in seeds:
                t0 = time.perf_counter()
                row = run_one(variant, seed, setup, tokenizer, Path(tmp))
                runs.setdefault(variant, {})[seed] = row
                print(
                    f"{variant:>9} seed {seed}: "
                    + " ".join(f"{k} {v:.3f}" for k, v in row.items())
                    + f"  ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
    results = {v: summarise(list(rows.values())) for v, rows in runs.items()}
    test = make_trimodal(setup.n_train, setup.n_valid, setup.n_test, seed=seeds[0], parts=setup.parts)["test"]
    oracles = oracle_rows(test, setup.parts.p_flip)
    print()
    print(format_table(results, oracles))
    if args.json:
        args.json.write_text(
            json.dumps({"setup": dataclasses.asdict(setup), "seeds": seeds, "runs": runs, "oracles": oracles}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
