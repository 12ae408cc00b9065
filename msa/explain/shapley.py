"""Exact Shapley contributions of the three modalities, computed inside the prediction's own fusion.

Shapley values treat each modality as a player and the model's score with a subset S of
modalities present (the rest replaced by their learned stand-ins) as the value v(S). With
three players there are 8 subsets: the encoders run once, so the values are exact, and they add
up to v(all present) - v(none).

The 8 subsets ride along in the prediction's own fusion (`fuse_with_coalitions`) instead of
re-running it. A branch (text -> acoustic, text -> visual) sees only whether the text and its
own modality are present, so it has 4 cases, not 8. Every layer of a branch works per text
position (text queries attend to the modality's frames, never to each other; gates, norms and
the feed-forward act per position), so the 4 cases run as one longer query sequence in the
prediction's own call: the case's text (or the one-token text stand-in) repeated once per case,
each query masked to see only its case's keys (the real stream, or the modality's one-token
stand-in appended to it). The stream's keys and values are projected once, and a case's pooled
output is the mean over its own query positions. The head then scores the subsets as one batch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..config import MODALITIES
from ..model import BRANCHES, Encoded, LayerGates, ModelOutput, SentimentModel

Subset = tuple[bool, bool, bool]  # presence of (text, acoustic, visual)


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

    def to_dict(self) -> dict[str, Any]:
        """The ``contributions`` object of the explanation's JSON."""
        return {
            "base": self.base,
            "values": dict(self.values),
            "score": self.score,
            "subset_scores": {"+".join(k) or "none": v for k, v in self.subset_scores.items()},
        }


def shapley_values(have: Subset, value: dict[Subset, float]) -> Contributions:
    """Exact Shapley values from v(S) over the 8 subsets; ``have`` is what the clip carries
    (a modality it lacks contributes 0: adding it changes nothing)."""
    n = len(MODALITIES)
    contributions = {}
    for i, m in enumerate(MODALITIES):
        phi = 0.0
        if have[i]:
            for s in value:
                if s[i]:
                    continue
                with_i = tuple(True if j == i else b for j, b in enumerate(s))
                k = sum(s)
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                phi += weight * (value[with_i] - value[s])  # type: ignore[index]
        contributions[m] = phi
    return Contributions(
        values=contributions,
        base=value[(False, False, False)],
        score=value[have],
        subset_scores={tuple(m for m, b in zip(MODALITIES, s) if b): v for s, v in value.items()},
    )


@torch.no_grad()
def fuse_with_coalitions(
    model: SentimentModel, enc: Encoded, present: torch.Tensor
) -> tuple[ModelOutput, Contributions]:
    """`SentimentModel.fuse` for one sample, with its exact Shapley contributions.

    Parameters
    ----------
    model : the model, in eval mode (dropout would make v(S) random).
    enc : `SentimentModel.encode` output for a batch of one sample.
    present : (1, 3) bool; what the clip actually carries.

    Returns
    -------
    The same `ModelOutput` as ``model.fuse(enc, present)`` (gates, attention maps and all), and
    the `Contributions`.
    """
    if present.shape[0] != 1:
        raise ValueError(f"fuse_with_coalitions explains one sample at a time, got a batch of {present.shape[0]}")
    have: Subset = tuple(bool(h) for h in present[0].tolist())  # type: ignore[assignment]
    subsets: list[Subset] = list(itertools.product((False, True), repeat=3))  # type: ignore[arg-type]
    effective = {s: tuple(a and h for a, h in zip(s, have)) for s in subsets}  # absent stays absent
    t = MODALITIES.index("text")

    def stream(m: str, on: bool) -> torch.Tensor:
        """(n, d): the real sequence, or the modality's one-token stand-in."""
        if not on:
            return model.stand_in_token(m).view(1, -1)
        return enc.sequences[m][0, : int(enc.masks[m][0].sum())]

    text_cases = [have[t]] + ([False] if have[t] else [])  # the clip's own case first
    texts = {on: stream("text", on) for on in text_cases}
    pooled: dict[tuple[str, bool, bool], torch.Tensor] = {}
    gates: dict[str, list[LayerGates]] = {}
    for b in BRANCHES:
        i = MODALITIES.index(b)
        x_cases = [have[i]] + ([False] if have[i] else [])
        keys = {on: stream(b, on) for on in x_cases}
        cases = [(tc, xc) for xc in x_cases for tc in text_cases]  # the prediction's own case first
        z = torch.cat([texts[tc] for tc, _ in cases])[None]
        x = torch.cat([keys[xc] for xc in x_cases])[None]
        mask = torch.zeros(1, z.shape[1], x.shape[1], dtype=torch.bool, device=z.device)
        q_start, spans = 0, {}
        for tc, xc in cases:
            k_start = sum(len(keys[o]) for o in x_cases[: x_cases.index(xc)])
            q_end = q_start + len(texts[tc])
            mask[0, q_start:q_end, k_start : k_start + len(keys[xc])] = True
            spans[(tc, xc)], q_start = (q_start, q_end), q_end
        states, layer_gates = model.branch_states(b, z, x, mask)
        for (tc, xc), (q0, q1) in spans.items():
            pooled[(b, tc, xc)] = states[:, q0:q1].mean(1)
        n, k = len(texts[have[t]]), len(keys[have[i]])
        gates[b] = [_own_case(g, n, k) for g in layer_gates]

    order = [have] + sorted({s for s in effective.values() if s != have})
    utt = {
        m: enc.utterances[m][:1] if have[j] else model.stand_in_utterance(m).view(1, -1)
        for j, m in enumerate(MODALITIES)
    }
    stand_in_text = model.stand_in_utterance("text").view(1, -1)
    scores = model.head_score(
        {b: torch.cat([pooled[(b, s[t], s[MODALITIES.index(b)])] for s in order]) for b in BRANCHES},
        torch.cat([utt["text"] if s[t] else stand_in_text for s in order]),
    )
    value_of = dict(zip(order, scores.double().cpu().tolist()))
    contributions = shapley_values(have, {s: value_of[effective[s]] for s in subsets})
    n_text = len(texts[have[t]])
    output = ModelOutput(
        score=scores[:1],
        utterances=utt,
        gates=gates,
        text_mask=torch.ones(1, n_text, dtype=torch.bool, device=scores.device),
        present=present,
        pooled={b: pooled[(b, have[t], have[MODALITIES.index(b)])] for b in BRANCHES},
    )
    return output, contributions


def _own_case(g: LayerGates, n: int, k: int) -> LayerGates:
    """A layer's gates (and attention over its own keys) at the prediction's own case: the
    first ``n`` query positions and ``k`` keys."""

    def cut(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x[:, :n]

    attention = None if g.attention is None else g.attention[:, :, :n, :k]
    return LayerGates(
        retain=cut(g.retain), fusion=cut(g.fusion), attention=attention, query=cut(g.query), attended=cut(g.attended)
    )


def shapley(model: SentimentModel, enc: Encoded, present: torch.Tensor, index: int = 0) -> Contributions:
    """Exact Shapley contributions of text, acoustic and visual for sample ``index`` of a batch."""
    one = Encoded(
        sequences={m: s[index : index + 1, : int(enc.masks[m][index].sum()) or 1] for m, s in enc.sequences.items()},
        masks={m: k[index : index + 1, : int(k[index].sum()) or 1] for m, k in enc.masks.items()},
        utterances={m: u[index : index + 1] for m, u in enc.utterances.items()},
    )
    return fuse_with_coalitions(model, one, present[index : index + 1])[1]


@torch.no_grad()
def shapley_batch(model: SentimentModel, enc: Encoded, present: torch.Tensor) -> list[Contributions]:
    """`shapley` for every sample of a batch: the fusion runs once per subset on the whole batch
    (8 calls instead of one per sample), for averages over many clips (the Fusion Lab)."""
    subsets: list[Subset] = list(itertools.product((False, True), repeat=3))  # type: ignore[arg-type]
    scores = {s: model.fuse(enc, present & present.new_tensor(s)).score.double().cpu() for s in subsets}
    out = []
    for i, row in enumerate(present.tolist()):
        have: Subset = tuple(bool(h) for h in row)  # type: ignore[assignment]
        # A subset with a modality the clip lacks scores as the subset without it (absent stays absent).
        out.append(shapley_values(have, {s: float(scores[s][i]) for s in subsets}))
    return out
