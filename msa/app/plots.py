"""Plotly figures for the app.

- The result: the score on its scale (`score_figure`), each modality's exact Shapley value
  (`shapley_figure`) and, for a long input, the score of each utterance over time (`timeline_figure`).
- How gated fusion works, from an `msa.explain.Explanation`: how much of each word's update comes
  from the voice and from the face (`share_rows_figure`, one row per branch and layer, and its
  small-multiples overview `share_grid_figure`), where one word looks along the clip, over its
  video frames and its voice's loudness and pitch (`attention_figure`, with an
  `msa.features.context.ClipContext`), what a what-if run changed (`what_if_figure`), and the raw
  gate values per channel for the advanced view (`gate_heatmaps`).

Figures take plain values and the dataclasses of `msa.explain` and return
`plotly.graph_objects.Figure`s; they compute nothing about the model.
Words go on numbered axes with the word as the tick label, because a categorical axis would
merge two occurrences of the same word into one row.
A branch whose stream was absent from the clip, or that never saw its modality in training, is
drawn grey and titled "stand-in only": its words looked at the learned stand-in token, so its
numbers are no evidence from the voice or the face.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config import MODALITIES
from ..explain import Contributions, DisplayWord, Explanation, GateView, wording
from ..metrics import LABEL7_NAMES
from ..model import BRANCHES

if TYPE_CHECKING:  # importing msa.features at run time would load the whole extractor for one dataclass
    from ..features.context import ClipContext

# Red for negative, grey for neutral, green for positive: the 7 classes, left to right.
CLASS_COLOURS = ("#b2182b", "#d6604d", "#f4a582", "#e0e0e0", "#a6dba0", "#5aae61", "#1b7837")
MODALITY_COLOURS = {"text": "#4c72b0", "acoustic": "#dd8452", "visual": "#55a868"}
STAND_IN_COLOUR = "#b5b5b5"  # a branch that only saw the learned stand-in: no evidence, so no modality colour
_WORD_COLOUR = "#4c72b0"  # the chosen word's spoken interval
_FONT = dict(family="system-ui, sans-serif", size=12)
_DOT = " \u00b7 "


def _layout(fig: go.Figure, height: int, **kw: object) -> go.Figure:
    base: dict[str, object] = dict(
        height=height, margin=dict(l=50, r=20, t=40, b=40), font=_FONT, paper_bgcolor="white", plot_bgcolor="white"
    )
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
        fig.add_annotation(
            x=(lo + hi) / 2, y=0.2, text=name.replace(" ", "<br>"), showarrow=False, font=dict(size=10, color="#222")
        )
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


# ----------------------------------------------------------------------------------------------
# Helpers shared by the fusion figures
# ----------------------------------------------------------------------------------------------


def _word_axis(words: Sequence[str]) -> dict:
    return dict(
        tickmode="array",
        tickvals=list(range(len(words))),
        ticktext=list(words),
        tickangle=-45,
        range=[-0.5, len(words) - 0.5],
    )


def _message_figure(text: str, title: str, height: int = 220) -> go.Figure:
    """An empty figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(
        text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=14, color="#444")
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, height, title=dict(text=title, x=0.01))


def _ordered(views: Sequence[GateView]) -> list[GateView]:
    """Gate views by branch (text -> acoustic first, as in the model) and then layer."""
    order = {b: i for i, b in enumerate(BRANCHES)}
    return sorted(views, key=lambda g: (order.get(g.branch, len(order)), g.branch, g.layer))


def _colour(expl: Explanation, branch: str) -> str:
    return (
        STAND_IN_COLOUR if wording.stand_in_reason(expl.branches.get(branch)) else MODALITY_COLOURS.get(branch, "#777")
    )


def _view_title(expl: Explanation, view: GateView, *extra: str) -> str:
    reason = wording.stand_in_reason(expl.branches.get(view.branch))
    parts = [wording.branch_title(view.branch), f"layer {view.layer}", *extra]
    if reason:
        parts.append(f"stand-in only ({reason})")
    return _DOT.join(parts)


def _spoken(word: DisplayWord) -> str:
    if word.start is None or word.end is None:
        return "spoken time not known"
    return f"spoken {word.start:.2f}\u2013{word.end:.2f} s"


def _shares(view: GateView, n_words: int) -> np.ndarray:
    share = np.asarray(view.share, dtype=np.float64).reshape(-1)
    if share.size != n_words:
        raise ValueError(
            f"{wording.branch_title(view.branch)} layer {view.layer}: {share.size} shares for {n_words} words"
        )
    return share


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


def _share_axis() -> dict:
    # The same 0..1 range in every row: rows are compared by eye, so an autoscaled row would mislead.
    return dict(range=[0, 1], tickvals=[0, 0.5, 1], tickformat=".0%", gridcolor="#eee", fixedrange=True)


def _spacing(gap_px: float, plot_px: float) -> float:
    """A subplot gap of ``gap_px`` pixels as the fraction make_subplots wants."""
    return float(min(gap_px / max(plot_px, 1.0), 0.3))


# ----------------------------------------------------------------------------------------------
# How much each word takes in
# ----------------------------------------------------------------------------------------------


def share_rows_figure(expl: Explanation) -> go.Figure:
    """How much each word takes in: its share of each gated update that came from the voice or face.

    The transcript's words run across in order; there is one row per branch and layer (text ->
    acoustic layer 1, layer 2, text -> visual layer 1, 2), each a bar of the word's share in
    [0, 1] on the same fixed scale. Rows of a branch that saw only the stand-in are grey and
    titled "stand-in only".

    Parameters
    ----------
    expl : the explanation; its ``gates`` give the shares (one per display word).
    """
    title = "How much each word takes in from the voice and the face"
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
    return _layout(
        fig, plot_px + 60 + 90, bargap=0.25, title=dict(text=title, x=0.01), margin=dict(l=50, r=20, t=60, b=90)
    )


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
    title = "Every branch and layer: each word's share from the other modality"
    views = _ordered(expl.gates)
    n = len(expl.words)
    if not views or not n:
        return _message_figure("No words or no fusion layers to show.", title, height=160)
    branches = list(dict.fromkeys(v.branch for v in views))
    layers = sorted({v.layer for v in views})
    cell = {(v.branch, v.layer): v for v in views}
    titles = []
    for b in branches:
        for layer in layers:
            v = cell.get((b, layer))
            titles.append("" if v is None else _view_title(expl, v, f"mean {float(np.mean(_shares(v, n))):.0%}"))
    row_px, gap_px = 115, 45
    plot_px = row_px * len(branches) + gap_px * (len(branches) - 1)
    fig = make_subplots(
        rows=len(branches),
        cols=len(layers),
        subplot_titles=titles,
        horizontal_spacing=0.05,
        vertical_spacing=_spacing(gap_px, plot_px),
    )
    for r, b in enumerate(branches, start=1):
        for c, layer in enumerate(layers, start=1):
            v = cell.get((b, layer))
            if v is None:
                continue
            fig.add_trace(_share_bar(expl, v, _colour(expl, b)), row=r, col=c)
            fig.update_yaxes(**_share_axis(), showticklabels=c == 1, row=r, col=c)
            fig.update_xaxes(range=[-0.5, n - 0.5], showticklabels=False, showgrid=False, fixedrange=True, row=r, col=c)
    for ann in fig.layout.annotations:
        ann.update(font=dict(size=11, color="#333"))
    return _layout(
        fig,
        plot_px + 75,
        bargap=0.15,
        title=dict(text=title, x=0.01, font=dict(size=13)),
        margin=dict(l=45, r=15, t=60, b=15),
    )


# ----------------------------------------------------------------------------------------------
# Where each word looks
# ----------------------------------------------------------------------------------------------


def _find_view(expl: Explanation, branch: str, layer: int) -> GateView:
    for v in expl.gates:
        if v.branch == branch and v.layer == layer:
            return v
    have = ", ".join(f"{v.branch} layer {v.layer}" for v in _ordered(expl.gates)) or "none"
    raise ValueError(f"no gate view for {branch} layer {layer} (have: {have})")


def _image_uri(img: np.ndarray) -> str:
    """A JPEG data URI of an RGB uint8 image (OpenCV: already a pinned dependency)."""
    import cv2

    rgb = np.ascontiguousarray(img, dtype=np.uint8)
    ok, enc = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 82])  # OpenCV wants BGR
    if not ok:
        raise ValueError("could not encode a video frame as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(enc.tobytes()).decode("ascii")


def _with_gaps(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times and (..., frames) values with a NaN column inserted in each gap longer than 1.5 frame steps.

    The visual stream keeps only the frames with a face; without the break a heatmap would stretch
    the last frame before a gap over it, as if the face had been seen there.
    """
    if times.size < 3:
        return times, values
    step = float(np.median(np.diff(times)))
    gaps = np.nonzero(np.diff(times) > 1.5 * step)[0]
    if gaps.size == 0:
        return times, values
    t = np.insert(times, gaps + 1, times[gaps] + step)
    v = np.insert(values.astype(np.float64), gaps + 1, np.nan, axis=-1)
    return t, v


def _frame_step(times: np.ndarray) -> float:
    return float(np.median(np.diff(times))) if times.size > 1 else 0.1


def _axis_ref(fig: go.Figure, row: int, axis: str = "y") -> str:
    """The "y3"-style name of a subplot's axis, for shapes and images placed in its coordinates."""
    sub = fig.get_subplot(row, 1)
    return getattr(sub, f"{axis}axis").plotly_name.replace("axis", "")


def attention_figure(
    expl: Explanation,
    branch: str,
    layer: int,
    word_index: int,
    head: int | None = None,
    context: ClipContext | None = None,
) -> go.Figure:
    """Where one word looks along the clip: its attention over the stream's frames, in seconds.

    Rows, on one shared time axis:

    1. the chosen word's attention over the frame times (a distribution: the bars add up to 1),
       with the interval in which the word was spoken shaded and labelled;
    2. every word's attention as a heatmap (words down, time across), the chosen word outlined and
       each word's spoken interval drawn as a black line on its row: reading down the rows shows
       whether words look at the moment they were said;
    3. video frames at their times (when ``context`` has frames);
    4. the voice's loudness (dB, left axis) and pitch (Hz, right axis) (when ``context`` has them).

    Parameters
    ----------
    expl : the explanation.
    branch : "acoustic" or "visual".
    layer : the layer, from 1.
    word_index : the word, an index into ``expl.words``.
    head : a head, 0-based; None for the mean over heads.
    context : the clip's frames and voice (`msa.features.context.ClipContext`), or None.

    Raises
    ------
    ValueError
        No such branch/layer, word or head.
    """
    view = _find_view(expl, branch, layer)
    if not 0 <= word_index < len(expl.words):
        raise ValueError(f"word {word_index} out of range: the transcript has {len(expl.words)} words")
    word = expl.words[word_index]
    sense = wording.sense(branch)
    n_heads = 0 if view.attention is None else int(view.attention.shape[0])
    if head is None:
        head_text = f"mean of {n_heads} heads" if n_heads else "mean over heads"
    else:
        head_text = f"head {head + 1} of {n_heads}" if n_heads else f"head {head + 1}"
    title = _DOT.join(
        [
            f"Where \u201c{word.text}\u201d looks in the {sense}",
            wording.branch_title(branch),
            f"layer {layer}",
            head_text,
        ]
    )
    if view.attention is None or view.times is None or view.attention.shape[-1] == 0:
        return _message_figure(f"No {sense} stream: each word attended only to the learned stand-in token.", title)
    if head is not None and not 0 <= head < n_heads:
        raise ValueError(f"head {head} out of range: the layer has {n_heads} heads (0-based)")
    reason = wording.stand_in_reason(expl.branches.get(branch))
    if reason:
        title += f"<br><sup>stand-in only ({reason}): this attention is no evidence from the {sense}</sup>"
    weights = view.attention.mean(0) if head is None else view.attention[head]  # (words, frames)
    times = np.asarray(view.times, dtype=np.float64)
    colour = _colour(expl, branch)

    frames = list(context.frames) if context is not None else []
    voice = context is not None and context.voice_times.size > 0
    rows = ["attention", "words"] + (["frames"] if frames else []) + (["voice"] if voice else [])
    px = {"attention": 190, "words": int(np.clip(16 * len(expl.words), 80, 260)), "frames": 80, "voice": 140}
    gap = 28
    plot_px = sum(px[r] for r in rows) + gap * (len(rows) - 1)
    fig = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=_spacing(gap, plot_px),
        row_heights=[px[r] / plot_px for r in rows],
        specs=[[{"secondary_y": r == "voice"}] for r in rows],
    )
    row = {name: i for i, name in enumerate(rows, start=1)}

    # 1. The chosen word's attention: one bar per frame, as wide as a frame step, so gaps stay empty.
    step = _frame_step(times)
    fig.add_trace(
        go.Bar(
            x=times,
            y=weights[word_index],
            width=step,
            marker=dict(color=colour, line=dict(width=0)),
            name=f"attention of \u201c{word.text}\u201d",
            showlegend=False,
            hovertemplate="%{x:.2f} s: %{y:.1%} of the word's attention<extra></extra>",
        ),
        row=1,
        col=1,
    )
    top = float(np.nanmax(weights[word_index])) if weights.shape[1] else 1.0
    # Spread over hundreds of frames a word's attention is often ~1% a frame: keep a decimal there.
    fig.update_yaxes(
        title_text="attention",
        tickformat=".0%" if top >= 0.05 else ".1%",
        range=[0, 1.18 * top or 1.0],
        gridcolor="#eee",
        nticks=4,
        row=1,
        col=1,
    )
    if word.start is not None and word.end is not None:
        fig.add_vrect(
            x0=word.start,
            x1=word.end,
            fillcolor=_WORD_COLOUR,
            opacity=0.18,
            line_width=0,
            layer="below",
            annotation_text=f"\u201c{word.text}\u201d spoken",
            annotation_position="top left",
            annotation_font=dict(size=11, color=_WORD_COLOUR),
            row=1,
            col=1,
        )
    else:
        fig.add_annotation(
            text=f"when \u201c{word.text}\u201d was spoken is not known",
            x=0.01,
            y=0.98,
            xref=f"{_axis_ref(fig, 1, 'x')} domain",
            yref=f"{_axis_ref(fig, 1)} domain",
            xanchor="left",
            yanchor="top",
            showarrow=False,
            font=dict(size=11, color="#666"),
        )

    # 2. Every word's attention, and when each word was spoken.
    r = row["words"]
    labels = [w.text for w in expl.words]
    t_gap, z_gap = _with_gaps(times, weights)
    scale = {"acoustic": "Oranges", "visual": "Greens"}.get(branch, "Greys") if not reason else "Greys"
    custom = np.broadcast_to(np.asarray(labels, dtype=object)[:, None], z_gap.shape)
    fig.add_trace(
        go.Heatmap(
            z=z_gap,
            x=t_gap,
            y=list(range(len(labels))),
            colorscale=scale,
            zmin=0.0,
            zmax=float(np.nanmax(weights)) or 1.0,
            showscale=False,
            customdata=custom,
            hovertemplate="<b>%{customdata}</b> at %{x:.2f} s: %{z:.1%}<extra></extra>",
        ),
        row=r,
        col=1,
    )
    spans_x: list[float | None] = []
    spans_y: list[float | None] = []
    for i, w in enumerate(expl.words):
        if w.start is not None and w.end is not None:
            spans_x += [w.start, w.end, None]
            spans_y += [i, i, None]
    if spans_x:
        fig.add_trace(
            go.Scatter(
                x=spans_x,
                y=spans_y,
                mode="lines",
                line=dict(color="black", width=2),
                showlegend=False,
                name="spoken",
                hoverinfo="skip",
            ),
            row=r,
            col=1,
        )
    fig.add_shape(
        type="rect",
        x0=float(times[0]) - step / 2,
        x1=float(times[-1]) + step / 2,
        y0=word_index - 0.5,
        y1=word_index + 0.5,
        line=dict(color=_WORD_COLOUR, width=2),
        row=r,
        col=1,
    )
    # Every word labelled while the labels fit (11 px a row); past that only the chosen one, the hover names the rest.
    ticks = list(range(len(labels))) if px["words"] >= 11 * len(labels) else [word_index]
    fig.update_yaxes(
        tickmode="array",
        tickvals=ticks,
        ticktext=[labels[i] for i in ticks],
        autorange="reversed",
        showgrid=False,
        tickfont=dict(size=10),
        row=r,
        col=1,
    )

    # 3. The video frames, each centred on its time and at most one frame-strip slot wide.
    if frames:
        r = row["frames"]
        ft = np.array([t for t, _ in frames], dtype=np.float64)
        slot = float(np.min(np.diff(ft))) if ft.size > 1 else max(float(context.duration if context else 0.0), 1.0)
        fig.add_trace(
            go.Scatter(
                x=ft,
                y=np.full(ft.size, 0.5),
                mode="markers",
                marker=dict(opacity=0),
                showlegend=False,
                name="frames",
                hovertemplate="frame at %{x:.2f} s<extra></extra>",
            ),
            row=r,
            col=1,
        )
        yref = f"{_axis_ref(fig, r)} domain"
        for t, img in frames:
            fig.add_layout_image(
                source=_image_uri(img),
                x=t,
                y=0.5,
                xref=_axis_ref(fig, r, "x"),
                yref=yref,
                sizex=0.97 * slot,
                sizey=1.0,
                xanchor="center",
                yanchor="middle",
                sizing="contain",
                layer="above",
            )
        fig.update_yaxes(range=[0, 1], visible=False, fixedrange=True, row=r, col=1)

    # 4. The voice: loudness and pitch (NaN where unvoiced, drawn as breaks).
    if voice:
        assert context is not None
        r = row["voice"]
        loud = np.asarray(context.loudness_db, dtype=np.float64)
        fig.add_trace(
            go.Scatter(
                x=context.voice_times,
                y=loud,
                mode="lines",
                line=dict(color="#555", width=1),
                name="loudness",
                showlegend=False,
                hovertemplate="%{x:.2f} s: %{y:.0f} dB<extra>loudness</extra>",
            ),
            row=r,
            col=1,
            secondary_y=False,
        )
        fig.add_trace(
            go.Scatter(
                x=context.voice_times,
                y=context.pitch_hz,
                mode="lines",
                connectgaps=False,
                line=dict(color="#8172b3", width=2),
                name="pitch",
                showlegend=False,
                hovertemplate="%{x:.2f} s: %{y:.0f} Hz<extra>pitch</extra>",
            ),
            row=r,
            col=1,
            secondary_y=True,
        )
        finite = loud[np.isfinite(loud)]
        if finite.size:
            # The features floor silence at -100 dB; starting the axis near the quietest sound keeps speech readable.
            fig.update_yaxes(
                range=[max(float(finite.min()), -70.0) - 3, float(finite.max()) + 3], row=r, col=1, secondary_y=False
            )
        fig.update_yaxes(
            title_text="loudness (dB)", title_font=dict(color="#555"), gridcolor="#eee", row=r, col=1, secondary_y=False
        )
        # Explicit auto ticks: left alone, this overlaying axis put its ticks on the loudness grid (153 Hz, 322 Hz).
        fig.update_yaxes(
            title_text="pitch (Hz)",
            title_font=dict(color="#8172b3"),
            showgrid=False,
            tickmode="auto",
            nticks=4,
            row=r,
            col=1,
            secondary_y=True,
        )
        # The word's interval here too: what the voice did while it was said.
        if word.start is not None and word.end is not None:
            fig.add_vrect(
                x0=word.start,
                x1=word.end,
                fillcolor=_WORD_COLOUR,
                opacity=0.12,
                line_width=0,
                layer="below",
                row=r,
                col=1,
            )

    ends = [w.end for w in expl.words if w.end is not None]
    duration = max([context.duration if context is not None else 0.0, float(times[-1]) + step / 2, *ends])
    fig.update_xaxes(range=[0, duration], showgrid=False)
    fig.update_xaxes(title_text="seconds", row=len(rows), col=1)
    return _layout(
        fig,
        plot_px + 110,
        bargap=0,
        title=dict(text=title, x=0.01, font=dict(size=14)),
        margin=dict(l=70, r=60, t=70, b=45),
    )


# ----------------------------------------------------------------------------------------------
# What if
# ----------------------------------------------------------------------------------------------


def _class_colour(score: float) -> str:
    return CLASS_COLOURS[int(np.round(np.clip(score, -3.0, 3.0))) + 3]


def _mean_share(expl: Explanation, branch: str) -> np.ndarray | None:
    """(words,) a branch's share per word, averaged over its layers; None when the branch has no views."""
    views = [v for v in expl.gates if v.branch == branch]
    if not views:
        return None
    return np.mean([_shares(v, len(expl.words)) for v in views], axis=0)


def _wrap(label: str, width: int = 22) -> str:
    return "<br>".join(textwrap.wrap(label, width)) or label


def what_if_figure(
    original: tuple[float, Explanation],
    variant: tuple[float, Explanation],
    original_label: str = "original",
    variant_label: str = "what if",
) -> go.Figure:
    """An original run beside a what-if run: the two scores, their Shapley values, and each word's share.

    The original is drawn plain, the variant hatched. When both runs have the same words the per-word
    shares are compared word by word (one row per branch); when the words differ (an edited
    transcript) each run gets its own row over its own words.

    Parameters
    ----------
    original, variant : (score, explanation) of each run.
    original_label, variant_label : how to name them.
    """
    runs = [(original_label, original[0], original[1], ""), (variant_label, variant[0], variant[1], "/")]
    branches = [b for b in BRANCHES if any(_mean_share(e, b) is not None for _, _, e, _ in runs)]
    same_words = [w.text for w in original[1].words] == [w.text for w in variant[1].words]
    share_rows: list[tuple[str, list[tuple[str, Explanation, str, str]], list[str]]] = []
    if same_words:
        for b in branches:  # one row per branch: the two runs side by side under each word
            share_rows.append(
                (
                    f"{wording.branch_title(b)}: share per word (mean over layers)",
                    [(label, e, b, pattern) for label, _, e, pattern in runs],
                    [w.text for w in original[1].words],
                )
            )
    else:
        for label, _, e, pattern in runs:  # one row per run, over its own words
            share_rows.append(
                (
                    f"{label}: share per word (mean over layers)",
                    [(label, e, b, pattern) for b in branches],
                    [w.text for w in e.words],
                )
            )
    share_rows = [r for r in share_rows if r[2]]
    titles = ["score", "each modality's Shapley value"] + [r[0] for r in share_rows]
    specs: list[list[dict | None]] = [[{}, {}]] + [[{"colspan": 2}, None] for _ in share_rows]
    top_px, row_px, gap_px = 230, 170, 95
    plot_px = top_px + (row_px + gap_px) * len(share_rows)
    fig = make_subplots(
        rows=1 + len(share_rows),
        cols=2,
        specs=specs,
        subplot_titles=titles,
        column_widths=[0.35, 0.65],
        row_heights=[top_px / plot_px] + [row_px / plot_px] * len(share_rows),
        vertical_spacing=_spacing(gap_px, plot_px),
        horizontal_spacing=0.1,
    )

    scores = [s for _, s, _, _ in runs]
    fig.add_trace(
        go.Bar(
            x=[_wrap(label) for label, *_ in runs],
            y=scores,
            name="score",
            showlegend=False,
            marker=dict(
                color=[_class_colour(s) for s in scores],
                line=dict(color="#444", width=1),
                pattern=dict(shape=[p for *_, p in runs], fgcolor="#444"),
            ),
            text=[f"{s:+.2f}" for s in scores],
            textposition="outside",
            hovertemplate="%{x}: %{y:+.3f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.update_yaxes(
        range=[-3.4, 3.4],
        tickvals=list(range(-3, 4)),
        gridcolor="#eee",
        zeroline=True,
        zerolinecolor="#888",
        row=1,
        col=1,
    )
    for label, _, e, pattern in runs:
        fig.add_trace(
            go.Bar(
                x=list(MODALITIES),
                y=[e.contributions.values.get(m, 0.0) for m in MODALITIES],
                name=label,
                offsetgroup=label,
                showlegend=False,
                marker=dict(
                    color=[MODALITY_COLOURS[m] for m in MODALITIES], pattern=dict(shape=pattern, fgcolor="#333")
                ),
                hovertemplate=f"{label}<br>%{{x}}: %{{y:+.3f}}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(title_text="score units", gridcolor="#eee", zeroline=True, zerolinecolor="#888", row=1, col=2)

    for r, (_, bars, labels) in enumerate(share_rows, start=2):
        for label, e, b, pattern in bars:
            share = _mean_share(e, b)
            if share is None:
                continue
            custom = np.array([[w.text, _spoken(w)] for w in e.words], dtype=object).reshape(len(e.words), 2)
            fig.add_trace(
                go.Bar(
                    x=list(range(len(e.words))),
                    y=share,
                    name=f"{label}, {wording.branch_title(b)}",
                    offsetgroup=f"{label}|{b}",
                    showlegend=False,
                    customdata=custom,
                    marker=dict(color=_colour(e, b), pattern=dict(shape=pattern, fgcolor="#333")),
                    hovertemplate=f"<b>%{{customdata[0]}}</b> (%{{customdata[1]}})<br>%{{y:.0%}} from the "
                    f"{wording.sense(b)}<extra>{label}</extra>",
                ),
                row=r,
                col=1,
            )
        fig.update_yaxes(**_share_axis(), row=r, col=1)
        fig.update_xaxes(**_word_axis(labels), row=r, col=1)

    # The legend says which run is which (plain vs hatched); the colours keep their meaning per panel. Its
    # empty entries join a run's offset group so that they take no slot beside the Shapley bars.
    for label, _, _, pattern in runs:
        fig.add_trace(
            go.Bar(
                x=[None],
                y=[None],
                name=label,
                showlegend=True,
                hoverinfo="skip",
                offsetgroup=label,
                marker=dict(color="#bbb", pattern=dict(shape=pattern, fgcolor="#333")),
            ),
            row=1,
            col=2,
        )
    if not same_words:
        for b in branches:
            fig.add_trace(
                go.Bar(
                    x=[None],
                    y=[None],
                    name=wording.branch_title(b),
                    marker=dict(color=MODALITY_COLOURS[b]),
                    showlegend=True,
                    hoverinfo="skip",
                    offsetgroup=original_label,
                ),
                row=1,
                col=2,
            )
    change = variant[0] - original[0]
    title = f"What changed: {original[0]:+.2f} \u2192 {variant[0]:+.2f} ({change:+.2f})"
    return _layout(
        fig,
        plot_px + 130,
        barmode="group",
        bargap=0.2,
        title=dict(text=title, x=0.01),
        legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
        margin=dict(l=55, r=20, t=90, b=40),
    )


# ----------------------------------------------------------------------------------------------
# Gate values (advanced)
# ----------------------------------------------------------------------------------------------


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
    maps = {
        (v.layer, gate): np.asarray(getattr(v, gate), dtype=np.float64) for v in views for gate in ("retain", "fusion")
    }
    for (layer, gate), m in maps.items():
        if m.ndim != 2 or m.shape[0] != len(labels):
            raise ValueError(f"layer {layer} {gate} gate: shape {m.shape} for {len(labels)} words")
    titles = [f"layer {v.layer}: {gate} gate" for v in views for gate in ("retain", "fusion")]
    row_px, gap_px = 240, 100  # the gap holds the word labels of the row above and the titles of the row below
    plot_px = row_px * len(views) + gap_px * (len(views) - 1)
    fig = make_subplots(
        rows=len(views),
        cols=2,
        subplot_titles=titles,
        horizontal_spacing=0.08,
        vertical_spacing=_spacing(gap_px, plot_px),
    )
    values = np.concatenate([m.ravel() for m in maps.values()])
    if activation == "sigmoid":
        colours = dict(colorscale="Viridis", zmin=0.0, zmax=1.0)
    else:
        # Symmetric around 0; the 99th percentile keeps one extreme channel from greying out the rest.
        lim = float(np.percentile(np.abs(values), 99)) or 1.0
        colours = dict(colorscale="RdBu", zmid=0.0, zmin=-lim, zmax=lim)
    for r, v in enumerate(views, start=1):
        for col, gate in enumerate(("retain", "fusion"), start=1):
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
    return _layout(fig, 300, bargap=0, title=dict(text="Sentiment over time (one bar per utterance)", x=0.01))


__all__ = [
    "CLASS_COLOURS",
    "MODALITY_COLOURS",
    "STAND_IN_COLOUR",
    "attention_figure",
    "gate_heatmaps",
    "score_figure",
    "share_grid_figure",
    "share_rows_figure",
    "shapley_figure",
    "timeline_figure",
    "what_if_figure",
]
