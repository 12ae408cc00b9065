"""The result: the score on its scale, each modality's exact Shapley value, and the score over time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ...config import MODALITIES
from ...explain import Contributions
from ...metrics import LABEL7_NAMES
from .style import CLASS_COLOURS, _layout

SCALE_DIRECTIONS = ((-3.0, "\u25c0 negative", "left"), (0.0, "neutral", "center"), (3.0, "positive \u25b6", "right"))


def score_figure(score: float, label: str, polarity: str) -> go.Figure:
    """The score as a marker on the [-3, 3] scale, over the 7 class bands.

    Parameters
    ----------
    score : the model's raw score (drawn clipped to the scale; the label shows the raw value).
    label, polarity : its 7-class name and polarity.
    """
    fig = go.Figure()
    for k, colour in enumerate(CLASS_COLOURS):
        lo, hi = max(k - 3.5, -3.0), min(k - 2.5, 3.0)
        fig.add_shape(type="rect", x0=lo, x1=hi, y0=0, y1=1, fillcolor=colour, line=dict(width=0), layer="below")
    # Which way the scale runs, not the seven names: an end band is half a unit wide, narrower than
    # "strongly negative" on a phone. The title names the class.
    for x, text, anchor in SCALE_DIRECTIONS:
        fig.add_annotation(x=x, y=0.2, text=text, xanchor=anchor, showarrow=False, font=dict(size=12, color="#222"))
    x = float(np.clip(score, -3.0, 3.0))
    fig.add_trace(
        go.Scatter(
            x=[x],
            y=[0.72],
            mode="markers+text",
            marker=dict(symbol="triangle-down", size=22, color="black"),
            text=[f"{score:+.2f}"],
            textposition="top center",
            hovertext=[f"score {score:+.3f}: {label} ({polarity})"],
            hoverinfo="text",
            showlegend=False,
        )
    )
    fig.update_xaxes(range=[-3.05, 3.05], tickvals=list(range(-3, 4)), showgrid=False, zeroline=False)
    fig.update_yaxes(range=[0, 1.25], visible=False)
    name = label if label == polarity else f"{label} ({polarity})"
    return _layout(fig, 190, title=dict(text=f"Sentiment {score:+.2f}: {name}", x=0.01))


def shapley_figure(c: Contributions) -> go.Figure:
    """A waterfall from the empty-set score (every modality replaced by its stand-in) through
    each modality's exact Shapley value to the final score; the bars add up exactly.

    Parameters
    ----------
    c : the contributions of one prediction.
    """
    names = list(MODALITIES)
    values = [c.values[m] for m in names]
    fig = go.Figure(
        go.Waterfall(
            orientation="v",
            measure=["absolute", *(["relative"] * len(names)), "total"],
            x=["no modality<br>(base)", *[f"+ {m}" for m in names], "final score"],
            y=[c.base, *values, 0.0],  # plotly computes the total bar itself: base + values
            text=[f"{c.base:+.3f}", *[f"{v:+.3f}" for v in values], f"{c.score:+.3f}"],
            textposition="outside",
            increasing=dict(marker=dict(color="#1b7837")),
            decreasing=dict(marker=dict(color="#b2182b")),
            totals=dict(marker=dict(color="#4c72b0")),
            connector=dict(line=dict(color="#888", dash="dot")),
            hovertemplate="%{x}: %{text}<extra></extra>",
        )
    )
    fig.add_hline(y=0, line=dict(color="#999", width=1))
    lo = min(0.0, c.base, c.score, *np.cumsum([c.base, *values]))
    hi = max(0.0, c.base, c.score, *np.cumsum([c.base, *values]))
    pad = 0.25 * max(hi - lo, 0.2)
    fig.update_yaxes(title="score", range=[lo - pad, hi + pad], gridcolor="#eee")
    return _layout(
        fig,
        340,
        title=dict(text="Each modality's contribution<br>(exact Shapley values)", x=0.01),
        margin=dict(l=50, r=20, t=60, b=40),
    )


def timeline_figure(segments: Sequence[dict], duration: float) -> go.Figure:
    """The score of each utterance as a bar spanning its time in the clip.

    Parameters
    ----------
    segments : `SegmentResult`s as dicts (start, end, score, label7, transcript).
    duration : seconds of media (the x range).
    """
    fig = go.Figure()
    for s in segments:
        colour = CLASS_COLOURS[LABEL7_NAMES.index(s["label7"])]
        fig.add_trace(
            go.Bar(
                x=[(s["start"] + s["end"]) / 2],
                y=[float(np.clip(s["score"], -3, 3))],
                width=[max(s["end"] - s["start"], 0.05)],
                marker=dict(color=colour, line=dict(color="#444", width=1)),
                hovertext=[
                    f"{s['start']:.1f}-{s['end']:.1f} s: {s['score']:+.2f} {s['label7']}<br>{s.get('transcript') or ''}"
                ],
                hoverinfo="text",
                showlegend=False,
            )
        )
    fig.add_hline(y=0, line=dict(color="#666", width=1))
    fig.update_xaxes(title="seconds", range=[0, max(duration, 0.1)], gridcolor="#eee")
    fig.update_yaxes(title="score", range=[-3, 3], tickvals=list(range(-3, 4)), gridcolor="#eee")
    return _layout(
        fig,
        300,
        bargap=0,
        title=dict(text="Sentiment over time<br>(one bar per utterance)", x=0.01),
        margin=dict(l=50, r=20, t=60, b=40),
    )
