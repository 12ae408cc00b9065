"""Synthetic MOSI/MOSEI-shaped data whose label is carried by a chosen stream, and writers of
small pickles in the MMSA and MulT layouts (for tests and smoke runs).

The label depends on one stream only (or on all three), through a function a model of the
matching path can learn; the other streams are drawn from the same distributions but
independently of the label, so a model that learns from them has learnt nothing. The learning
tests use this to prove each path carries signal.

`make_planted` goes further for the explanation tests: the label lives only in a short window
of one stream, at a known time, so an explanation can be checked against a known answer.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..sample import LABEL_MAX, LABEL_MIN, SPLITS, Sample
from .batch import stream_widths


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
    if min(n_train, n_valid, n_test) < 0:
        raise ValueError("sample counts must be >= 0")
    if not 0.0 <= p_absent <= 1.0:
        raise ValueError(f"p_absent must be in [0, 1], got {p_absent}")
    prof = PROFILES[kind]
    d_a = acoustic_dim or prof.acoustic_dim
    d_v = visual_dim or prof.visual_dim

    proj_seq, *split_seqs = np.random.SeedSequence(seed).spawn(1 + len(SPLITS))
    proj_rng = np.random.default_rng(proj_seq)
    directions = {"acoustic": _unit(proj_rng, d_a), "visual": _unit(proj_rng, d_v)}
    dims = {"acoustic": d_a, "visual": d_v}

    out: dict[str, list[Sample]] = {}
    for split, n, seq in zip(SPLITS, (n_train, n_valid, n_test), split_seqs):
        rng = np.random.default_rng(seq)
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
                    id=f"syn-{split}-{i // 8:04d}_{i % 8 + 1}",
                    text=streams["text"],
                    acoustic=streams["acoustic"],
                    visual=streams["visual"],
                    label=_quantise(raw, prof.label_step),
                    meta={"split": split, "source": f"synthetic:{kind}", "signal": signal},
                )
            )
        out[split] = samples
    return out


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def _target(rng: np.random.Generator, prof: _Profile) -> float:
    if rng.random() < prof.p_zero:
        return 0.0
    return float(np.clip(rng.normal(prof.label_mean, prof.label_sd), LABEL_MIN, LABEL_MAX))


def _quantise(x: float, step: float) -> float:
    y = float(np.clip(x, LABEL_MIN, LABEL_MAX))
    y = round(y / step) * step
    return float(np.clip(round(y, 6), LABEL_MIN, LABEL_MAX)) + 0.0  # + 0.0 turns -0.0 into 0.0


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
    if min(n_train, n_valid, n_test) < 0:
        raise ValueError("sample counts must be >= 0")
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

    proj_seq, *split_seqs = np.random.SeedSequence(seed).spawn(1 + len(SPLITS))
    proj_rng = np.random.default_rng(proj_seq)
    direction = _unit(proj_rng, dims[stream])
    beacon = proj_rng.normal(size=dims[stream])
    beacon -= (beacon @ direction) * direction  # orthogonal: the beacon says where, never what
    beacon /= np.linalg.norm(beacon)
    times = np.arange(frames, dtype=np.float64) / rate
    other = "visual" if stream == "acoustic" else "acoustic"

    out: dict[str, list[Sample]] = {}
    for split, n, seq in zip(SPLITS, (n_train, n_valid, n_test), split_seqs):
        rng = np.random.default_rng(seq)
        samples = []
        for i in range(n):
            target = float(np.clip(rng.normal(0.0, label_sd), LABEL_MIN, LABEL_MAX))
            start = window[0] if window is not None else int(rng.integers(0, frames - span + 1))
            end = start + span
            x = rng.normal(size=(frames, dims[stream]))
            x[start:end] += target * direction + marker * beacon
            raw = float(x[start:end].mean(axis=0) @ direction)  # the window alone sets the label
            noise = rng.normal(size=(frames, dims[other]))
            text = " ".join(str(w) for w in rng.choice(NEUTRAL_WORDS, int(rng.integers(*words))))
            samples.append(
                Sample(
                    id=f"planted-{split}-{i // 8:04d}_{i % 8 + 1}",
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
    if min(n_train, n_valid, n_test) < 0:
        raise ValueError("sample counts must be >= 0")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if acoustic_dim < 1 or visual_dim < 2:
        raise ValueError(
            f"need acoustic_dim >= 1 and visual_dim >= 2 (sentiment and cue), got {acoustic_dim}, {visual_dim}"
        )

    proj_seq, *split_seqs = np.random.SeedSequence(seed).spawn(1 + len(SPLITS))
    proj_rng = np.random.default_rng(proj_seq)
    voice_dir, face_dir = _unit(proj_rng, acoustic_dim), _unit(proj_rng, visual_dim)
    cue_dir = proj_rng.normal(size=visual_dim)
    cue_dir -= (cue_dir @ face_dir) * face_dir  # orthogonal: the cue says "flip", never how much
    cue_dir /= np.linalg.norm(cue_dir)

    out: dict[str, list[Sample]] = {}
    for split, n, seq in zip(SPLITS, (n_train, n_valid, n_test), split_seqs):
        rng = np.random.default_rng(seq)
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
            visual = (visual + flip * parts.cue * cue_dir).astype(np.float32)
            samples.append(
                Sample(
                    id=f"trimodal-{split}-{i // 8:04d}_{i % 8 + 1}",
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
# Writers of the standard layouts


def _dims(
    samples_by_split: Mapping[str, Sequence[Sample]], acoustic_dim: int | None, visual_dim: int | None
) -> tuple[int, int]:
    widths = stream_widths(samples_by_split)
    d_a, d_v = acoustic_dim or widths.get("acoustic_dim"), visual_dim or widths.get("visual_dim")
    if d_a is None or d_v is None:
        raise ValueError("no sample carries acoustic/visual frames: pass acoustic_dim and visual_dim")
    return d_a, d_v


def _pad(frames: Sequence[np.ndarray | None], dim: int, front: bool = False) -> tuple[np.ndarray, list[int]]:
    lengths = [0 if x is None else int(x.shape[0]) for x in frames]
    out = np.zeros((len(frames), max(lengths + [1]), dim), dtype=np.float32)
    for i, x in enumerate(frames):
        if x is not None and len(x):
            if front:
                out[i, out.shape[1] - len(x) :] = x
            else:
                out[i, : len(x)] = x
    return out, lengths


def _toy_token_ids(text: str, max_len: int) -> list[int]:
    # Stand-in for a BERT tokenizer when none is given: [CLS] word-hash ids [SEP], stable across runs.
    words = [1000 + zlib.crc32(w.encode()) % 20000 for w in text.split()]
    return [101] + words[: max_len - 2] + [102]


def _text_bert(samples: Sequence[Sample], tokenizer: Any, max_len: int) -> np.ndarray:
    out = np.zeros((len(samples), 3, max_len), dtype=np.int64)
    for i, s in enumerate(samples):
        if s.token_ids:
            ids = list(s.token_ids)[:max_len]
        elif s.text and s.text.strip():
            if tokenizer is not None:
                ids = tokenizer(s.text, truncation=True, max_length=max_len)["input_ids"]
            else:
                ids = _toy_token_ids(s.text, max_len)
        else:
            continue  # absent text: an all-zero row, mask 0
        out[i, 0, : len(ids)] = ids
        out[i, 1, : len(ids)] = 1
    return out


def _split_id(sample_id: str, sep: str) -> str:
    video, _, clip = sample_id.rpartition("_")
    return f"{video}{sep}{clip}" if video else sample_id


def _labels_of(samples: Sequence[Sample]) -> np.ndarray:
    return np.array([s.label for s in samples], dtype=np.float32).reshape(len(samples))


def write_mmsa_pickle(
    samples_by_split: Mapping[str, Sequence[Sample]],
    path: str | Path,
    tokenizer: Any = None,
    *,
    max_text_len: int = 50,
    text_feature_dim: int = 768,
    with_lengths: bool = True,
    acoustic_dim: int | None = None,
    visual_dim: int | None = None,
) -> Path:
    """Write samples as an MMSA pickle (``unaligned_50.pkl`` layout; see `load_mmsa_pickle`).

    Parameters
    ----------
    samples_by_split : split -> samples; missing splits are written empty.
    path : output file.
    tokenizer : a `transformers` tokenizer for ``text_bert``; None uses a sample's token_ids,
        or else stable word-hash ids between [CLS] (101) and [SEP] (102) that only exercise
        the layout.
    max_text_len : L of ``text_bert`` (N, 3, L) and ``text`` (N, L, text_feature_dim).
    text_feature_dim : width of the (all-zero) BERT feature array ``text``; 768 as in MMSA,
        smaller keeps test files small. The loaders do not read it.
    with_lengths : False leaves out ``audio_lengths`` / ``vision_lengths``, as aligned files do.
    acoustic_dim, visual_dim : widths when no sample carries a stream.

    Frames are padded with zeros at the end; an absent stream is all zeros with length 0.
    """
    d_a, d_v = _dims(samples_by_split, acoustic_dim, visual_dim)
    data: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        samples = list(samples_by_split.get(split, []))
        n = len(samples)
        audio, a_len = _pad([s.acoustic for s in samples], d_a)
        vision, v_len = _pad([s.visual for s in samples], d_v)
        labels = _labels_of(samples)
        d: dict[str, Any] = {
            "raw_text": np.array([s.text or "" for s in samples], dtype=object),
            "audio": audio,
            "vision": vision,
            "id": np.array([_split_id(s.id, "$_$") for s in samples], dtype=object),
            "text": np.zeros((n, max_text_len, text_feature_dim), dtype=np.float32),
            "text_bert": _text_bert(samples, tokenizer, max_text_len),
            "regression_labels": labels,
            # MMSA's 3-class labels (negative 0 / neutral 1 / positive 2) and their names.
            "classification_labels": (np.sign(labels) + 1).astype(np.float32),
            "annotations": np.array(
                [("Negative", "Neutral", "Positive")[int(c)] for c in np.sign(np.nan_to_num(labels)) + 1], dtype=object
            ),
        }
        if with_lengths:
            d["audio_lengths"], d["vision_lengths"] = a_len, v_len
        data[split] = d
    path = Path(path)
    with path.open("wb") as f:
        pickle.dump(data, f, protocol=4)
    return path


def write_mult_pickle(
    samples_by_split: Mapping[str, Sequence[Sample]],
    path: str | Path,
    *,
    pad: Literal["front", "back"] = "front",
    id_style: Literal["pair", "bracket", "plain", "mmsa", "bytes_pair"] = "pair",
    text_len: int = 50,
    text_feature_dim: int = 300,
    acoustic_dim: int | None = None,
    visual_dim: int | None = None,
) -> Path:
    """Write samples as a MulT-style pickle (``mosi_data_noalign.pkl`` layout; see `load_mult_pickle`).

    Parameters
    ----------
    samples_by_split : split -> samples; missing splits are written empty.
    path : output file.
    pad : where the zero padding goes ("front" as in some MulT files, or "back").
    id_style : "pair" (N, 2) array of [video, clip]; "bytes_pair" the same as bytes; "bracket"
        "video[clip]"; "plain" "video_clip"; "mmsa" "video$_$clip".
    text_len, text_feature_dim : shape of the (all-zero) GloVe ``text`` array the loaders skip.
    acoustic_dim, visual_dim : widths when no sample carries a stream.

    ``labels`` is (N, 1, 1) float32. An absent stream is all-zero frames. Text is not stored:
    MulT files carry none, it comes from a label CSV.
    """
    d_a, d_v = _dims(samples_by_split, acoustic_dim, visual_dim)
    front = pad == "front"
    data: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        samples = list(samples_by_split.get(split, []))
        n = len(samples)
        audio, _ = _pad([s.acoustic for s in samples], d_a, front)
        vision, _ = _pad([s.visual for s in samples], d_v, front)
        if id_style in ("pair", "bytes_pair"):
            pairs = [s.id.rpartition("_")[::2] if "_" in s.id else (s.id, "") for s in samples]
            ids: np.ndarray = np.array(pairs, dtype=object).reshape(n, 2)
            if id_style == "bytes_pair":
                ids = np.array([[p.encode() for p in row] for row in pairs], dtype=object).reshape(n, 2)
        elif id_style in ("bracket", "plain", "mmsa"):
            sep = {"bracket": "[", "plain": "_", "mmsa": "$_$"}[id_style]
            ids = np.array(
                [_split_id(s.id, sep) + ("]" if id_style == "bracket" and "_" in s.id else "") for s in samples],
                dtype=object,
            )
        else:
            raise ValueError(f"unknown id_style {id_style!r}")
        data[split] = {
            "vision": vision,
            "audio": audio,
            "text": np.zeros((n, text_len, text_feature_dim), dtype=np.float32),
            "labels": _labels_of(samples).reshape(n, 1, 1),
            "id": ids,
        }
    path = Path(path)
    with path.open("wb") as f:
        pickle.dump(data, f, protocol=4)
    return path
