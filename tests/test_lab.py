"""The Fusion Lab: a run learns what its world's rule says (the interaction beats both baselines,
noise streams get no credit), the command line's JSON, the baselines by hand, the tab's sessions,
stop, limits, saving and links."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from conftest import feature_checkpoint
from msa.__main__ import main as msa_main
from msa.lab.baselines import lookup_mae
from msa.lab.recipe import Recipe
from msa.lab.run import LabRun, run_lab
from msa.lab.worlds import PRESETS, WorldError, preset
from msa.sample import Sample

gr = pytest.importorskip("gradio")
from msa.app.lab_tab import (  # noqa: E402
    CLIP_OUTPUTS,
    SETTINGS,
    TRAIN_OUTPUTS,
    LabLimits,
    LabTab,
    read_settings,
    settings_from_query,
    settings_query,
)
from msa.app.service import Checkpoints, Limits, Service  # noqa: E402
from msa.predict import Predictor  # noqa: E402

QUICK = dict(clips=100, seed=1)  # a world that trains in a second or two: plumbing, not learning


@pytest.mark.slow
def test_face_flips_needs_the_interaction_and_the_model_learns_it() -> None:
    """At the preset's own settings, the model beats the same model on the words alone and the
    best additive model, on all clips and on the flipped ones, and credits the face."""
    result = run_lab(preset("face-flips", seed=1), preset="face-flips")
    v = result.variants["LN gates"]
    assert v["test_mae"] < 0.75 * result.baselines["additive_oracle"], (v, result.baselines)
    assert v["test_mae"] < 0.75 * result.baselines["text_only"], (v, result.baselines)
    assert v["test_mae_flipped"] < 0.7, v
    assert result.truth["visual"] > 0.2 and v["shapley"]["visual"] > 0.5 * result.truth["visual"], v


@pytest.mark.slow
def test_cli_json_on_words_only_gives_voice_and_face_no_credit(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m msa lab words-only --json`: one object with the issue's keys; the noise streams'
    Shapley values stay near 0 while the words' match the rule's."""
    assert msa_main(["lab", "words-only", "--seed", "2", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("preset", "rule", "train_seconds", "test_mae", "baselines", "shapley", "truth", "history"):
        assert key in out, key
    assert set(out["baselines"]) >= {"text_only", "additive_oracle"}
    assert out["preset"] == "words-only" and out["rule"].startswith("Each positive word adds 1")
    assert len(out["history"]) == Recipe.epochs and {"train", "valid"} <= set(out["history"][0])
    assert out["shapley"]["acoustic"] < 0.1 and out["shapley"]["visual"] < 0.1, out["shapley"]
    assert out["shapley"]["text"] == pytest.approx(out["truth"]["text"], rel=0.25)
    assert out["test_mae"] < 0.35


def test_cli_says_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    assert msa_main(["lab", "face-flips", "--flip", "1.5", "--quiet"]) == 2
    assert "share of clips is in [0, 1]" in capsys.readouterr().err
    assert msa_main(["lab", "face-flips", "--compare", "gates=maybe", "--quiet"]) == 2
    assert "gates" in capsys.readouterr().err
    assert msa_main(["lab", "face-flips", "--compare", "nonsense", "--quiet"]) == 2
    assert "SETTING=VALUE" in capsys.readouterr().err


def _clip(words: float, flip: int, label: float) -> Sample:
    parts = {"words": words, "voice": 0.0, "face": 0.0, "flip": flip}
    return Sample(id="c", text="w", label=label, meta={"parts": parts, "present": (True, True, True)})


def test_best_additive_model_by_hand() -> None:
    """Labels flip x words with words in {-1, 1}, a quarter flipped: the best additive model
    (least absolute error) predicts each words' majority label, so it errs by 2 on the flipped
    quarter: MAE 0.5. With the flip as a state of its own it cannot do better (no interaction)."""
    clips = [_clip(w, f, f * w) for w in (-1.0, 1.0) for f in (1, 1, 1, -1)] * 5
    assert lookup_mae(clips, clips, ("text",)) == pytest.approx(0.5, abs=1e-3)
    assert lookup_mae(clips, clips, ("text", "acoustic", "visual")) == pytest.approx(0.5, abs=1e-3)
    additive = [_clip(w, 1, w + (0.5 if f < 0 else 0.0)) for w in (-1.0, 1.0) for f in (1, -1)] * 5
    for c, f in zip(additive, [1, -1] * 10):  # the face adds 0.5 when it is in state -1: additive
        c.meta["parts"]["flip"] = f
    assert lookup_mae(additive, additive, ("text", "acoustic", "visual")) == pytest.approx(0.0, abs=1e-3)


def test_a_run_stopped_midway_keeps_its_best_epoch() -> None:
    run = LabRun(preset("words-only", **QUICK), [Recipe(seed=1, epochs=5)])
    epochs = run.train()
    first = next(epochs)
    run.stop()
    epochs.close()
    result = run.finish()
    assert first.epoch == 1 and result.stopped and "best epoch" in result.stopped
    assert result.variants["LN gates"]["epochs_run"] == 1
    empty = LabRun(preset("words-only", **QUICK), [Recipe(seed=1)])
    with pytest.raises(WorldError, match="before its first epoch"):
        empty.finish()


def test_two_recipes_must_differ() -> None:
    with pytest.raises(WorldError, match="the same"):
        LabRun(preset("words-only", **QUICK), [Recipe(), Recipe()])
    assert LabRun(preset("words-only", **QUICK), [Recipe(), Recipe(seed=1)]).names == [
        "LN gates (seed 0)",
        "LN gates (seed 1)",
    ]


# -- the tab ---------------------------------------------------------------------------------


class Request:
    """What the handlers read of a Gradio request."""

    def __init__(self, session: str, query: dict[str, str] | None = None):
        self.session_hash = session
        self.query_params = query or {}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, fx, tokenizer) -> Checkpoints:
    root = tmp_path_factory.mktemp("checkpoints")
    path = feature_checkpoint(root / "default", fx, tokenizer)
    return Checkpoints(Service(Predictor(path, extractor=fx), Limits()), root)


def _settings(**changes: object) -> list[object]:
    values = dict(
        preset="words-only", words=1.0, voice=0.0, face=0.0, flip=0.0, noise=0.1, missing_voice=0.0,
        missing_face=0.0, clips=100, seed=1, gates="LN gates (the paper)", cmd=True, mi=True, epochs=2,
        compare=False, gates2="no gates", cmd2=True, mi2=True,
    )  # fmt: skip
    values.update(changes)
    return [values[k] for k in SETTINGS]


def _train(tab: LabTab, session: str, **changes: object) -> dict[str, object]:
    outs = list(tab.train(Request(session), *_settings(**changes)))
    return dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, outs[-1]))


def test_each_session_has_its_own_lab_and_the_picker_only_lists_saved_models(checkpoints: Checkpoints) -> None:
    tab = LabTab(checkpoints, LabLimits())
    before = list(checkpoints.names)
    shown = _train(tab, "alice")
    model, clip = shown["model_pick"]["value"], shown["clip_pick"]["value"]
    assert shown["train"]["interactive"] and not shown["stop"]["interactive"]  # usable again
    assert len(tab.show_clip(model, clip, Request("alice"))) == len(CLIP_OUTPUTS)
    with pytest.raises(gr.Error, match="Train a model first"):  # bob trained nothing: sees nothing of alice's
        tab.show_clip(model, clip, Request("bob"))
    _train(tab, "bob", preset="voice-adds", voice=1.0, seed=2)
    assert tab.sessions.get("alice").run.world.voice == 0.0 and tab.sessions.get("bob").run.world.voice == 1.0
    assert tab.sessions.get("alice").explorer is not tab.sessions.get("bob").explorer

    assert checkpoints.names == before  # trained, not saved: not in the Analyse tab's picker
    text, picker = tab.save(model, "lab-words", Request("alice"))
    assert "lab-words" in picker["choices"] and "lab-words" in checkpoints.names
    assert "Fusion Lab" in (checkpoints.root / "lab-words" / "README.md").read_text()
    assert checkpoints.get("lab-words").predictor.checkpoint.training.modalities["visual"] == 60
    for bad in ("../x", "default", "lab-", "lab-a/b"):
        with pytest.raises(gr.Error):
            tab.save(model, bad, Request("alice"))
    with pytest.raises(gr.Error, match="off on this server"):
        LabTab(checkpoints, LabLimits(can_save=False)).save(model, "lab-x", Request("alice"))

    tab.page_closed(Request("alice"))
    with pytest.raises(gr.Error, match="Train a model first"):
        tab.show_clip(model, clip, Request("alice"))


def test_bad_settings_and_limits_leave_the_page_usable(checkpoints: Checkpoints) -> None:
    tab = LabTab(checkpoints, LabLimits(max_clips=200))
    # Refused with the reason on the status line, where it stays until the next run.
    for settings, why in ((_settings(clips=400), "at most 200 clips"), (_settings(words=5.0), "in [0, 2]")):
        shown = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in tab.train(Request("carol"), *settings)]
        assert len(shown) == 1 and shown[0]["status"].startswith("\u26a0\ufe0f Cannot train this"), shown
        assert why in shown[0]["status"], shown[0]["status"]
    rule, _ = tab.describe(None, *_settings(flip=3.0))
    assert "share of clips is in [0, 1]" in rule
    assert not tab.sessions.get("carol").training
    # Stop pressed during the first epoch: it ends, the run stops with that epoch kept, the Train button is back.
    outs = tab.train(Request("carol"), *_settings())
    next(outs)
    tab.stop(Request("carol"))
    last = dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, list(outs)[-1]))
    assert "Stopped by you" in last["status"] and "best epoch 1 of 1" in last["status"], last["status"]
    assert last["train"]["interactive"] and last["clip_pick"]["choices"]


def test_limits_on_a_space() -> None:
    space = LabLimits.from_env({"SPACE_ID": "user/app"})
    assert (space.max_clips, space.max_seconds, space.can_save) == (1200, 90.0, False)
    local = LabLimits.from_env({})
    assert local.can_save and local.max_seconds is None
    assert LabLimits.from_env({"SPACE_ID": "x", "MSA_LAB_SAVE": "1", "MSA_LAB_MAX_SECONDS": "30"}).can_save


def test_a_link_carries_every_setting() -> None:
    values = dict(zip(SETTINGS, _settings(preset="face-flips", flip=0.35, gates="no gates", compare=True, cmd2=False)))
    query = dict(pair.split("=") for pair in settings_query(values).split("&"))
    back, changed = settings_from_query(query)
    assert back == values and changed == []
    assert read_settings(back)[0] == read_settings(values)[0]


def test_a_bad_link_opens_the_nearest_valid_settings_and_says_what_changed() -> None:
    """Never an error page: out of range -> the nearest end (clips to a step of 20, within this
    server's limit); unreadable values and unknown keys left out; each change said once."""
    query = {
        "lab": "1", "clips": "4999", "flip": "1.7", "words": "-1", "epochs": "999", "seed": "-3", "noise": "0.25",
        "gates": "rainbow", "preset": "nope", "voice": "loud", "face": "nan", "colour": "red", "__theme": "dark",
    }  # fmt: skip
    found, changed = settings_from_query(query, max_clips=1200)
    assert found == {"clips": 1200, "flip": 1.0, "words": 0.0, "epochs": 60, "seed": 0, "noise": 0.25}
    assert changed == [
        "clips = 4999 is above 1200: set to 1200",
        "flip = 1.7 is above 1: set to 1",
        "words = -1 is below 0: set to 0",
        "epochs = 999 is above 60: set to 60",
        "seed = -3 is below 0: set to 0",
        "gates `rainbow` is not one of ln, sigmoid, none: left out",
        f"preset `nope` is not a world ({', '.join(PRESETS)}): left out",
        "voice `loud` is not a number: left out",
        "face `nan` is not a number: left out",
        "`colour` is not a setting: left out",
    ]
    assert settings_from_query({"clips": "130"})[0] == {"clips": 120}  # the slider's step
    world, _, _ = read_settings(dict(zip(SETTINGS, _settings(**found))))  # what the page then holds trains
    assert world.flip == 1.0 and world.clips == 1200


def test_lesson_steps_set_up_valid_runs() -> None:
    from msa.lab.lesson import LESSON

    before = dict(zip(SETTINGS, _settings(clips=100, seed=7, epochs=2, compare=True, gates2="sigmoid gates")))
    for step in LESSON:
        out = LabTab.lesson_step(step.title, "http://host/lab", *before.values())
        set_up = {k: v["value"] for k, v in zip(SETTINGS, out) if isinstance(v, dict) and "value" in v}
        values = {**before, **set_up}
        world, recipes, _ = read_settings(values)
        assert len(recipes) == (2 if step.compare else 1)
        question, rule, link = out[len(SETTINGS) :]
        assert step.question in question and world.rule in rule
        # The link is the step's, whole: its second model too, the size and seed kept from before.
        assert link == "http://host/lab?" + settings_query(values)
        assert settings_from_query(dict(urllib.parse.parse_qsl(link.split("?")[1]))) == (values, [])


def test_gradio_hands_every_session_handler_its_request() -> None:
    """The handlers find the session by the request: Gradio must pass it to each (it does so only
    for a positional parameter annotated gr.Request)."""
    from gradio.helpers import special_args

    tab = LabTab.__new__(LabTab)
    for fn in (tab.train, tab.show_clip, tab.view, tab.what_if, tab.save, tab.stop, tab.from_link):
        inputs: list[object] = ["x"] * 4
        special_args(fn, inputs, request="the request")
        assert "the request" in inputs, fn.__name__


def test_lab_figures_draw_what_they_say() -> None:
    from msa.app.plots.lab import loss_figure, mark_cue, truth_figure

    history = [{"epoch": e, "train": 1.0 / e, "valid": 1.2 / e} for e in (1, 2, 3)]
    fig = loss_figure({"LN gates": history, "no gates": history}, {"text_only": 0.9, "additive_oracle": 0.7})
    names = [t.name for t in fig.data]
    assert names[:4] == ["LN gates: validation", "LN gates: training", "no gates: validation", "no gates: training"]
    assert list(fig.data[0].y) == pytest.approx([1.2, 0.6, 0.4])
    # The baselines are lines named in the legend, not labels on the plot that the curves would cross.
    assert names[4:] == ["words alone 0.90", "best additive 0.70"] and not fig.layout.annotations
    assert sorted(s.y0 for s in fig.layout.shapes) == pytest.approx([0.7, 0.9])
    bars = truth_figure(
        {"m": {"text": 0.5, "acoustic": -0.1, "visual": 0.2}}, {"text": 0.4, "acoustic": 0, "visual": 0.3}, "t"
    )
    assert [b.name for b in bars.data] == ["m", "the rule (truth)"] and list(bars.data[1].y) == [0.4, 0, 0.3]
    from plotly.subplots import make_subplots

    marked = mark_cue(
        make_subplots(rows=2, cols=1).add_scatter(x=[0, 1], y=[0, 1], row=1, col=1), (0.2, 0.5), "cue", 1.0
    )
    assert [(s.x0, s.x1) for s in marked.layout.shapes] == [(0.2, 0.5)]


def test_a_flipped_clip_says_why_its_credit_differs_from_the_rule(checkpoints: Checkpoints) -> None:
    """Issue 35: on a flipped clip the rule says "the words add ..." while the rule's Shapley
    values share the reversal between the words and the face; the clip's text says why, once,
    and only on flipped clips."""
    from msa.app.texts import FLIPPED_CREDIT

    tab = LabTab(checkpoints, LabLimits())
    shown = _train(tab, "carol", preset="face-flips", flip=0.5, face=0.0)
    titles = shown["clip_pick"]["choices"]
    titles = [t[0] if isinstance(t, (list, tuple)) else t for t in titles]
    flipped = next(t for t in titles if ", flipped" in t.split(":")[0])
    plain = next(t for t in titles if "flipped" not in t.split(":")[0])
    model = shown["model_pick"]["value"]
    text = dict(zip(CLIP_OUTPUTS, tab.show_clip(model, flipped, Request("carol"))))["clip_text"]
    assert "raises its brows" in text and text.count(FLIPPED_CREDIT) == 1
    text = dict(zip(CLIP_OUTPUTS, tab.show_clip(model, plain, Request("carol"))))["clip_text"]
    assert FLIPPED_CREDIT not in text
