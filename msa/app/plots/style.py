"""The look every figure shares: colours, font, page layout, word and share axes, and the message figure."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import plotly.graph_objects as go

# Red for negative, grey for neutral, green for positive: the 7 classes, left to right.
CLASS_COLOURS = ("#b2182b", "#d6604d", "#f4a582", "#e0e0e0", "#a6dba0", "#5aae61", "#1b7837")
MODALITY_COLOURS = {"text": "#4c72b0", "acoustic": "#dd8452", "visual": "#55a868"}
STAND_IN_COLOUR = "#b5b5b5"  # a branch that only saw the learned stand-in: no evidence, so no modality colour
_WORD_COLOUR = "#4c72b0"  # the chosen word's spoken interval
_FONT = dict(family="system-ui, sans-serif", size=12)
_DOT = " \u00b7 "


def _layout(fig: go.Figure, height: int, **kw: object) -> go.Figure:
    """The page settings of every figure; ``kw`` overrides them."""
    base: dict[str, object] = dict(
        height=height, margin=dict(l=50, r=20, t=40, b=40), font=_FONT, paper_bgcolor="white", plot_bgcolor="white"
    )
    fig.update_layout(**{**base, **kw})
    return fig


def _title(text: str, size: int = 14) -> dict:
    """A figure title pinned to the top of the figure, and the top margin its lines need: plotly
    titles do not wrap, so long ones are written as short lines (``<br>``) that fit at 400 px."""
    lines = text.count("<br>") + 1
    return dict(
        title=dict(text=text, x=0.01, y=1, yref="container", yanchor="top", pad=dict(t=10), font=dict(size=size)),
        top=int(16 + lines * size * 1.35),
    )


def _error_by_epoch_layout(fig: go.Figure, title: str) -> go.Figure:
    """A training curve's axes and frame (the Lab's and the Train tab's): mean absolute error over
    epochs from 0, the title's lines on top, the legend in rows under the plot (a phone's width)."""
    fig.update_xaxes(title_text="epoch", gridcolor="#eee")  # from epoch 1: a 0 here would sit on the y axis's 0
    fig.update_yaxes(title_text="mean absolute error", rangemode="tozero", gridcolor="#eee")
    t = _title(title)
    return _layout(
        fig,
        300 + t["top"],
        title=t["title"],
        legend=dict(orientation="h", x=0, xanchor="left", y=0, yref="container", yanchor="bottom"),
        margin=dict(l=60, r=20, t=t["top"], b=110),
    )


def _reference_line(fig: go.Figure, value: float, label: str, colour: str, dash: str) -> None:
    """A horizontal reference (a baseline's error) across the plot, named in the legend: a label
    on the line itself was crossed by the curves that fall through it."""
    fig.add_hline(y=value, line=dict(color=colour, dash=dash, width=1))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=label, line=dict(color=colour, dash=dash, width=1)))


# A slanted word label needs this many pixels along its axis not to touch the next one (12 px text).
WORD_LABEL_PX = 18


def _word_axis(words: Sequence[str], min_px: float = 300) -> dict:
    """A numbered axis with the words as tick labels: a categorical one would merge repeated words.

    The figure is drawn once for every screen, so the labels are thinned for the narrowest: on an
    axis ``min_px`` wide (a phone's full width: 300) every k-th word is named, the others keep
    their bar and name themselves on hover."""
    step = max(1, math.ceil(len(words) * WORD_LABEL_PX / min_px))
    return dict(
        tickmode="array",
        tickvals=list(range(0, len(words), step)),
        ticktext=list(words)[::step],
        tickangle=-45,
        range=[-0.5, len(words) - 0.5],
    )


def _share_axis() -> dict:
    # The same 0..1 range in every row: rows are compared by eye, so an autoscaled row would mislead.
    return dict(range=[0, 1], tickvals=[0, 0.5, 1], tickformat=".0%", gridcolor="#eee", fixedrange=True)


def _spacing(gap_px: float, plot_px: float) -> float:
    """A subplot gap of ``gap_px`` pixels as the fraction make_subplots wants."""
    return float(min(gap_px / max(plot_px, 1.0), 0.3))


def _message_figure(text: str, title: str, height: int = 220) -> go.Figure:
    """An empty figure that says why there is nothing to draw."""
    fig = go.Figure()
    # Annotations do not wrap: short lines fit at 400 px.
    fig.add_annotation(
        text="<br>".join(textwrap.wrap(text, 34)),
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font=dict(size=14, color="#444"),
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    t = _title(title)
    return _layout(fig, height + t["top"] - 40, title=t["title"], margin=dict(l=50, r=20, t=t["top"], b=40))
