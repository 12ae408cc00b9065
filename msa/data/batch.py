"""Sample -> Batch: the one place where samples are padded, tokenised and masked.

Training and serving both go through `Collator`, so a clip in the app is batched exactly as a
clip in `train.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import MODALITIES, ModelConfig
from ..sample import Sample


@dataclass
class Batch:
    """Padded tensors for a list of samples.

    ``present[:, i]`` says whether modality ``MODALITIES[i]`` is there for each sample. An absent
    stream still has a (zero) row of length 1 so that shapes stay regular; the model replaces it
    with a learned stand-in and never reads those zeros.
    """

    ids: list[str]
    input_ids: torch.Tensor  # (B, T_t) long
    text_mask: torch.Tensor  # (B, T_t) bool, True at real tokens
    acoustic: torch.Tensor  # (B, T_a, D_a) float
    acoustic_lengths: torch.Tensor  # (B,) long, >= 1
    visual: torch.Tensor  # (B, T_v, D_v) float
    visual_lengths: torch.Tensor  # (B,) long, >= 1
    present: torch.Tensor  # (B, 3) bool, in MODALITIES order
    labels: torch.Tensor  # (B,) float, NaN where unknown

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> Batch:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Batch(**moved)


class Collator:
    """Turns samples into a `Batch`: tokenises text, pads frames, builds masks.

    Parameters
    ----------
    tokenizer : a `transformers` tokenizer (called on raw text)
    acoustic_dim, visual_dim : feature widths the model expects; a sample whose frames have
        another width is refused with its id in the message.
    max_text_len : tokens kept per utterance, special tokens included.
    """

    def __init__(self, tokenizer: Any, acoustic_dim: int, visual_dim: int, max_text_len: int = 50):
        self.tokenizer = tokenizer
        self.acoustic_dim = acoustic_dim
        self.visual_dim = visual_dim
        self.max_text_len = max_text_len

    @classmethod
    def for_model(cls, tokenizer: Any, config: ModelConfig) -> Collator:
        """The collator a model with ``config`` reads: its feature widths and text length."""
        return cls(tokenizer, config.acoustic_dim, config.visual_dim, config.max_text_len)

    def _token_ids(self, s: Sample) -> list[int]:
        if s.token_ids:
            ids = list(s.token_ids)[: self.max_text_len]
            if len(ids) == self.max_text_len and ids[-1] != self.tokenizer.sep_token_id:
                ids[-1] = self.tokenizer.sep_token_id  # keep the sequence well-formed after truncation
            return ids
        if s.text and s.text.strip():
            return self.tokenizer(s.text, truncation=True, max_length=self.max_text_len)["input_ids"]
        # Absent text: a lone [CLS] keeps shapes regular; the model swaps in its stand-in.
        return [self.tokenizer.cls_token_id]

    def _frames(self, samples: Sequence[Sample], name: str, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        arrays: list[np.ndarray | None] = []
        for s in samples:
            x = getattr(s, name)
            if x is not None:
                x = np.asarray(x, dtype=np.float32)
                if x.ndim != 2 or x.shape[1] != dim or x.shape[0] < 1:
                    raise ValueError(
                        f"sample {s.id!r}: {name} frames have shape {tuple(x.shape)}, expected (T >= 1, {dim})"
                    )
                if not np.isfinite(x).all():
                    raise ValueError(f"sample {s.id!r}: {name} frames contain NaN or infinite values")
            arrays.append(x)
        lengths = torch.tensor([1 if x is None else x.shape[0] for x in arrays], dtype=torch.long)
        out = torch.zeros(len(samples), int(lengths.max()), dim)
        for i, x in enumerate(arrays):
            if x is not None:
                out[i, : x.shape[0]] = torch.from_numpy(x)
        return out, lengths

    def __call__(self, samples: Sequence[Sample]) -> Batch:
        if not samples:
            raise ValueError("cannot collate an empty list of samples")
        token_lists = [self._token_ids(s) for s in samples]
        width = max(len(t) for t in token_lists)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(samples), width), pad, dtype=torch.long)
        text_mask = torch.zeros(len(samples), width, dtype=torch.bool)
        for i, t in enumerate(token_lists):
            input_ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
            text_mask[i, : len(t)] = True
        acoustic, acoustic_lengths = self._frames(samples, "acoustic", self.acoustic_dim)
        visual, visual_lengths = self._frames(samples, "visual", self.visual_dim)
        present = torch.tensor([s.present() for s in samples], dtype=torch.bool).reshape(len(samples), len(MODALITIES))
        labels = torch.tensor([float(s.label) for s in samples], dtype=torch.float32)
        return Batch(
            ids=[s.id for s in samples],
            input_ids=input_ids,
            text_mask=text_mask,
            acoustic=acoustic,
            acoustic_lengths=acoustic_lengths,
            visual=visual,
            visual_lengths=visual_lengths,
            present=present,
            labels=labels,
        )


def stream_widths(splits: Mapping[str, Iterable[Sample]]) -> dict[str, int]:
    """``{"acoustic_dim": A, "visual_dim": V}`` of the samples' frame streams (a stream no sample
    carries is left out).

    One model reads one feature set, so samples whose streams differ in width (e.g. MMSA's MOSI
    pickle, 5/20-d, beside MOSEI's, 74/35-d) raise ValueError with both widths named, before
    any training batch is built.
    """
    seen: dict[str, dict[int, str]] = {"acoustic": {}, "visual": {}}
    for samples in splits.values():
        for s in samples:
            for name, widths in seen.items():
                x = getattr(s, name)
                if x is not None:
                    widths.setdefault(int(x.shape[1]), s.id)
    for name, widths in seen.items():
        if len(widths) > 1:
            found = ", ".join(f"{w} (e.g. sample {i!r})" for w, i in sorted(widths.items()))
            raise ValueError(
                f"the datasets disagree on the {name} feature width: {found}. One model reads one "
                "feature set: train on datasets extracted the same way (or on their transcript CSVs, "
                "which carry no streams)."
            )
    return {f"{name}_dim": next(iter(widths)) for name, widths in seen.items() if widths}
