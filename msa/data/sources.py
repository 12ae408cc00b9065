"""Training data from where it lives: several datasets merged, with per-dataset oversampling and
the validation or test fold taken from chosen ones. `msa.training.experiment` (what ``train.py``
runs) and the scripts use it; a folder of labelled videos is `msa.features.videos`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..sample import SPLITS, Sample
from .loaders import load_dataset

Splits = dict[str, list[Sample]]


def parse_train_repeat(value: str, n_data: int) -> list[int]:
    """``--train-repeat 3,1`` -> [3, 1]: one whole number >= 1 per ``--data``, else ValueError."""
    try:
        repeats = [int(k) for k in value.split(",")]
    except ValueError:
        raise ValueError(f"--train-repeat {value!r}: give whole numbers separated by commas, e.g. 3,1") from None
    if len(repeats) != n_data or min(repeats) < 1:
        raise ValueError(f"--train-repeat needs one whole number >= 1 per --data ({n_data} given), got {repeats}")
    return repeats


def merge_datasets(
    specs: Sequence[str],
    limit: int = 0,
    valid_spec: str | Sequence[str] | None = None,
    test_spec: str | None = None,
    train_repeat: Sequence[int] | None = None,
) -> Splits:
    """Merge the splits of every dataset (`msa.data.load_dataset` specs).

    Parameters
    ----------
    specs : the datasets whose splits are merged.
    limit : keep at most this many samples per split (0: all; smoke runs).
    valid_spec : take the validation split from these datasets only (e.g. select on MOSI dev +
        MOSEI valid while training on both).
    test_spec : take the test split from this dataset only.
    train_repeat : copies of dataset i's training split in each epoch, so that a small
        in-domain set is not drowned by a large one; validation and test are untouched.
    """
    repeats = list(train_repeat or [1] * len(specs))
    if len(repeats) != len(specs):
        raise ValueError(f"train_repeat has {len(repeats)} entries for {len(specs)} datasets")
    merged: Splits = {split: [] for split in SPLITS}
    for spec, repeat in zip(specs, repeats):
        for split, samples in load_dataset(spec).items():
            merged.setdefault(split, []).extend(samples * repeat if split == "train" else samples)
    overrides = {
        "valid": [valid_spec] if isinstance(valid_spec, str) else valid_spec,
        "test": None if test_spec is None else [test_spec],
    }
    for split, split_specs in overrides.items():
        if split_specs:
            merged[split] = [s for spec in split_specs for s in load_dataset(spec).get(split, [])]
    if limit:
        merged = {k: v[:limit] for k, v in merged.items()}
    return merged


__all__ = ["Splits", "merge_datasets", "parse_train_repeat"]
