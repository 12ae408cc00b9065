"""A trained Fusion Lab model on one clip of its world, beside the world's truth: the same
`Run` (score, exact Shapley values, per-word shares, attention, what-ifs) the Analyse tab shows
for a video, plus what the rule says about that clip.

    explorer = Explorer(run)                   # a LabRun that has trained
    view = explorer.clip(run.names[0], 3)      # the 4th test clip
    view.run.explanation.contributions         # the model's Shapley values
    view.truth                                 # the rule's
    explorer.save(run.names[0], "checkpoints/lab-face-flips")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..features import FeatureExtractor
from ..model.checkpoint import Checkpoint, card_starts_with, save_with_card
from ..predict import Predictor, Run
from ..sample import Sample
from .run import LabRun
from .worlds import VOICE_STREAM, World, WorldError

# How a clip's cue is named on the page: the modality whose stream carries it, and what it is.
CUE_NAMES = {
    "voice": ("acoustic", "voice cue"),
    "face": ("visual", "face cue"),
    "flip": ("visual", "raised brows"),
}


@dataclass
class ClipView:
    """One test clip: the model's run on it and the rule's own account of it."""

    clip: Sample
    run: Run
    truth: dict[str, float]  # the rule's exact Shapley values
    parts: dict[str, float]  # what each part of the rule adds ("flip" is -1 when reversed)
    cues: dict[str, dict[str, Any]]  # cue name -> {"word": index, "window": (start, end)}
    flipped: bool

    @property
    def label(self) -> float:
        return float(self.clip.label)


def clip_title(clip: Sample) -> str:
    """A clip as the picker lists it: its label and marks (whether the face flipped it, a
    missing stream) first, so that a narrow picker cuts only the words, then its words."""
    flipped = clip.meta["parts"]["flip"] < 0 and clip.meta["present"][2]
    missing = [name for name, have in zip(("voice", "face"), clip.meta["present"][1:]) if not have]
    tags = (["flipped"] if flipped else []) + [f"no {m}" for m in missing]
    extra = f", {', '.join(tags)}" if tags else ""
    return f"label {clip.label:+.2f}{extra}: \u201c{clip.text}\u201d"


class Explorer:
    """The trained variants of a `LabRun`, each behind its own in-memory `Predictor`."""

    def __init__(self, run: LabRun, extractor: FeatureExtractor | None = None):
        if not run.variants:
            raise WorldError("train first: there is no model to look at yet")
        self.run = run
        self.extractor = (extractor or FeatureExtractor()).with_voice_stream(VOICE_STREAM)
        self._predictors: dict[str, Predictor] = {}
        # The clip on screen: redrawing its attention or asking a what-if does not score it again.
        self._shown: tuple[tuple[str, int], ClipView] | None = None

    @property
    def world(self) -> World:
        return self.run.world

    @property
    def test(self) -> list[Sample]:
        return self.run.splits["test"]

    def checkpoint(self, name: str) -> Checkpoint:
        """The variant's best model as a checkpoint (in memory) that the app's views accept."""
        _, tokenizer = self.run.text_reader()
        return Checkpoint(
            model=self.run.model(name),
            tokenizer=tokenizer,
            feature_spec=self.extractor.spec,
            training=self.run.training_record(name),
            meta={"lab": {"world": self.world.to_dict(), "rule": self.world.rule, "variant": name}},
            title=f"Fusion Lab: {name}",
        )

    def predictor(self, name: str) -> Predictor:
        if name not in self._predictors:
            self._predictors[name] = Predictor(self.checkpoint(name), extractor=self.extractor)
        return self._predictors[name]

    def clip(self, name: str, index: int) -> ClipView:
        """Test clip ``index`` scored and explained by variant ``name``."""
        if not 0 <= index < len(self.test):
            raise WorldError(f"clip {index + 1}: the test split has clips 1 to {len(self.test)}")
        if self._shown is not None and self._shown[0] == (name, index):
            return self._shown[1]
        clip = self.test[index]
        absent = {
            m: f"this clip of the world has no {word}"
            for m, word, have in (
                ("acoustic", "voice", clip.meta["present"][1]),
                ("visual", "face", clip.meta["present"][2]),
            )
            if not have
        }
        run = self.predictor(name).run_features(clip, clip.meta["words"], clip.meta["duration"], absent)
        parts = clip.meta["parts"]
        view = ClipView(
            clip=clip,
            run=run,
            truth=self.world.truth(clip),
            parts=dict(parts),
            cues=dict(clip.meta["cues"]),
            flipped=bool(parts["flip"] < 0 and clip.meta["present"][2]),
        )
        self._shown = ((name, index), view)
        return view

    def what_if(self, name: str, view: ClipView, drop: list[str]) -> Run:
        """The clip again without the voice and/or the face (the Shapley subset it is)."""
        return self.predictor(name).what_if(view.run, drop)

    def save(self, name: str, folder: str | Path) -> Path:
        """Write variant ``name`` as a checkpoint folder the app's picker lists, with a model card.

        The folder is written aside and swapped in whole (never half a checkpoint); an existing
        folder of that name is replaced only if it is itself a lab checkpoint.
        """
        folder = Path(folder)
        if folder.exists() and not card_starts_with(folder, CARD_TITLE):
            raise WorldError(f"{folder.name} exists and is not a saved lab model: choose another name")
        ck = self.checkpoint(name)
        recipe = next(v.recipe.to_dict() for v in self.run.variants if v.name == name)
        return save_with_card(folder, ck, model_card(self.world, name, self.run), meta={**ck.meta, "recipe": recipe})


CARD_TITLE = "# Fusion Lab model"  # how `Explorer.save` recognises a folder it may replace


def model_card(world: World, name: str, run: LabRun) -> str:
    """What a saved lab model is, for whoever picks it later."""
    variant = next(v for v in run.variants if v.name == name)
    recipe = dataclasses.asdict(variant.recipe)
    return "\n".join(
        [
            f"{CARD_TITLE}: {name}",
            "",
            "Trained in the Fusion Lab on a synthetic world, not on real clips.",
            "",
            f"**The world's rule.** {world.rule}",
            "",
            f"**World settings.** {world.to_dict()}",
            "",
            f"**Model.** {recipe}; best validation epoch {variant.loop.best_epoch} of {variant.loop.epoch}.",
            "",
            "**On a real clip.** Its text branch reads the words through a frozen MiniLM with a head trained "
            "on the world's 30-word vocabulary. Its voice and face branches learned the world's cues in "
            "standardised units; this checkpoint stores no normaliser, so on a real clip they read the "
            "extractor's raw numbers and their part of the score means nothing.",
            "",
        ]
    )


__all__ = ["CUE_NAMES", "ClipView", "Explorer", "clip_title", "model_card"]
