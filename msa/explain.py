"""Explanations: exact Shapley contributions of the three modalities, and gate summaries.

Shapley values treat each modality as a player and the model's score with a subset S of
modalities present (the rest replaced by their learned stand-ins) as the value v(S). With
three players there are 8 subsets: the encoders run once, so the values are exact, and they add
up to v(all present) - v(none).

The 8 fusions share most of their work: a branch (text -> acoustic, text -> visual) sees only
whether the text and its own modality are present, so each branch has 4 cases, not 8; the case
with everything the clip carries is taken from the model's own output when it is given, and the
others run as one small padded batch per branch (a stand-in is a sequence of length one). The
head then scores the 8 subsets as one batch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch

from .config import MODALITIES
from .model import BRANCHES, Encoded, ModelOutput, SentimentModel


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


def _pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (n_i, d) sequences into (k, max n, d) with a mask of the real positions."""
    width = max(x.shape[0] for x in seqs)
    out = seqs[0].new_zeros(len(seqs), width, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), width, dtype=torch.bool, device=out.device)
    for i, x in enumerate(seqs):
        out[i, : x.shape[0]], mask[i, : x.shape[0]] = x, True
    return out, mask


def _branch_cases(
    model: SentimentModel, enc: Encoded, index: int, branch: str, cases: list[tuple[bool, bool]]
) -> torch.Tensor:
    """Pooled outputs (len(cases), d) of one branch for sample ``index``, one per (text_on,
    other_on) case, an absent stream being its one-token stand-in. All cases run as one padded
    batch: every layer masks padded keys and pools over real positions, so padding changes no value."""

    def sequence(m: str, on: bool) -> torch.Tensor:
        if not on:
            return model.stand_in_token(m).view(1, -1)
        return enc.sequences[m][index, : int(enc.masks[m][index].sum())]

    z, z_mask = _pad([sequence("text", text_on) for text_on, _ in cases])
    x, x_mask = _pad([sequence(branch, other_on) for _, other_on in cases])
    return model.run_branch(branch, z, z_mask, x, x_mask, need_weights=False)[0]


@torch.no_grad()
def shapley(
    model: SentimentModel, enc: Encoded, present: torch.Tensor, index: int = 0, output: ModelOutput | None = None
) -> Contributions:
    """Exact Shapley contributions of text, acoustic and visual for sample ``index``.

    Parameters
    ----------
    model : the model, in eval mode (dropout would make v(S) random).
    enc : `SentimentModel.encode` output for the batch.
    present : (B, 3) bool; what the clip actually carries.
    output : the model's output for ``present``, if already computed: its pooled branch outputs
        are reused for the full set instead of being recomputed.
    """
    n = len(MODALITIES)
    subsets = list(itertools.product((False, True), repeat=n))  # 8 masks, in a fixed order
    have = tuple(bool(h) for h in present[index].tolist())
    effective = [tuple(a and h for a, h in zip(s, have)) for s in subsets]
    t = MODALITIES.index("text")

    def key(branch: str, s: tuple[bool, ...]) -> tuple[str, bool, bool]:
        # a branch sees only whether the text and its own modality are there: 4 cases, not 8
        return branch, s[t], s[MODALITIES.index(branch)]

    pooled: dict[tuple[str, bool, bool], torch.Tensor] = {}
    if output is not None:
        pooled.update({key(b, have): output.pooled[b][index : index + 1] for b in BRANCHES})
    for b in BRANCHES:
        missing = sorted({key(b, s) for s in effective} - set(pooled))
        if missing:
            outs = _branch_cases(model, enc, index, b, [k[1:] for k in missing])
            pooled.update({k: outs[i : i + 1] for i, k in enumerate(missing)})
    text_utt = enc.utterances["text"][index : index + 1]
    stand_in_utt = model.stand_in_utterance("text").view(1, -1)
    scores = model.head_score(
        {b: torch.cat([pooled[key(b, s)] for s in effective]) for b in BRANCHES},
        torch.cat([text_utt if s[t] else stand_in_utt for s in effective]),
    ).double().cpu().tolist()
    value = {s: v for s, v in zip(subsets, scores)}
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
    full = have
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
