"""Writers of small pickles in the MMSA and MulT layouts, the inverse of `msa.data.loaders`'
readers: tests and smoke runs write synthetic samples (`msa.data.synthetic`) in the field's file
formats and read them back through the real loaders."""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..sample import SPLITS, Sample
from .batch import stream_widths


def _dims(
    samples_by_split: Mapping[str, Sequence[Sample]], acoustic_dim: int | None, visual_dim: int | None
) -> tuple[int, int]:
    widths = stream_widths(samples_by_split)
    d_a, d_v = acoustic_dim or widths.get("acoustic_dim"), visual_dim or widths.get("visual_dim")
    if d_a is None or d_v is None:
        raise ValueError("no sample carries acoustic/visual frames: pass acoustic_dim and visual_dim")
    return d_a, d_v


def _write(
    samples_by_split: Mapping[str, Sequence[Sample]],
    path: str | Path,
    acoustic_dim: int | None,
    visual_dim: int | None,
    layout: Callable[[list[Sample], int, int], dict[str, Any]],
) -> Path:
    """One pickle of split -> ``layout(samples, acoustic width, visual width)`` for every split
    (a missing one empty): the frame of both layouts."""
    d_a, d_v = _dims(samples_by_split, acoustic_dim, visual_dim)
    data = {split: layout(list(samples_by_split.get(split, [])), d_a, d_v) for split in SPLITS}
    path = Path(path)
    with path.open("wb") as f:
        pickle.dump(data, f, protocol=4)
    return path


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

    def layout(samples: list[Sample], d_a: int, d_v: int) -> dict[str, Any]:
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
        return d

    return _write(samples_by_split, path, acoustic_dim, visual_dim, layout)


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
    samples_by_split, path, acoustic_dim, visual_dim : as in `write_mmsa_pickle`.
    pad : where the zero padding goes ("front" as in some MulT files, or "back").
    id_style : "pair" (N, 2) array of [video, clip]; "bytes_pair" the same as bytes; "bracket"
        "video[clip]"; "plain" "video_clip"; "mmsa" "video$_$clip".
    text_len, text_feature_dim : shape of the (all-zero) GloVe ``text`` array the loaders skip.

    ``labels`` is (N, 1, 1) float32. An absent stream is all-zero frames. Text is not stored:
    MulT files carry none, it comes from a label CSV.
    """
    front = pad == "front"

    def layout(samples: list[Sample], d_a: int, d_v: int) -> dict[str, Any]:
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
        return {
            "vision": vision,
            "audio": audio,
            "text": np.zeros((n, text_len, text_feature_dim), dtype=np.float32),
            "labels": _labels_of(samples).reshape(n, 1, 1),
            "id": ids,
        }

    return _write(samples_by_split, path, acoustic_dim, visual_dim, layout)
