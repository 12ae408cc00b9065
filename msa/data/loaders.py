"""Loaders for the field's data formats: MMSA pickles, MulT pickles, transcript CSVs, synthetic.

Every loader returns ``{"train": [...], "valid": [...], "test": [...]}`` of `Sample`s, split
names normalised ("dev" -> "valid") and recorded in ``meta["split"]``. A modality that a file
does not carry for a sample (length 0, all-zero frames, no transcript) is ``None``: absent, not
zeros posing as data.

Malformed input raises `DataError`, naming the file, the split, and the key or row at fault.
Pickles are read with a restricted unpickler that only rebuilds numpy arrays and plain
containers, so a hostile file fails with a `DataError` instead of running code.
"""

from __future__ import annotations

import inspect
import math
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..sample import LABEL_MAX, LABEL_MIN, SPLITS, Sample
from .synthetic import make_synthetic

_SPLIT_ALIASES = {
    "train": "train",
    "valid": "valid",
    "dev": "valid",
    "val": "valid",
    "validation": "valid",
    "test": "test",
}
# float32 labels such as 3.0000002 are in range and get clipped; anything further out is an error.
_LABEL_TOL = 1e-4
# MMSA joins video and clip ids as "video$_$clip"; the label CSVs (and this project) use "video_clip".
_MMSA_ID_SEP = "$_$"
_BRACKET_ID = re.compile(r"^(?P<video>.+)\[(?P<clip>[^\[\]]+)\]$")

PathLike = str | Path
Splits = dict[str, list[Sample]]


class DataError(ValueError):
    """Malformed input data. The message names the file, and the split, key or row at fault."""


def normalise_split(name: Any, where: str = "") -> str:
    """Map a split name ("train", "dev", "valid", "val", "validation", "test") to train/valid/test.

    Raises
    ------
    DataError
        For any other value; ``where`` prefixes the message (file and row).
    """
    key = _decode(name).strip().lower()
    if key not in _SPLIT_ALIASES:
        raise DataError(f"{where}unknown split/mode {name!r}: expected one of train, dev, valid, test")
    return _SPLIT_ALIASES[key]


def normalise_id(raw: Any) -> str:
    """Turn the id forms found in the standard files into one ``"<video>_<clip>"`` string.

    Handled forms (bytes are decoded as UTF-8):

    - ``"03bSnISJMiM_1"``: kept.
    - ``"03bSnISJMiM$_$1"`` (MMSA): ``"03bSnISJMiM_1"``.
    - ``"03bSnISJMiM[1]"`` (MulT/MultiBench style): ``"03bSnISJMiM_1"``.
    - ``["03bSnISJMiM", "1"]`` (an array row, MulT): ``"03bSnISJMiM_1"``.
    - A row of three or more parts (e.g. MulT MOSEI's ``[video, start, end]``): the non-empty
      parts joined with "_". Such ids are unique but do not match the label CSVs' clip ids.
    """
    if isinstance(raw, (np.ndarray, list, tuple)):
        parts = [_decode(p).strip() for p in np.ravel(np.asarray(raw, dtype=object))]
        parts = [p for p in parts if p]
        if len(parts) == 1:
            return normalise_id(parts[0])
        return "_".join(parts)
    s = _decode(raw).strip()
    s = s.replace(_MMSA_ID_SEP, "_")
    m = _BRACKET_ID.match(s)
    if m:
        s = f"{m['video']}_{m['clip']}"
    return s


# ---------------------------------------------------------------------------------------------
# Restricted unpickling

# Every global a pickle of numpy arrays, numpy scalars and builtin containers needs, under
# numpy 1.x ("numpy.core") and 2.x ("numpy._core") names. They are mapped straight to the
# objects (not imported by name), so nothing outside this table can ever be reached.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,  # protocol 5 arrays
    ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    ("collections", "OrderedDict"): OrderedDict,
    # Protocol-2 pickles store bytes as codecs.encode(text, "latin1"): a pure data transform.
    ("_codecs", "encode"): __import__("_codecs").encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("__builtin__", "set"): set,  # Python 2 pickles
    ("__builtin__", "frozenset"): frozenset,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path):
        # latin1 lets numpy arrays from Python 2 pickles (MulT's files) load; it does not change
        # how Python 3 pickles decode.
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._path}: refusing to unpickle {module}.{name}: only numpy arrays, numbers, "
                "strings and plain containers are allowed, because unpickling anything else can "
                "run arbitrary code. Load this file only if you trust it, and convert it first."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._path}: refusing a pickle with persistent ids (not a data file)")


def load_pickle_safely(path: PathLike) -> Any:
    """Unpickle a data file allowing only numpy arrays, numpy scalars and builtin containers.

    Raises
    ------
    DataError
        If the file is missing, unreadable, or references any other class or function.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open("rb") as f:
        try:
            return _SafeUnpickler(f, path).load()
        except DataError:
            raise
        except Exception as e:  # truncated files, non-pickles: one clear error type
            raise DataError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e


# ---------------------------------------------------------------------------------------------
# Helpers shared by the pickle loaders


def _decode(x: Any) -> str:
    if isinstance(x, (bytes, bytearray, np.bytes_)):
        try:
            return bytes(x).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(x).decode("latin1")
    return str(x)


def _key(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        present = ", ".join(sorted(map(str, d.keys())))
        raise DataError(f"{where}: missing key {key!r} (keys present: {present})")
    return d[key]


def _numeric(x: Any, key: str, where: str, ndim: int) -> np.ndarray:
    try:
        a = np.asarray(x)
    except Exception as e:
        raise DataError(f"{where}: key {key!r} is not an array ({e})") from e
    if a.ndim != ndim:
        raise DataError(f"{where}: key {key!r} has shape {a.shape}, expected {ndim} dimensions")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: key {key!r} is not numeric (dtype {a.dtype})") from e
    return a


def _labels(x: Any, key: str, where: str, n: int) -> np.ndarray:
    a = np.asarray(x)
    if a.size != n or (a.ndim > 1 and a.shape[0] != n):
        raise DataError(f"{where}: key {key!r} has shape {a.shape}, expected ({n},) or ({n}, 1, 1)")
    try:
        return a.reshape(n).astype(np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: key {key!r} is not numeric (dtype {a.dtype})") from e


def _check_label(y: float, where: str, row: int, sample_id: str) -> float:
    if not math.isfinite(y):
        raise DataError(f"{where}: row {row} (id {sample_id!r}): label is {y}, expected a number in [-3, 3]")
    if y < LABEL_MIN - _LABEL_TOL or y > LABEL_MAX + _LABEL_TOL:
        raise DataError(f"{where}: row {row} (id {sample_id!r}): label {y} is outside [-3, 3]")
    return float(min(max(y, LABEL_MIN), LABEL_MAX))


def _count(x: Any) -> int:
    """Rows of a per-sample array (1 for a scalar, which then fails the N check)."""
    a = np.asarray(x, dtype=object)
    return int(a.shape[0]) if a.ndim else 1


def _check_n(sizes: Mapping[str, int], where: str) -> int:
    """All per-sample arrays must agree on N; name the odd one out."""
    values = set(sizes.values())
    if len(values) > 1:
        listing = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise DataError(f"{where}: arrays disagree on the number of samples ({listing})")
    return next(iter(values))


def _clean(frames: np.ndarray) -> np.ndarray:
    # COVAREP audio in the MMSA/MulT pickles holds -inf (log of zero energy) and the odd NaN;
    # the field sets them to 0, and the collator refuses non-finite frames. Always a fresh
    # float32 copy, so a sample never pins the whole (N, T, D) array of its file in memory.
    return np.nan_to_num(np.array(frames, dtype=np.float32), copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def _nonzero_span(frames: np.ndarray) -> tuple[int, int]:
    """[start, end) of the frames between the first and last frame that is not all zero.

    Handles padding at either end (MulT pads some files at the front); an interior all-zero
    frame is kept since it is data, not padding. ``(0, 0)`` when every frame is zero.
    """
    live = np.flatnonzero(np.any(frames != 0, axis=-1))
    if live.size == 0:
        return 0, 0
    return int(live[0]), int(live[-1]) + 1


def _lengths(d: Mapping[str, Any], key: str, where: str, n: int) -> np.ndarray | None:
    if key not in d or d[key] is None:
        return None
    a = np.asarray(d[key])
    if a.size != n:
        raise DataError(f"{where}: key {key!r} has {a.size} entries, expected {n}")
    a = a.reshape(n)
    try:
        ints = a.astype(np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: key {key!r} is not an array of integers") from e
    if np.any(ints != a) or np.any(ints < 0):
        bad = int(np.flatnonzero((ints != a) | (ints < 0))[0])
        raise DataError(f"{where}: key {key!r} row {bad}: length {a[bad]!r} is not a non-negative integer")
    return ints


def _trim(frames: np.ndarray, length: int | None) -> np.ndarray | None:
    """Frames of one sample, padding removed and -inf/NaN set to 0; None (absent) when empty.

    Cleaning comes after trimming: a -inf or NaN frame is data (silence), not padding, and
    cleaning per sample avoids a second copy of a multi-GB MOSEI array.
    """
    if length is None:
        start, end = _nonzero_span(frames)
    else:
        # A length past the stored frames cannot be honoured: keep what is stored.
        start, end = 0, min(int(length), frames.shape[0])
    if end <= start:
        return None
    return _clean(frames[start:end])


def _split_dicts(data: Any, path: Path) -> dict[str, Mapping[str, Any]]:
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a dict of splits (train, valid, test), got {type(data).__name__}")
    out: dict[str, Mapping[str, Any]] = {}
    for name, d in data.items():
        if _decode(name).strip().lower() not in _SPLIT_ALIASES:
            continue  # extra top-level entries (e.g. notes) are not splits
        split = normalise_split(name, f"{path}: ")
        if split in out:
            raise DataError(f"{path}: split {split!r} given twice (as 'dev' and 'valid'?)")
        if not isinstance(d, Mapping):
            raise DataError(f"{path} [{split}]: expected a dict of arrays, got {type(d).__name__}")
        out[split] = d
    missing = [s for s in SPLITS if s not in out]
    if missing:
        present = ", ".join(map(str, data.keys()))
        raise DataError(f"{path}: missing split(s) {', '.join(missing)} (top-level keys: {present})")
    return {s: out[s] for s in SPLITS}


def _check_unique(splits: Splits, source: Path | str) -> None:
    # Within a split a duplicate is a broken file; across splits it leaks test clips into training.
    seen: dict[str, str] = {}
    for split, samples in splits.items():
        for i, s in enumerate(samples):
            if s.id in seen:
                raise DataError(f"{source} [{split}]: row {i}: duplicate id {s.id!r} (already in {seen[s.id]})")
            seen[s.id] = split


def _texts(d: Mapping[str, Any], key: str, where: str) -> list[str] | None:
    if key not in d or d[key] is None:
        return None
    a = np.asarray(d[key], dtype=object)
    if a.ndim != 1:
        raise DataError(f"{where}: key {key!r} has shape {a.shape}, expected (N,) strings")
    return [_decode(t) for t in a]


def _ids(d: Mapping[str, Any], where: str, n: int, split: str) -> tuple[list[str], list[Any]]:
    if "id" not in d or d["id"] is None:
        # MulT's own loader treats ids as optional; such samples cannot be joined to transcripts.
        return [f"{split}_{i}" for i in range(n)], [None] * n
    a = np.asarray(d["id"], dtype=object)
    if a.ndim == 0 or a.shape[0] != n:
        raise DataError(f"{where}: key 'id' has shape {a.shape}, expected {n} ids")
    raw = [a[i] for i in range(n)]
    ids = [normalise_id(r) for r in raw]
    for i, s in enumerate(ids):
        if not s:
            raise DataError(f"{where}: key 'id' row {i} is empty")
    return ids, [r.tolist() if isinstance(r, np.ndarray) else _decode(r) for r in raw]


# ---------------------------------------------------------------------------------------------
# MMSA pickles


def load_mmsa_pickle(path: PathLike, text_source: Literal["text_bert", "raw_text"] = "text_bert") -> Splits:
    """Load an MMSA feature pickle (``unaligned_50.pkl`` / ``aligned_50.pkl``).

    Parameters
    ----------
    path : a pickle in MMSA's layout: ``{train, valid, test}``, each a dict with ``raw_text``,
        ``audio`` (N, T_a, D_a), ``vision`` (N, T_v, D_v), ``id`` ("video$_$clip"),
        ``text_bert`` (N, 3, L: token ids, attention mask, segment ids), ``regression_labels``
        (N,), and optionally ``audio_lengths`` / ``vision_lengths`` (absent in aligned files).
        ``text``, ``classification_labels`` and ``annotations`` are not read.
    text_source : "text_bert" keeps MMSA's token ids (bert-base-uncased vocabulary; also
        MiniLM's) as ``Sample.token_ids``; "raw_text" leaves tokenisation to the collator.

    Returns
    -------
    dict split -> list of Sample. Frames are trimmed to their lengths (or, without lengths, to
    the span of non-zero frames); a length of 0 makes that modality absent. -inf/NaN -> 0.
    ``text`` is always the raw transcript where the file has one.

    Raises
    ------
    DataError
        Naming the file, split and key or row: missing keys, wrong shapes, disagreeing N,
        labels that are NaN or outside [-3, 3], duplicate ids, or a pickle that is not data.
    """
    path = Path(path)
    return _parse_mmsa(load_pickle_safely(path), path, text_source)


def _parse_mmsa(data: Any, path: Path, text_source: str) -> Splits:
    if text_source not in ("text_bert", "raw_text"):
        raise DataError(f"{path}: text_source must be 'text_bert' or 'raw_text', got {text_source!r}")
    out: Splits = {}
    for split, d in _split_dicts(data, path).items():
        where = f"{path} [{split}]"
        audio = _numeric(_key(d, "audio", where), "audio", where, 3)
        vision = _numeric(_key(d, "vision", where), "vision", where, 3)
        _key(d, "id", where)
        n = audio.shape[0]
        labels = _labels(_key(d, "regression_labels", where), "regression_labels", where, n)
        sizes = {"audio": n, "vision": vision.shape[0], "id": _count(d["id"])}
        tokens = mask = None
        if text_source == "text_bert":
            tb = _numeric(_key(d, "text_bert", where), "text_bert", where, 3)
            if tb.shape[1] < 2:
                raise DataError(f"{where}: key 'text_bert' has shape {tb.shape}, expected (N, 3, L)")
            sizes["text_bert"] = tb.shape[0]
            tokens, mask = np.rint(tb[:, 0]).astype(np.int64), tb[:, 1] > 0.5
        if text_source == "raw_text":
            _key(d, "raw_text", where)  # required here; optional (display only) with text_bert
        raw_text = _texts(d, "raw_text", where)
        if raw_text is not None:
            sizes["raw_text"] = len(raw_text)
        a_len = _lengths(d, "audio_lengths", where, n)
        v_len = _lengths(d, "vision_lengths", where, n)
        _check_n(sizes, where)
        ids, raw_ids = _ids(d, where, n, split)

        samples = []
        for i in range(n):
            token_ids = None
            if tokens is not None:
                kept = tokens[i][mask[i]]
                token_ids = kept.tolist() if kept.size else None
            text = raw_text[i] if raw_text is not None else None
            samples.append(
                Sample(
                    id=ids[i],
                    text=text if text and text.strip() else None,
                    acoustic=_trim(audio[i], None if a_len is None else a_len[i]),
                    visual=_trim(vision[i], None if v_len is None else v_len[i]),
                    label=_check_label(float(labels[i]), where, i, ids[i]),
                    token_ids=token_ids,
                    meta={"split": split, "source": str(path), "source_id": raw_ids[i]},
                )
            )
        out[split] = samples
    _check_unique(out, path)
    return out


# ---------------------------------------------------------------------------------------------
# MulT pickles


def load_mult_pickle(path: PathLike, labels_csv: PathLike | None = None) -> Splits:
    """Load a MulT-style pickle (``mosi_data_noalign.pkl`` / ``mosei_senti_data_noalign.pkl``).

    Parameters
    ----------
    path : ``{train, valid, test}``, each with ``audio`` (N, T_a, D_a), ``vision`` (N, T_v, D_v),
        ``labels`` (N, 1, 1) and ``id``. Ids may be strings or bytes ("vid_clip", "vid[clip]",
        "vid$_$clip") or array rows ([vid, clip], or [vid, start, end] for MOSEI): see
        `normalise_id`. Without ``id``, samples are named "<split>_<row>". The GloVe ``text``
        array is not read.
    labels_csv : a label CSV (`load_label_csv` format) whose transcripts are joined by id.
        Without it, or for an id it lacks, the text is absent. Labels always come from the pickle.

    Returns
    -------
    dict split -> list of Sample. MulT stores no lengths: each stream is trimmed to the span
    between its first and last frame that is not all zero (padding may be at either end); an
    all-zero stream is absent. -inf/NaN -> 0 before that.

    Raises
    ------
    DataError
        As `load_mmsa_pickle`.
    """
    path = Path(path)
    return _parse_mult(load_pickle_safely(path), path, labels_csv)


def _transcripts(labels_csv: PathLike | None) -> dict[str, str]:
    if labels_csv is None:
        return {}
    return {s.id: s.text for samples in load_label_csv(labels_csv).values() for s in samples if s.text}


def _parse_mult(data: Any, path: Path, labels_csv: PathLike | None) -> Splits:
    texts = _transcripts(labels_csv)
    out: Splits = {}
    for split, d in _split_dicts(data, path).items():
        where = f"{path} [{split}]"
        audio = _numeric(_key(d, "audio", where), "audio", where, 3)
        vision = _numeric(_key(d, "vision", where), "vision", where, 3)
        n = audio.shape[0]
        raw_labels = _key(d, "labels", where)
        sizes = {"audio": n, "vision": vision.shape[0], "labels": _count(raw_labels)}
        if "id" in d and d["id"] is not None:
            sizes["id"] = _count(d["id"])
        _check_n(sizes, where)
        labels = _labels(raw_labels, "labels", where, n)
        ids, raw_ids = _ids(d, where, n, split)

        samples = []
        for i in range(n):
            text = texts.get(ids[i])
            if text is None and isinstance(raw_ids[i], list) and len(raw_ids[i]) > 2:
                text = texts.get(normalise_id(raw_ids[i][:2]))  # [video, clip, ...] rows
            samples.append(
                Sample(
                    id=ids[i],
                    text=text,
                    acoustic=_trim(audio[i], None),
                    visual=_trim(vision[i], None),
                    label=_check_label(float(labels[i]), where, i, ids[i]),
                    meta={"split": split, "source": str(path), "source_id": raw_ids[i]},
                )
            )
        out[split] = samples
    _check_unique(out, path)
    return out


# ---------------------------------------------------------------------------------------------
# Label CSVs

_MOSI_COLUMNS = ("id", "text", "label", "mode")
_MOSEI_COLUMNS = ("video_id", "clip_id", "text", "label", "mode")


def load_label_csv(path: PathLike) -> Splits:
    """Load a transcript/label CSV: text present, acoustic and visual absent.

    Parameters
    ----------
    path : MOSI layout ``id,text,label,mode`` or MOSEI layout ``video_id,clip_id,text,label,mode``
        (id = "<video_id>_<clip_id>"); mode is train / dev / valid / test. Ids are read as
        strings (MOSEI has numeric-looking video ids). A blank text makes the text absent.

    Returns
    -------
    dict split -> list of Sample with ``meta`` holding split, source, and video_id/clip_id when
    the file has them.

    Raises
    ------
    DataError
        Naming the file and line: missing columns, unknown mode, a label that is not a number
        or is outside [-3, 3], duplicate ids.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        # keep_default_na=False: a transcript reading "null" or "NA" is text, not missing.
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise DataError(f"{path}: not a readable CSV ({type(e).__name__}: {e})") from e
    columns = set(df.columns)
    layout = _MOSI_COLUMNS if "id" in columns or "video_id" not in columns else _MOSEI_COLUMNS
    missing = [c for c in layout if c not in columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(df.columns)}); expected "
            f"{','.join(_MOSI_COLUMNS)} or {','.join(_MOSEI_COLUMNS)}"
        )

    out: Splits = {s: [] for s in SPLITS}
    seen: dict[str, int] = {}
    has_ids = layout is _MOSEI_COLUMNS
    for row, rec in enumerate(df.itertuples(index=False)):
        line = row + 2  # 1-based, after the header: what an editor shows
        r = rec._asdict()
        where = f"{path}: line {line}"
        sample_id = f"{r['video_id'].strip()}_{r['clip_id'].strip()}" if has_ids else r["id"].strip()
        if not sample_id or sample_id == "_":
            raise DataError(f"{where}: empty id")
        if sample_id in seen:
            raise DataError(f"{where}: duplicate id {sample_id!r} (first on line {seen[sample_id]})")
        seen[sample_id] = line
        split = normalise_split(r["mode"], f"{where} (id {sample_id!r}): ")
        try:
            y = float(r["label"])
        except ValueError:
            raise DataError(f"{where} (id {sample_id!r}): label {r['label']!r} is not a number") from None
        if not math.isfinite(y) or not (LABEL_MIN - _LABEL_TOL <= y <= LABEL_MAX + _LABEL_TOL):
            raise DataError(f"{where} (id {sample_id!r}): label {r['label']!r} is outside [-3, 3]")
        meta: dict[str, Any] = {"split": split, "source": str(path)}
        if has_ids:
            meta.update(video_id=r["video_id"].strip(), clip_id=r["clip_id"].strip())
        text = r["text"]
        out[split].append(
            Sample(
                id=sample_id,
                text=text if text.strip() else None,
                label=float(min(max(y, LABEL_MIN), LABEL_MAX)),
                meta=meta,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# One entry point


def load_dataset(
    spec: PathLike,
    *,
    labels_csv: PathLike | None = None,
    text_source: Literal["text_bert", "raw_text"] | None = None,
) -> Splits:
    """Load any supported data source from one string (what ``train.py --data`` takes).

    Parameters
    ----------
    spec : one of

        - ``path/to/label.csv``: a transcript CSV (`load_label_csv`).
        - ``path/to/file.pkl``: an MMSA or MulT pickle, told apart by its keys (MMSA has
          ``regression_labels``/``text_bert``, MulT has ``labels``).
        - ``synthetic:mosi`` / ``synthetic:mosei``: `make_synthetic`.

        Options follow after commas as ``key=value``: for pickles ``text=raw_text`` (MMSA) and
        ``labels=path/to/label.csv`` (MulT transcripts); for synthetic data any parameter of
        `make_synthetic`, e.g. ``synthetic:mosi,n_train=512,signal=acoustic,seed=3``. A path
        that exists as given is never split at commas.
    labels_csv, text_source : the same options as keywords; a keyword wins over the spec.

    Returns
    -------
    dict split -> list of Sample, with keys train, valid, test.

    Raises
    ------
    DataError
        For an unknown source or option, or anything the specific loader refuses.
    """
    spec = str(spec)
    if spec.startswith("synthetic:"):
        kind, opts = _parse_options(spec[len("synthetic:") :], spec)
        return _synthetic(kind, opts, spec)

    if Path(spec).exists():
        target, opts = spec, {}
    else:
        target, opts = _parse_options(spec, spec)
    path = Path(target)
    unknown = set(opts) - {"labels", "text"}
    if unknown:
        raise DataError(f"data spec {spec!r}: unknown option(s) {', '.join(sorted(unknown))} (known: labels, text)")
    labels_csv = labels_csv if labels_csv is not None else opts.get("labels")
    text_source = text_source if text_source is not None else opts.get("text")  # type: ignore[assignment]

    if not path.is_file():
        raise DataError(f"{path}: no such file (data spec {spec!r})")
    if path.suffix.lower() in (".csv", ".tsv"):
        if labels_csv is not None or text_source is not None:
            raise DataError(f"data spec {spec!r}: labels= and text= apply to pickles, not to a CSV")
        return load_label_csv(path)

    data = load_pickle_safely(path)
    layout = _pickle_layout(data, path)
    if layout == "mmsa":
        if labels_csv is not None:
            raise DataError(f"{path}: labels= is for MulT pickles; this is an MMSA pickle with its own raw_text")
        return _parse_mmsa(data, path, text_source or "text_bert")
    if text_source not in (None, "raw_text"):
        raise DataError(f"{path}: text={text_source} is for MMSA pickles; a MulT pickle has no token ids")
    return _parse_mult(data, path, labels_csv)


def _parse_options(spec: str, full: str) -> tuple[str, dict[str, str]]:
    head, *rest = spec.split(",")
    opts: dict[str, str] = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataError(f"data spec {full!r}: option {item!r} is not key=value")
        opts[key.strip()] = value.strip()
    return head.strip(), opts


def _pickle_layout(data: Any, path: Path) -> Literal["mmsa", "mult"]:
    splits = _split_dicts(data, path)
    keys = set(splits["train"].keys())
    if keys & {"regression_labels", "text_bert", "audio_lengths"}:
        return "mmsa"
    if "labels" in keys:
        return "mult"
    raise DataError(
        f"{path} [train]: neither an MMSA pickle (regression_labels, text_bert) nor a MulT pickle "
        f"(labels); keys present: {', '.join(sorted(map(str, keys)))}"
    )


def _synthetic(kind: str, opts: dict[str, str], spec: str) -> Splits:
    params = inspect.signature(make_synthetic).parameters
    kwargs: dict[str, Any] = {"kind": kind}
    for key, value in opts.items():
        if key not in params or key == "kind":
            known = ", ".join(p for p in params if p != "kind")
            raise DataError(f"data spec {spec!r}: unknown option {key!r} (known: {known})")
        default = params[key].default
        try:
            if isinstance(default, bool):
                kwargs[key] = value.lower() in ("1", "true", "yes")
            elif isinstance(default, int) or key in ("acoustic_dim", "visual_dim"):
                kwargs[key] = int(value)
            elif isinstance(default, float):
                kwargs[key] = float(value)
            else:
                kwargs[key] = value
        except ValueError:
            raise DataError(f"data spec {spec!r}: option {key}={value!r} is not a number") from None
    try:
        return make_synthetic(**kwargs)
    except ValueError as e:
        raise DataError(f"data spec {spec!r}: {e}") from e
