"""RAVDESS (Livingstone & Russo 2018) as sentiment data: its file names read, its emotions mapped
onto the sentiment scale, its actors dealt into folds.

The corpus labels emotions, acted by 24 professional actors on two lexically neutral sentences, so
only the voice (and, in its video files, the face) tells them apart. Its layout::

    Actor_NN/MM-VV-EE-II-SS-RR-NN.wav      e.g. Actor_09/03-01-04-01-02-02-09.wav

modality MM (01 audio-video, 02 video only, 03 audio only), vocal channel VV (01 speech, 02 song),
emotion EE, intensity II (01 normal, 02 strong; neutral has no strong), statement SS (01 "Kids are
talking by the door", 02 "Dogs are sitting by the door"), repetition RR, actor NN (odd male, even
female). Licence: CC BY-NC-SA 4.0; a model trained on it carries the same terms (`LICENCE`).

`scan` reads a folder in that layout without opening a file: every clip it can use, and every file
or folder it cannot, named with the reason. The media themselves are read by the app's extractor
(`msa.finetune.clips`), which takes any sample rate and channel count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CITATION = (
    "Livingstone S. R. and Russo F. A. (2018), The Ryerson Audio-Visual Database of Emotional Speech "
    "and Song (RAVDESS), PLoS ONE 13(5): e0196391"
)
LICENCE = "CC BY-NC-SA 4.0 (non-commercial, share-alike, attribution)"

EMOTIONS: dict[int, str] = {
    1: "neutral",
    2: "calm",
    3: "happy",
    4: "sad",
    5: "angry",
    6: "fearful",
    7: "disgust",
    8: "surprised",
}
INTENSITIES: dict[int, str] = {1: "normal", 2: "strong"}
STATEMENTS: dict[int, str] = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
MODALITIES: dict[int, str] = {1: "audio-video", 2: "video only", 3: "audio only"}
ACTORS = range(1, 25)

# Which emotions count as positive or negative voices when a score's separation is measured (ROC
# AUC): calm and happy against the four unpleasant ones; neutral and surprise are left out.
POSITIVE: tuple[str, ...] = ("calm", "happy")
NEGATIVE: tuple[str, ...] = ("sad", "angry", "fearful", "disgust")

# --- The mapping: emotion x intensity -> sentiment in [-3, 3] -------------------------------------
# Valence of each emotion word in Warriner, Kuperman & Brysbaert (2013), "Norms of valence, arousal,
# and dominance for 13,915 English lemmas", Behavior Research Methods 45: 1191-1207: the mean rating
# of all raters (V.Mean.Sum) on 1 (unhappy) ... 9 (happy). RAVDESS's "disgust" is read as the
# adjective "disgusted" (2.68; the noun is 3.32), as its other seven labels are adjectives.
WARRINER_VALENCE: dict[str, float] = {
    "neutral": 5.50,
    "calm": 6.89,
    "happy": 8.47,
    "sad": 2.10,
    "angry": 2.53,
    "fearful": 2.66,
    "disgust": 2.68,
    "surprised": 6.57,
}
# The 1-9 rating scale onto the 6 points of [-3, 3]; the centre is the rated valence of "neutral"
# itself (5.50, not the scale's 5), so that a neutral voice means 0.
VALENCE_SCALE = 6.0 / 8.0
# A strong take is the emotion fully expressed (the norm's value); a normal take moves 3/4 as far
# from neutral. No published valence norm separates the two intensities: this is our choice, in
# the spirit of the circumplex (Russell 1980), where intensity is the distance from the centre.
INTENSITY_WEIGHT: dict[str, float] = {"normal": 0.75, "strong": 1.0}


def emotion_value(emotion: str, intensity: str) -> float:
    """The sentiment value of an emotion at an intensity, in [-3, 3] (see `WARRINER_VALENCE`).

    Surprise, whose valence raters split on most (SD 2.20), lands mildly positive (+0.80 strong,
    +0.60 normal); calm, a pleasant state of low arousal, +1.04 / +0.78.
    """
    if emotion not in WARRINER_VALENCE:
        raise ValueError(f"unknown emotion {emotion!r}; known: {', '.join(WARRINER_VALENCE)}")
    if intensity not in INTENSITY_WEIGHT:
        raise ValueError(f"unknown intensity {intensity!r}; known: {', '.join(INTENSITY_WEIGHT)}")
    value = VALENCE_SCALE * (WARRINER_VALENCE[emotion] - WARRINER_VALENCE["neutral"]) * INTENSITY_WEIGHT[intensity]
    return float(min(3.0, max(-3.0, value)))


def mapping_table() -> list[tuple[str, float, float, float]]:
    """(emotion, Warriner valence, value at normal intensity, value at strong) for every emotion."""
    return [(e, WARRINER_VALENCE[e], emotion_value(e, "normal"), emotion_value(e, "strong")) for e in EMOTIONS.values()]


# --- File names -----------------------------------------------------------------------------------

NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
FOLDER = re.compile(r"^Actor_(\d{2})$")
MEDIA = (".wav", ".flac", ".mp4", ".mp3", ".m4a", ".webm", ".mov", ".mkv", ".avi")


class RavdessNameError(ValueError):
    """A file name that does not follow the corpus's layout; the message says which field and why."""


@dataclass(frozen=True)
class RavdessClip:
    """One RAVDESS recording, as its name describes it."""

    path: Path
    modality: str
    emotion: str
    intensity: str
    statement: int
    repetition: int
    actor: int

    @property
    def sentence(self) -> str:
        """What is said (known from the name): the gold transcript."""
        return STATEMENTS[self.statement]

    @property
    def label(self) -> float:
        return emotion_value(self.emotion, self.intensity)

    @property
    def speaker(self) -> str:
        return f"actor_{self.actor:02d}"

    @property
    def sex(self) -> str:
        return "male" if self.actor % 2 else "female"


def parse_name(path: Path) -> RavdessClip:
    """Read a RAVDESS file name; `RavdessNameError` names the field that is wrong."""
    m = NAME.match(path.stem)
    if m is None:
        raise RavdessNameError(
            "not a RAVDESS name (seven two-digit fields, e.g. 03-01-04-01-02-02-09"
            f"{path.suffix or '.wav'}: modality-channel-emotion-intensity-statement-repetition-actor)"
        )
    modality, channel, emotion, intensity, statement, repetition, actor = (int(g) for g in m.groups())
    checks = [
        (modality in MODALITIES, f"modality {modality:02d} (01 audio-video, 02 video only, 03 audio only)"),
        (channel in (1, 2), f"vocal channel {channel:02d} (01 speech, 02 song)"),
        (emotion in EMOTIONS, f"emotion code {emotion:02d} (01-08: " + ", ".join(EMOTIONS.values()) + ")"),
        (intensity in INTENSITIES, f"intensity {intensity:02d} (01 normal, 02 strong)"),
        (statement in STATEMENTS, f"statement {statement:02d} (01 or 02)"),
        (repetition in (1, 2), f"repetition {repetition:02d} (01 or 02)"),
        (actor in ACTORS, f"actor {actor:02d} (01-24)"),
    ]
    bad = [what for ok, what in checks if not ok]
    if bad:
        raise RavdessNameError("unknown " + "; unknown ".join(bad))
    if emotion == 1 and intensity == 2:
        raise RavdessNameError("neutral has no strong intensity (intensity 02 with emotion 01)")
    if channel == 2:
        raise RavdessNameError("a song (vocal channel 02): only speech is read")
    if modality == 2:
        raise RavdessNameError("video only (modality 02): there is no voice to learn from")
    return RavdessClip(
        path, MODALITIES[modality], EMOTIONS[emotion], INTENSITIES[intensity], statement, repetition, actor
    )


@dataclass
class RavdessScan:
    """What a folder in the RAVDESS layout holds: the usable clips and everything skipped."""

    root: Path
    clips: list[RavdessClip] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why", one per file or folder not used

    @property
    def actors(self) -> list[int]:
        return sorted({c.actor for c in self.clips})

    def missing_actors(self) -> list[int]:
        """The corpus's actors with no clip here (this repository's copy holds 20 of 24 on purpose)."""
        return [a for a in ACTORS if a not in set(self.actors)]


def scan(root: Path, actors: Iterable[int] | None = None) -> RavdessScan:
    """Every usable clip under ``root`` (``Actor_NN`` folders of RAVDESS-named media), sorted.

    Nothing is opened: a file that cannot be decoded is found when it is extracted. Skipped, each
    named with the reason: a name that breaks the layout, an unknown emotion code, a song or a
    video-only file, a file filed under another actor's folder, a file in no actor folder, a folder
    that is not ``Actor_NN``, a non-media file. ``actors`` keeps only those actors.

    Raises
    ------
    RavdessNameError
        When ``root`` is not a folder or holds no usable clip at all.
    """
    if not root.is_dir():
        raise RavdessNameError(f"{root}: not a folder (expected the corpus's Actor_01 ... Actor_24 folders)")
    wanted = None if actors is None else set(actors)
    out = RavdessScan(root)
    for entry in sorted(root.iterdir()):
        where = entry.relative_to(root)
        if entry.is_file():
            if entry.suffix.lower() in MEDIA:
                out.skipped.append(f"{where}: not in an Actor_NN folder")
            continue
        m = FOLDER.match(entry.name)
        if m is None:
            out.skipped.append(f"{where}/: not an Actor_NN folder")
            continue
        folder_actor = int(m.group(1))
        for f in sorted(entry.iterdir()):
            if not f.is_file() or f.suffix.lower() not in MEDIA:
                if f.is_file() and not f.name.startswith("."):
                    out.skipped.append(f"{f.relative_to(root)}: not a media file ({', '.join(MEDIA)})")
                continue
            try:
                clip = parse_name(f)
            except RavdessNameError as e:
                out.skipped.append(f"{f.relative_to(root)}: {e}")
                continue
            if clip.actor != folder_actor:
                out.skipped.append(f"{f.relative_to(root)}: names actor {clip.actor:02d} but is in {entry.name}")
                continue
            if wanted is None or clip.actor in wanted:
                out.clips.append(clip)
    if not out.clips:
        head = f"{root}: no usable RAVDESS clip"
        raise RavdessNameError(head + (": " + "; ".join(out.skipped[:5]) if out.skipped else ""))
    return out


def actor_folds(actors: Sequence[int], k: int) -> dict[int, int]:
    """Each actor's fold (0..k-1): men dealt to folds 0, 1, ..., k-1, 0, ... and women to k-1, ...,
    0, k-1, ..., in actor order, so that every fold holds both and the folds' sizes differ by at
    most one. Deterministic: the same actors always give the same folds."""
    if k < 2 or k > len(set(actors)):
        raise ValueError(f"{k} folds need between 2 and {len(set(actors))} actors' worth of folds")
    men = sorted(a for a in set(actors) if a % 2)
    women = sorted(a for a in set(actors) if not a % 2)
    folds = {a: i % k for i, a in enumerate(men)}
    folds.update({a: k - 1 - (i % k) for i, a in enumerate(women)})
    return folds


__all__ = [
    "CITATION",
    "EMOTIONS",
    "LICENCE",
    "NEGATIVE",
    "POSITIVE",
    "RavdessClip",
    "RavdessNameError",
    "RavdessScan",
    "WARRINER_VALENCE",
    "actor_folds",
    "emotion_value",
    "mapping_table",
    "parse_name",
    "scan",
]
