"""The fusion figures, drawn from hand-made explanations: what they draw is the numbers they were given."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from msa.app import plots
from msa.app.plots.views import _ordered
from msa.explain import BranchInfo, Contributions, DisplayWord, Explanation, GateView
from msa.features.context import ClipContext

ORANGE, GREEN = plots.MODALITY_COLOURS["acoustic"], plots.MODALITY_COLOURS["visual"]

# "good" twice: a categorical axis would merge the two.
WORDS = [("the", 0.10, 0.25), ("good", 0.30, 0.60), ("film", 0.70, 1.00), ("good", None, None)]
HEADS, CHANNELS = 3, 5
TIMES = {"acoustic": np.arange(60) / 50.0, "visual": np.array([0.0, 0.2, 0.4, 1.0, 1.2])}  # visual: a gap (no face)


def make_explanation(
    seed: int = 0,
    words: list[tuple[str, float | None, float | None]] = WORDS,
    visual_present: bool = True,
    trained: dict[str, int | None] | None = None,
    score: float = 0.8,
) -> Explanation:
    rng = np.random.default_rng(seed)
    n = len(words)
    trained = trained or {"acoustic": 100, "visual": 100}
    present = {"acoustic": True, "visual": visual_present}
    gates = []
    for b in ("acoustic", "visual"):
        for layer in (1, 2):
            times = TIMES[b] if present[b] else None
            attention = None
            if times is not None:
                a = rng.random((HEADS, n, times.size))
                attention = a / a.sum(-1, keepdims=True)  # each word's row is a distribution over frames
            gates.append(
                GateView(
                    b,
                    layer,
                    rng.random(n),
                    times,
                    attention,
                    rng.normal(size=(n, CHANNELS)),
                    rng.normal(size=(n, CHANNELS)),
                )
            )
    branches = {b: BranchInfo(b, present[b], trained[b], f"note on {b}") for b in ("acoustic", "visual")}
    values = {"text": 0.5, "acoustic": 0.2, "visual": 0.1 if visual_present else 0.0}
    base = score - sum(values.values())
    return Explanation(
        contributions=Contributions(values=values, base=base, score=score, subset_scores={}),
        words=[DisplayWord(t, [i + 1], s, e) for i, (t, s, e) in enumerate(words)],
        gates=gates,
        branches=branches,
        gate_activation="ln",
    )


def context(frames: int = 4) -> ClipContext:
    rng = np.random.default_rng(1)
    imgs = [(0.15 + 0.3 * k, rng.integers(0, 255, size=(72, 96, 3), dtype=np.uint8)) for k in range(frames)]
    t = np.arange(60) / 50.0
    pitch = np.where(np.arange(60) % 3 == 0, np.nan, 120.0)
    return ClipContext(frames=imgs, voice_times=t, loudness_db=-30 + np.sin(t), pitch_hz=pitch, duration=1.2)


def bars(fig: go.Figure) -> list[go.Bar]:
    return [t for t in fig.data if isinstance(t, go.Bar)]


def view(e: Explanation, branch: str, layer: int) -> GateView:
    return next(g for g in e.gates if g.branch == branch and g.layer == layer)


def axis_of(fig: go.Figure, trace: go.BaseTraceType, axis: str = "x") -> dict:
    name = getattr(trace, f"{axis}axis") or axis
    return fig.layout[name.replace(axis, f"{axis}axis", 1)]


# ----------------------------------------------------------------------------------------------
# How much each word takes in
# ----------------------------------------------------------------------------------------------


def test_share_rows_draw_each_rows_shares_under_its_words() -> None:
    e = make_explanation()
    fig = plots.share_rows_figure(e)
    rows = bars(fig)
    order = [("acoustic", 1), ("acoustic", 2), ("visual", 1), ("visual", 2)]
    assert len(rows) == 4
    for trace, (b, layer) in zip(rows, order):
        np.testing.assert_allclose(trace.y, view(e, b, layer).share)  # in word order
        assert list(trace.x) == [0, 1, 2, 3]  # numbered positions: the two "good"s stay two bars
        assert trace.marker.color == (ORANGE if b == "acoustic" else GREEN)
        assert list(axis_of(fig, trace, "y").range) == [0, 1]  # the same fixed scale in every row
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [
        "text \u2192 acoustic \u00b7 layer 1",
        "text \u2192 acoustic \u00b7 layer 2",
        "text \u2192 visual \u00b7 layer 1",
        "text \u2192 visual \u00b7 layer 2",
    ]
    bottom = axis_of(fig, rows[-1])
    assert list(bottom.ticktext) == ["the", "good", "film", "good"] and list(bottom.tickvals) == [0, 1, 2, 3]
    # The hover names the word and when it was spoken.
    assert list(rows[0].customdata[1][:2]) == ["good", "spoken 0.30\u20130.60 s"]
    assert rows[0].customdata[3][1] == "spoken time not known"


@pytest.mark.parametrize(
    "absent, trained, reason",
    [
        (True, 100, "no face in this clip"),
        (False, 0, "never trained on face"),
        (True, 0, "never trained on face"),
    ],
)
def test_share_rows_of_a_stand_in_branch_are_grey_and_say_so(absent: bool, trained: int, reason: str) -> None:
    e = make_explanation(visual_present=not absent, trained={"acoustic": 100, "visual": trained})
    fig = plots.share_rows_figure(e)
    colours = [t.marker.color for t in bars(fig)]
    assert colours == [ORANGE, ORANGE, plots.STAND_IN_COLOUR, plots.STAND_IN_COLOUR]
    titles = [a.text for a in fig.layout.annotations]
    assert all("grey" not in t for t in titles[:2])
    assert all(t.endswith(f"<br>grey: {reason}") for t in titles[2:])


def test_share_grid_has_one_small_cell_per_branch_and_layer_with_its_mean() -> None:
    e = make_explanation(visual_present=False)
    fig = plots.share_grid_figure(e)
    cells = bars(fig)
    assert len(cells) == 4
    for trace, g in zip(cells, _ordered(e.gates)):
        np.testing.assert_allclose(trace.y, g.share)
    titles = [a.text for a in fig.layout.annotations]
    mean = float(np.mean(view(e, "acoustic", 1).share))
    assert titles[0] == f"text \u2192 acoustic<br>layer 1 \u00b7 mean {mean:.0%}"  # short lines: a cell is narrow
    visual_mean = float(np.mean(view(e, "visual", 1).share))
    assert titles[2] == f"text \u2192 visual<br>layer 1 \u00b7 mean {visual_mean:.0%}<br>no face evidence"
    assert cells[2].marker.color == plots.STAND_IN_COLOUR
    # Two rows (branches) by two columns (layers).
    ydom = [tuple(axis_of(fig, t, "y").domain) for t in cells]
    xdom = [tuple(axis_of(fig, t, "x").domain) for t in cells]
    assert ydom[0] == ydom[1] != ydom[2] == ydom[3]
    assert xdom[0] == xdom[2] != xdom[1] == xdom[3]
    assert fig.layout.height <= 2 * 160 + 120  # small: an overview


# ----------------------------------------------------------------------------------------------
# Where each word looks
# ----------------------------------------------------------------------------------------------


def attention_trace(fig: go.Figure) -> go.Bar:
    return next(t for t in bars(fig) if t.name.startswith("attention of"))


@pytest.mark.parametrize("word, head", [(1, None), (2, None), (1, 0), (1, 2)])
def test_attention_draws_the_words_row_over_the_frame_times(word: int, head: int | None) -> None:
    e = make_explanation()
    g = view(e, "acoustic", 2)
    fig = plots.attention_figure(e, "acoustic", 2, word, head=head)
    expected = g.attention[:, word].mean(0) if head is None else g.attention[head, word]
    trace = attention_trace(fig)
    np.testing.assert_allclose(trace.x, TIMES["acoustic"])
    np.testing.assert_allclose(trace.y, expected)
    heatmap = next(t for t in fig.data if isinstance(t, go.Heatmap))
    np.testing.assert_allclose(heatmap.z, g.attention.mean(0) if head is None else g.attention[head])
    title = fig.layout.title.text
    assert WORDS[word][0] in title and "acoustic" in title and "layer 2" in title
    assert ("mean of 3 heads" if head is None else f"head {head + 1} of 3") in title


def test_attention_shades_the_spoken_interval_of_the_word() -> None:
    e = make_explanation()
    fig = plots.attention_figure(e, "acoustic", 1, 1)
    spans = [(s.x0, s.x1) for s in fig.layout.shapes if s.type == "rect" and s.xref == "x"]
    assert (0.30, 0.60) in spans
    assert any("good" in (a.text or "") for a in fig.layout.annotations)
    # A word whose time is not known is said to be so, not shaded somewhere.
    fig = plots.attention_figure(e, "acoustic", 1, 3)
    assert not [s for s in fig.layout.shapes if s.type == "rect" and s.xref == "x"]
    assert any("not known" in (a.text or "") for a in fig.layout.annotations)


def test_changing_the_word_or_head_changes_the_drawn_data() -> None:
    e = make_explanation()
    base = attention_trace(plots.attention_figure(e, "visual", 1, 0)).y
    other_word = attention_trace(plots.attention_figure(e, "visual", 1, 2)).y
    other_head = attention_trace(plots.attention_figure(e, "visual", 1, 0, head=1)).y
    assert not np.allclose(base, other_word) and not np.allclose(base, other_head)


def test_attention_heatmap_breaks_at_frames_without_a_face() -> None:
    e = make_explanation()
    heatmap = next(t for t in plots.attention_figure(e, "visual", 1, 0).data if isinstance(t, go.Heatmap))
    x = np.asarray(heatmap.x, dtype=float)
    assert x.size == TIMES["visual"].size + 1  # one empty column in the 0.4 -> 1.0 s gap
    z = np.asarray(heatmap.z, dtype=float)
    assert np.isnan(z[:, 3]).all() and np.isfinite(np.delete(z, 3, axis=1)).all()


def test_attention_without_the_stream_says_the_words_saw_only_the_stand_in() -> None:
    """One reason, the true one: the clip lacked the face (with why, when known), or the model does
    not read it (whatever the clip held)."""
    e = make_explanation(visual_present=False)
    stand_in = ": each word could only look at the placeholder the model learned (its stand-in)."
    for info, said in (
        (BranchInfo("visual", False, 100, "", read=True), "This clip has no usable face" + stand_in),
        (
            BranchInfo("visual", False, 100, "", read=True, clip_reason="no face found in any frame"),
            "This clip has no usable face (no face found in any frame)" + stand_in,
        ),
        (
            BranchInfo("visual", False, 100, "", read=False, clip_reason="no face found"),
            "This model does not read the face" + stand_in,
        ),
    ):
        e.branches["visual"] = info
        fig = plots.attention_figure(e, "visual", 2, 1, context=context())
        assert [a.text.replace("<br>", " ") for a in fig.layout.annotations] == [said]
        assert not fig.data and "good" in fig.layout.title.text


def test_attention_shows_the_frames_and_the_voice_of_the_context() -> None:
    e = make_explanation()
    c = context(frames=4)
    fig = plots.attention_figure(e, "acoustic", 1, 0, context=c)
    images = fig.layout.images
    assert len(images) == 4
    assert all(im.source.startswith("data:image/jpeg;base64,") for im in images)
    assert [im.x for im in images] == [t for t, _ in c.frames]
    loud = next(t for t in fig.data if t.name == "loudness")
    pitch = next(t for t in fig.data if t.name == "pitch")
    np.testing.assert_allclose(loud.y, c.loudness_db)
    np.testing.assert_array_equal(np.isnan(np.asarray(pitch.y, dtype=float)), np.isnan(c.pitch_hz))
    assert fig.layout[pitch.yaxis.replace("y", "yaxis", 1)].title.text == "pitch (Hz)"
    # Without frames (an audio file) the strip is left out, the voice stays.
    fig = plots.attention_figure(
        e,
        "acoustic",
        1,
        0,
        context=ClipContext(voice_times=c.voice_times, loudness_db=c.loudness_db, pitch_hz=c.pitch_hz, duration=1.2),
    )
    assert not fig.layout.images and any(t.name == "loudness" for t in fig.data)


def test_attention_refuses_what_is_not_there() -> None:
    e = make_explanation()
    with pytest.raises(ValueError, match="layer 3"):
        plots.attention_figure(e, "acoustic", 3, 0)
    with pytest.raises(ValueError, match="word 9"):
        plots.attention_figure(e, "acoustic", 1, 9)
    with pytest.raises(ValueError, match="head 3"):
        plots.attention_figure(e, "acoustic", 1, 0, head=3)


# ----------------------------------------------------------------------------------------------
# What if, gate values
# ----------------------------------------------------------------------------------------------


def test_what_if_shows_both_scores_and_both_runs_shapley_values() -> None:
    a, b = make_explanation(0, score=0.8), make_explanation(1, visual_present=False, score=-0.4)
    fig = plots.what_if_figure((0.8, a), (-0.4, b), "original", "without the face")
    score = next(t for t in bars(fig) if t.name == "score")
    assert list(score.y) == [0.8, -0.4] and list(score.text) == ["+0.80", "-0.40"]
    assert "without the face" in score.x[1].replace("<br>", " ")
    for label, e in (("original", a), ("without the face", b)):
        shapley = next(t for t in bars(fig) if t.name == label)
        assert list(shapley.y) == [e.contributions.values[m] for m in ("text", "acoustic", "visual")]
    # Same words: one row per branch, both runs under each word (mean over the two layers).
    acoustic = [t for t in bars(fig) if t.name.endswith("text \u2192 acoustic")]
    assert len(acoustic) == 2
    np.testing.assert_allclose(acoustic[0].y, (view(a, "acoustic", 1).share + view(a, "acoustic", 2).share) / 2)
    visual_variant = next(t for t in bars(fig) if t.name == "without the face, text \u2192 visual")
    assert visual_variant.marker.color == plots.STAND_IN_COLOUR
    assert "+0.80 \u2192 -0.40" in fig.layout.title.text


def test_what_if_with_other_words_gives_each_run_its_own_words() -> None:
    a = make_explanation(0)
    b = make_explanation(1, words=[("the", None, None), ("bad", None, None), ("film", None, None)])
    fig = plots.what_if_figure((0.8, a), (-1.0, b), "original", "other words")
    rows = {t.xaxis for t in bars(fig) if "," in (t.name or "")}
    assert len(rows) == 2
    ticks = [list(fig.layout[x.replace("x", "xaxis", 1)].ticktext) for x in sorted(rows)]
    assert ["the", "good", "film", "good"] in ticks and ["the", "bad", "film"] in ticks


def test_gate_heatmaps_put_words_across_and_channels_down() -> None:
    e = make_explanation()
    views = [g for g in e.gates if g.branch == "acoustic"]
    fig = plots.gate_heatmaps(e, "acoustic")
    maps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(maps) == 4
    np.testing.assert_allclose(maps[0].z, views[0].retain.T)
    np.testing.assert_allclose(maps[3].z, views[1].fusion.T)
    assert [a.text for a in fig.layout.annotations] == [
        "layer 1: retain gate",
        "layer 1: fusion gate",
        "layer 2: retain gate",
        "layer 2: fusion gate",
    ]
    assert list(axis_of(fig, maps[0]).ticktext) == ["the", "good", "film", "good"]
    assert "stand-in" not in fig.layout.title.text and maps[0].colorscale[0][1] != "rgb(255,255,255)"
    no_gates = dataclasses.replace(e, gates=[GateView("acoustic", 1, g.share, None, None, None, None) for g in views])
    assert "no gates" in plots.gate_heatmaps(no_gates, "acoustic").layout.annotations[0].text


def test_gate_heatmaps_follow_the_stand_in_rule() -> None:
    """A branch with no stream here is grey and says so, like the share rows and the attention view."""
    absent = make_explanation(visual_present=False)
    fig = plots.gate_heatmaps(absent, "visual")
    assert "grey: no face in this clip:<br>these gates are no evidence from the face" in fig.layout.title.text
    maps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert maps and all(m.colorscale == go.Heatmap(colorscale="Greys").colorscale for m in maps)
    assert "stand-in" not in plots.gate_heatmaps(absent, "acoustic").layout.title.text


def test_plots_do_not_import_the_service() -> None:
    import ast

    modules = sorted(Path(plots.__file__).parent.glob("*.py"))
    assert len(modules) > 1  # the package's modules, not only its face
    for module in modules:
        tree = ast.parse(module.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "service" not in imported and not any(m and m.endswith(".service") for m in imported), module.name


def test_every_figure_serialises() -> None:
    e, absent = make_explanation(), make_explanation(visual_present=False)
    figures = [
        plots.share_rows_figure(e),
        plots.share_grid_figure(absent),
        plots.attention_figure(e, "visual", 1, 1, head=1, context=context()),
        plots.attention_figure(absent, "visual", 1, 1),
        plots.what_if_figure((0.8, e), (0.1, absent), variant_label="without the face"),
        plots.gate_heatmaps(e, "visual"),
        plots.score_figure(0.8, "positive", "positive"),
        plots.shapley_figure(e.contributions),
        plots.timeline_figure([{"start": 0.0, "end": 1.0, "score": 0.5, "label7": "weakly positive"}], 1.0),
    ]
    for fig in figures:
        assert json.loads(fig.to_json())["data"] is not None


def test_no_words_or_no_layers_give_a_message_not_an_error() -> None:
    e = make_explanation()
    e.gates = []
    for fig in (plots.share_rows_figure(e), plots.share_grid_figure(e)):
        assert "No words or no fusion layers" in fig.layout.annotations[0].text


def test_the_score_scale_names_its_directions_inside_the_axis() -> None:
    """The end bands are half a unit wide, too narrow for "strongly negative" on a phone: the
    scale names its directions, each end's label anchored inward at that end, and the title
    names the class."""
    fig = plots.score_figure(-2.8, "strongly negative", "negative")
    notes = {a.text: (a.x, a.xanchor) for a in fig.layout.annotations}
    assert notes == {"\u25c0 negative": (-3.0, "left"), "neutral": (0.0, "center"), "positive \u25b6": (3.0, "right")}
    assert "strongly negative" in fig.layout.title.text
    marker = fig.data[0]
    assert marker.x == (-2.8,) and marker.text == ("-2.80",)
    assert len(fig.layout.shapes) == 7  # the seven class bands still colour the scale
