"""The Train tab's figure: the fine-tuning's error as it trains, epoch by epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from .style import _error_by_epoch_layout, _reference_line

_FOLD_COLOUR = "#9bb7d4"  # each fold: thin and light, so that many folds stay one reading
_HELD_OUT_COLOUR = "#4c72b0"
_FINAL_COLOUR = "#dd8452"
_BASE_COLOUR = "#555"

TITLE = "Fine-tuning<br>(held-out: clips a model did not train on)"


def finetune_figure(
    folds: Mapping[int, Sequence[tuple[int, float]]],
    final: Sequence[tuple[int, float]] = (),
    held_out: Sequence[float] | None = None,
    base_mae: float | None = None,
) -> go.Figure:
    """Mean absolute error per epoch: each fold's on the clips it left out (thin), over every
    clip once the folds are done (``held_out``, bold), the final model's on its training clips
    (dashed; it has no held-out clips), and the base checkpoint's on the same clips (dotted).

    ``folds`` maps fold number to (epoch, held-out MAE) pairs; ``final`` holds (epoch, training MAE).
    """
    fig = go.Figure()
    for i, (fold, points) in enumerate(sorted(folds.items())):
        fig.add_trace(
            go.Scatter(
                x=[e for e, _ in points],
                y=[v for _, v in points],
                name="held-out, each fold",
                legendgroup="folds",
                showlegend=i == 0,
                mode="lines",
                line=dict(color=_FOLD_COLOUR, width=1),
                hovertemplate=f"fold {fold}, epoch %{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    if held_out:
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(held_out) + 1)),
                y=list(held_out),
                name="held-out, every clip",
                mode="lines+markers",
                line=dict(color=_HELD_OUT_COLOUR, width=3),
                marker=dict(size=4),
            )
        )
    if final:
        fig.add_trace(
            go.Scatter(
                x=[e for e, _ in final],
                y=[v for _, v in final],
                name="final model, training",
                mode="lines",
                line=dict(color=_FINAL_COLOUR, dash="dash"),
            )
        )
    if base_mae is not None:
        _reference_line(fig, base_mae, f"base {base_mae:.2f}", _BASE_COLOUR, "dot")
    return _error_by_epoch_layout(fig, TITLE)


__all__ = ["finetune_figure"]
