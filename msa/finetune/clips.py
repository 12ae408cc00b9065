"""One's own labelled clips: read from a labels CSV (or handed over by the page), checked, and
turned into samples by the app's own extractor, so that a model fine-tuned on them is served the
same features.

A labels CSV has the columns ``file,label`` and optionally ``text`` and ``speaker``:

    file,label,text,speaker
    happy_01.mp4,2.5,,ana
    sad_01.webm,negative,I did not like it at all,ben

``file`` is relative to the clips' folder; ``label`` is a number in [-3, 3] or a 7-class name
("strongly negative" ... "strongly positive", e.g. "positive" = +2); ``text``, when given, is the
spoken words and replaces speech recognition; ``speaker``, when given, keeps each person's clips
in one fold, so that the held-out error is measured on people the model has not heard or seen.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import load_label_csv, ravdess
from ..features import FeatureError, FeatureExtractor
from ..features.media import MediaLimits, probe
from ..features.spec import SAMPLE_RATE
from ..features.videos import MEDIA_SUFFIXES
from ..metrics import LABEL7_NAMES
from ..sample import LABEL_MAX, LABEL_MIN, Sample

# A 7-class name stands for the middle of its band: "positive" is +2.
LABEL_NAMES = {name: float(i - 3) for i, name in enumerate(LABEL7_NAMES)}


class ClipError(ValueError):
    """Labelled clips that cannot be used; the message names the file or row and what is accepted."""


@dataclass(frozen=True)
class ClipLimits:
    """What one fine-tuning may take in (a public Space caps it lower: `msa.app`)."""

    max_clips: int = 500
    max_seconds: float = 60.0  # per clip: a sentence or two, as in CMU-MOSI / MOSEI

    def media_limits(self) -> MediaLimits:
        return MediaLimits(max_seconds=self.max_seconds)


@dataclass(frozen=True)
class LabelledClip:
    """One clip, its sentiment label in [-3, 3] and, when known, its spoken words and speaker;
    ``about`` carries what a corpus says of it besides (a RAVDESS clip's emotion and intensity)."""

    path: Path
    label: float
    text: str | None = None
    speaker: str | None = None
    about: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def parse_label(value: str | float, where: str) -> float:
    """A label from a number in [-3, 3] or a 7-class name; `ClipError` saying what is accepted."""
    if isinstance(value, str):
        word = " ".join(value.strip().lower().replace("_", " ").split())
        if word in LABEL_NAMES:
            return LABEL_NAMES[word]
        try:
            value = float(word)
        except ValueError:
            raise ClipError(
                f"{where}: label {value!r} is neither a number in [-3, 3] nor one of: " + ", ".join(LABEL7_NAMES)
            ) from None
    if not math.isfinite(value) or not LABEL_MIN <= value <= LABEL_MAX:
        raise ClipError(f"{where}: label {value:g} is outside [-3, 3] (-3 strongly negative, +3 strongly positive)")
    return float(value)


def read_labels(
    labels: Path, clips: Path, limits: ClipLimits = ClipLimits(), need_labels: bool = True
) -> list[LabelledClip]:
    """The clips a labels CSV names, every row checked before anything is extracted. Without
    ``need_labels`` (the clips are labelled by the base's text path) the label column may be
    absent or blank (NaN).

    Raises
    ------
    ClipError
        Not a CSV, a missing column, a file that is not in ``clips`` (or outside it, or a name
        no file can have), a media type the extractor does not read, a file named twice, a bad
        label, no rows, or more than ``limits.max_clips``; every bad row is listed (up to 10).
    """
    if not clips.is_dir():
        raise ClipError(f"{clips}: not a folder (--clips is the folder the labels' file names are relative to)")
    try:
        text = labels.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ClipError(f"{labels}: cannot be read as a UTF-8 CSV ({e})") from e
    reader = csv.DictReader(io.StringIO(text))
    try:
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        rows = list(reader)
    except csv.Error as e:  # e.g. a cell past the csv module's field limit
        raise ClipError(f"{labels}: cannot be read as a CSV ({e})") from None
    if "file" not in columns or (need_labels and "label" not in columns):
        raise ClipError(
            f"{labels}: needs the columns file,label (and optionally text, speaker); found {columns or 'none'}"
        )
    root = clips.resolve()
    out: list[LabelledClip] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for n, raw in enumerate(rows, start=2):  # row 1 is the header
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        where = f"{labels.name} row {n}"
        name = row.get("file", "")
        try:
            if not name:
                raise ClipError(f"{where}: no file name")
            path = (root / name).resolve()
            if not path.is_relative_to(root):
                raise ClipError(f"{where}: {name} is outside the clips folder")
            if path.suffix.lower() not in MEDIA_SUFFIXES:
                raise ClipError(f"{where}: {name} is not a media type read here ({', '.join(MEDIA_SUFFIXES)})")
            if not path.is_file():
                raise ClipError(f"{where}: {name} is not in {clips}")
            if path in seen:
                raise ClipError(f"{where}: {name} is labelled twice")
            label = parse_label(row.get("label", ""), where) if need_labels else math.nan
        except ClipError as e:
            problems.append(str(e))
            continue
        except (OSError, ValueError):  # a name no file can have here: a NUL, or too long
            problems.append(f"{where}: {name[:80]!r} cannot name a file (it is too long, or holds a NUL)")
            continue
        seen.add(path)
        out.append(LabelledClip(path, label, row.get("text") or None, row.get("speaker") or None))
    if problems:
        raise ClipError(join_problems(problems))
    check_count(len(out), limits, f"{labels.name}: ")
    return out


def ravdess_clips(root: Path, actors: Sequence[int] | None = None) -> tuple[list[LabelledClip], list[str]]:
    """The clips of a folder in RAVDESS's layout, labelled by `msa.data.ravdess.emotion_value`,
    each actor a speaker; and every file or folder skipped, with why (`msa.data.ravdess.scan`).
    The words are left to the speech recognition, as the app would hear them."""
    try:
        found = ravdess.scan(root, actors)
    except ravdess.RavdessNameError as e:
        raise ClipError(str(e)) from e
    clips = [
        LabelledClip(
            c.path,
            c.label,
            speaker=c.speaker,
            about={"emotion": c.emotion, "intensity": c.intensity, "sentence": c.sentence, "actor": c.actor},
        )
        for c in found.clips
    ]
    return clips, found.skipped


@dataclass
class CorpusReport:
    """What a corpus run could not use, and what it converted on the way: named, never silent."""

    skipped: list[str] = field(default_factory=list)  # "file: why", not used
    converted: list[str] = field(default_factory=list)  # "file: 48000 Hz, 2 channels", read as 16 kHz mono

    def lines(self) -> list[str]:
        out = [f"skipped {s}" for s in self.skipped]
        if self.converted:
            out.append(
                f"{len(self.converted)} file(s) resampled to 16 kHz mono on reading: " + join_problems(self.converted)
            )
        return out


def join_problems(problems: Sequence[str], head: str = "") -> str:
    """Every bad row or clip in one message (the first 10, and how many more)."""
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return head + "; ".join(problems[:10]) + more


def check_count(n: int, limits: ClipLimits, where: str = "", none: str = "no labelled clips") -> None:
    """At least one clip, at most ``limits.max_clips``; ``where`` prefixes the message."""
    if n == 0:
        raise ClipError(f"{where}{none}")
    if n > limits.max_clips:
        raise ClipError(f"{where}{n} clips; at most {limits.max_clips} are taken in one fine-tuning")


@dataclass
class ExtractedClip:
    """A labelled clip as the model reads it (raw features; the normaliser comes later)."""

    clip: LabelledClip
    sample: Sample

    @property
    def streams(self) -> tuple[bool, bool]:
        """Whether it has a voice and a face."""
        return self.sample.acoustic is not None, self.sample.visual is not None


def extract_clips(
    clips: Sequence[LabelledClip],
    extractor: FeatureExtractor,
    limits: ClipLimits = ClipLimits(),
    on_clip: Callable[[int, int, str], None] | None = None,
    report: CorpusReport | None = None,
) -> list[ExtractedClip]:
    """Each clip's features (from the extractor's cache when it has seen the file's content).

    ``on_clip(i, n, name)`` is called before clip ``i`` of ``n``. A clip that cannot be read, is
    too long, or carries neither a voice nor a face (nothing for the fine-tuning to learn from)
    stops it: `ClipError` naming every such clip and why. With a ``report`` (a corpus run) such
    clips are named in it and the rest are used; so are files read at another rate or channel
    count (`CorpusReport.converted`).
    """
    check_count(len(clips), limits)
    out, problems = [], []
    for i, c in enumerate(clips):
        if on_clip is not None:
            on_clip(i, len(clips), c.name)
        try:
            info = probe(c.path, limits.media_limits())
            if report is not None and info.audio_stream is not None:
                if (info.sample_rate not in (None, SAMPLE_RATE)) or (info.channels or 1) > 1:
                    report.converted.append(f"{c.name}: {info.sample_rate} Hz, {info.channels} channel(s)")
            if info.duration is not None and info.duration > limits.max_seconds:
                raise FeatureError(f"lasts {info.duration:.1f} s; clips up to {limits.max_seconds:g} s are taken")
            ex = extractor.extract(
                c.path, transcript=c.text, sample_id=c.path.stem, limits=limits.media_limits(), info=info
            )
        except FeatureError as e:
            problems.append(f"{c.name}: {e}")
            continue
        sample = ex.sample
        if sample.acoustic is None and sample.visual is None:
            why = "; ".join(f"{m}: {r}" for m, r in ex.absent.items() if m != "text")
            problems.append(f"{c.name}: neither a voice nor a face to learn from ({why})")
            continue
        meta = {**sample.meta, **c.about, "file": c.name, "duration": ex.duration, "speaker": c.speaker}
        out.append(ExtractedClip(c, dataclasses.replace(sample, label=c.label, meta=meta)))
    if problems and report is not None:
        report.skipped += problems
        if not out:
            raise ClipError(join_problems(problems, "no clip can be used: "))
    elif problems:
        raise ClipError(join_problems(problems, "these clips cannot be used: "))
    return out


def text_mix(files: list[Path], n: int, seed: int) -> list[Sample]:
    """``n`` labelled transcripts drawn (seeded) from the train folds of ``files``: the words
    alone, with their sentiment labels, to mix into a fine-tuning."""
    if not files:
        return []
    pool = [s for f in files for s in load_label_csv(f).get("train", [])]
    if not pool:
        raise ClipError(f"no train-fold rows in {', '.join(map(str, files))}")
    rng = random.Random(seed)
    return rng.sample(pool, min(n, len(pool)))


__all__ = [
    "ClipError",
    "ClipLimits",
    "CorpusReport",
    "ExtractedClip",
    "LABEL_NAMES",
    "LabelledClip",
    "check_count",
    "extract_clips",
    "join_problems",
    "parse_label",
    "ravdess_clips",
    "read_labels",
    "text_mix",
]
