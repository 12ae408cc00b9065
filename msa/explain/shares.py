"""What each word takes in: its share of a gated layer's update, and per-token values (gates,
attention) averaged over each word's tokens."""

from __future__ import annotations

import numpy as np
import torch

from ..model import GatedCrossModalLayer, LayerGates
from .words import DisplayWord


def update_share(layer: GatedCrossModalLayer, g: LayerGates) -> torch.Tensor:
    """(B, T_text): the share of each text position's update that comes from the other modality.

    The layer mixes Z~ = LN(a + b), a = g_f * m (what the word found in the voice or face) and
    b = g_r * Z (the word itself) [13]-[14]. LayerNorm centres across channels (a linear map,
    so the centred sum is the sum of the centred terms), divides by one standard deviation
    shared by both, then scales by gamma and adds beta. So Z~ - beta = (gamma c(a) + gamma c(b)) / s
    exactly, and the share is ||gamma c(a)|| / (||gamma c(a)|| + ||gamma c(b)||) in [0, 1]: the
    norm-based attribution of Kobayashi et al. (2020, 2021), applied to the gated sum. It needs no
    reading of the gate values themselves, so it means the same for LayerNorm gates (centred and
    unbounded, whose channel means are ~0 by construction), sigmoid gates, and the gateless
    "w/o mf" ablation (g_r = g_f = 1).
    """
    if g.query is None or g.attended is None:
        raise ValueError("these gates were recorded without the layer's inputs (query, attended)")
    a = g.attended if g.fusion is None else g.fusion * g.attended
    b = g.query if g.retain is None else g.retain * g.query
    gamma = layer.norm_mix.weight

    def size(x: torch.Tensor) -> torch.Tensor:
        return ((x - x.mean(-1, keepdim=True)) * gamma).norm(dim=-1)

    from_other, own = size(a), size(b)
    return from_other / (from_other + own).clamp_min(1e-12)


def word_averages(words: list[DisplayWord], n_tokens: int) -> np.ndarray:
    """(words x tokens): row i averages the token positions of word i."""
    average = np.zeros((len(words), n_tokens), dtype=np.float32)
    for i, w in enumerate(words):
        average[i, w.tokens] = 1.0 / len(w.tokens)
    return average


def per_word(values: torch.Tensor, average: np.ndarray, axis: int) -> np.ndarray:
    """Mean over each word's token positions (`word_averages`) along ``axis`` of ``values``:
    one matrix product (numpy: torch's per-call overhead dominated these small products)."""
    x = np.moveaxis(values.detach().float().cpu().numpy(), axis, -1)  # (..., tokens)
    return np.moveaxis(x @ average.T, -1, axis)
