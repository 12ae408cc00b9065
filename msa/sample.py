"""The one utterance type every layer shares, and the words' timing type.

`Sample` is made by every data source (the loaders of the standard files, synthetic worlds, the
feature extractor on a media file) and read by the collator; it lives below both `msa.data` and
`msa.features` so that neither imports the other. `TimedWord` is a recognised word with its
spoken interval, the one form a word takes from the speech recogniser to the JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPLITS: tuple[str, str, str] = ("train", "valid", "test")  # the names every loader maps its folds to
LABEL_MIN, LABEL_MAX = -3.0, 3.0  # the sentiment scale of CMU-MOSI and CMU-MOSEI


@dataclass
class Sample:
    """One utterance. A modality set to None is absent (not zeros posing as data).

    Attributes
    ----------
    id : str
        Segment id, e.g. ``"03bSnISJMiM_1"``.
    text : str or None
        Transcript. Ignored for tokenisation when ``token_ids`` is given.
    acoustic, visual : (T, D) float32 arrays or None
        Frame-level features; T >= 1 when present.
    label : float
        Sentiment in [-3, 3]; NaN when unknown (prediction).
    token_ids : list of int, optional
        Pre-tokenised text including special tokens (MMSA's ``text_bert`` row).
    meta : dict
        Free-form extras (time span, split, source file) carried through untouched.
    """

    id: str
    text: str | None = None
    acoustic: np.ndarray | None = None
    visual: np.ndarray | None = None
    label: float = math.nan
    token_ids: list[int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def present(self) -> tuple[bool, bool, bool]:
        """Which of (text, acoustic, visual) this sample carries."""
        has_text = bool(self.token_ids) or bool(self.text and self.text.strip())
        return has_text, self.acoustic is not None, self.visual is not None


@dataclass(frozen=True)
class TimedWord:
    """A recognised word and its spoken interval in seconds (from the ASR)."""

    word: str
    start: float
    end: float


__all__ = ["LABEL_MAX", "LABEL_MIN", "SPLITS", "Sample", "TimedWord"]
