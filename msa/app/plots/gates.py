"""Gate values for the advanced view: a branch's retain and fusion gates per word and channel."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...explain import Explanation, GateView, wording
from .style import _layout, _message_figure, _spacing, _title, _word_axis
from .views import _ordered, _stand_in_lines

_GATES = ("retain", "fusion")  # the two columns, left to right


def _gate_maps(views: list[GateView], n_words: int) -> dict[tuple[int, str], np.ndarray]:
    """(layer, gate) -> its (words, channels) values, checked against the number of words."""
    maps = {(v.layer, gate): np.asarray(getattr(v, gate), dtype=np.float64) for v in views for gate in _GATES}
    for (layer, gate), m in maps.items():
        if m.ndim != 2 or m.shape[0] != n_words:
            raise ValueError(f"layer {layer} {gate} gate: shape {m.shape} for {n_words} words")
    return maps


def _gate_colours(values: np.ndarray, activation: str | None, grey: bool = False) -> dict:
    """The heatmaps' colour scale: 0..1 for sigmoid gates, diverging around 0 for LN gates; greys
    for a branch that saw only the stand-in."""
    if activation == "sigmoid":
        return dict(colorscale="Greys" if grey else "Viridis", zmin=0.0, zmax=1.0)
    # Symmetric around 0; the 99th percentile keeps one extreme channel from greying out the rest.
    lim = float(np.percentile(np.abs(values), 99)) or 1.0
    return dict(colorscale="Greys" if grey else "RdBu", zmid=0.0, zmin=-lim, zmax=lim)


def gate_heatmaps(expl: Explanation, branch: str) -> go.Figure:
    """Retain and fusion gates of one branch, one row per layer: words across, channels down.

    A branch whose words saw only the learned stand-in (`Explanation.stand_in_reason`, the rule
    every fusion view follows) is drawn in greys and its title says why.

    Parameters
    ----------
    expl : the explanation (its gate views' ``retain``/``fusion`` are (words, channels)).
    branch : "acoustic" or "visual".
    """
    views = _ordered([v for v in expl.gates if v.branch == branch and v.retain is not None and v.fusion is not None])
    labels = [w.text for w in expl.words]
    activation = expl.gate_activation
    reason = expl.stand_in_reason(branch)
    title = f"Gate values of {wording.branch_title(branch)},<br>per channel"
    title += _stand_in_lines(expl, branch, "these gates")
    if not views or not labels:
        return _message_figure("This model has no gates to show." if not views else "No words to show.", title)
    maps = _gate_maps(views, len(labels))
    titles = [f"layer {v.layer}: {gate} gate" for v in views for gate in _GATES]
    # One map per row, full width: side by side, a phone had room for a word label every 10 px.
    n_rows = len(views) * len(_GATES)
    row_px, gap_px = 170, 95  # the gap holds the word labels of the row above and the title of the row below
    plot_px = row_px * n_rows + gap_px * (n_rows - 1)
    fig = make_subplots(rows=n_rows, cols=1, subplot_titles=titles, vertical_spacing=_spacing(gap_px, plot_px))
    colours = _gate_colours(np.concatenate([m.ravel() for m in maps.values()]), activation, grey=bool(reason))
    for i, v in enumerate(views):
        for j, gate in enumerate(_GATES):
            r = 1 + i * len(_GATES) + j
            z = maps[(v.layer, gate)].T  # channels x words
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    x=list(range(len(labels))),
                    customdata=np.broadcast_to(np.asarray(labels, dtype=object), z.shape),
                    hovertemplate=f"{gate}, layer {v.layer}<br>word %{{customdata}}<br>channel %{{y}}"
                    "<br>value %{z:.3f}<extra></extra>",
                    showscale=r == 1,
                    colorbar=dict(title=dict(text="gate"), len=0.3, y=1, yanchor="top", thickness=12),
                    **colours,
                ),
                row=r,
                col=1,
            )
            fig.update_xaxes(**_word_axis(labels, min_px=200), row=r, col=1)
            fig.update_yaxes(title_text="channel", row=r, col=1)
    t = _title(title)
    top = t["top"] + 22
    return _layout(fig, plot_px + top + 80, title=t["title"], margin=dict(l=60, r=20, t=top, b=80))
