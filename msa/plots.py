"""Plotly figures for the app: the score scale, gate heatmaps, gate summaries, the Shapley
waterfall and the segment timeline.

Figures take plain values (numbers, lists, the dataclasses of `msa.explain` / `msa.service`)
and return `plotly.graph_objects.Figure`s; they compute nothing about the model.
Words go on numbered axes with the word as the tick label, because a categorical axis would
merge two occurrences of the same word into one row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .config import MODALITIES
from .explain import Contributions, GateSummary
from .metrics import LABEL7_NAMES
from .service import Word, words_matrix

# Red for negative, grey for neutral, green for positive: the 7 classes, left to right.
CLASS_COLOURS = ("#b2182b", "#d6604d", "#f4a582", "#e0e0e0", "#a6dba0", "#5aae61", "#1b7837")
MODALITY_COLOURS = {"text": "#4c72b0", "acoustic": "#dd8452", "visual": "#55a868"}
BRANCH_TITLES = {"acoustic": "text \u2192 acoustic", "visual": "text \u2192 visual"}
_FONT = dict(family="system-ui, sans-serif", size=12)


def _layout(fig: go.Figure, height: int, **kw: object) -> go.Figure:
    base: dict[str, object] = dict(height=height, margin=dict(l=50, r=20, t=40, b=40), font=_FONT,
                                   paper_bgcolor="white", plot_bgcolor="white")  # fmt: skip
    fig.update_layout(**{**base, **kw})
    return fig


def score_figure(score: float, label: str, polarity: str) -> go.Figure:
    """The score as a marker on the [-3, 3] scale, over the 7 class bands.

    Parameters
    ----------
    score : the model's raw score (drawn clipped to the scale; the label shows the raw value).
    label, polarity : its 7-class name and polarity.
    """
    fig = go.Figure()
    for k, (name, colour) in enumerate(zip(LABEL7_NAMES, CLASS_COLOURS)):
        lo, hi = max(k - 3.5, -3.0), min(k - 2.5, 3.0)
        fig.add_shape(type="rect", x0=lo, x1=hi, y0=0, y1=1, fillcolor=colour, line=dict(width=0), layer="below")
        fig.add_annotation(x=(lo + hi) / 2, y=0.2, text=name.replace(" ", "<br>"), showarrow=False,
                           font=dict(size=10, color="#222"))  # fmt: skip
    x = float(np.clip(score, -3.0, 3.0))
    fig.add_trace(go.Scatter(x=[x], y=[0.72], mode="markers+text", marker=dict(symbol="triangle-down", size=22,
                             color="black"), text=[f"{score:+.2f}"], textposition="top center",
                             hovertext=[f"score {score:+.3f}: {label} ({polarity})"], hoverinfo="text",
                             showlegend=False))  # fmt: skip
    fig.update_xaxes(range=[-3.05, 3.05], tickvals=list(range(-3, 4)), showgrid=False, zeroline=False)
    fig.update_yaxes(range=[0, 1.25], visible=False)
    name = label if label == polarity else f"{label} ({polarity})"
    return _layout(fig, 190, title=dict(text=f"Sentiment {score:+.2f}: {name}", x=0.01))


def shapley_figure(c: Contributions) -> go.Figure:
    """A waterfall from the empty-set score (every modality replaced by its stand-in) through
    each modality's exact Shapley value to the final score; the bars add up exactly."""
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
    return _layout(fig, 340, title=dict(text="Each modality's contribution (exact Shapley values)", x=0.01))


def _word_axis(words: Sequence[str]) -> dict:
    return dict(tickmode="array", tickvals=list(range(len(words))), ticktext=list(words), tickangle=-45)


def gate_heatmaps(summaries: Sequence[GateSummary], words: Sequence[Word], activation: str) -> go.Figure:
    """Retain and fusion gates of one branch, one row per layer: words across, channels down.

    Parameters
    ----------
    summaries : the branch's `GateSummary`s, one per layer.
    words : display words (WordPieces merged; a word's column is the mean of its pieces).
    activation : "ln" (diverging colours centred on 0) or "sigmoid" (0..1).
    """
    layers = [g.layer for g in summaries]
    maps = {(g.layer, gate): words_matrix(getattr(g, f"{gate}_map"), words) for g in summaries
            for gate in ("retain", "fusion")}  # fmt: skip
    labels = [w.text for w in words]
    titles = [f"layer {i + 1}: {gate} gate" for i in layers for gate in ("retain", "fusion")]
    fig = make_subplots(rows=len(layers), cols=2, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.2 / max(len(layers), 1))  # fmt: skip
    values = np.concatenate([m.ravel() for m in maps.values()]) if maps else np.zeros(1)
    if activation == "sigmoid":
        colours = dict(colorscale="Viridis", zmin=0.0, zmax=1.0)
    else:
        # Symmetric around 0; the 99th percentile keeps one extreme channel from greying out the rest.
        lim = float(np.percentile(np.abs(values), 99)) or 1.0
        colours = dict(colorscale="RdBu", zmid=0.0, zmin=-lim, zmax=lim)
    for r, layer in enumerate(layers, start=1):
        for col, gate in enumerate(("retain", "fusion"), start=1):
            z = maps[(layer, gate)].T  # channels x words
            fig.add_trace(
                go.Heatmap(z=z, x=list(range(len(labels))), customdata=np.broadcast_to(np.asarray(labels, dtype=object), z.shape),
                           hovertemplate=f"{gate}, layer {layer + 1}<br>word %{{customdata}}<br>channel %{{y}}"
                                         "<br>value %{z:.3f}<extra></extra>",
                           showscale=(r == 1 and col == 2), colorbar=dict(title=dict(text="gate"), len=0.6), **colours),
                row=r, col=col,
            )  # fmt: skip
            fig.update_xaxes(**_word_axis(labels), row=r, col=col)
            fig.update_yaxes(title_text="channel" if col == 1 else None, row=r, col=col)
    height = 120 + 300 * len(layers)
    return _layout(fig, height, margin=dict(l=60, r=20, t=50, b=70))


def gate_summary_figure(summaries: Sequence[GateSummary], words: Sequence[Word], activation: str) -> go.Figure:
    """Per-word gate summary of every branch and layer: the mean over channels for sigmoid gates
    (how open), the mean absolute value for LN gates (their channel mean is ~0 by design)."""
    stat = "mean" if activation == "sigmoid" else "mean |value|"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=[f"retain gate ({stat} over channels)", f"fusion gate ({stat} over channels)"])  # fmt: skip
    dash = {0: "solid", 1: "dot", 2: "dash", 3: "dashdot"}
    labels = [w.text for w in words]
    x = list(range(len(labels)))
    for row, gate in enumerate(("retain", "fusion"), start=1):
        for g in summaries:
            m = words_matrix(getattr(g, f"{gate}_map"), words)
            y = m.mean(1) if activation == "sigmoid" else np.abs(m).mean(1)
            fig.add_trace(
                go.Scatter(x=x, y=y, mode="lines+markers", name=f"{BRANCH_TITLES[g.branch]}, layer {g.layer + 1}",
                           legendgroup=f"{g.branch}{g.layer}", showlegend=row == 1,
                           line=dict(color=MODALITY_COLOURS[g.branch], dash=dash.get(g.layer, "solid")),
                           customdata=labels, hovertemplate="%{customdata}: %{y:.3f}<extra>%{fullData.name}</extra>"),
                row=row, col=1,
            )  # fmt: skip
    fig.update_xaxes(**_word_axis(labels), row=2, col=1)
    fig.update_yaxes(gridcolor="#eee")
    if activation == "sigmoid":
        fig.update_yaxes(range=[0, 1])
    return _layout(fig, 480, legend=dict(orientation="h", y=-0.25), margin=dict(l=50, r=20, t=40, b=110))


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
        fig.add_trace(go.Bar(x=[(s["start"] + s["end"]) / 2], y=[float(np.clip(s["score"], -3, 3))],
                             width=[max(s["end"] - s["start"], 0.05)], marker=dict(color=colour, line=dict(color="#444", width=1)),
                             hovertext=[f"{s['start']:.1f}-{s['end']:.1f} s: {s['score']:+.2f} {s['label7']}<br>{s.get('transcript') or ''}"],
                             hoverinfo="text", showlegend=False))  # fmt: skip
    fig.add_hline(y=0, line=dict(color="#666", width=1))
    fig.update_xaxes(title="seconds", range=[0, max(duration, 0.1)], gridcolor="#eee")
    fig.update_yaxes(title="score", range=[-3, 3], tickvals=list(range(-3, 4)), gridcolor="#eee")
    return _layout(fig, 300, bargap=0, title=dict(text="Sentiment over time (one bar per utterance)", x=0.01))


__all__ = ["gate_heatmaps", "gate_summary_figure", "score_figure", "shapley_figure", "timeline_figure"]
