"""The Fusion Lab's own figures: the loss curves as a model trains, the model's Shapley values
beside the rule's, and the cue's true window on the attention view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from ...config import MODALITIES
from ...explain import wording
from ...lab.baselines import BASELINE_NAMES, BASELINE_SHORT_NAMES
from .style import _error_by_epoch_layout, _layout, _reference_line, _title

# One colour per trained model (the first, the second, the words-alone baseline).
_RUN_COLOURS = ("#4c72b0", "#c44e52", "#8c8c8c")
_CUE_COLOUR = "#c44e52"


def loss_figure(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    baselines: Mapping[str, float] | None = None,
    title: str = "Training",
) -> go.Figure:
    """Each model's training MAE (dashed) and validation MAE (solid) per epoch; when known, the
    baselines' test MAE as dotted lines."""
    fig = go.Figure()
    for (name, history), colour in zip(histories.items(), _RUN_COLOURS):
        epochs = [h["epoch"] for h in history]
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=[h["valid"] for h in history],
                name=f"{name}: validation",
                mode="lines+markers",
                line=dict(color=colour),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=[h["train"] for h in history],
                name=f"{name}: training",
                mode="lines",
                line=dict(color=colour, dash="dash"),
            )
        )
    shown = sorted(((v, k) for k, v in (baselines or {}).items() if k in BASELINE_NAMES), reverse=True)
    for (value, key), dash in zip(shown, ("dot", "dashdot")):
        _reference_line(fig, value, f"{BASELINE_SHORT_NAMES[key]} {value:.2f}", "#555", dash)
    return _error_by_epoch_layout(fig, title)


def truth_figure(models: Mapping[str, Mapping[str, float]], truth: Mapping[str, float], title: str) -> go.Figure:
    """Per modality: each model's Shapley value beside the rule's (one clip's values, or the mean
    |value| over the test clips)."""
    fig = go.Figure()
    names = [wording.MODALITY_WORDS[m] for m in MODALITIES]
    for (name, values), colour in zip(models.items(), _RUN_COLOURS):
        fig.add_trace(
            go.Bar(
                x=names,
                y=[values[m] for m in MODALITIES],
                name=name,
                marker_color=colour,
                text=[f"{values[m]:+.2f}" for m in MODALITIES],
                textposition="outside",
            )
        )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[truth[m] for m in MODALITIES],
            name="the rule (truth)",
            marker=dict(color="white", line=dict(color="#222", width=2)),
            text=[f"{truth[m]:+.2f}" for m in MODALITIES],
            textposition="outside",
        )
    )
    fig.add_hline(y=0, line=dict(color="#888", width=1))
    # Three bars a group (two models and the rule) leave a bar narrower than "+0.58" on a phone:
    # the labels then stand upright, given more room above and below.
    upright = len(models) >= 2
    fig.update_traces(cliponaxis=False, textfont=dict(size=12), textangle=-90 if upright else 0)
    values = [0.0, *truth.values(), *(v for m in models.values() for v in m.values())]
    room = _with_room(values, 0.45 if upright else 0.2)
    fig.update_yaxes(title_text="score points", gridcolor="#eee", zeroline=False, range=room)
    t = _title(title)
    return _layout(
        fig,
        300 + t["top"],
        barmode="group",
        uniformtext=dict(minsize=12, mode="show"),  # value labels never shrink below 12 px
        title=t["title"],
        legend=dict(orientation="h", x=0, xanchor="left", y=0, yref="container", yanchor="bottom"),
        margin=dict(l=60, r=20, t=t["top"] + 15, b=80),
    )


def _with_room(values: Sequence[float], room: float = 0.2) -> list[float]:
    """A value axis's range with ``room`` of its span free above and below the bars, for the
    value labels written outside them (at the top a label was cut by the plot's edge)."""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return [low - room * span if low < 0 else low, high + room * span if high > 0 else high]


def mark_cue(fig: go.Figure, window: tuple[float, float], label: str, duration: float) -> go.Figure:
    """Outline where the world put a cue on the attention view's top row: the right answer. Its
    label runs from the window towards the middle of the clip, so it stays inside the plot."""
    if not fig.data:  # a message figure (no stream): nothing to mark
        return fig
    early = (window[0] + window[1]) / 2 < duration / 2
    fig.add_vrect(
        x0=window[0],
        x1=window[1],
        line=dict(color=_CUE_COLOUR, width=2, dash="dot"),
        fillcolor="rgba(0,0,0,0)",
        annotation_text=f"{label} (truth)",
        annotation_position="bottom left" if early else "bottom right",  # the top is the spoken word's
        annotation_font=dict(size=12, color=_CUE_COLOUR),
        annotation_bgcolor="rgba(255,255,255,0.9)",  # over the attention's bars it was unreadable
        row=1,
        col=1,
    )
    return fig


__all__ = ["loss_figure", "mark_cue", "truth_figure"]
