"""Prediction from media files: `msa.predict.Predictor`, ``python -m msa predict``, and
``train.py --videos DIR --labels CSV`` end to end.

Checkpoints are tiny random models (conftest) saved with the running extractor's spec, so the
numbers mean nothing; what is checked is the plumbing: fields, modalities, the spec check, the
text-only fallback, JSON, errors. tiny.en ASR throughout, one extractor for the module.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CLIP, CLIPS, DATA, ROOT, WAV, feature_checkpoint, make_media
from msa.config import MODALITIES
from msa.explain import wording
from msa.features import FeatureError, FeatureExtractor
from msa.metrics import LABEL7_NAMES
from msa.model.checkpoint import CheckpointError, save_checkpoint
from msa.predict import Predictor, polarity
from msa.testing import tiny_model

# Slow (real clips through Whisper and the face landmarker; train.py on real videos):
# `pytest -m "not slow"` leaves it out.
pytestmark = pytest.mark.slow


# Subprocesses run from the project root with its stderr quiet (see msa/__main__.py).
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, fx: FeatureExtractor, tokenizer) -> Path:
    """A tiny checkpoint trained (nominally) on this extractor's features."""
    path = feature_checkpoint(tmp_path_factory.mktemp("ckpt") / "video", fx, tokenizer)
    return path


@pytest.fixture(scope="module")
def predictor(ckpt: Path, fx: FeatureExtractor) -> Predictor:
    return Predictor(ckpt, extractor=fx)


def _edited_copy(src: Path, dst: Path, **changes) -> Path:
    """A copy of a checkpoint folder with top-level (or feature_spec.KEY) config entries changed."""
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        if key.startswith("spec_"):
            cfg["feature_spec"][key[5:]] = value
        else:
            cfg[key] = value
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


# ----------------------------------------------------------------------------------------------
# Predictor
# ----------------------------------------------------------------------------------------------


def test_real_clip_all_fields_json_and_tensors(predictor: Predictor) -> None:
    run = predictor.run(CLIP)
    pred = run.prediction
    d = json.loads(json.dumps(pred.to_dict(), allow_nan=False))
    for key in (
        "file",
        "score",
        "score_clipped",
        "label7",
        "polarity",
        "transcript",
        "words",
        "modalities_present",
        "absent",
        "segments",
        "timings",
    ):
        assert key in d, key
    assert d["file"] == str(CLIP)
    assert d["modalities_present"] == ["text", "acoustic", "visual"] and d["absent"] == {}
    assert d["label7"] in LABEL7_NAMES and d["polarity"] == polarity(d["score"])
    assert -3 <= d["score_clipped"] <= 3 and np.isfinite(d["score"])
    assert "favorite" in d["transcript"].lower() and d["transcript_source"] == "asr"
    assert d["words"] and all(set(w) == {"word", "start", "end"} and w["start"] <= w["end"] for w in d["words"])
    assert {"decode", "asr", "acoustic", "visual", "model", "total"} <= set(d["timings"])
    assert d["timings"]["asr"] > 0 and d["timings"]["model"] > 0
    # The tensors behind it, for the app: gates per layer, and fusion re-run with other subsets.
    assert float(run.output.score[0]) == pytest.approx(pred.score)
    assert len(run.output.gates["acoustic"]) == predictor.model.config.fusion_layers
    assert run.output.gates["visual"][0].retain.shape[:2] == run.batch.input_ids.shape
    with torch.inference_mode():
        text_only = predictor.model.fuse(run.encoded, torch.tensor([[True, False, False]]))
    assert torch.isfinite(text_only.score).all() and float(text_only.score[0]) != pytest.approx(pred.score)
    # The normaliser was applied: the fed frames are the raw ones standardised (and clipped).
    norm = predictor.normalizer
    assert norm is not None
    z = (run.extraction.sample.acoustic - norm.acoustic_mean) / norm.acoustic_std
    np.testing.assert_allclose(run.sample.acoustic, np.clip(z, -norm.CLIP, norm.CLIP), rtol=1e-5, atol=1e-5)


def test_audio_only_file_has_visual_absent(predictor: Predictor) -> None:
    pred = predictor.run(WAV).prediction
    assert pred.modalities_present == ["text", "acoustic"]
    assert pred.absent == {"visual": "no video track"}
    json.loads(json.dumps(pred.to_dict(), allow_nan=False))


def test_user_transcript_replaces_asr(predictor: Predictor) -> None:
    pred = predictor.run(CLIP, transcript="  this film was a total waste of time ").prediction
    assert pred.transcript == "this film was a total waste of time"
    assert pred.transcript_source == "user" and pred.words == [] and pred.timings["asr"] == 0
    assert pred.modalities_present == ["text", "acoustic", "visual"]
    empty = predictor.run(CLIP, transcript="").prediction
    assert empty.modalities_present == ["acoustic", "visual"] and "text" in empty.absent


def test_long_input_gives_segments(predictor: Predictor, tmp_path: Path) -> None:
    long = make_media("long", tmp_path)  # two espeak-ng sentences 2.5 s apart; skips without espeak-ng
    run = predictor.run(long)
    d = json.loads(json.dumps(run.prediction.to_dict(), allow_nan=False))
    assert len(d["segments"]) == 2
    # Scored with the clip (its words read packed beside the clip's): each as the model scores it alone.
    with torch.inference_mode():
        for seg, sample in zip(d["segments"], run.segment_samples):
            alone = predictor.model(predictor.collator([sample])).score.item()
            assert seg["score"] == pytest.approx(alone, abs=1e-5)
    first, second = d["segments"]
    assert first["end"] <= second["start"] and "loved" in first["transcript"].lower()
    for s in d["segments"]:
        assert s["label7"] in LABEL7_NAMES and s["modalities_present"] == ["text", "acoustic"]
        assert set(s) >= {"start", "end", "transcript", "score", "label7", "modalities_present"}


def test_checkpoint_with_other_spec_is_refused(ckpt: Path, fx: FeatureExtractor, tmp_path: Path) -> None:
    bad = _edited_copy(ckpt, tmp_path / "bad", spec_visual_rate=10.0)
    with pytest.raises(CheckpointError, match=r"visual_rate: 10\.0 != 5\.0"):
        Predictor(bad, extractor=fx)
    # The ASR model is a runtime choice and versions drift: neither is a mismatch.
    ok = _edited_copy(
        ckpt,
        tmp_path / "ok",
        spec_asr_model="base",
        spec_package_versions={"numpy": "0.1"},
        spec_asr_extractor="openai-whisper",
        spec_asr_beam_size=1,
    )
    Predictor(ok, extractor=fx)


def test_load_predictor_loads_the_feature_models_beside_the_checkpoint(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extractor's warm-up waits until the checkpoint is loading, and the checkpoint's load
    waits until the warm-up has begun: one after the other, this cannot finish."""
    import threading

    import msa.predict as predict

    warming, loading = threading.Event(), threading.Event()
    real_load = predict.load_checkpoint

    def warm_up(self: FeatureExtractor) -> None:
        warming.set()
        assert loading.wait(timeout=30), "the checkpoint did not load while the extractor warmed up"

    def load_checkpoint(*args, **kwargs):
        loading.set()
        assert warming.wait(timeout=30), "the extractor did not warm up while the checkpoint loaded"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(FeatureExtractor, "warm_up", warm_up)
    monkeypatch.setattr(predict, "load_checkpoint", load_checkpoint)
    p = predict.load_predictor(ckpt, asr_model="tiny.en")
    assert p.checkpoint.path == ckpt and p.extractor.spec.asr_model == "tiny.en"
    # every file with its transcript: Whisper is not loaded at all
    monkeypatch.setattr(predict, "load_checkpoint", real_load)
    typed = predict.load_predictor(ckpt, warm_up=False, asr=False)
    assert not typed.extractor._whispers._models  # no Whisper loaded
    with pytest.raises(CheckpointError, match="not found"):
        predict.load_predictor(tmp_path / "missing", warm_up=False, asr=False)


def test_a_checkpoint_of_another_voice_stream_is_fed_its_own(tmp_path: Path, fx: FeatureExtractor, tokenizer) -> None:
    """One app, two streams: a checkpoint trained on the librosa values (every checkpoint made
    before Whisper's states were the voice, and the Fusion Lab's) gets them from a sibling of the
    app's extractor that shares its Whisper models; one stored before the setting existed (no
    ``voice_stream`` in its spec) is read as librosa and runs the same."""
    librosa = fx.with_voice_stream("librosa")
    path = feature_checkpoint(tmp_path / "librosa", librosa, tokenizer)
    p = Predictor(path, extractor=fx)
    assert p.extractor.spec.voice_stream == "librosa" and p.extractor._whispers is fx._whispers
    run = p.run(WAV)
    assert run.sample.acoustic.shape[1] == 21 and run.prediction.modalities_present == ["text", "acoustic"]
    old = tmp_path / "old"
    shutil.copytree(path, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["feature_spec"]["voice_stream"]
    (old / "config.json").write_text(json.dumps(cfg))
    again = Predictor(old, extractor=fx).run(WAV)
    assert again.prediction.score == pytest.approx(run.prediction.score, abs=1e-6)
    # The app's own stream is Whisper's states and the librosa values: a checkpoint of it is fed 533 a frame, timed.
    whisper = Predictor(feature_checkpoint(tmp_path / "whisper", fx, tokenizer), extractor=fx).run(WAV)
    assert whisper.sample.acoustic.shape[1] == 533 and "acoustic_times" in whisper.sample.meta


def test_checkpoint_without_spec_uses_text_only(tmp_path: Path, fx: FeatureExtractor, tokenizer) -> None:
    # As trained on transcripts or the paper's pickles: COVAREP/Facet widths, no feature spec.
    path = save_checkpoint(tmp_path / "text", tiny_model(acoustic_dim=5, visual_dim=20), tokenizer)
    p = Predictor(path, extractor=fx)
    run = p.run(CLIP, transcript="and he is one of my favorite actors ever")
    pred = run.prediction
    assert pred.modalities_present == ["text"]
    assert set(pred.absent) == {"acoustic", "visual"}
    for m in ("acoustic", "visual"):
        assert pred.absent[m].startswith(f"this model does not read the {wording.sense(m)}")
    assert pred.notes and "only the words were used" in pred.notes[0]
    assert run.sample.acoustic is None and run.sample.visual is None  # never fed 47/58-wide frames
    # ... and never computed: the face landmarker and acoustic features are skipped entirely.
    assert run.extraction.sample.visual is None and run.extraction.sample.meta["frames_sampled"] == 0
    assert pred.timings["visual"] == 0 and pred.timings["acoustic"] == 0
    assert pred.absent["visual"] == (
        "this model does not read the face: it never learned from face measurements made from a video"
    )
    assert run.batch.acoustic.shape[-1] == 5 and run.batch.visual.shape[-1] == 20
    json.loads(json.dumps(pred.to_dict(), allow_nan=False))


def test_missing_checkpoint_and_bad_file(predictor: Predictor, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        Predictor(tmp_path / "nope")
    fake = make_media("notes", tmp_path)
    with pytest.raises(FeatureError):
        predictor.run(fake)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _msa(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "msa", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def test_cli_predict_json_and_bad_file(ckpt: Path, tmp_path: Path) -> None:
    fake = make_media("notes", tmp_path, "fake.mp4")  # plain text, renamed
    r = _msa("predict", str(CLIP), str(fake), "--checkpoint", str(ckpt), "--asr-model", "tiny.en", "--json")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and "fake.mp4" in errors[0], r.stderr
    out = json.loads(r.stdout)
    assert [o["file"] for o in out] == [str(CLIP), str(fake)]
    assert out[0]["modalities_present"] == list(MODALITIES) and out[0]["label7"] in LABEL7_NAMES
    assert "error" in out[1] and "score" not in out[1]


def test_cli_predict_explain(ckpt: Path) -> None:
    """``--json --explain``: the explanation object of docs/app.md, per file."""
    r = _msa("predict", str(CLIP), "--checkpoint", str(ckpt), "--asr-model", "tiny.en", "--json", "--explain")
    assert r.returncode == 0, r.stderr[-2000:]
    (d,) = json.loads(r.stdout)
    e = d["explanation"]
    c = e["contributions"]
    assert c["score"] == pytest.approx(d["score"], abs=1e-6)
    assert c["base"] + sum(c["values"][m] for m in MODALITIES) == pytest.approx(c["score"], abs=1e-4)
    assert e["words"] == d["transcript"].split() and len(e["word_times"]) == len(e["words"])
    assert {(g["branch"], g["layer"]) for g in e["gates"]} == {
        (b, i) for b in ("text->acoustic", "text->visual") for i in (1, 2)
    }
    for g in e["gates"]:
        assert len(g["share"]) == len(e["words"]) and all(0 <= s <= 1 for s in g["share"])
        times, weights = g["attention"]["times"], g["attention"]["weights"]
        assert all(b > a for a, b in zip(times, times[1:])) and len(weights) == len(e["words"])
        assert all(len(row) == len(times) and abs(sum(row) - 1) < 1e-4 for row in weights)
    plain = _msa("predict", str(CLIP), "--checkpoint", str(ckpt), "--asr-model", "tiny.en", "--explain")
    assert (
        plain.returncode == 0 and "Shapley: base" in plain.stdout and "share from text->visual layer 2" in plain.stdout
    )
    no = _msa("predict", str(CLIP), "--checkpoint", str(ckpt), "--asr-model", "tiny.en", "--json")
    assert "explanation" not in json.loads(no.stdout)[0]


def test_cli_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    r = _msa("predict", str(CLIP), "--checkpoint", str(tmp_path / "missing"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint") and "not found" in lines[0]


# ----------------------------------------------------------------------------------------------
# train.py --videos DIR --labels CSV
# ----------------------------------------------------------------------------------------------


# conftest.tiny_config as train.py flags: seconds, not tens of seconds, for one epoch.
TINY_FLAGS = (
    "--hidden",
    "32",
    "--lstm-hidden",
    "16",
    "--fusion-heads",
    "2",
    "--head-hidden",
    "32",
    "--mi-hidden",
    "16",
    "--entropy-proj-dim",
    "4",
    "--entropy-memory",
    "64",
)


def test_train_from_videos_then_predict(tmp_path: Path, fx: FeatureExtractor) -> None:
    # The three real MOSI clips, named <id>.<ext> as in the raw corpus: one per split.
    gold = {}
    with open(DATA / "mosi" / "label.csv", newline="") as f:
        for row in csv.DictReader(f):
            gold[row["id"]] = row
    videos = tmp_path / "videos"
    videos.mkdir()
    # The shortest video trains (a training step costs far more than an evaluation).
    ids = {"Sqr0AcuoNnk_12": "train", "03bSnISJMiM_1": "dev", "Oz06ZWiO20M_6": "test"}
    for clip_id in ids:
        src = next(CLIPS.glob(f"mosi_{clip_id}.*"))
        shutil.copy(src, videos / f"{clip_id}{src.suffix}")
    (videos / "broken_1.mp4").write_text("not a video")  # fails extraction: skipped with a warning
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label", "mode"])
        for clip_id, mode in ids.items():
            w.writerow([clip_id, gold[clip_id]["text"], gold[clip_id]["label"], mode])
        w.writerow(["broken_1", "whatever", "0.0", "train"])
        w.writerow(["nofile_1", "no such clip", "1.0", "train"])  # missing: skipped with a warning
    run_dir = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--videos",
            str(videos),
            "--labels",
            str(labels),
            "--run-dir",
            str(run_dir),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--workers",
            "2",  # the local engine's worker processes fill the cache this process then reads
            "--epochs",
            "1",
            "--tiny-text-encoder",
            "--quiet",
            "--seed",
            "1",
            *TINY_FLAGS,
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=180,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "nofile_1" in r.stderr and "broken_1" in r.stderr
    best = run_dir / "seed1" / "best"
    cfg = json.loads((best / "config.json").read_text())
    spec = fx.spec
    assert cfg["feature_spec"]["visual_rate"] == spec.visual_rate
    assert cfg["feature_spec"]["acoustic_dim"] == spec.acoustic_dim == cfg["model"]["acoustic_dim"]
    assert cfg["feature_spec"]["visual_dim"] == spec.visual_dim == cfg["model"]["visual_dim"]
    assert len(cfg["normalizer"]["acoustic_mean"]) == spec.acoustic_dim
    assert len(cfg["normalizer"]["visual_std"]) == spec.visual_dim
    assert list(Path(tmp_path / "cache").rglob("*.npz"))  # features were cached
    pred = Predictor(best, extractor=fx).run(CLIP).prediction
    assert pred.modalities_present == list(MODALITIES) and pred.label7 in LABEL7_NAMES
    # What the branches were trained on travels with the checkpoint, and the explanation says it.
    assert cfg["meta"]["trained_on"] == {"samples": 1, "modalities": {"text": 1, "acoustic": 1, "visual": 1}}
    # The app's views are populated from the real streams (one training clip: the numbers are
    # not meaningful, the wiring is what is checked).
    explanation = Predictor(best, extractor=fx).run(CLIP, explain=True).to_dict()["explanation"]
    branches = explanation["branches"]
    assert [b["trained_samples"] for b in branches.values()] == [1, 1]
    assert all(b["stream_present"] and "Trained on 1 samples" in b["note"] for b in branches.values())
    assert all(g["attention"] is not None and len(g["attention"]["times"]) > 1 for g in explanation["gates"])
