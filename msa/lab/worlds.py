"""Worlds for the Fusion Lab: the timed worlds of `msa.data.synthetic` (`TimedWorld`: timed
words, a voice and a face with cues in one word's window, flips, missing streams, label noise),
shaped like the extractor's streams, with the rule's own exact Shapley values and the presets a
learner starts from.

The streams are what the model sees after a checkpoint's normaliser (standardised noise): the
voice at the extractor's 50 frames/s and width, the face at its rate and blendshape-and-pose
width, so a lab model reads what the app would feed it. `World.truth` gives the rule's exact
Shapley values per clip (a modality left out at its average over the world), to set beside the
model's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..data.synthetic import MAX_CLIPS, StreamShape, TimedWorld, WorldError
from ..explain.shapley import Subset, shapley_values
from ..features.spec import ACOUSTIC_FEATURES, VISUAL_FEATURES, FeatureSpec
from ..sample import Sample

# A world's voice is the librosa stream (21 named values: a cue moves loudness and pitch, which a
# learner can picture); the app makes it too, so a saved lab model reads what the app would feed it.
VOICE_STREAM = "librosa"
# The extractor's rates and widths (its defaults), so a lab model reads what the app would feed it.
_SPEC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FeatureSpec)}
ACOUSTIC_RATE: float = float(_SPEC_DEFAULTS["acoustic_rate"])
VISUAL_RATE: float = float(_SPEC_DEFAULTS["visual_rate"])
ACOUSTIC_DIM, VISUAL_DIM = len(ACOUSTIC_FEATURES), len(VISUAL_FEATURES)
VOICE = StreamShape(ACOUSTIC_RATE, ACOUSTIC_FEATURES)
FACE = StreamShape(VISUAL_RATE, VISUAL_FEATURES)


class World(TimedWorld):
    """A timed world (`msa.data.synthetic.TimedWorld`, its settings and rule) whose clips have the
    extractor's streams, and the rule's exact Shapley values."""

    def splits(self, voice: StreamShape = VOICE, face: StreamShape = FACE) -> dict[str, list[Sample]]:
        """The world's clips by split, with the extractor's streams unless told otherwise."""
        return super().splits(voice, face)

    def truth(self, clip: Sample) -> dict[str, float]:
        """The rule's exact Shapley values for one clip of this world, noise and clipping aside:
        those of v(S), what the rule predicts knowing only the modalities in S
        (`TimedWorld.subset_values`), as a model trained with modality dropout learns its
        stand-ins to mean, so its Shapley values are comparable."""
        have: Subset = tuple(clip.meta["present"])  # type: ignore[assignment]
        return shapley_values(have, self.subset_values(clip)).values


PRESETS: dict[str, World] = {
    "words-only": World(words=1.0),
    "voice-adds": World(words=1.0, voice=1.0),
    "face-flips": World(words=1.0, flip=0.3),
    "voice-and-face-agree": World(words=0.5, voice=0.8, face=0.8),
    "missing-face": World(words=0.8, face=1.0, missing_face=0.4),
}


def preset(name: str, **changes: Any) -> World:
    """A preset world, with ``changes`` to its settings (e.g. ``seed=3``)."""
    if name not in PRESETS:
        raise WorldError(f"no world called {name!r}; the presets are {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **changes)


# MAX_CLIPS and WorldError are the timed world's; the Lab's tab and CLI meet them here.
__all__ = ["ACOUSTIC_RATE", "MAX_CLIPS", "PRESETS", "VISUAL_RATE", "World", "WorldError", "preset"]
