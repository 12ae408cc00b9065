"""Several short texts through a BERT-family encoder as one sequence, without their padding.

A clip's segments are short (10-25 tokens) beside the longest of them, so a padded batch spends
most of the encoder's work on padding; on a CPU that work is the request's largest cost after
the speech recognition. Packed end to end, each text sees only itself (a block-diagonal
attention mask) and its own positions (numbered from its start, as when it is alone), so every
real token's state is the one it gets alone; MPNet's relative position bias depends only on
the distance between two tokens, which packing keeps within a text.
"""

from __future__ import annotations

import torch
import torch.nn as nn

# A packed row holds at most this many tokens (or the longest text): attention grows with the
# square of a row's length, the projections only linearly.
PACK_TOKENS = 256

# Where a text's first position is numbered: BERT's positions start at 0; RoBERTa's and MPNet's
# after their padding index (`padding_idx + 1`). Other families are left padded.
_POSITION_FROM_PADDING = {"mpnet", "roberta", "xlm-roberta", "camembert"}
_POSITION_FROM_ZERO = {"bert"}


def first_position(backbone: nn.Module) -> int | None:
    """The position id a text's first token gets in ``backbone`` (None: packing unsupported)."""
    kind = getattr(getattr(backbone, "config", None), "model_type", None)
    if kind in _POSITION_FROM_ZERO:
        return 0
    if kind in _POSITION_FROM_PADDING:
        return int(backbone.embeddings.padding_idx) + 1
    return None


def pack_rows(lengths: list[int], max_tokens: int = PACK_TOKENS) -> list[list[int]]:
    """The texts (by index, in order) of each packed row: filled in order, a new row begun when
    the next text would pass ``max_tokens`` (a text longer than that gets a row of its own)."""
    rows: list[list[int]] = []
    used = 0
    for i, n in enumerate(lengths):
        if not rows or used + n > max_tokens:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += n
    return rows


def packed_states(
    backbone: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor, max_tokens: int = PACK_TOKENS
) -> torch.Tensor | None:
    """The last hidden states of right-padded (B, T) ``input_ids`` under the (B, T) bool ``mask``,
    computed packed: (B, T, width), zero at padding. None when ``backbone``'s family is not known
    to number positions from a text's start (the caller then runs the padded batch)."""
    first = first_position(backbone)
    lengths = mask.sum(1).tolist()
    if first is None or min(lengths) < 1:
        return None
    batch, total = input_ids.shape
    rows = pack_rows(lengths, max_tokens)
    width = max(sum(lengths[i] for i in row) for row in rows)
    pad_id = getattr(backbone.config, "pad_token_id", None) or 0
    ids = input_ids.new_full((len(rows), width), pad_id)
    positions = input_ids.new_full((len(rows), width), first)
    text_of = input_ids.new_full((len(rows), width), -1)  # which text each token belongs to
    placed: list[tuple[int, int, int, int]] = []  # (text, row, offset, length)
    for r, row in enumerate(rows):
        offset = 0
        for i in row:
            n = lengths[i]
            ids[r, offset : offset + n] = input_ids[i, :n]
            positions[r, offset : offset + n] = torch.arange(first, first + n, device=ids.device)
            text_of[r, offset : offset + n] = i
            placed.append((i, r, offset, n))
            offset += n
    dtype = backbone.get_input_embeddings().weight.dtype
    # Additive mask (rows, 1, query, key): a token attends within its own text; padding among itself.
    same = text_of[:, :, None] == text_of[:, None, :]
    attention = torch.zeros(same.shape, dtype=dtype, device=ids.device)
    attention = attention.masked_fill(~same, torch.finfo(dtype).min)[:, None]
    states = backbone(input_ids=ids, attention_mask=attention, position_ids=positions).last_hidden_state
    out = states.new_zeros(batch, total, states.shape[-1])
    for i, r, offset, n in placed:
        out[i, :n] = states[r, offset : offset + n]
    return out


__all__ = ["PACK_TOKENS", "first_position", "pack_rows", "packed_states"]
