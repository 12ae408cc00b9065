"""How much each word takes in: its share of each gated update from the voice or the face.

One row per branch and layer (`share_rows_figure`), and its small-multiples overview
(`share_grid_figure`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...explain import Explanation, GateView, wording
from .style import _layout, _message_figure, _share_axis, _spacing, _title, _word_axis
from .views import _colour, _ordered, _shares, _spoken, _view_title


def _share_bar(expl: Explanation, view: GateView, colour: str) -> go.Bar:
    """One row of per-word shares; the hover names the word, when it was spoken and the row."""
    words = expl.words
    share = _shares(view, len(words))
    row = _view_title(expl, view)
    custom = np.array([[w.text, _spoken(w), row] for w in words], dtype=object).reshape(len(words), 3)
    hover = (
        f"<b>%{{customdata[0]}}</b> (%{{customdata[1]}})<br>%{{y:.0%}} of its update from the "
        f"{wording.sense(view.branch)}<br>%{{customdata[2]}}<extra></extra>"
    )
    return go.Bar(
        x=list(range(len(words))),
        y=share,
        marker=dict(color=colour),
        customdata=custom,
        showlegend=False,
        name=row,
        hovertemplate=hover,
    )


def share_rows_figure(expl: Explanation) -> go.Figure:
    """How much each word takes in: its share of each gated update that came from the voice or face.

    The transcript's words run across in order; there is one row per branch and layer (text ->
    acoustic layer 1, layer 2, text -> visual layer 1, 2), each a bar of the word's share in
    [0, 1] on the same fixed scale. Rows of a branch that saw only the stand-in are grey and
    titled why ("grey: never trained on voice").

    Parameters
    ----------
    expl : the explanation; its ``gates`` give the shares (one per display word).
    """
    title = "How much each word takes in<br>from the voice and the face"
    views = _ordered(expl.gates)
    labels = [w.text for w in expl.words]
    if not views or not labels:
        return _message_figure("No words or no fusion layers to show.", title)
    row_px, gap_px = 105, 40
    plot_px = row_px * len(views) + gap_px * (len(views) - 1)
    fig = make_subplots(
        rows=len(views),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=_spacing(gap_px, plot_px),
        subplot_titles=[_view_title(expl, v) for v in views],
    )
    for r, view in enumerate(views, start=1):
        fig.add_trace(_share_bar(expl, view, _colour(expl, view.branch)), row=r, col=1)
        fig.update_yaxes(**_share_axis(), row=r, col=1)
    fig.update_xaxes(**_word_axis(labels), showgrid=False)
    for ann in fig.layout.annotations:  # the row titles: left-aligned, above their row
        ann.update(x=0, xanchor="left", font=dict(size=12, color="#333"))
    t = _title(title)
    top = t["top"] + 22  # the first row's title sits above its row
    return _layout(fig, plot_px + top + 90, bargap=0.25, title=t["title"], margin=dict(l=50, r=20, t=top, b=90))


def _grid_titles(
    expl: Explanation, branches: list[str], layers: list[int], cell: dict[tuple[str, int], GateView]
) -> list[str]:
    """Each cell's title with its mean share, row by row; "" for a branch without that layer."""
    n = len(expl.words)
    titles = []
    for b in branches:
        for layer in layers:
            v = cell.get((b, layer))
            if v is None:
                titles.append("")
                continue
            # Short lines: a cell is a quarter of the page wide. "text -> acoustic", then the layer and
            # the mean share, then "no voice evidence" when it is grey (the notes say why).
            first, _, stand_in = _view_title(expl, v).partition("<br>")
            head, _, layer_text = first.partition(" \u00b7 ")
            mean = f"{layer_text} \u00b7 mean {float(np.mean(_shares(v, n))):.0%}"
            grey = [wording.no_evidence(b)] if stand_in else []
            titles.append("<br>".join([head, mean] + grey))
    return titles


def share_grid_figure(expl: Explanation) -> go.Figure:
    """The overview of every branch and layer at once (the "model view" of BertViz): a grid of small
    bar charts of the per-word shares, rows = branches, columns = layers.

    Each cell is titled with its branch, layer and mean share over the words; cells of a branch
    that saw only the stand-in are grey and say so. Words are not labelled (the cells are small);
    the hover names them.

    Parameters
    ----------
    expl : the explanation.
    """
    title = "Every branch and layer:<br>each word's share from the voice or the face"
    views = _ordered(expl.gates)
    n = len(expl.words)
    if not views or not n:
        return _message_figure("No words or no fusion layers to show.", title, height=160)
    branches = list(dict.fromkeys(v.branch for v in views))
    layers = sorted({v.layer for v in views})
    cell = {(v.branch, v.layer): v for v in views}
    row_px, gap_px = 115, 75  # the gap holds a cell's title of up to three short lines
    plot_px = row_px * len(branches) + gap_px * (len(branches) - 1)
    fig = make_subplots(
        rows=len(branches),
        cols=len(layers),
        subplot_titles=_grid_titles(expl, branches, layers, cell),
        horizontal_spacing=0.05,
        vertical_spacing=_spacing(gap_px, plot_px),
    )
    for r, b in enumerate(branches, start=1):
        for c, layer in enumerate(layers, start=1):
            v = cell.get((b, layer))
            if v is None:
                continue
            fig.add_trace(_share_bar(expl, v, _colour(expl, b)), row=r, col=c)
            # 0 and 50% only: a 100% label would sit under the cell's title.
            fig.update_yaxes(**{**_share_axis(), "tickvals": [0, 0.5]}, showticklabels=c == 1, row=r, col=c)
            fig.update_xaxes(range=[-0.5, n - 0.5], showticklabels=False, showgrid=False, fixedrange=True, row=r, col=c)
    for ann in fig.layout.annotations:
        ann.update(font=dict(size=12, color="#333"))
    t = _title(title, size=13)
    top = t["top"] + 3 * 17  # a first-row cell's title: up to three short lines above its cell
    return _layout(
        fig,
        plot_px + top + 15,
        bargap=0.15,
        title=t["title"],
        margin=dict(l=45, r=15, t=top, b=15),
    )
