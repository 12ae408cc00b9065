"""Where one word looks along the clip: its attention over the stream's frames, in seconds.

`attention_figure` stacks, on one shared time axis, the chosen word's attention, every word's
attention as a heatmap, the clip's video frames and its voice's loudness and pitch (the last two
from an `msa.features.context.ClipContext`).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...explain import DisplayWord, Explanation, GateView, pool_over_time, wording
from .style import _DOT, _WORD_COLOUR, _layout, _message_figure, _spacing, _title
from .views import _colour, _ordered, _stand_in_lines

if TYPE_CHECKING:  # importing msa.features at run time would load the whole extractor for one dataclass
    from ...features.context import ClipContext

_GAP_PX = 28  # between the stacked rows


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


def _head_text(head: int | None, n_heads: int) -> str:
    """Which head the figure shows, for its title; ``n_heads`` is 0 when the stream is absent."""
    if head is None:
        return f"mean of {n_heads} heads" if n_heads else "mean over heads"
    return f"head {head + 1} of {n_heads}" if n_heads else f"head {head + 1}"


def _subplots(n_words: int, frames: bool, voice: bool) -> tuple[go.Figure, dict[str, int], dict[str, int], int]:
    """The stacked rows on a shared time axis: the figure, row numbers and heights by name, and plot height.

    The frames and voice rows are there only when the clip has them.
    """
    rows = ["attention", "words"] + (["frames"] if frames else []) + (["voice"] if voice else [])
    px = {"attention": 190, "words": int(np.clip(16 * n_words, 80, 260)), "frames": 80, "voice": 140}
    plot_px = sum(px[r] for r in rows) + _GAP_PX * (len(rows) - 1)
    fig = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=_spacing(_GAP_PX, plot_px),
        row_heights=[px[r] / plot_px for r in rows],
        specs=[[{"secondary_y": r == "voice"}] for r in rows],
    )
    return fig, {name: i for i, name in enumerate(rows, start=1)}, px, plot_px


def _add_word_attention(
    fig: go.Figure, weights: np.ndarray, times: np.ndarray, step: float, colour: str, word: DisplayWord
) -> None:
    """Row 1, the chosen word's attention: one bar per frame, as wide as a frame step, so gaps stay empty."""
    fig.add_trace(
        go.Bar(
            x=times,
            y=weights,
            width=step,
            marker=dict(color=colour, line=dict(width=0)),
            name=f"attention of \u201c{word.text}\u201d",
            showlegend=False,
            hovertemplate="%{x:.2f} s: %{y:.1%} of the word's attention<extra></extra>",
        ),
        row=1,
        col=1,
    )
    top = float(np.nanmax(weights)) if weights.size else 1.0
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
    _mark_spoken(fig, word)


def _mark_spoken(fig: go.Figure, word: DisplayWord) -> None:
    """Shade and label, in row 1, the interval in which the word was spoken, or say that it is not known."""
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
            annotation_font=dict(size=12, color=_WORD_COLOUR),
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
            font=dict(size=12, color="#666"),
        )


def _add_word_heatmap(
    fig: go.Figure, r: int, labels: list[str], weights: np.ndarray, times: np.ndarray, scale: str
) -> None:
    """Every word's attention (words down, time across), broken where the stream has no frames."""
    t_gap, z_gap = _with_gaps(times, weights)
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


def _add_spoken_lines(fig: go.Figure, r: int, words: list[DisplayWord]) -> None:
    """Each word's spoken interval as a black line on its heatmap row: do words look when they are said?"""
    spans_x: list[float | None] = []
    spans_y: list[float | None] = []
    for i, w in enumerate(words):
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


def _add_word_rows(
    fig: go.Figure,
    r: int,
    words: list[DisplayWord],
    word_index: int,
    weights: np.ndarray,
    times: np.ndarray,
    scale: str,
    row_px: int,
) -> None:
    """Row 2: every word's attention and when each word was spoken, the chosen word outlined."""
    labels = [w.text for w in words]
    _add_word_heatmap(fig, r, labels, weights, times, scale)
    _add_spoken_lines(fig, r, words)
    step = _frame_step(times)
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
    ticks = list(range(len(labels))) if row_px >= 11 * len(labels) else [word_index]
    fig.update_yaxes(
        tickmode="array",
        tickvals=ticks,
        ticktext=[labels[i] for i in ticks],
        autorange="reversed",
        showgrid=False,
        tickfont=dict(size=12),
        row=r,
        col=1,
    )


def _add_frames(fig: go.Figure, r: int, frames: list[tuple[float, np.ndarray]], duration: float) -> None:
    """The video frames, each centred on its time and at most one frame-strip slot wide."""
    ft = np.array([t for t, _ in frames], dtype=np.float64)
    slot = float(np.min(np.diff(ft))) if ft.size > 1 else max(float(duration), 1.0)
    # Invisible markers: the images take no hover, these name each frame's time.
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


def _add_voice(fig: go.Figure, r: int, context: ClipContext, word: DisplayWord) -> None:
    """The voice: loudness (left axis) and pitch (right axis, NaN where unvoiced, drawn as breaks)."""
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
    _voice_axes(fig, r, loud)
    # The word's interval here too: what the voice did while it was said.
    if word.start is not None and word.end is not None:
        fig.add_vrect(
            x0=word.start, x1=word.end, fillcolor=_WORD_COLOUR, opacity=0.12, line_width=0, layer="below", row=r, col=1
        )


def _voice_axes(fig: go.Figure, r: int, loud: np.ndarray) -> None:
    """The voice row's two y axes: loudness in dB on the left, pitch in Hz on the right."""
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
    where = f"Where \u201c{word.text}\u201d looks in the {sense}"
    title = "<br>".join([where, _DOT.join([wording.branch_title(branch), f"layer {layer}"]), _head_text(head, n_heads)])
    if view.attention is None or view.times is None or view.attention.shape[-1] == 0:
        info = expl.branches.get(branch)
        line = info.stand_in_line if info is not None else None
        return _message_figure(line or wording.stand_in_line(branch, read=True), title)
    if head is not None and not 0 <= head < n_heads:
        raise ValueError(f"head {head} out of range: the layer has {n_heads} heads (0-based)")
    reason = expl.stand_in_reason(branch)
    title += _stand_in_lines(expl, branch, "this attention")
    weights = view.attention.mean(0) if head is None else view.attention[head]  # (words, frames)
    times, weights, _ = pool_over_time(view.times, weights)  # the JSON's columns
    scale = {"acoustic": "Oranges", "visual": "Greens"}.get(branch, "Greys") if not reason else "Greys"

    frames = list(context.frames) if context is not None else []
    voice = context is not None and context.voice_times.size > 0
    fig, row, px, plot_px = _subplots(len(expl.words), bool(frames), voice)
    step = _frame_step(times)
    _add_word_attention(fig, weights[word_index], times, step, _colour(expl, branch), word)
    _add_word_rows(fig, row["words"], expl.words, word_index, weights, times, scale, px["words"])
    if context is not None and frames:
        _add_frames(fig, row["frames"], frames, context.duration)
    if context is not None and voice:
        _add_voice(fig, row["voice"], context, word)

    ends = [w.end for w in expl.words if w.end is not None]
    duration = max([context.duration if context is not None else 0.0, float(times[-1]) + step / 2, *ends])
    fig.update_xaxes(range=[0, duration], showgrid=False)
    fig.update_xaxes(title_text="seconds", row=len(row), col=1)
    t = _title(title)
    return _layout(fig, plot_px + t["top"] + 45, bargap=0, title=t["title"], margin=dict(l=70, r=60, t=t["top"], b=45))
