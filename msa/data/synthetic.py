"""Synthetic worlds: clips whose label follows a planted rule, the one home of making them.

Every world here draws words, voice and face frames from noise and plants its rule's cues in
them; the label follows the rule, so what a model can learn (and where an explanation should
point) is known. One set of pieces makes them all: a cue is added to a stream's frames in a
window of time and, where it has a meaning of its own, in named columns (`_plant`); fixed
directions are unit vectors, a second one orthogonal to the first (`_unit`, `_orthogonal_unit`);
each split has its own random stream (`_split_rngs`).

- `make_synthetic`: MOSI/MOSEI-shaped samples whose label is carried by a chosen stream (or all
  three); the learning tests prove each path carries signal, and ``--data synthetic:mosi`` is
  the smoke runs' data.
- `make_planted`: the label lives only in a short window of one stream, at a known time, so an
  explanation can be checked against a known answer.
- `make_trimodal`: words, voice and face each carry a part, and a face cue flips the words
  (`python -m bench.bench_planted`).
- `TimedWorld`: the Fusion Lab's clips: timed words, a voice and a face with cues in one word's
  window, flips and missing streams; the Lab (`msa.lab.worlds.World`) gives it the extractor's
  rates and column names and the rule's Shapley values.

The writers of the MMSA and MulT pickles are beside the loaders, in `msa.data.pickles`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..sample import LABEL_MAX, LABEL_MIN, SPLITS, Sample, TimedWord

# ---------------------------------------------------------------------------------------------
# The pieces every world is made of


def _check_counts(*counts: int) -> None:
    if min(counts) < 0:
        raise ValueError("sample counts must be >= 0")


def _split_rngs(
    seed: int, counts: Sequence[int]
) -> tuple[np.random.Generator, list[tuple[str, int, np.random.Generator]]]:
    """A random stream for the world's fixed directions, and (split, count, stream) for each split:
    every split has its own, so changing n_train does not change the validation samples."""
    proj_seq, *split_seqs = np.random.SeedSequence(seed).spawn(1 + len(SPLITS))
    return np.random.default_rng(proj_seq), [
        (split, n, np.random.default_rng(seq)) for split, n, seq in zip(SPLITS, counts, split_seqs)
    ]


def _sample_id(prefix: str, split: str, i: int) -> str:
    # MOSI's "<video>_<clip>" shape, 8 clips a video, so the id parsers of the loaders apply.
    return f"{prefix}-{split}-{i // 8:04d}_{i % 8 + 1}"


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def _orthogonal_unit(rng: np.random.Generator, to: np.ndarray) -> np.ndarray:
    """A random unit vector orthogonal to the unit vector ``to``: a cue along it says where (or
    that something flips), never how much of what ``to`` carries."""
    v = rng.normal(size=len(to))
    v -= (v @ to) * to
    return v / np.linalg.norm(v)


def _plant(
    frames: np.ndarray, rows: slice | np.ndarray, cue: np.ndarray | float, columns: Sequence[int] | None = None
) -> None:
    """Add ``cue`` to ``frames`` in place, in ``rows`` (a window of time: a slice, or frame
    indices) and, when given, only in ``columns`` (named features a cue moves together)."""
    if columns is None:
        frames[rows] += cue
    else:
        frames[np.ix_(np.arange(len(frames))[rows], columns)] += cue


def _quantise(x: float, step: float) -> float:
    y = float(np.clip(x, LABEL_MIN, LABEL_MAX))
    y = round(y / step) * step
    return float(np.clip(round(y, 6), LABEL_MIN, LABEL_MAX)) + 0.0  # + 0.0 turns -0.0 into 0.0


# ---------------------------------------------------------------------------------------------
# MOSI/MOSEI-shaped samples whose label is carried by one stream (or all three)


@dataclass(frozen=True)
class _Profile:
    acoustic_dim: int
    visual_dim: int
    label_step: float  # labels are averages of annotators: MOSI in 0.2 steps, MOSEI in 1/3
    label_mean: float
    label_sd: float
    p_zero: float  # share of exactly-neutral targets (MOSEI has many 0 labels)


# Dims of MMSA's unaligned_50.pkl: MOSI COVAREP 5 / Facet 20, MOSEI COVAREP 74 / Facet 35.
# The label spread roughly follows the real label CSVs (MOSI sd ~1.5, MOSEI mean 0.15, sd 1.1).
PROFILES: dict[str, _Profile] = {
    "mosi": _Profile(5, 20, 0.2, 0.0, 1.5, 0.05),
    "mosei": _Profile(74, 35, 1.0 / 3.0, 0.15, 1.1, 0.2),
}
SIGNALS = ("all", "text", "acoustic", "visual")

# Text: each sentiment word moves the score by TEXT_UNIT; counts set the label.
POSITIVE_WORDS = ("good", "great", "excellent", "love", "wonderful", "amazing")
NEGATIVE_WORDS = ("bad", "awful", "terrible", "hate", "boring", "horrible")
NEUTRAL_WORDS = (
    "the",
    "movie",
    "film",
    "was",
    "and",
    "it",
    "really",
    "i",
    "think",
    "plot",
    "actors",
    "story",
    "scene",
    "kind",
    "of",
    "this",
    "that",
    "just",
    "about",
    "very",
    "so",
    "my",
    "watched",
    "ending",
)
TEXT_UNIT = 0.6  # 5 net words reach the top of the scale
# Stream scores are averaged for signal="all"; each stream sees the target plus this much noise,
# so every stream helps and none alone is enough.
ALL_STREAM_NOISE = 0.5


def make_synthetic(
    kind: Literal["mosi", "mosei"] = "mosi",
    n_train: int = 256,
    n_valid: int = 64,
    n_test: int = 64,
    seed: int = 0,
    signal: Literal["all", "text", "acoustic", "visual"] = "all",
    acoustic_dim: int | None = None,
    visual_dim: int | None = None,
    min_frames: int = 5,
    max_frames: int = 50,
    p_absent: float = 0.0,
) -> dict[str, list[Sample]]:
    """Generate MOSI- or MOSEI-shaped samples whose label is a learnable function of one stream.

    Parameters
    ----------
    kind : "mosi" (audio 5-d, vision 20-d, labels in 0.2 steps) or "mosei" (74-d / 35-d, 1/3
        steps, more neutral labels).
    n_train, n_valid, n_test : samples per split.
    seed : everything is a deterministic function of the seed; each split has its own stream
        of random numbers, so changing n_train does not change the validation samples.
    signal : the stream that determines the label:

        - "text": words from a small vocabulary; label = 0.6 x (#positive - #negative words).
        - "acoustic" / "visual": label = mean over time of a fixed random unit projection of the
          frames (frames = N(0, 1) noise + target x direction, so a BiLSTM can learn it).
        - "all": the mean of the three stream scores, each made from the target plus noise.

        Labels are clipped to [-3, 3] and rounded to the kind's step, so some are exactly 0.
    acoustic_dim, visual_dim : override the kind's feature widths.
    min_frames, max_frames : frame counts are uniform in this range, per sample and stream.
    p_absent : probability that each non-signal stream of a sample is absent (None), to
        exercise missing modalities. Ignored for signal="all".

    Returns
    -------
    dict split -> list of Sample (ids "syn-<split>-<video>_<clip>"), ``meta`` with split, source
    and signal.
    """
    if kind not in PROFILES:
        raise ValueError(f"unknown synthetic kind {kind!r}: expected one of {', '.join(PROFILES)}")
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}: expected one of {', '.join(SIGNALS)}")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    _check_counts(n_train, n_valid, n_test)
    if not 0.0 <= p_absent <= 1.0:
        raise ValueError(f"p_absent must be in [0, 1], got {p_absent}")
    prof = PROFILES[kind]
    d_a = acoustic_dim or prof.acoustic_dim
    d_v = visual_dim or prof.visual_dim

    proj_rng, splits = _split_rngs(seed, (n_train, n_valid, n_test))
    directions = {"acoustic": _unit(proj_rng, d_a), "visual": _unit(proj_rng, d_v)}
    dims = {"acoustic": d_a, "visual": d_v}

    out: dict[str, list[Sample]] = {}
    for split, n, rng in splits:
        samples = []
        for i in range(n):
            target = _target(rng, prof)
            scores: dict[str, float] = {}
            streams: dict[str, Any] = {}
            for stream in ("text", "acoustic", "visual"):
                if signal == "all":
                    driver = target + rng.normal(0.0, ALL_STREAM_NOISE)
                elif stream == signal:
                    driver = target
                else:
                    driver = _target(rng, prof)  # same distribution, independent of the label
                if stream == "text":
                    streams[stream], scores[stream] = _text(rng, driver)
                else:
                    streams[stream], scores[stream] = _frames(
                        rng, driver, directions[stream], dims[stream], min_frames, max_frames
                    )
                if signal not in ("all", stream) and rng.random() < p_absent:
                    streams[stream] = None
            raw = float(np.mean(list(scores.values()))) if signal == "all" else scores[signal]
            samples.append(
                Sample(
                    id=_sample_id("syn", split, i),
                    text=streams["text"],
                    acoustic=streams["acoustic"],
                    visual=streams["visual"],
                    label=_quantise(raw, prof.label_step),
                    meta={"split": split, "source": f"synthetic:{kind}", "signal": signal},
                )
            )
        out[split] = samples
    return out


def _target(rng: np.random.Generator, prof: _Profile) -> float:
    if rng.random() < prof.p_zero:
        return 0.0
    return float(np.clip(rng.normal(prof.label_mean, prof.label_sd), LABEL_MIN, LABEL_MAX))


def _text(rng: np.random.Generator, driver: float) -> tuple[str, float]:
    net = int(np.clip(round(driver / TEXT_UNIT), -5, 5))
    pairs = int(rng.integers(0, 2))  # a cancelling pair: the model must count, not spot a word
    n_pos, n_neg = max(net, 0) + pairs, max(-net, 0) + pairs
    words = list(rng.choice(POSITIVE_WORDS, n_pos)) + list(rng.choice(NEGATIVE_WORDS, n_neg))
    words += list(rng.choice(NEUTRAL_WORDS, int(rng.integers(3, 10))))
    rng.shuffle(words)
    return " ".join(str(w) for w in words), TEXT_UNIT * (n_pos - n_neg)


def _frames(
    rng: np.random.Generator, driver: float, direction: np.ndarray, dim: int, t_min: int, t_max: int
) -> tuple[np.ndarray, float]:
    t = int(rng.integers(t_min, t_max + 1))
    x = rng.normal(size=(t, dim)) + driver * direction
    x = x.astype(np.float32)
    return x, float(x.mean(axis=0) @ direction)


# ---------------------------------------------------------------------------------------------
# A planted signal: the label lives in one window of one stream (for testing explanations)

PLANTED_STREAMS = ("acoustic", "visual")


def make_planted(
    stream: Literal["acoustic", "visual"],
    n_train: int = 256,
    n_valid: int = 64,
    n_test: int = 64,
    seed: int = 0,
    frames: int = 25,
    window: tuple[int, int] | None = None,
    window_frames: int = 5,
    rate: float = 10.0,
    acoustic_dim: int = 5,
    visual_dim: int = 20,
    marker: float = 3.0,
    label_sd: float = 1.5,
    words: tuple[int, int] = (5, 9),
) -> dict[str, list[Sample]]:
    """MOSI-shaped samples whose label lives only in a short window of one stream.

    A model whose answer is known: an explanation of a model trained on these samples must put
    the planted stream first and point at the window; one that draws the same picture whatever
    the model does cannot.

    Every sample has ``frames`` frames in both streams, frame k at k / ``rate`` seconds.

    - The planted stream is N(0, 1) noise everywhere. Inside the window (``window_frames``
      consecutive frames) each frame adds ``target x direction + marker x beacon``: two fixed
      orthogonal unit vectors. The beacon carries no label; it only makes the window findable.
      The label is the mean over the window's frames of their projection on ``direction``,
      clipped and rounded to MOSI's 0.2 steps, so it is a function of the window alone: the
      frames outside it are label-independent noise, and averaging over the whole clip dilutes
      the signal to a fifth (for the default 5 of 25) under the other frames' noise.
    - The other stream is N(0, 1) noise: nothing in it relates to the label.
    - The text is 5-8 neutral words ("the movie was ..."), drawn independently of the label.

    Parameters
    ----------
    stream : "acoustic" or "visual": the stream that carries the label.
    n_train, n_valid, n_test : samples per split; each split has its own random stream, as in
        `make_synthetic`.
    seed : everything is a deterministic function of the seed.
    frames : T, the number of frames of both streams of every sample.
    window : (start, end) frame indices, end exclusive: the same window for every sample. None
        (the default) draws each sample's window start uniformly, so a model cannot learn a
        fixed position and an explanation is checked against each sample's own window.
    window_frames : the window's length in frames when ``window`` is None.
    rate : frames per second, for the frame times in ``meta``.
    acoustic_dim, visual_dim : feature widths (MOSI's 5 and 20 by default).
    marker : the beacon's size inside the window, in noise standard deviations.
    label_sd : spread of the target (MOSI ~1.5), clipped to [-3, 3].
    words : (min, max) number of words, max exclusive.

    Returns
    -------
    dict split -> list of Sample (ids "planted-<split>-<video>_<clip>"). ``meta`` holds:
    ``times`` {"acoustic": (T,), "visual": (T,)} seconds of each frame (k / rate);
    ``window`` (start, end) seconds of the planted window, half-open, so frame k is in it when
    start <= k / rate < end; ``window_frames`` the same as frame indices; ``stream``; ``split``;
    ``source``.
    """
    if stream not in PLANTED_STREAMS:
        raise ValueError(f"unknown planted stream {stream!r}: expected one of {', '.join(PLANTED_STREAMS)}")
    _check_counts(n_train, n_valid, n_test)
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if window is not None:
        if not 0 <= window[0] < window[1] <= frames:
            raise ValueError(f"window {window} must satisfy 0 <= start < end <= frames ({frames})")
        span = window[1] - window[0]
    else:
        span = window_frames
    if not 1 <= span <= frames:
        raise ValueError(f"the window must have 1..frames ({frames}) frames, got {span}")
    if not 1 <= words[0] < words[1]:
        raise ValueError(f"words must be (min, max) with 1 <= min < max, got {words}")
    dims = {"acoustic": acoustic_dim, "visual": visual_dim}
    if dims[stream] < 2:
        raise ValueError(f"the planted stream needs >= 2 features (label direction and beacon), got {dims[stream]}")

    proj_rng, splits = _split_rngs(seed, (n_train, n_valid, n_test))
    direction = _unit(proj_rng, dims[stream])
    beacon = _orthogonal_unit(proj_rng, direction)  # the beacon says where, never what
    times = np.arange(frames, dtype=np.float64) / rate
    other = "visual" if stream == "acoustic" else "acoustic"

    out: dict[str, list[Sample]] = {}
    for split, n, rng in splits:
        samples = []
        for i in range(n):
            target = float(np.clip(rng.normal(0.0, label_sd), LABEL_MIN, LABEL_MAX))
            start = window[0] if window is not None else int(rng.integers(0, frames - span + 1))
            end = start + span
            x = rng.normal(size=(frames, dims[stream]))
            _plant(x, slice(start, end), target * direction + marker * beacon)
            raw = float(x[start:end].mean(axis=0) @ direction)  # the window alone sets the label
            noise = rng.normal(size=(frames, dims[other]))
            text = " ".join(str(w) for w in rng.choice(NEUTRAL_WORDS, int(rng.integers(*words))))
            samples.append(
                Sample(
                    id=_sample_id("planted", split, i),
                    text=text,
                    acoustic=(x if stream == "acoustic" else noise).astype(np.float32),
                    visual=(x if stream == "visual" else noise).astype(np.float32),
                    label=_quantise(raw, 0.2),
                    meta={
                        "split": split,
                        "source": "synthetic:planted",
                        "stream": stream,
                        "times": {"acoustic": times.copy(), "visual": times.copy()},
                        "window": (start / rate, end / rate),
                        "window_frames": (start, end),
                    },
                )
            )
        out[split] = samples
    return out


# ---------------------------------------------------------------------------------------------
# A trimodal planted signal: words, voice and face, and a face that flips the words


@dataclass(frozen=True)
class TrimodalParts:
    """How `make_trimodal` builds a label: each part's spread and the chance of a flip.

    label = flip x words + voice + face, clipped to [-3, 3] and rounded to MOSI's 0.2 steps.

    - words: 0.6 x (#positive - #negative sentiment words), from a target ~ N(0, ``words_sd``).
    - voice / face: the mean over frames of the acoustic / visual frames' projection on a fixed
      direction (frames = N(0, 1) noise + target x direction, target ~ N(0, ``voice_sd``/``face_sd``)).
    - flip: -1 with probability ``p_flip`` ("sarcasm": the face says the words mean the
      opposite), else +1; shown by the visual frames as ``+-cue`` x a second fixed direction,
      orthogonal to the face's sentiment direction. Only a model that reads the face *and*
      combines it with the words recovers this part.
    """

    words_sd: float = 1.2
    voice_sd: float = 0.7
    face_sd: float = 0.7
    p_flip: float = 0.25
    cue: float = 1.5

    def __post_init__(self) -> None:
        if min(self.words_sd, self.voice_sd, self.face_sd, self.cue) < 0:
            raise ValueError("spreads and the cue must be >= 0")
        if not 0.0 <= self.p_flip <= 1.0:
            raise ValueError(f"p_flip must be in [0, 1], got {self.p_flip}")


def make_trimodal(
    n_train: int = 1024,
    n_valid: int = 256,
    n_test: int = 512,
    seed: int = 0,
    parts: TrimodalParts | None = None,
    acoustic_dim: int = 5,
    visual_dim: int = 20,
    min_frames: int = 10,
    max_frames: int = 30,
) -> dict[str, list[Sample]]:
    """MOSI-shaped samples whose sentiment comes partly from the words, partly from the voice and
    the face, and partly from an interaction: a face that flips the words' sign (`TrimodalParts`).

    What each kind of model can reach is known: a text-only model sees the words but not the
    flip, so its best guess is E[flip] x words = (1 - 2 p_flip) x words, and the voice and face
    parts are noise to it; a model that fuses all three can reach the label up to rounding. The
    trimodal benchmark (`python -m bench.bench_planted`) trains both and the paper's ablations.

    Parameters
    ----------
    n_train, n_valid, n_test : samples per split, each split its own random stream.
    seed : everything is a deterministic function of the seed.
    parts : the label's parts (default `TrimodalParts()`).
    acoustic_dim, visual_dim : feature widths (MOSI's 5 and 20; the face needs >= 2).
    min_frames, max_frames : frame counts, uniform per sample and stream.

    Returns
    -------
    dict split -> list of Sample (ids "trimodal-<split>-<video>_<clip>"); ``meta`` holds the
    parts of the label: ``words``, ``voice``, ``face`` (the part values) and ``flip`` (+-1).
    """
    parts = parts or TrimodalParts()
    _check_counts(n_train, n_valid, n_test)
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if acoustic_dim < 1 or visual_dim < 2:
        raise ValueError(
            f"need acoustic_dim >= 1 and visual_dim >= 2 (sentiment and cue), got {acoustic_dim}, {visual_dim}"
        )

    proj_rng, splits = _split_rngs(seed, (n_train, n_valid, n_test))
    voice_dir, face_dir = _unit(proj_rng, acoustic_dim), _unit(proj_rng, visual_dim)
    cue_dir = _orthogonal_unit(proj_rng, face_dir)  # the cue says "flip", never how much

    out: dict[str, list[Sample]] = {}
    for split, n, rng in splits:
        samples = []
        for i in range(n):
            text, words = _text(rng, float(rng.normal(0.0, parts.words_sd)))
            acoustic, voice = _frames(
                rng, float(rng.normal(0.0, parts.voice_sd)), voice_dir, acoustic_dim, min_frames, max_frames
            )
            visual, face = _frames(
                rng, float(rng.normal(0.0, parts.face_sd)), face_dir, visual_dim, min_frames, max_frames
            )
            flip = -1.0 if rng.random() < parts.p_flip else 1.0
            _plant(visual, slice(None), flip * parts.cue * cue_dir)  # in every frame of the clip
            samples.append(
                Sample(
                    id=_sample_id("trimodal", split, i),
                    text=text,
                    acoustic=acoustic,
                    visual=visual,
                    label=_quantise(flip * words + voice + face, 0.2),
                    meta={
                        "split": split,
                        "source": "synthetic:trimodal",
                        "words": words,
                        "voice": voice,
                        "face": face,
                        "flip": flip,
                    },
                )
            )
        out[split] = samples
    return out


# ---------------------------------------------------------------------------------------------
# Timed clips: words said at known times, a voice and a face with cues in one word's window
# (the Fusion Lab's worlds)

# The words of a timed world (its numbers are the Lab's lessons': another list is another world).
POSITIVE = ("great", "good", "love", "wonderful", "fun", "brilliant")
NEGATIVE = ("awful", "bad", "boring", "hate", "terrible", "dull")
NEUTRAL = ("the", "movie", "plot", "actors", "was", "it", "really", "and", "film", "story", "this", "so")

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
class StreamShape:
    """A timed stream as a world fills it: frames per second and its columns' names (a cue
    moves columns by name, so the same world fits any stream that has them)."""

    rate: float
    names: tuple[str, ...]

    def columns(self, wanted: tuple[str, ...]) -> list[int]:
        return [self.names.index(n) for n in wanted]


# Each world setting's range: the checks of `TimedWorld`, the Lab's sliders and a link's repair.
WORLD_RANGES: dict[str, tuple[float, float]] = {
    "words": (0.0, 2.0),
    "voice": (0.0, 2.0),
    "face": (0.0, 2.0),
    "flip": (0.0, 1.0),
    "noise": (0.0, 1.0),
    "missing_voice": (0.0, 1.0),
    "missing_face": (0.0, 1.0),
    "clips": (20, MAX_CLIPS),
}


@dataclass(frozen=True)
class TimedWorld:
    """A world of timed clips: how much each modality moves the label and what is missing.

    A clip is a short sentence of timed words, a voice and a face of standardised noise (as the
    model sees a checkpoint's normalised streams), and cues in the frames of one word each: a
    louder, higher voice (or a quiet, flat one), a smile (or a frown), or raised brows that
    reverse the words' sentiment, as sarcasm does.

        label = flip x words + voice + face + noise, clipped to [-3, 3]

    where the face's parts count only when the clip has a face and the voice's only when it has
    a voice. The streams' rates and columns are given to `splits` (`StreamShape`).

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
        what = {"noise": "the label noise's standard deviation is", "clips": "a world has"}
        for name, (lo, hi) in WORLD_RANGES.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                says = what.get(name, "each modality's weight is" if hi == 2.0 else "a share of clips is")
                span = f"{lo:g} to {hi:g} clips" if name == "clips" else f"in [{lo:g}, {hi:g}]"
                raise WorldError(f"{name} = {value}: {says} {span}")

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

    def splits(self, voice: StreamShape, face: StreamShape) -> dict[str, list[Sample]]:
        """The world's clips by split, with ``voice`` and ``face`` streams of these shapes; each
        clip's ``meta`` holds its words, cues and label parts."""
        rng = np.random.default_rng(self.seed)
        clips = [self._clip(i, rng, voice, face) for i in range(self.clips)]
        n_train = round(self.clips * SPLIT_SHARES["train"])
        n_valid = round(self.clips * SPLIT_SHARES["valid"])
        bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, self.clips)}
        return {
            s: [dataclasses.replace(c, meta={**c.meta, "split": s}) for c in clips[slice(*bounds[s])]] for s in SPLITS
        }

    def _clip(self, i: int, rng: np.random.Generator, voice: StreamShape, face: StreamShape) -> Sample:
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

        acoustic = rng.standard_normal((math.ceil(duration * voice.rate), len(voice.names))).astype(np.float32)
        visual = rng.standard_normal((math.ceil(duration * face.rate), len(face.names))).astype(np.float32)
        if voice_sign:
            _raise(acoustic, voice, timed[cue_word["voice"]], VOICE_CUE, voice_sign)
        if face_sign:
            _raise(visual, face, timed[cue_word["face"]], SMILE if face_sign > 0 else FROWN, 1)
        if flipped:
            _raise(visual, face, timed[cue_word["flip"]], RAISED_BROWS, 1)

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
                "visual_times": np.arange(len(visual)) / face.rate if has_face else None,
            },
        )

    def subset_values(self, clip: Sample) -> dict[tuple[bool, bool, bool], float]:
        """v(S) for every subset S, a presence of (text, voice, face): what the rule predicts for one clip of
        this world knowing only the modalities in S, noise and clipping aside.

        The parts of the others are at their average over the world (words, voice and face cues
        average 0; an unseen face reverses the words with the world's share of flips). This is
        what a model trained with modality dropout learns its stand-ins to mean; the Shapley
        values of these are the rule's own (`msa.lab.worlds.World.truth`).
        """
        parts, have = clip.meta["parts"], tuple(clip.meta["present"])
        unseen_flip = (1 - self.missing_face) * (1 - 2 * self.flip) + self.missing_face
        value: dict[tuple[bool, bool, bool], float] = {}
        for s in itertools.product((False, True), repeat=3):
            text, voice, face = (a and h for a, h in zip(s, have))
            words = parts["words"] if text else 0.0
            flip = parts["flip"] if face else unseen_flip
            value[s] = flip * words + (parts["voice"] if voice else 0.0) + (parts["face"] if face else 0.0)  # type: ignore[index]
        return value


def _rule(parts: dict[str, float], present: tuple[bool, bool, bool]) -> float:
    """The label without noise, given which streams the clip has (a missing one's cues do not count)."""
    text, voice, face = present
    words = parts["words"] if text else 0.0
    flip = parts["flip"] if face else 1
    return flip * words + (parts["voice"] if voice else 0.0) + (parts["face"] if face else 0.0)


def frames_of(word: TimedWord, rate: float, n_frames: int) -> np.ndarray:
    """The frames (at ``k / rate`` seconds) said during ``word``: the cue's right answer for
    attention. A word shorter than a frame step gets the frame nearest its middle."""
    times = np.arange(n_frames) / rate
    inside = np.flatnonzero((times >= word.start) & (times < word.end))
    if inside.size:
        return inside
    return np.array([min(n_frames - 1, round((word.start + word.end) / 2 * rate))])


def _raise(frames: np.ndarray, shape: StreamShape, word: TimedWord, names: tuple[str, ...], sign: int) -> None:
    """Move the columns ``names`` by ``sign x CUE_SIZE`` in the frames said during ``word``."""
    _plant(frames, frames_of(word, shape.rate, len(frames)), sign * CUE_SIZE, shape.columns(names))
