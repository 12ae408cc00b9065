"""The app (issue 4): the handler on a real MOSI clip, the input checks, and the running server
through `gradio_client` (the ``predict`` endpoint, a bad file, then a good request again).

Tiny random checkpoints (conftest) saved with the running extractor's spec, tiny.en ASR, one
extractor for the module: the numbers mean nothing, the plumbing and the consistency of what is
shown (Shapley values add up, gates line up with the transcript's tokens) are what is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from conftest import CLIP, ROOT, WAV, feature_checkpoint, make_media
from msa.app.service import PROGRESS, Checkpoints, InputError, Limits, Service
from msa.app.uploads import UploadLedger
from msa.config import MODALITIES
from msa.features import FeatureExtractor
from msa.metrics import LABEL7_NAMES
from msa.model.checkpoint import TrainingRecord, save_checkpoint
from msa.predict import Prediction, Predictor
from msa.testing import free_port, tiny_model

# Slow (real clips through Whisper and the face landmarker, and a running server):
# `pytest -m "not slow"` leaves it out.
pytestmark = pytest.mark.slow

gr = pytest.importorskip("gradio")
from msa.app import plots  # noqa: E402
from msa.app.handlers import MEAN_OF_HEADS, OUTPUTS, Handlers  # noqa: E402
from msa.app.page import EXAMPLE_CLIPS, build_demo  # noqa: E402

LIMITS = Limits(max_seconds=60.0, max_megabytes=5.0)


class Recorder:
    """Stands in for gr.Progress: records (fraction, description) calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    def __call__(self, fraction: float, desc: str | None = None, **_: Any) -> None:
        self.calls.append((fraction, desc))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, fx: FeatureExtractor, tokenizer) -> Service:
    """A tiny LN-gated checkpoint trained (nominally) on this extractor's features."""
    path = feature_checkpoint(tmp_path_factory.mktemp("ckpt") / "video", fx, tokenizer)
    return Service(Predictor(path, extractor=fx), LIMITS)


@pytest.fixture(scope="module")
def text_service(tmp_path_factory: pytest.TempPathFactory, fx: FeatureExtractor, tokenizer) -> Service:
    """Trained without this extractor's features (no feature_spec), sigmoid gates."""
    path = tmp_path_factory.mktemp("ckpt") / "text"
    save_checkpoint(path, tiny_model(acoustic_dim=5, visual_dim=20, gates="sigmoid"), tokenizer)
    return Service(Predictor(path, extractor=fx), LIMITS)


@pytest.fixture(scope="module")
def shown(service: Service) -> dict[str, Any]:
    """The handler's outputs for the real clip, by name, and the progress it reported."""
    progress = Recorder()
    out = Handlers(service).analyse(str(CLIP), None, "", progress=progress)
    assert len(out) == len(OUTPUTS)
    named = dict(zip(OUTPUTS, out))
    return {**named, "_progress": progress.calls, "_json": json.loads(Path(named["download"]["value"]).read_text())}


def _saved(shown: dict[str, Any]) -> dict[str, Any]:
    """The downloadable JSON (read when it was written: a later test sweeps the file)."""
    return shown["_json"] if "_json" in shown else json.loads(Path(shown["download"]["value"]).read_text())


# ----------------------------------------------------------------------------------------------
# The handler
# ----------------------------------------------------------------------------------------------


def test_handler_every_output_present(shown: dict[str, Any], service: Service) -> None:
    for name in OUTPUTS:
        if name not in ("timeline", "what_if_result", "what_if_plot"):  # the what-if is empty until asked
            assert shown[name] is not None and shown[name] != "", name
    # One utterance: no timeline (it is for inputs the ASR splits into several).
    assert shown["timeline"]["visible"] is False
    d = _saved(shown)
    assert d["modalities_present"] == list(MODALITIES) and d["label7"] in LABEL7_NAMES
    assert f"{d['score']:+.2f}" in shown["score"] and d["label7"] in shown["score"] and d["polarity"] in shown["score"]
    marker = next(t for t in shown["score_plot"].data if isinstance(t, go.Scatter))
    assert marker.x[0] == pytest.approx(d["score_clipped"])
    for m in MODALITIES:
        assert f"({m})" in shown["modalities"]
    assert "Not used" not in shown["modalities"]
    assert d["transcript"] in shown["transcript"] and "favorite" in d["transcript"].lower()
    assert shown["words"] == [[w["word"], round(w["start"], 2), round(w["end"], 2)] for w in d["words"]]
    assert "total" in shown["timings"]
    # Progress: every stage of a full extraction, in order, then the explanation.
    descs = [desc for _, desc in shown["_progress"]]
    fractions = [f for f, _ in shown["_progress"]]
    assert fractions == sorted(fractions)
    for stage in ("validate", "decode", "asr", "acoustic", "visual", "model", "context"):
        assert PROGRESS[stage][1] in descs, stage
    # The download holds the prediction exactly as the CLI's JSON, plus the explanation.
    assert set(Prediction.__dataclass_fields__) <= set(d)
    assert shown["download"]["interactive"] and Path(shown["download"]["value"]).parent.parent == service.tmp_dir


def test_shapley_values_add_up(shown: dict[str, Any]) -> None:
    d = _saved(shown)
    c = d["explanation"]["contributions"]
    assert c["base"] + sum(c["values"].values()) == pytest.approx(c["score"], abs=1e-9)
    assert c["score"] == d["score"]  # the prediction and its Shapley subsets come from one fusion
    assert c["subset_scores"]["none"] == c["base"] and len(c["subset_scores"]) == 8
    # The waterfall draws exactly these numbers, and its total bar is their sum.
    wf = shown["contrib_plot"].data[0]
    assert isinstance(wf, go.Waterfall)
    assert list(wf.measure) == ["absolute", "relative", "relative", "relative", "total"]
    assert list(wf.y[:4]) == [c["base"], *(c["values"][m] for m in MODALITIES)]
    assert wf.text[-1] == f"{c['score']:+.3f}"
    assert f"= {c['score']:+.3f}" in shown["contrib_text"]


def test_explanation_follows_the_transcripts_words(shown: dict[str, Any], service: Service) -> None:
    """The per-word views: the transcript's words (punctuation kept with its word), each with its
    spoken interval from the ASR; shares and attention per branch and layer, drawn as given."""
    d = _saved(shown)
    e = d["explanation"]
    assert e["words"] == d["transcript"].split()
    timed = {w["word"].strip(): (w["start"], w["end"]) for w in d["words"]}
    for word, span in zip(e["words"], e["word_times"]):
        assert span is not None and tuple(span) == timed[word], word
    c = service.config
    assert [(g["branch"], g["layer"]) for g in e["gates"]] == [
        (b, i) for b in ("text->acoustic", "text->visual") for i in range(1, c.fusion_layers + 1)
    ]
    for g in e["gates"]:
        assert len(g["share"]) == len(e["words"])
        w = np.asarray(g["attention"]["weights"])
        assert w.shape == (len(e["words"]), len(g["attention"]["times"]))
        np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-4)
        assert g["attention"]["times"][-1] <= d["duration"] + 0.1
    # The clip's visual frames are those with a face, at their own times (5 fps grid).
    visual_times = e["gates"][-1]["attention"]["times"]
    assert all(abs(t * 5 - round(t * 5)) < 1e-4 for t in visual_times)
    # The share rows draw the JSON's numbers, one bar per word, words in order.
    bars = [t for t in shown["shares"].data if isinstance(t, go.Bar)]
    assert len(bars) == len(e["gates"])
    for bar, g in zip(bars, e["gates"]):
        np.testing.assert_allclose(np.asarray(bar.y, dtype=float), g["share"], atol=1e-6)
    # The trained-on note: this tiny checkpoint records nothing about its training data.
    assert "does not record" in shown["branch_notes"] and "looked at the clip's voice" in shown["branch_notes"]
    # The heatmaps (advanced): channels x words.
    for branch in ("acoustic", "visual"):
        heat = [t for t in shown[f"gates_{branch}"].data if isinstance(t, go.Heatmap)]
        assert len(heat) == 2 * c.fusion_layers
        assert all(np.asarray(t.z).shape == (c.hidden, len(e["words"])) for t in heat)
    # The words strip is coloured by the first layer's share (the view opens on it).
    assert [w.removeprefix("\u25b8 ") for w, _ in shown["word_strip"]] == [w + " " for w in e["words"]]
    assert shown["word_strip"][0][0].startswith("\u25b8 ")  # the word the attention view shows
    share = np.asarray(e["gates"][0]["share"])  # coloured relative to the row's largest share
    np.testing.assert_allclose([v for _, v in shown["word_strip"]], share / share.max(), atol=2e-3)


def test_attention_view_redraws_for_each_pick(shown: dict[str, Any], service: Service) -> None:
    h = Handlers(service)
    state = shown["state"]
    e = _saved(shown)["explanation"]
    picks = shown["view_pick"]["choices"]
    words = shown["word_pick"]["choices"]
    assert len(picks) == len(e["gates"]) and len(words) == len(e["words"])
    pick = lambda c: c[0] if isinstance(c, (list, tuple)) else c  # noqa: E731  (gradio may give (label, value))
    drawn = {}
    for p_i, w_i, head in [
        (0, 0, MEAN_OF_HEADS),
        (0, 2, MEAN_OF_HEADS),
        (3, 2, MEAN_OF_HEADS),
        (3, 2, "head 2"),
    ]:
        fig, strip = h.view(state, pick(picks[p_i]), pick(words[w_i]), head)
        drawn[(p_i, w_i, head)] = fig.to_json()
        assert len(strip) == len(e["words"])
    assert len(set(drawn.values())) == 4  # another word, branch or head: another picture
    assert h.view(None, None, None, None) == (None, None)  # nothing analysed yet: nothing drawn


def test_what_if_removes_a_modality_or_edits_the_words(shown: dict[str, Any], service: Service) -> None:
    key = shown["state"]["key"]
    d = _saved(shown)
    subsets = d["explanation"]["contributions"]["subset_scores"]
    no_voice = service.what_if(key, ["acoustic"])
    assert no_voice.prediction.score == pytest.approx(subsets["text+visual"], abs=1e-5)  # the Shapley subset
    assert no_voice.prediction.absent["acoustic"] == "removed (what-if)"
    assert no_voice.explanation.to_dict()["gates"][0]["attention"] is None  # the voice branch saw the stand-in
    no_face = service.what_if(key, ["visual"])
    assert no_face.prediction.score == pytest.approx(subsets["text+acoustic"], abs=1e-5)
    edited = service.what_if(key, [], d["transcript"].replace("favorite", "least favorite"))
    assert "least favorite" in edited.prediction.transcript and edited.prediction.score != pytest.approx(d["score"])
    times = dict(zip(edited.explanation.to_dict()["words"], edited.explanation.to_dict()["word_times"]))
    assert times["least"] is None and times["favorite"] is not None  # unchanged words keep their time
    with pytest.raises(InputError, match="Nothing would be left"):
        service.what_if(key, ["text", "acoustic", "visual"])
    with pytest.raises(InputError, match="no longer kept"):
        service.what_if("gone", ["acoustic"])
    # Through the handler: a sentence and the figure beside the original.
    text, fig = Handlers(service).what_if(shown["state"], ["remove the voice"], "")
    assert f"{no_voice.prediction.score:+.2f}" in text and "text+visual" in text
    assert fig is not None and len(fig.data) > 0
    with pytest.raises(gr.Error, match="Tick what to remove"):
        Handlers(service).what_if(shown["state"], [], d["transcript"])


def test_untrained_stand_ins_are_said_next_to_the_shapley_values_and_the_what_if(
    shown: dict[str, Any], service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint whose voice stand-in never trained (voice in every training sample, no
    modality dropout): the Shapley text and a what-if that removes the voice say so; one whose
    stand-ins all trained (the shipped default's case) says nothing."""
    checkpoint = service.predictor.checkpoint
    assert _saved(shown)["explanation"]["caveat"] is None  # the fixture's checkpoint records nothing
    recorded = {"stand_ins_trained": {"text": True, "acoustic": False, "visual": True}}
    monkeypatch.setattr(checkpoint, "training", TrainingRecord.from_meta(recorded))
    handlers = Handlers(service)
    text, _ = handlers.what_if(shown["state"], ["remove the voice"], "")
    assert "stand-in for acoustic never trained" in text
    face_only, _ = handlers.what_if(shown["state"], ["remove the face"], "")
    assert "never trained" not in face_only  # the face's stand-in trained: nothing to warn about
    variant = service.what_if(shown["state"]["key"], ["visual"])
    d = variant.explanation.to_dict()
    assert d["stand_ins_trained"] == {"text": True, "acoustic": False, "visual": True}
    assert "stand-in for acoustic never trained" in d["caveat"]
    assert d["caveat"] in handlers._views(variant)["contrib_text"]
    # an old checkpoint: worked out from trained_on and the run's modality dropout
    trained_on = {"samples": 10, "modalities": {"text": 10, "acoustic": 4, "visual": 0}}
    old = TrainingRecord.from_meta({"trained_on": trained_on, "train": {"modality_dropout": 0.0}})
    assert old.stand_ins_trained == {"text": False, "acoustic": True, "visual": True}
    monkeypatch.setattr(
        checkpoint, "training", TrainingRecord.from_meta({"trained_on": trained_on, "train": {"modality_dropout": 0.1}})
    )
    assert checkpoint.training.stand_ins_trained == {"text": True, "acoustic": True, "visual": True}
    assert service.what_if(shown["state"]["key"], ["visual"]).explanation.caveat is None


def test_checkpoint_picker_lists_folders_and_runs_the_picked_one(
    service: Service, text_service: Service, tmp_path: Path
) -> None:
    root = tmp_path / "checkpoints"
    root.mkdir()
    (root / "not-a-checkpoint").mkdir()
    save_checkpoint(
        root / "sigmoid",
        tiny_model(acoustic_dim=5, visual_dim=20, gates="sigmoid"),
        text_service.predictor.checkpoint.tokenizer,
    )
    pool = Checkpoints(service, root)
    assert pool.names == [service.predictor.checkpoint.name, "sigmoid"]
    assert pool.get(None) is service and pool.get("sigmoid") is pool.get("sigmoid")  # loaded once
    with pytest.raises(InputError, match="No checkpoint named 'nope'"):
        pool.get("nope")
    h = Handlers(pool)
    a = dict(zip(OUTPUTS, h.analyse(None, str(WAV), "it was really good", "sigmoid", progress=Recorder())))
    b = dict(zip(OUTPUTS, h.analyse(None, str(WAV), "it was really good", None, progress=Recorder())))
    assert "`sigmoid`" in a["timings"] and a["state"]["checkpoint"] == "sigmoid"
    assert (
        _saved(a)["explanation"]["gate_activation"] == "sigmoid" and _saved(b)["explanation"]["gate_activation"] == "ln"
    )
    assert _saved(a)["score"] != pytest.approx(_saved(b)["score"])
    assert str(root) not in json.dumps(_saved(a)["explanation"])


def test_timeline_one_bar_per_segment() -> None:
    segs = [
        {"start": 0.0, "end": 2.0, "score": 1.4, "label7": "weakly positive", "transcript": "I loved it"},
        {"start": 2.5, "end": 5.0, "score": -3.6, "label7": "strongly negative", "transcript": "the end was awful"},
    ]
    fig = plots.timeline_figure(segs, 5.0)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [b.x[0] for b in bars] == [1.0, 3.75] and [b.width[0] for b in bars] == [2.0, 2.5]
    assert [b.y[0] for b in bars] == [1.4, -3.0]  # drawn clipped to the scale
    assert "the end was awful" in bars[1].hovertext[0] and "-3.60" in bars[1].hovertext[0]


def test_text_only_checkpoint_says_why(text_service: Service) -> None:
    out = dict(
        zip(
            OUTPUTS,
            Handlers(text_service).analyse(str(CLIP), None, "he is one of my favorite actors", progress=Recorder()),
        )
    )
    d = _saved(out)
    assert d["modalities_present"] == ["text"] and d["transcript_source"] == "user"
    text = out["modalities"]
    for m in ("acoustic", "visual"):
        sense = {"acoustic": "voice", "visual": "face"}[m]
        assert f"({m}): this model does not read the {sense}" in text
    assert "only the words were used" in text
    c = d["explanation"]["contributions"]
    assert c["values"]["acoustic"] == 0 and c["values"]["visual"] == 0
    assert c["base"] + c["values"]["text"] == pytest.approx(c["score"], abs=1e-9)
    assert d["explanation"]["gate_activation"] == "sigmoid" and "[0, 1]" in out["gate_text"]
    # Both branches saw only the stand-in: no attention over time, and the page says so.
    assert all(g["attention"] is None for g in d["explanation"]["gates"])
    # The clip has speech: the notes blame the model, never the clip (one reason, not both).
    notes = out["branch_notes"]
    assert notes.count("*(grey: ") == 2 and "could only look at the placeholder the model learned" in notes
    assert "This model does not read the voice" in notes and "This model does not read the face" in notes
    assert "no usable" not in notes and "in this clip" not in notes and "(and:" not in text
    assert "transcript" in out["transcript"].lower() and "typed by you" in out["transcript"]
    assert out["words"] == []  # a typed transcript has no timings


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------


def test_bad_inputs_say_what_is_wrong_and_what_is_accepted(
    service: Service, text_service: Service, tmp_path: Path
) -> None:
    fake, empty, truncated = (make_media(kind, tmp_path) for kind in ("notes", "empty", "truncated"))
    cases = {
        None: "No file received",
        fake: "notes.mp4: not a readable media file",
        empty: "empty.mp4: the file is empty",
        truncated: "truncated.mp4",
        make_media("silence", tmp_path): "nothing to analyse",
    }
    for path, expected in cases.items():
        with pytest.raises(InputError, match=expected) as info:
            service.run(None if path is None else str(path))
        msg = str(info.value)
        assert "video (mp4" in msg or "Upload a clip" in msg, msg
        assert str(tmp_path) not in msg  # the user's file name, never the server's path
    small = Service(service.predictor, Limits(max_seconds=2.0, max_megabytes=0.1))
    with pytest.raises(InputError, match=r"mosi_Sqr0AcuoNnk_12\.mp4 is 0\.14\d* MB; files up to 0\.1 MB"):
        small.validate(CLIP)
    with pytest.raises(InputError, match=r"lasts 2\.5 s; clips up to 2 s are accepted"):
        Service(service.predictor, Limits(max_seconds=2.0)).validate(CLIP)
    # The advice fits the checkpoint: a silent clip with a face is analysed by a model that reads
    # faces, and refused by one that reads only the words, without advice to show a face.
    silent_face = make_media("silent_face", tmp_path)
    assert "visual" in service.run(str(silent_face)).prediction.modalities_present
    with pytest.raises(InputError) as refused:
        text_service.run(str(silent_face))
    assert "reads only the words" in str(refused.value) and "face is visible" not in str(refused.value)
    # Through the page's handler: the same message, kept where the score would be (a toast alone
    # is gone in seconds), and no earlier results or download left under it.
    out = dict(zip(OUTPUTS, Handlers(service).analyse(str(fake), None, "", progress=Recorder())))
    assert (
        out["score"].startswith("### \u26a0\ufe0f Cannot analyse this file\n")
        and "not a readable media file" in (out["score"])
    )
    assert out["download"]["value"] is None and out["contrib_plot"] is None and out["transcript"] == ""
    # The API answers an error, as an API should.
    with pytest.raises(gr.Error, match="not a readable media file"):
        Handlers(service).api_predict(str(fake))


def test_json_files_are_swept(service: Service, shown: dict[str, Any]) -> None:
    old = Path(shown["download"]["value"])
    assert old.is_file()
    swept = Service(service.predictor, LIMITS, keep_seconds=0.0)
    swept.tmp_dir = service.tmp_dir
    swept._sweep()
    assert not old.exists() and not old.parent.exists()


# ----------------------------------------------------------------------------------------------
# The running app, through gradio_client
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(service: Service, tmp_path_factory: pytest.TempPathFactory):
    """The app on a free port; its checkpoint picker also lists a second tiny checkpoint
    ("sigmoid-gates", text only) so the browser test can compare two models."""
    root = tmp_path_factory.mktemp("checkpoints")
    save_checkpoint(
        root / "sigmoid-gates",
        tiny_model(acoustic_dim=5, visual_dim=20, gates="sigmoid"),
        service.predictor.checkpoint.tokenizer,
    )
    demo = build_demo(Checkpoints(service, root))
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=service.limits.max_bytes,
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_upload_ledger_deletes_when_the_last_page_closes(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    shared, own, example = root / "h1" / "clip.mp4", root / "h2" / "mine.mp4", root / "h3" / "example.mp4"
    outside = tmp_path / "elsewhere.mp4"
    for f in (shared, own, example, outside):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    ledger = UploadLedger(root, protected=lambda p: p.name == "example.mp4")
    ledger.hold("page-a", shared)
    ledger.hold("page-a", own)
    ledger.hold("page-a", example)
    ledger.hold("page-a", outside)  # not an upload: never touched
    ledger.hold("page-b", shared)
    ledger.hold(None, own)  # no session (a direct call): nothing recorded
    assert ledger.release("page-a") == [own.resolve()]
    assert not own.exists() and not own.parent.exists()  # the per-upload folder goes too
    assert shared.exists() and example.exists() and outside.exists()  # page b still shows shared
    assert ledger.release("page-b") == [shared.resolve()] and not shared.exists()
    assert example.exists() and outside.exists()
    assert ledger.release("page-b") == [] and ledger.release(None) == []


def test_upload_ledger_drops_a_finished_api_requests_file(tmp_path: Path) -> None:
    import time

    root = tmp_path / "uploads"
    files = {n: root / n / f"{n}.mp4" for n in ("a", "b", "c", "d", "example")}
    for f in files.values():
        f.parent.mkdir(parents=True)
        f.write_bytes(b"x")
    started = time.time() + 1  # every file was written before the request started
    ledger = UploadLedger(root, protected=lambda p: p.name == "example.mp4")
    ledger.hold("page", files["b"])
    assert not ledger.drop(files["a"], started, other_requests=1)  # queued behind: still needed
    assert not ledger.drop(files["a"], started, other_requests=None)  # unknown: keep
    assert not ledger.drop(files["b"], started, other_requests=0)  # a page shows it
    assert not ledger.drop(files["c"], time.time() - 60, other_requests=0)  # uploaded again since
    assert not ledger.drop(files["example"], started, other_requests=0)
    assert ledger.drop(files["a"], started, other_requests=0) and not files["a"].parent.exists()
    assert not ledger.drop(files["a"], started, other_requests=0)  # already gone: no error
    assert all(files[n].exists() for n in ("b", "c", "d", "example"))


def test_api_uploads_are_deleted_after_their_requests(server: str, tmp_path: Path) -> None:
    """Two clients send the same (non-example) file three times each: every request succeeds
    (no request loses a file another one finished with), and none of the copies is left."""
    import threading

    from gradio_client import Client, handle_file

    mine = make_media("remuxed", tmp_path, "api_probe.mp4")  # not byte-identical to the example clip
    results: list[Any] = []

    def client() -> None:
        c = Client(server, verbose=False)
        for _ in range(3):
            try:
                results.append(c.predict(handle_file(str(mine)), "", api_name="/predict")["score"])
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                results.append(e)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(results) == 6 and all(isinstance(r, float) for r in results), results
    left = list(Path(gr.utils.get_upload_folder()).rglob(mine.name))
    assert left == [], left


def test_api_predict_bad_input_then_good(server: str, shown: dict[str, Any], tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/predict"]  # the UI's own events are private

    d = client.predict(handle_file(str(CLIP)), "", api_name="/predict")
    assert set(d) == set(Prediction.__dataclass_fields__) | {"explanation"}  # the CLI's --json --explain object
    e = d["explanation"]
    assert e["contributions"]["base"] + sum(e["contributions"]["values"].values()) == pytest.approx(
        d["score"], abs=1e-4
    )
    ref = _saved(shown)
    assert e["words"] == ref["explanation"]["words"] and e["word_times"] == ref["explanation"]["word_times"]
    for g, r in zip(e["gates"], ref["explanation"]["gates"]):  # the page's download is this object too
        assert (g["branch"], g["layer"]) == (r["branch"], r["layer"])
        np.testing.assert_allclose(g["share"], r["share"], atol=1e-4)
    assert Path(d["file"]).name == CLIP.name
    # The page's score comes from the fusion that carries the Shapley subsets as extra positions:
    # the same arithmetic in another order, so equal to float rounding.
    assert d["score"] == pytest.approx(ref["score"], abs=1e-5)
    for key in ("label7", "polarity", "transcript", "modalities_present", "absent", "words"):
        assert d[key] == ref[key], key

    fake = make_media("notes", tmp_path)
    with pytest.raises(Exception, match="not a readable media file.*expected video") as info:
        client.predict(handle_file(str(fake)), "", api_name="/predict")
    assert "Traceback" not in str(info.value)

    d2 = client.predict(handle_file(str(WAV)), "anyhow it was really good", api_name="/predict")
    assert d2["transcript"] == "anyhow it was really good" and d2["transcript_source"] == "user"
    assert d2["modalities_present"] == ["text", "acoustic"] and d2["absent"] == {"visual": "no video track"}


def test_upload_over_size_limit_is_refused(server: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (LIMITS.max_bytes + 1))
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match="(?i)size|large"):
        client.predict(handle_file(str(big)), "", api_name="/predict")
    assert client.predict(handle_file(str(WAV)), "it was good", api_name="/predict")["label7"] in LABEL7_NAMES


def test_app_module_has_examples_and_no_model_logic() -> None:
    for name, _ in EXAMPLE_CLIPS:
        assert (ROOT / "assets" / "examples" / name).is_file(), name
    src = (ROOT / "app.py").read_text()
    assert "import torch" not in src and "shapley(" not in src
