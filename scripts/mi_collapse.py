"""Can the MI bound be won by collapsing the utterance vectors? A measurement on tiny models.

    python -m scripts.mi_collapse [--seeds 1,2,3] [--epochs 8] [--variants old,shipped] [--json out.json]

The tests' tiny model (tests/conftest.py `tiny_config`) is trained on synthetic MOSI-shaped data
whose label is carried by the acoustic stream alone (alpha 0.1, beta 0, 8 epochs), once per
variant of the bound and per seed. Text and acoustic are independent in this data, so the true
I(h_t; h_a) is 0 whatever the encoders do: any rise of the bound is won from the estimator, not
from the data. For each run the script prints, on the validation samples with the model of the
last epoch: the per-dimension standard deviation of the text, acoustic and visual utterance
vectors (mean over dimensions), the bound's two terms E log q and H (summed over the two pairs)
there and in the last epoch's log, q's mean log-variance, the validation MAE (last epoch and
best epoch), and the text vector's spread and L_SI after every epoch; then a table of the means
over seeds. The table in docs/model-spec.md section 9 comes from this script (the default
variants, about 40 s a run on two CPU cores).

Each variant is built explicitly on the shipped model, so that the rows stay comparable whatever
ships: "old" redraws the MI module from the same random state as the code before the fix and
reproduces its numbers; "shipped" is the code as it is, unpatched.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from unittest import mock

import numpy as np
import torch
import torch.nn as nn

import msa.model.network
from msa import training
from msa.config import ModelConfig, TrainConfig
from msa.data import Collator
from msa.data.synthetic import make_synthetic
from msa.model import SentimentModel
from msa.model.checkpoint import WEIGHTS_FILE, Checkpoint, load_state, read_checkpoint_config
from msa.model.losses import BoundTerms, EntropyEstimator, GaussianPredictor, MIBound, gaussian_log_likelihood
from msa.model.text_encoder import load_tokenizer
from msa.sample import Sample
from msa.testing import tiny_config, tiny_text_backbone
from msa.training.loop import fit

LogQ = Callable[[GaussianPredictor, torch.Tensor, torch.Tensor], torch.Tensor]


def tiny_model(seed: int) -> tuple[SentimentModel, torch.Tensor]:
    """tests/conftest.py's `tiny_model(seed)`, built the same way, and the RNG state its MI
    module was drawn from (so a variant can redraw that module as the old code drew it)."""
    states: list[torch.Tensor] = []

    def recording(*args: object) -> MIBound:
        states.append(torch.get_rng_state())
        return MIBound(*args)

    torch.manual_seed(seed)
    with mock.patch.object(msa.model.network, "MIBound", recording):
        model = SentimentModel(tiny_config(), tiny_text_backbone(seed=seed))
    return model, states[0]


class FullWidthMIBound(MIBound):
    """The paper's (and the old code's) layout: q models h_m itself (d outputs) while H is
    computed on its d/4 projection. Drawn in the old code's order, so that with the old main
    stage and a trained projection it is the code before the fix, number for number."""

    def __init__(self, dim: int, hidden: int, proj_dim: int, memory: int, jitter: float, floor: float | None):
        nn.Module.__init__(self)
        self.predictors = nn.ModuleDict({m: GaussianPredictor(dim, dim, hidden, floor) for m in self.PAIRS})
        self.entropy = nn.ModuleDict({m: EntropyEstimator(dim, proj_dim, memory, jitter) for m in self.PAIRS})

    def estimator_loss(
        self, h_text: torch.Tensor, h: dict[str, torch.Tensor], both: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        losses = [
            -self.predictors[m](h_text[both[m]].detach(), h[m][both[m]].detach()).mean()
            for m in self.PAIRS
            if both[m].any()
        ]
        return torch.stack(losses).sum() if losses else h_text.new_zeros(())

    def terms(
        self, h_text: torch.Tensor, h: dict[str, torch.Tensor], both: dict[str, torch.Tensor], labels: torch.Tensor
    ) -> BoundTerms:
        log_q = entropy = h_text.new_zeros(())
        for m in self.PAIRS:
            mask = both[m]
            if mask.any():
                log_q = log_q + self.predictors[m].bound_term(h_text[mask], h[m][mask]).mean()
                h_m = self.entropy[m](h[m][mask], labels[mask])
                entropy = entropy + h_m if h_m is not None else entropy
        return BoundTerms(log_q, entropy)


# --- the main stage's log q, per variant ------------------------------------------------------------


def full_log_q(q: GaussianPredictor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The code before the fix: the full density, gradients through the log-variance head too."""
    return gaussian_log_likelihood(y, q.mean(x), q.log_variance(x))


def mmim_log_q(q: GaussianPredictor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MMIM's bounded form in the main stage: no -1/2 log var term, so log q <= 0."""
    return -0.5 * (((y - q.mean(x)) ** 2) * torch.exp(-q.log_variance(x))).sum(-1)


def detached_x_log_q(q: GaussianPredictor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The log-variance and the text vector detached: the bound shapes the other modality only."""
    return gaussian_log_likelihood(y, q.mean(x.detach()), q.log_variance(x).detach())


MAIN_LOG_Q: dict[str, LogQ | None] = {
    "detached": None,  # the shipped `GaussianPredictor.bound_term`
    "full": full_log_q,
    "mmim": mmim_log_q,
    "detached-x": detached_x_log_q,
}
LOG_JITTER = math.log(ModelConfig().entropy_jitter)


@dataclass(frozen=True)
class Variant:
    """One way of computing the bound. ``shipped`` is the code as it is, unpatched."""

    name: str
    what: str
    alpha: float = 0.1
    shipped: bool = False
    q_models: Literal["h", "projection"] = "h"  # q over h_m (the paper, the old code) or over g(h_m)
    main: Literal["detached", "full", "mmim", "detached-x"] = "detached"  # the main stage's log q
    floor: float | None = None  # q's log-variance floor, in both stages
    trained_projection: bool = False  # the old code: the entropy projection in the main optimiser

    def build(self, seed: int) -> SentimentModel:
        model, mi_rng = tiny_model(seed)
        if self.shipped:
            return model
        c = model.config
        if self.q_models == "h":
            rng = torch.get_rng_state()
            torch.set_rng_state(mi_rng)
            model.mi = FullWidthMIBound(
                c.hidden, c.mi_hidden, c.entropy_proj_dim, c.entropy_memory, c.entropy_jitter, self.floor
            )
            torch.set_rng_state(rng)
        main_log_q = MAIN_LOG_Q[self.main]
        for q in model.mi.predictors.values():
            q.logvar_floor = self.floor
            if main_log_q is not None:
                q.bound_term = _bind(main_log_q, q)
        if self.trained_projection:
            for est in model.mi.entropy.values():
                fixed = est.project[0]
                linear = nn.Linear(fixed.weight.shape[1], fixed.weight.shape[0])
                with torch.no_grad():
                    linear.weight.copy_(fixed.weight)
                    linear.bias.copy_(fixed.bias)
                est.project = nn.Sequential(linear, nn.Tanh())
        return model


def _bind(log_q: LogQ, q: GaussianPredictor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, y: log_q(q, x, y)


VARIANTS = {
    v.name: v
    for v in (
        Variant("no-mi", "alpha 0: no MI term (q still fitted, for its log-variance)", alpha=0.0, shipped=True),
        Variant(
            "old",
            "the code before the fix: q over h, full log q, trained projection",
            main="full",
            trained_projection=True,
        ),
        Variant("old+fixed-proj", "q over h, full log q, fixed projection", main="full"),
        Variant("detach", "q over h, log-variance detached, fixed projection"),
        Variant("detach+trained-proj", "q over h, log-variance detached, trained projection", trained_projection=True),
        Variant("mmim", "q over h, MMIM's form in the main stage (no log var term), fixed projection", main="mmim"),
        Variant("floor-4", "q over h, full log q, log-variance floor -4, fixed projection", main="full", floor=-4.0),
        Variant("detach+floor-4", "q over h, log-variance detached and floored at -4, fixed projection", floor=-4.0),
        Variant("detach+floor-3", "q over h, log-variance detached and floored at -3, fixed projection", floor=-3.0),
        Variant("detach+floor-2", "q over h, log-variance detached and floored at -2, fixed projection", floor=-2.0),
        Variant("detach-x", "q over h, log-variance and text vector detached, fixed projection", main="detached-x"),
        Variant("proj-q", "q over g(h), log-variance detached, no floor", q_models="projection"),
        Variant(
            "proj-q+floor",
            "q over g(h), log-variance detached, floored at log(jitter): the shipped code, patched",
            q_models="projection",
            floor=LOG_JITTER,
        ),
        Variant("shipped", "the code as it is (should equal proj-q+floor)", shipped=True),
    )
}


# The rows of the table in docs/model-spec.md section 9.
DEFAULT = (
    "no-mi",
    "old",
    "old+fixed-proj",
    "detach+trained-proj",
    "detach",
    "mmim",
    "floor-4",
    "detach+floor-4",
    "detach+floor-3",
    "detach+floor-2",
    "detach-x",
    "proj-q",
    "shipped",
)


# --- one run --------------------------------------------------------------------------------------


@torch.no_grad()
def text_std(model: SentimentModel, samples: list[Sample], collator: Collator) -> float:
    """Mean over dimensions of the text utterance vector's standard deviation over ``samples``."""
    was_training = model.training
    model.eval()
    std = float(model(collator(samples)).utterances["text"].std(0).mean())
    model.train(was_training)
    return std


@torch.no_grad()
def measure(model: SentimentModel, samples: list[Sample], collator: Collator) -> dict[str, float]:
    """Spread of the utterance vectors, the bound's terms and q's log-variance on ``samples``."""
    model.eval()
    model.mi.reset_memory()  # H from these samples alone
    batch = collator(samples)
    out = model(batch)
    utt = out.utterances
    both = {m: out.present[:, 0] & out.present[:, i] for i, m in ((1, "acoustic"), (2, "visual"))}
    terms = model.mi.terms(utt["text"], utt, both, batch.labels)
    logvar = torch.stack([model.mi.predictors[m].log_variance(utt["text"]).mean() for m in MIBound.PAIRS])
    return {
        "text_std": float(utt["text"].std(0).mean()),
        "acoustic_std": float(utt["acoustic"].std(0).mean()),
        "visual_std": float(utt["visual"].std(0).mean()),
        "valid_log_q": float(terms.log_q),
        "valid_entropy": float(terms.entropy),
        "q_logvar": float(logvar.mean()),
    }


def _loader(variant: Variant, seed: int) -> Callable[..., Checkpoint]:
    """`load_checkpoint` for `fit`'s reload of the best epoch: into this variant's model, whose
    q may not have the stock shapes."""

    def load(path: str | Path, device: str = "cpu") -> Checkpoint:
        model = variant.build(seed)
        load_state(model, Path(path) / WEIGHTS_FILE, read_checkpoint_config(path)["backbone_weights"])
        return Checkpoint(model=model.to(device).eval(), tokenizer=None)

    return load


def run_one(
    variant: Variant, seed: int, epochs: int, data: dict[str, list[Sample]], tokenizer: object
) -> dict[str, float | list[float]]:
    model = variant.build(seed)
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=32,
        lr=3e-3,
        text_lr=3e-3,
        patience=epochs,
        seed=seed,
        alpha=variant.alpha,
        beta=0.0,
    )
    c = model.config
    collator = Collator.for_model(tokenizer, c)
    trajectory: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(training, "load_checkpoint", _loader(variant, seed)):
        result = fit(
            model,
            tokenizer,
            data,
            cfg,
            tmp,
            progress=False,
            on_epoch_end=lambda _: trajectory.append(text_std(model, data["valid"], collator)),
        )
        log = [json.loads(line) for line in (Path(tmp) / "log.jsonl").read_text().splitlines()]
    row: dict[str, float | list[float]] = dict(measure(model, data["valid"], collator))
    last = log[-1]
    row.update(
        text_std_by_epoch=trajectory,
        l_si_by_epoch=[r["mi"] for r in log],
        train_l_si=last["mi"],
        train_log_q=last.get("mi_log_q", math.nan),
        train_entropy=last.get("mi_entropy", math.nan),
        mae_last=last["valid_mae"],
        mae_best=result.valid["mae"],
    )
    return row


COLUMNS = (
    ("text_std", "text std", "{:.5f}"),
    ("acoustic_std", "acoustic std", "{:.4f}"),
    ("visual_std", "visual std", "{:.4f}"),
    ("train_l_si", "L_SI (last epoch)", "{:.1f}"),
    ("train_log_q", "log q (train)", "{:.1f}"),
    ("train_entropy", "H (train)", "{:.1f}"),
    ("valid_log_q", "log q (valid)", "{:.1f}"),
    ("valid_entropy", "H (valid)", "{:.1f}"),
    ("q_logvar", "q log-var", "{:.2f}"),
    ("mae_last", "MAE last", "{:.3f}"),
    ("mae_best", "MAE best", "{:.3f}"),
)


def _fmt(v: float | list[float]) -> str:
    return "[" + " ".join(f"{x:.3g}" for x in v) + "]" if isinstance(v, list) else f"{v:.5g}"


def table(results: dict[str, dict[int, dict[str, float | list[float]]]]) -> str:
    """A markdown table of the mean over seeds of each column, per variant."""
    head = "| variant | text std per seed | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 2)]
    for name, per_seed in results.items():
        cells = [" / ".join(f"{r['text_std']:.5f}" for r in per_seed.values())]
        for key, _, fmt in COLUMNS:
            vals = np.array([r[key] for r in per_seed.values()], dtype=np.float64)
            cells.append(fmt.format(float(vals.mean())))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated training seeds (default 1,2,3)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--variants", default=",".join(DEFAULT), help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--json", type=Path, help="also write every seed's numbers here")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n.strip() for n in args.variants.split(",")]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(2)
    # Every run here has all three streams and no modality dropout (the setting): fit's
    # warning about untrained stand-ins would repeat once per run and say nothing new.
    logging.getLogger("msa.training.loop").setLevel(logging.ERROR)
    tokenizer = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    data = make_synthetic(
        "mosi", n_train=256, n_valid=64, n_test=0, seed=11, signal="acoustic", min_frames=3, max_frames=10
    )
    results: dict[str, dict[int, dict[str, float | list[float]]]] = {}
    for name in names:
        for seed in seeds:
            row = run_one(VARIANTS[name], seed, args.epochs, data, tokenizer)
            results.setdefault(name, {})[seed] = row
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in row.items()), flush=True)
    print()
    print(f"mean over seeds {seeds}, {args.epochs} epochs; text/acoustic std on the validation samples")
    for name in names:
        print(f"  {name}: {VARIANTS[name].what}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
