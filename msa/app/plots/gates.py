"""Gate values for the advanced view: a branch's retain and fusion gates per word and channel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...explain import DisplayWord, GateView, wording
from .style import _layout, _message_figure, _spacing, _word_axis
from .views import _ordered

_GATES = ("retain", "fusion")  # the two columns, left to right


def _gate_maps(views: list[GateView], n_words: int) -> dict[tuple[int, str], np.ndarray]:
    """(layer, gate) -> its (words, channels) values, checked against the number of words."""
    maps = {(v.layer, gate): np.asarray(getattr(v, gate), dtype=np.float64) for v in views for gate in _GATES}
    for (layer, gate), m in maps.items():
        if m.ndim != 2 or m.shape[0] != n_words:
            raise ValueError(f"layer {layer} {gate} gate: shape {m.shape} for {n_words} words")
    return maps


def _gate_colours(values: np.ndarray, activation: str | None) -> dict:
    """The heatmaps' colour scale: 0..1 for sigmoid gates, diverging around 0 for LN gates."""
    if activation == "sigmoid":
        return dict(colorscale="Viridis", zmin=0.0, zmax=1.0)
    # Symmetric around 0; the 99th percentile keeps one extreme channel from greying out the rest.
    lim = float(np.percentile(np.abs(values), 99)) or 1.0
    return dict(colorscale="RdBu", zmid=0.0, zmin=-lim, zmax=lim)


def gate_heatmaps(
    views: Sequence[GateView], words: Sequence[DisplayWord] | Sequence[str], activation: str | None
) -> go.Figure:
    """Retain and fusion gates of one branch, one row per layer: words across, channels down.

    Parameters
    ----------
    views : the branch's `GateView`s, one per layer (``retain``/``fusion`` are (words, channels)).
    words : the display words (or their texts), in order.
    activation : "ln" (centred, unbounded: diverging colours around 0) or "sigmoid" (0..1).
    """
    views = _ordered([v for v in views if v.retain is not None and v.fusion is not None])
    labels = [w if isinstance(w, str) else w.text for w in words]
    branch = views[0].branch if views else ""
    title = f"Gate values of {wording.branch_title(branch)}, per channel" if views else "Gate values"
    if not views or not labels:
        return _message_figure("This model has no gates to show." if not views else "No words to show.", title)
    maps = _gate_maps(views, len(labels))
    titles = [f"layer {v.layer}: {gate} gate" for v in views for gate in _GATES]
    row_px, gap_px = 240, 100  # the gap holds the word labels of the row above and the titles of the row below
    plot_px = row_px * len(views) + gap_px * (len(views) - 1)
    fig = make_subplots(
        rows=len(views),
        cols=2,
        subplot_titles=titles,
        horizontal_spacing=0.08,
        vertical_spacing=_spacing(gap_px, plot_px),
    )
    colours = _gate_colours(np.concatenate([m.ravel() for m in maps.values()]), activation)
    for r, v in enumerate(views, start=1):
        for col, gate in enumerate(_GATES, start=1):
            z = maps[(v.layer, gate)].T  # channels x words
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    x=list(range(len(labels))),
                    customdata=np.broadcast_to(np.asarray(labels, dtype=object), z.shape),
                    hovertemplate=f"{gate}, layer {v.layer}<br>word %{{customdata}}<br>channel %{{y}}"
                    "<br>value %{z:.3f}<extra></extra>",
                    showscale=(r == 1 and col == 2),
                    colorbar=dict(title=dict(text="gate"), len=0.6),
                    **colours,
                ),
                row=r,
                col=col,
            )
            fig.update_xaxes(**_word_axis(labels), row=r, col=col)
            fig.update_yaxes(title_text="channel" if col == 1 else None, row=r, col=col)
    return _layout(fig, plot_px + 150, title=dict(text=title, x=0.01), margin=dict(l=60, r=20, t=70, b=80))
