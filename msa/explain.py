"""Explanations: exact Shapley contributions of the three modalities, and gate summaries.

Shapley values treat each modality as a player and the model's score with a subset S of
modalities present (the rest replaced by their learned stand-ins) as the value v(S). With
three players there are 8 subsets: the encoders run once and fusion runs on a batch of 8, so
the values are exact, and they add up to v(all present) - v(none).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch

from .config import MODALITIES
from .model import Encoded, ModelOutput, SentimentModel


@dataclass
class Contributions:
    """Shapley values of one sample, in score units.

    ``values[m]`` is 0 for a modality the clip does not carry (it is never "added").
    ``base`` is v(none): the score with every modality replaced by its stand-in.
    ``subset_scores`` maps a subset (tuple of modality names) to its score v(S).
    """

    values: dict[str, float]
    base: float
    score: float
    subset_scores: dict[tuple[str, ...], float]

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "base": self.base,
            "score": self.score,
            "subset_scores": {"+".join(k) or "none": v for k, v in self.subset_scores.items()},
        }


def _repeat(enc: Encoded, index: int, times: int) -> Encoded:
    """Sample ``index`` of ``enc`` repeated ``times`` along the batch."""

    def rep(x: torch.Tensor) -> torch.Tensor:
        return x[index : index + 1].expand(times, *x.shape[1:])

    return Encoded(
        sequences={k: rep(v) for k, v in enc.sequences.items()},
        masks={k: rep(v) for k, v in enc.masks.items()},
        utterances={k: rep(v) for k, v in enc.utterances.items()},
    )


@torch.no_grad()
def shapley(model: SentimentModel, enc: Encoded, present: torch.Tensor, index: int = 0) -> Contributions:
    """Exact Shapley contributions of text, acoustic and visual for sample ``index``.

    Parameters
    ----------
    model : the model, in eval mode (dropout would make v(S) random).
    enc : `SentimentModel.encode` output for the batch.
    present : (B, 3) bool; what the clip actually carries.
    """
    n = len(MODALITIES)
    subsets = list(itertools.product((False, True), repeat=n))  # 8 masks, in a fixed order
    masks = torch.tensor(subsets, dtype=torch.bool, device=present.device) & present[index : index + 1]
    scores = model.fuse(_repeat(enc, index, len(subsets)), masks).score.double().cpu().tolist()
    value = {s: v for s, v in zip(subsets, scores)}
    have = present[index].tolist()
    contributions = {}
    for i, m in enumerate(MODALITIES):
        phi = 0.0
        if have[i]:
            for s in subsets:
                if s[i]:
                    continue
                with_i = tuple(True if j == i else b for j, b in enumerate(s))
                k = sum(s)
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                phi += weight * (value[with_i] - value[s])
        contributions[m] = phi
    full = tuple(have)
    return Contributions(
        values=contributions,
        base=value[(False, False, False)],
        score=value[full],
        subset_scores={tuple(m for m, b in zip(MODALITIES, s) if b): v for s, v in value.items()},
    )


@dataclass
class GateSummary:
    """Mean over channels of each gate, per text token, for one sample, branch and layer."""

    branch: str
    layer: int
    tokens: list[str]
    retain: list[float]  # one value per token
    fusion: list[float]
    retain_map: list[list[float]]  # (tokens x d), for heatmaps
    fusion_map: list[list[float]]


def gate_summaries(out: ModelOutput, tokens: list[str], index: int = 0) -> list[GateSummary]:
    """Per-token gate summaries of every branch and layer (empty for a model without gates).

    ``tokens`` are the sample's text tokens (special tokens included), as many as its valid
    text positions.
    """
    valid = int(out.text_mask[index].sum())
    if len(tokens) != valid:
        raise ValueError(f"{len(tokens)} tokens given for {valid} valid text positions")
    summaries = []
    for branch, layers in out.gates.items():
        for i, g in enumerate(layers):
            if g.retain is None or g.fusion is None:
                continue
            r = g.retain[index, :valid].detach().float().cpu()
            f = g.fusion[index, :valid].detach().float().cpu()
            summaries.append(GateSummary(branch, i, list(tokens), r.mean(-1).tolist(), f.mean(-1).tolist(),
                                         r.tolist(), f.tolist()))
    return summaries
