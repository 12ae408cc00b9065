"""A Fusion Lab run: one world, one or two recipes trained side by side (an epoch of each in
turn), then measured against the world's truth and two baselines.

    run = LabRun(preset("face-flips"), [Recipe(), Recipe(gates="none")])
    for progress in run.train():      # one item per finished epoch: draw it, or stop iterating
        print(progress.line())
    result = run.finish()             # test MAE, baselines, Shapley values beside the truth
    print(result.to_dict())

The page's Lab tab, ``python -m msa lab`` and a notebook all go through this class. Training is
`msa.training.loop.run_epochs` (the loop `train.py` uses), selection on the validation clips
with the best weights kept in memory, the test clips touched once in `finish`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from ..config import MODALITIES
from ..data import Collator
from ..explain import shapley_batch
from ..model import SentimentModel
from ..model.checkpoint import TrainingRecord, trained_state
from ..model.text_cache import attach
from ..sample import Sample
from ..threads import one_thread
from ..training.loop import LoopState, cache_text, make_optimisers, predict_scores, run_epochs, set_seed
from .baselines import BASELINE_NAMES, oracles
from .recipe import Recipe, text_reader
from .worlds import World, WorldError

MAX_VARIANTS = 2
TEXT_ONLY = "the words alone"


@dataclass
class Variant:
    """One recipe being trained: its model, its loop, and the best weights so far."""

    name: str
    recipe: Recipe
    model: SentimentModel
    data: dict[str, list[Sample]]
    loop: LoopState = field(default_factory=LoopState)
    best_state: dict[str, torch.Tensor] | None = None
    seconds: float = 0.0

    @property
    def history(self) -> list[dict[str, float]]:
        """Per epoch: the training task loss (MAE) and the validation MAE."""
        return [
            {"epoch": r["epoch"], "train": r["task"], "valid": r["valid_mae"], "seconds": r["seconds"]}
            for r in self.loop.log
        ]

    def keep_best(self) -> SentimentModel:
        """The model with the weights of its best validation epoch, in eval mode."""
        if self.best_state is None:
            raise WorldError(f"{self.name}: stopped before its first epoch ended, so there is no model to show")
        self.model.load_state_dict(self.best_state, strict=False)  # the frozen text encoder is shared
        return self.model.eval()


@dataclass
class Progress:
    """One finished epoch of one variant, for a live plot."""

    variant: str
    epoch: int
    train: float
    valid: float
    elapsed: float  # seconds since the run started

    def line(self) -> str:
        return f"{self.variant}: epoch {self.epoch}  train MAE {self.train:.3f}  valid MAE {self.valid:.3f}"


class ErrorRow(NamedTuple):
    """One line of a run's error table: a trained model (``trained``) or a baseline."""

    name: str
    mae: float
    mae_flipped: float | None  # on the flipped test clips; None where the world flips none (or a baseline)
    trained: bool


@dataclass
class LabResult:
    """What a finished run measured (the ``--json`` object)."""

    world: World
    variants: dict[str, dict[str, Any]]  # name -> recipe, test MAE, Shapley means, history...
    baselines: dict[str, float]
    truth: dict[str, float]  # mean |Shapley value| of the rule over the test clips
    train_seconds: float
    stopped: str | None  # why training ended early, in words; None when it ran to the end
    preset: str | None = None

    def error_rows(self) -> list[ErrorRow]:
        """The test errors to read side by side: each trained model, then each baseline."""
        rows = [ErrorRow(name, v["test_mae"], v["test_mae_flipped"], True) for name, v in self.variants.items()]
        rows += [
            ErrorRow(label, self.baselines[k], None, False)
            for k, label in BASELINE_NAMES.items()
            if k in self.baselines
        ]
        return rows

    def to_dict(self) -> dict[str, Any]:
        first = next(iter(self.variants.values()))
        return {
            "preset": self.preset,
            "rule": self.world.rule,
            "world": self.world.to_dict(),
            "train_seconds": self.train_seconds,
            "test_mae": first["test_mae"],
            "baselines": self.baselines,
            "shapley": first["shapley"],
            "truth": self.truth,
            "history": first["history"],
            "variants": self.variants,
            "stopped": self.stopped,
        }


class LabRun:
    """Train ``recipes`` (one or two) on ``world``, and the first recipe on the words alone.

    Parameters
    ----------
    world : the world; its clips are made here.
    recipes : one recipe, or two to compare (e.g. gates against no gates).
    max_seconds : training stops after the epoch that crosses this (a public Space's cap); the
        best epochs so far are kept and `LabResult.stopped` says so.
    preset : the preset's name, for the result (None for a custom world).
    """

    def __init__(
        self,
        world: World,
        recipes: Sequence[Recipe],
        max_seconds: float | None = None,
        preset: str | None = None,
    ):
        if not 1 <= len(recipes) <= MAX_VARIANTS:
            raise WorldError(f"a lab run trains 1 or {MAX_VARIANTS} recipes side by side, got {len(recipes)}")
        names = [r.name for r in recipes]
        if len(set(names)) < len(names):
            names = [f"{n} (seed {r.seed})" for n, r in zip(names, recipes)]
        if len(set(names)) < len(names):
            raise WorldError("the two recipes are the same: change the gates, a loss or the seed of one")
        if len({r.text_encoder for r in recipes}) > 1:
            raise WorldError("the two recipes read the words with different text encoders: give them the same one")
        self.world, self.recipes, self.names = world, list(recipes), names
        self.max_seconds, self.preset = max_seconds, preset
        self.variants: list[Variant] = []
        self.stopped: str | None = None
        self._started = 0.0
        self._trained = 0.0

    @functools.cached_property
    def splits(self) -> dict[str, list[Sample]]:
        """The world's clips by split, made when first needed: a run asked for only to be served
        from the kept runs (`msa.lab.cache`) never makes them."""
        return self.world.splits()

    def _variant(self, name: str, recipe: Recipe, data: dict[str, list[Sample]]) -> Variant:
        backbone, _ = text_reader(recipe.text_encoder)
        set_seed(recipe.seed)
        return Variant(name, recipe, SentimentModel(recipe.model_config(), backbone), data)

    def train(self) -> Iterator[Progress]:
        """Train every variant, an epoch of each in turn, then the words-alone baseline; one
        `Progress` per finished epoch. Stop iterating to stop the training (`finish` then
        uses each variant's best epoch so far)."""
        self._started = time.perf_counter()
        words_alone = {
            k: [dataclasses.replace(c, acoustic=None, visual=None) for c in v] for k, v in self.splits.items()
        }
        self.variants = [self._variant(n, r, self.splits) for n, r in zip(self.names, self.recipes)]
        self.variants.append(self._variant(TEXT_ONLY, self.recipes[0], words_alone))
        _, tokenizer = self.text_reader()
        self.collator = Collator.for_model(tokenizer, self.variants[0].model.config)
        with one_thread():
            cache = cache_text(self.variants[0].model, self.splits, self.collator)  # one frozen encoder, one cache
        for v in self.variants[1:]:
            attach(v.model.text, cache)
        try:
            yield from self._interleave(self.variants[:-1])
            yield from self._interleave(self.variants[-1:])
        finally:
            self._trained = time.perf_counter() - self._started

    def _interleave(self, variants: list[Variant]) -> Iterator[Progress]:
        runs = {}
        for v in variants:
            cfg = v.recipe.train_config()
            runs[v.name] = (v, run_epochs(v.model, v.data, self.collator, make_optimisers(v.model, cfg), cfg, v.loop))
        while runs and self.stopped is None:
            for name, (v, epochs) in list(runs.items()):
                t0 = time.perf_counter()
                with one_thread():
                    report = next(epochs, None)
                v.seconds += time.perf_counter() - t0
                if report is None:
                    del runs[name]
                    continue
                if report.improved:
                    v.best_state = {k: t.detach().clone() for k, t in trained_state(v.model)[0].items()}
                elapsed = time.perf_counter() - self._started
                yield Progress(name, report.epoch, report.losses["task"], report.valid["mae"], elapsed)
                if self.max_seconds is not None and elapsed > self.max_seconds:
                    self.stopped = (
                        f"stopped at the time limit ({self.max_seconds:.0f} s): each model's best epoch so far is kept"
                    )

    def text_reader(self) -> tuple[Any, Any]:
        """The run's frozen text encoder and its tokenizer."""
        return text_reader(self.recipes[0].text_encoder)

    def stop(self, reason: str = "stopped by you: each model's best epoch so far is kept") -> None:
        """Mark the run stopped (the caller stops iterating `train`)."""
        self.stopped = self.stopped or reason

    def finish(self) -> LabResult:
        """Each variant's best model on the test clips, beside the baselines and the truth."""
        with one_thread():
            return self._measure()

    def _measure(self) -> LabResult:
        if not self.variants or all(v.best_state is None for v in self.variants[:-1]):
            raise WorldError("the run stopped before its first epoch ended: there is nothing to show yet")
        test = self.splits["test"]
        labels = np.array([c.label for c in test])
        flipped = np.array([c.meta["parts"]["flip"] < 0 and c.meta["present"][2] for c in test])
        variants = {}
        for v in self.variants[:-1]:
            if v.best_state is None:
                continue
            model = v.keep_best()
            errors = np.abs(predict_scores(model, test, self.collator) - labels)
            variants[v.name] = {
                "recipe": v.recipe.to_dict(),
                "test_mae": float(errors.mean()),
                "test_mae_flipped": float(errors[flipped].mean()) if flipped.any() else None,
                "best_epoch": v.loop.best_epoch,
                "epochs_run": v.loop.epoch,
                "train_seconds": v.seconds,
                "shapley": self.shapley_means(model),
                "history": v.history,
            }
        baselines = oracles(self.splits)
        text_only = self.variants[-1]
        if text_only.best_state is not None:
            preds = predict_scores(
                text_only.keep_best(), [dataclasses.replace(c, acoustic=None, visual=None) for c in test], self.collator
            )
            baselines = {"text_only": float(np.abs(preds - labels).mean()), **baselines}
        truth = {m: float(np.mean([abs(self.world.truth(c)[m]) for c in test])) for m in MODALITIES}
        return LabResult(self.world, variants, baselines, truth, self._trained, self.stopped, self.preset)

    def shapley_means(self, model: SentimentModel) -> dict[str, float]:
        """Mean |exact Shapley value| of each modality over the test clips."""
        test = self.splits["test"]
        with torch.no_grad():
            batch = self.collator(test)
            contributions = shapley_batch(model, model.encode(batch), batch.present)
        return {m: float(np.mean([abs(c.values[m]) for c in contributions])) for m in MODALITIES}

    def model(self, name: str) -> SentimentModel:
        """A trained variant's best model (for the views)."""
        for v in self.variants:
            if v.name == name:
                return v.keep_best()
        raise WorldError(f"no model called {name!r} in this run; it has {', '.join(self.names)}")

    def training_record(self, name: str) -> TrainingRecord:
        v = next(v for v in self.variants if v.name == name)
        return TrainingRecord.of(v.data["train"], v.recipe.modality_dropout)


def run_lab(
    world: World, recipes: Sequence[Recipe] = (Recipe(),), max_seconds: float | None = None, preset: str | None = None
) -> LabResult:
    """Train and measure in one call (the command line's and a notebook's way)."""
    run = LabRun(world, recipes, max_seconds, preset)
    for _ in run.train():
        pass
    return run.finish()


__all__ = ["LabResult", "LabRun", "Progress", "Recipe", "run_lab"]
