"""What a what-if run changed: an original run beside a variant, scores, Shapley values and per-word shares."""

from __future__ import annotations

import textwrap

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...config import MODALITIES
from ...explain import Explanation, wording
from ...model import BRANCHES
from .style import CLASS_COLOURS, MODALITY_COLOURS, _layout, _share_axis, _spacing, _title, _word_axis
from .views import _colour, _shares, _spoken

# (label, score, explanation, bar pattern: "" plain for the original, "/" hatched for the variant)
_Run = tuple[str, float, Explanation, str]
# (run label, explanation, branch, bar pattern): one bar series in a share row
_ShareBars = tuple[str, Explanation, str, str]
# (title, its bar series, the words under them)
_ShareRow = tuple[str, list[_ShareBars], list[str]]


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


def _share_rows(runs: list[_Run], branches: list[str], same_words: bool) -> list[_ShareRow]:
    """The share rows: with the same words one per branch, both runs under each word; else one per run."""
    rows: list[_ShareRow] = []
    if same_words:
        for b in branches:
            rows.append(
                (
                    f"{wording.branch_title(b)}:<br>share per word, mean of the layers",
                    [(label, e, b, pattern) for label, _, e, pattern in runs],
                    [w.text for w in runs[0][2].words],
                )
            )
    else:
        for label, _, e, pattern in runs:
            rows.append(
                (
                    f"{_wrap(label, 30)}:<br>share per word, mean of the layers",
                    [(label, e, b, pattern) for b in branches],
                    [w.text for w in e.words],
                )
            )
    return [r for r in rows if r[2]]


def _subplots(share_rows: list[_ShareRow]) -> tuple[go.Figure, int]:
    """Scores and Shapley values side by side on top, then each share row across the full width."""
    # No axis title on the Shapley panel (its values are in the score's units, beside it): there it
    # sat in the narrow gap by the score bars and ran into them on a phone.
    titles = ["score", "Shapley values"] + [r[0] for r in share_rows]
    specs: list[list[dict | None]] = [[{}, {}]] + [[{"colspan": 2}, None] for _ in share_rows]
    top_px, row_px, gap_px = 230, 170, 135  # a gap holds the run names under the scores and a two-line title
    plot_px = top_px + (row_px + gap_px) * len(share_rows)
    fig = make_subplots(
        rows=1 + len(share_rows),
        cols=2,
        specs=specs,
        subplot_titles=titles,
        column_widths=[0.45, 0.55],  # room for two run names under the scores on a phone
        row_heights=[top_px / plot_px] + [row_px / plot_px] * len(share_rows),
        vertical_spacing=_spacing(gap_px, plot_px),
        horizontal_spacing=0.1,
    )
    return fig, plot_px


def _add_scores(fig: go.Figure, runs: list[_Run]) -> None:
    """The two scores, each in its class colour, on the fixed [-3, 3] scale."""
    scores = [s for _, s, _, _ in runs]
    fig.add_trace(
        go.Bar(
            # Short names under narrow bars (the legend and the title say the rest), never turned on their side.
            x=[label.split(":")[0] for label, *_ in runs],
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
    fig.update_xaxes(tickangle=0, row=1, col=1)
    fig.update_yaxes(
        range=[-3.4, 3.4],
        tickvals=list(range(-3, 4)),
        gridcolor="#eee",
        zeroline=True,
        zerolinecolor="#888",
        row=1,
        col=1,
    )


def _add_shapley(fig: go.Figure, runs: list[_Run]) -> None:
    """Each run's Shapley values, grouped by modality."""
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
    fig.update_yaxes(gridcolor="#eee", zeroline=True, zerolinecolor="#888", row=1, col=2)


def _add_share_row(fig: go.Figure, r: int, bars: list[_ShareBars], labels: list[str]) -> None:
    """One share row: each series' mean share per word over its own words."""
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


def _legend_entry(name: str, marker: dict, offsetgroup: str) -> go.Bar:
    """An empty bar that only shows in the legend."""
    return go.Bar(
        x=[None], y=[None], name=name, showlegend=True, hoverinfo="skip", offsetgroup=offsetgroup, marker=marker
    )


def _add_legend(fig: go.Figure, runs: list[_Run], branches: list[str], same_words: bool) -> None:
    """The legend says which run is which (plain vs hatched); the colours keep their meaning per panel.

    Its empty entries join a run's offset group so that they take no slot beside the Shapley bars.
    """
    for label, _, _, pattern in runs:
        # White with the run's pattern: the bars' colours mean the modality, the pattern the run.
        marker = dict(color="white", line=dict(color="#333", width=1), pattern=dict(shape=pattern, fgcolor="#333"))
        name = f"{label} ({'hatched' if pattern else 'plain'} bars)"
        fig.add_trace(_legend_entry(name, marker, label), row=1, col=2)
    if not same_words:  # the branches then share a row, told apart by colour alone
        for b in branches:
            fig.add_trace(
                _legend_entry(wording.branch_title(b), dict(color=MODALITY_COLOURS[b]), runs[0][0]), row=1, col=2
            )


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
    runs: list[_Run] = [(original_label, original[0], original[1], ""), (variant_label, variant[0], variant[1], "/")]
    branches = [b for b in BRANCHES if any(_mean_share(e, b) is not None for _, _, e, _ in runs)]
    same_words = [w.text for w in original[1].words] == [w.text for w in variant[1].words]
    share_rows = _share_rows(runs, branches, same_words)
    fig, plot_px = _subplots(share_rows)
    _add_scores(fig, runs)
    _add_shapley(fig, runs)
    for r, (_, bars, labels) in enumerate(share_rows, start=2):
        _add_share_row(fig, r, bars, labels)
    _add_legend(fig, runs, branches, same_words)
    change = variant[0] - original[0]
    t = _title(f"What changed: {original[0]:+.2f} \u2192 {variant[0]:+.2f} ({change:+.2f})")
    top = t["top"] + 22  # the first row's titles sit above it
    return _layout(
        fig,
        plot_px + top + 110,
        barmode="group",
        bargap=0.2,
        title=t["title"],
        # Below the plots, where a long label has the whole width: above, it ran into the title.
        legend=dict(orientation="h", x=0, xanchor="left", y=0, yref="container", yanchor="bottom"),
        margin=dict(l=55, r=20, t=top, b=110),
    )
