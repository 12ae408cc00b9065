"""Worlds for the Fusion Lab: synthetic clips shaped like the extractor's streams, whose label
follows a rule a learner reads in one sentence.

A clip is a short sentence of timed words (positive, negative and neutral words a tokenizer
knows), an acoustic stream at the extractor's 50 frames/s and width, and a visual stream at its
face rate and blendshape-and-pose width, both as the model sees them after a checkpoint's
normaliser (standardised noise). A cue sits in the time window of one word, so attention over
time has a right answer: a louder, higher voice (or a quiet, flat one) on that word, a smile (or
a frown) while it is said, or raised brows that reverse the words' sentiment, as sarcasm does.

    label = flip x words + voice + face + noise, clipped to [-3, 3]

where the face's parts count only when the clip has a face and the voice's only when it has a
voice. `World.truth` gives the rule's own exact Shapley values per clip (a modality left out at
its average over the world), to set beside the model's.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..explain.shapley import shapley_values
from ..features.spec import ACOUSTIC_FEATURES, VISUAL_FEATURES, FeatureSpec
from ..sample import LABEL_MAX, LABEL_MIN, SPLITS, Sample, TimedWord

POSITIVE = ("great", "good", "love", "wonderful", "fun", "brilliant")
NEGATIVE = ("awful", "bad", "boring", "hate", "terrible", "dull")
NEUTRAL = ("the", "movie", "plot", "actors", "was", "it", "really", "and", "film", "story", "this", "so")

# A world's voice is the librosa stream (21 named values: a cue moves loudness and pitch, which a
# learner can picture); the app makes it too, so a saved lab model reads what the app would feed it.
VOICE_STREAM = "librosa"
# The extractor's rates and widths (its defaults), so a lab model reads what the app would feed it.
_SPEC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FeatureSpec)}
ACOUSTIC_RATE: float = float(_SPEC_DEFAULTS["acoustic_rate"])
VISUAL_RATE: float = float(_SPEC_DEFAULTS["visual_rate"])
ACOUSTIC_DIM, VISUAL_DIM = len(ACOUSTIC_FEATURES), len(VISUAL_FEATURES)

# Which columns each cue moves, by the extractor's feature names.
VOICE_CUE = ("log_energy", "log_f0", "periodicity")  # louder, higher, more voiced: + ; the opposite: -
# A face cue moves several blendshapes at once, as a real expression does: at 5 frames/s a word
# spans 2-4 frames, and one or two columns' noise would hide it as often as not.
SMILE = ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight")
FROWN = ("mouthFrownLeft", "mouthFrownRight", "browDownLeft", "browDownRight")
RAISED_BROWS = ("browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeWideLeft", "eyeWideRight")
CUE_SIZE = 2.5  # standard deviations: plain to see in one frame, yet inside the normaliser's clip (10)

WORD_SECONDS = (0.45, 0.8)  # each word's spoken length, uniform; a face-rate window holds 2-4 frames
SPLIT_SHARES = {"train": 0.6, "valid": 0.2, "test": 0.2}
MAX_CLIPS = 4000  # a lab run trains on a CPU in seconds; more clips is a benchmark, not a lesson


class WorldError(ValueError):
    """A world's settings out of range, with what is accepted."""


@dataclass(frozen=True)
class World:
    """A world's settings: how much each modality moves the label and what is missing.

    Attributes
    ----------
    words : score of one sentiment word (a positive word +words, a negative one -words).
    voice : what the voice cue adds (+voice for a loud, high word; -voice for a quiet, flat one).
    face : what the face cue adds (+face for a smile during a word; -face for a frown).
    flip : share of clips whose face raises its brows during a word: the words' sentiment is
        reversed (sarcasm). Needs the words and the face together.
    noise : standard deviation of label noise.
    missing_voice, missing_face : share of clips without that stream.
    clips : clips in all (split 60/20/20 into train, valid, test).
    seed : the world is a deterministic function of its settings.
    """

    words: float = 1.0
    voice: float = 0.0
    face: float = 0.0
    flip: float = 0.0
    noise: float = 0.1
    missing_voice: float = 0.0
    missing_face: float = 0.0
    clips: int = 600
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("words", "voice", "face"):
            if not 0.0 <= getattr(self, name) <= 2.0:
                raise WorldError(f"{name} = {getattr(self, name)}: each modality's weight is in [0, 2]")
        for name in ("flip", "missing_voice", "missing_face"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise WorldError(f"{name} = {getattr(self, name)}: a share of clips is in [0, 1]")
        if not 0.0 <= self.noise <= 1.0:
            raise WorldError(f"noise = {self.noise}: the label noise's standard deviation is in [0, 1]")
        if not 20 <= self.clips <= MAX_CLIPS:
            raise WorldError(f"clips = {self.clips}: a world has 20 to {MAX_CLIPS} clips")

    @property
    def rule(self) -> str:
        """The rule in one sentence."""
        parts = []
        if self.words:
            parts.append(f"each positive word adds {self.words:g} and each negative word takes {self.words:g} away")
        if self.voice:
            parts.append(f"a loud, high voice on one word adds {self.voice:g} (a quiet, flat one takes it away)")
        if self.face:
            parts.append(f"a smile during one word adds {self.face:g} (a frown takes it away)")
        text = "; ".join(parts) if parts else "the label is noise"
        if self.flip:
            text += (
                f"; in {self.flip:.0%} of clips the face raises its brows during a word and the words mean the opposite"
            )
        missing = [
            f"{share:.0%} of clips have no {name}"
            for name, share in (("voice", self.missing_voice), ("face", self.missing_face))
            if share
        ]
        if missing:
            text += "; " + " and ".join(missing) + " (then that stream's cues are not there and do not count)"
        return text[0].upper() + text[1:] + "."

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def splits(self) -> dict[str, list[Sample]]:
        """The world's clips by split; each clip's ``meta`` holds its words, cue and label parts."""
        rng = np.random.default_rng(self.seed)
        clips = [self._clip(i, rng) for i in range(self.clips)]
        n_train = round(self.clips * SPLIT_SHARES["train"])
        n_valid = round(self.clips * SPLIT_SHARES["valid"])
        bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, self.clips)}
        return {
            s: [dataclasses.replace(c, meta={**c.meta, "split": s}) for c in clips[slice(*bounds[s])]] for s in SPLITS
        }

    def _clip(self, i: int, rng: np.random.Generator) -> Sample:
        n_words = int(rng.integers(4, 8))
        n_polar = int(rng.integers(1, 3))
        signs = rng.choice([-1, 1], size=n_polar)
        words = list(rng.choice(NEUTRAL, size=n_words - n_polar))
        for s in signs:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if s > 0 else NEGATIVE)))
        timed, t = [], 0.2
        for w in words:
            length = float(rng.uniform(*WORD_SECONDS))
            timed.append(TimedWord(str(w), round(t, 3), round(t + length, 3)))
            t += length + 0.05
        duration = t + 0.25

        has_voice = rng.random() >= self.missing_voice
        has_face = rng.random() >= self.missing_face
        voice_sign = int(rng.choice([-1, 1])) if self.voice else 0
        face_sign = int(rng.choice([-1, 1])) if self.face else 0
        flipped = bool(rng.random() < self.flip)
        cue_word = {m: int(rng.integers(0, n_words)) for m in ("voice", "face", "flip")}

        acoustic = rng.standard_normal((math.ceil(duration * ACOUSTIC_RATE), ACOUSTIC_DIM)).astype(np.float32)
        visual = rng.standard_normal((math.ceil(duration * VISUAL_RATE), VISUAL_DIM)).astype(np.float32)
        if voice_sign:
            _raise(
                acoustic, ACOUSTIC_RATE, timed[cue_word["voice"]], _columns(ACOUSTIC_FEATURES, VOICE_CUE), voice_sign
            )
        if face_sign:
            shape = SMILE if face_sign > 0 else FROWN
            _raise(visual, VISUAL_RATE, timed[cue_word["face"]], _columns(VISUAL_FEATURES, shape), 1)
        if flipped:
            _raise(visual, VISUAL_RATE, timed[cue_word["flip"]], _columns(VISUAL_FEATURES, RAISED_BROWS), 1)

        parts = {
            "words": self.words * float(signs.sum()),
            "voice": self.voice * voice_sign,
            "face": self.face * face_sign,
            "flip": -1 if flipped else 1,
        }
        present = (True, has_voice, has_face)
        label = _rule(parts, present) + self.noise * float(rng.standard_normal())
        cues = {
            m: {"word": cue_word[m], "window": (timed[cue_word[m]].start, timed[cue_word[m]].end)}
            for m, on in (
                ("voice", voice_sign and has_voice),
                ("face", face_sign and has_face),
                ("flip", flipped and has_face),
            )
            if on
        }
        return Sample(
            id=f"world-{self.seed}-{i}",
            text=" ".join(words),
            acoustic=acoustic if has_voice else None,
            visual=visual if has_face else None,
            label=float(np.clip(label, LABEL_MIN, LABEL_MAX)),
            meta={
                "words": timed,
                "duration": duration,
                "parts": parts,
                "present": present,
                "cues": cues,
                "visual_times": np.arange(len(visual)) / VISUAL_RATE if has_face else None,
            },
        )

    def truth(self, clip: Sample) -> dict[str, float]:
        """The rule's exact Shapley values for one clip of this world, noise and clipping aside.

        v(S) is what the rule predicts knowing only the modalities in S: the parts of the others
        at their average over the world (words, voice and face cues average 0; an unseen face
        reverses the words with the world's share of flips). This is what a model trained with
        modality dropout learns its stand-ins to mean, so its Shapley values are comparable.
        """
        parts, have = clip.meta["parts"], tuple(clip.meta["present"])
        unseen_flip = (1 - self.missing_face) * (1 - 2 * self.flip) + self.missing_face
        value = {}
        for s in itertools.product((False, True), repeat=3):
            text, voice, face = (a and h for a, h in zip(s, have))
            words = parts["words"] if text else 0.0
            flip = parts["flip"] if face else unseen_flip
            value[s] = flip * words + (parts["voice"] if voice else 0.0) + (parts["face"] if face else 0.0)
        return shapley_values(have, value).values  # type: ignore[arg-type]


def _rule(parts: dict[str, float], present: tuple[bool, bool, bool]) -> float:
    """The label without noise, given which streams the clip has (a missing one's cues do not count)."""
    text, voice, face = present
    words = parts["words"] if text else 0.0
    flip = parts["flip"] if face else 1
    return flip * words + (parts["voice"] if voice else 0.0) + (parts["face"] if face else 0.0)


def _columns(names: tuple[str, ...], wanted: tuple[str, ...]) -> list[int]:
    return [names.index(n) for n in wanted]


def frames_of(word: TimedWord, rate: float, n_frames: int) -> np.ndarray:
    """The frames (at ``k / rate`` seconds) said during ``word``: the cue's right answer for
    attention. A word shorter than a frame step gets the frame nearest its middle."""
    times = np.arange(n_frames) / rate
    inside = np.flatnonzero((times >= word.start) & (times < word.end))
    if inside.size:
        return inside
    return np.array([min(n_frames - 1, round((word.start + word.end) / 2 * rate))])


def _raise(frames: np.ndarray, rate: float, word: TimedWord, columns: list[int], sign: int) -> None:
    """Move ``columns`` by ``sign x CUE_SIZE`` in the frames said during ``word``."""
    frames[np.ix_(frames_of(word, rate, len(frames)), columns)] += sign * CUE_SIZE


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


__all__ = ["PRESETS", "World", "WorldError", "frames_of", "preset"]
