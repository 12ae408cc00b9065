"""Fine-tuning the voice and face on one's own clips (msa/finetune, issue 26).

Known answers: a voice corpus made here with espeak-ng (the same neutral sentences in two voices,
labelled by the voice), and real face frames (the shipped MOSI clips' blendshapes) labelled by a
planted rule (eyes closed: -2, open: +2). After fine-tuning, clips the model never saw must score
by the rule, and the rule's modality must carry the difference in the exact Shapley values.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CLIPS, espeak, ffmpeg
from msa.data import Collator
from msa.explain import shapley_batch
from msa.features import FeatureExtractor
from msa.features.spec import FeatureSpec
from msa.finetune import ClipError, ClipLimits, Finetune, FinetuneSettings, extract_clips, read_labels
from msa.finetune.card import CARD_FILE, RESULT_FILE, model_card, save_finetuned
from msa.finetune.clips import ExtractedClip, LabelledClip, parse_label
from msa.finetune.run import (
    FRESH_VOICE_STREAM,
    FinetuneResult,
    best_constant,
    fold_of,
    model_from_base,
    voice_stream_for,
    warnings_for,
    words_frozen,
)
from msa.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from msa.predict import Predictor
from msa.sample import Sample
from msa.testing import NEUTRAL_SENTENCES, ROOT, TWO_VOICES, tiny_model

SENTENCES = NEUTRAL_SENTENCES[:10]  # the last two are held out
HELD_OUT = 2  # the last sentences: never trained on
VOICES = TWO_VOICES
QUICK = FinetuneSettings(epochs=25, batch_size=8, folds=4)


def score(ck: Checkpoint, samples: list[Sample]) -> tuple[np.ndarray, list]:
    """Scores and exact Shapley values of raw-feature samples, through the checkpoint's normaliser."""
    fed = [ck.normalizer(s) for s in samples]
    batch = Collator.for_model(ck.tokenizer, ck.model.config)(fed)
    with torch.no_grad():
        contributions = shapley_batch(ck.model, ck.model.encode(batch), batch.present)
    return np.array([c.score for c in contributions]), contributions


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory) -> FeatureExtractor:
    # A words-only base's new voice branch reads the fresh stream (`voice_stream_for`).
    return FeatureExtractor(
        {"asr_model": "tiny.en", "voice_stream": FRESH_VOICE_STREAM}, tmp_path_factory.mktemp("features")
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Checkpoint:
    """A words-only base like the shipped default (its streams 5/20 wide, no feature spec)."""
    path = tmp_path_factory.mktemp("base") / "words-only"
    save_checkpoint(path, tiny_model(acoustic_dim=5, visual_dim=20), tokenizer)
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The voice corpus: every sentence in both voices, and labels.csv for the training ones."""
    folder = tmp_path_factory.mktemp("voices")
    rows = ["file,label,text"]
    for i, sentence in enumerate(SENTENCES):
        for voice, label in VOICES.items():
            name = f"{voice.replace('+', '_')}_{i:02d}.wav"
            espeak(voice, sentence, folder / name)
            if i < len(SENTENCES) - HELD_OUT:
                rows.append(f'{name},{label},"{sentence}"')
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def held_out_clips(voices: Path) -> list[LabelledClip]:
    return [
        LabelledClip(voices / f"{voice.replace('+', '_')}_{i:02d}.wav", label, SENTENCES[i])
        for i in range(len(SENTENCES) - HELD_OUT, len(SENTENCES))
        for voice, label in VOICES.items()
    ]


# -- the labels -------------------------------------------------------------------------------


def test_labels_csv_is_checked_row_by_row(tmp_path: Path) -> None:
    for name in ("a.wav", "b.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    good = tmp_path / "good.csv"
    good.write_text("file,label,text,speaker\na.wav,positive,it was fine,ana\nb.mp4,-1.5,,\n")
    clips = read_labels(good, tmp_path)
    assert [(c.name, c.label, c.text, c.speaker) for c in clips] == [
        ("a.wav", 2.0, "it was fine", "ana"),
        ("b.mp4", -1.5, None, None),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "file,label\nmissing.wav,1\na.wav,4\nb.mp4,great\n../outside.wav,0\nnotes.txt,0\n,1\n"
        "a.wav,strongly negative\na.wav,1\n"
    )
    with pytest.raises(ClipError) as e:
        read_labels(bad, tmp_path)
    msg = str(e.value)
    for expected in (
        "row 2: missing.wav is not in",
        "row 3: label 4 is outside [-3, 3]",
        "row 4: label 'great' is neither a number in [-3, 3] nor one of: strongly negative",
        "row 5: ../outside.wav is outside the clips folder",
        "row 6: notes.txt is not a media type read here",
        "row 7: no file name",
        "row 9: a.wav is labelled twice",
    ):
        assert expected in msg, (expected, msg)
    assert "row 8" not in msg  # a.wav's first row is fine

    (tmp_path / "cols.csv").write_text("name,score\na.wav,1\n")
    with pytest.raises(ClipError, match="needs the columns file,label"):
        read_labels(tmp_path / "cols.csv", tmp_path)
    with pytest.raises(ClipError, match="2 clips; at most 1 are taken"):
        read_labels(good, tmp_path, ClipLimits(max_clips=1))
    # Labelled by the text path: no label column needed.
    (tmp_path / "files.csv").write_text("file\na.wav\n")
    assert np.isnan(read_labels(tmp_path / "files.csv", tmp_path, need_labels=False)[0].label)
    assert parse_label(" Weakly_Negative ", "x") == -1.0
    with pytest.raises(ClipError, match="nan is outside"):
        parse_label("nan", "x")


def test_clips_with_nothing_to_learn_from_or_too_long_are_refused(tmp_path: Path, extractor) -> None:
    blue = tmp_path / "blue_silent.mp4"  # no face, no sound
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=160x120:r=10:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(blue))
    long = tmp_path / "long.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=4", str(long))
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 10)
    clips = [LabelledClip(p, 1.0, "words") for p in (blue, long, notes)]
    with pytest.raises(ClipError) as e:
        extract_clips(clips, extractor, ClipLimits(max_seconds=3))
    msg = str(e.value)
    assert "blue_silent.mp4: neither a voice nor a face to learn from" in msg
    assert "long.wav" in msg and "lasts 4.0 s; clips up to 3 s are taken" in msg
    assert "notes.mp4" in msg


def test_folds_keep_each_speaker_whole() -> None:
    samples = [Sample(f"s{i}", "x", meta={"speaker": "abcdef"[i % 6]}) for i in range(30)]
    fold, k = fold_of(samples, 5, seed=0)
    assert k == 5 and sorted(set(fold)) == [0, 1, 2, 3, 4]
    for person in "abcdef":
        assert len({f for f, s in zip(fold, samples) if s.meta["speaker"] == person}) == 1
    fold, k = fold_of([Sample(f"s{i}", "x") for i in range(7)], 5, seed=0)  # no speakers: equal shares
    assert k == 5 and sorted(np.bincount(fold)) == [1, 1, 1, 2, 2]
    fold, k = fold_of([Sample(f"s{i}", "x") for i in range(3)], 5, seed=0)
    assert k == 3 and sorted(fold) == [0, 1, 2]


def test_a_base_that_hears_is_refined_on_its_own_stream(base: Checkpoint, tokenizer, tmp_path: Path) -> None:
    """The words-only base starts a voice branch on the fresh stream (or the one asked for); a base
    trained on a stream keeps it, and its trained voice encoder is where the fine-tuning starts."""
    assert voice_stream_for(base) == FRESH_VOICE_STREAM == "librosa"
    assert voice_stream_for(base, "whisper-base+librosa") == "whisper-base+librosa"
    spec = FeatureSpec(package_versions=(), visual_model="test", voice_stream="whisper-base+librosa")
    heard = tiny_model(seed=3, acoustic_dim=spec.acoustic_dim, visual_dim=spec.visual_dim)
    hearing = load_checkpoint(save_checkpoint(tmp_path / "hears", heard, tokenizer, feature_spec=spec))
    assert voice_stream_for(hearing, "librosa") == "whisper-base+librosa"
    model = model_from_base(hearing, hearing.feature_spec)
    theirs = hearing.model.state_dict()
    acoustic = [k for k in theirs if k.startswith("acoustic.")]
    assert acoustic and all(torch.equal(model.state_dict()[k], theirs[k]) for k in acoustic)
    # Another stream: the voice encoder starts afresh at the new width; the rest is the base's.
    other = model_from_base(hearing, spec.with_voice_stream("librosa"))
    assert other.config.acoustic_dim == 21
    assert all(torch.equal(v, theirs[k]) for k, v in other.state_dict().items() if k.startswith("text."))


def test_the_model_starts_from_the_base_with_the_extractors_widths(base: Checkpoint, extractor) -> None:
    spec = extractor.spec
    model = model_from_base(base, spec)
    assert model.text.backbone is base.model.text.backbone  # one text encoder in memory
    assert (model.config.acoustic_dim, model.config.visual_dim) == (spec.acoustic_dim, spec.visual_dim)
    own, theirs = model.state_dict(), base.model.state_dict()
    for k, v in theirs.items():
        if k.startswith(("acoustic.", "visual.")):
            continue  # the base read other features: these start afresh
        assert torch.equal(own[k], v), k
    flags = [p.requires_grad for p in model.text.parameters()]
    with words_frozen(model):
        assert not any(p.requires_grad for p in model.text.parameters()) and model.text.freeze
    assert [p.requires_grad for p in model.text.parameters()] == flags and not model.text.freeze


# -- known answers ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_voice_rule_is_learnt_and_the_voice_carries_it(voices: Path, base: Checkpoint, extractor) -> None:
    """Sentences the model never heard, in each voice: scored apart by the voice, and the acoustic
    Shapley value carries the difference; the words' path is the base's, untouched."""
    clips = read_labels(voices / "labels.csv", voices)
    text_before = {k: v.clone() for k, v in base.model.text.state_dict().items()}
    tune = Finetune(base, extract_clips(clips, extractor), extractor.spec, QUICK)
    epochs = [(p.fold, p.epoch) for p in tune.train()]
    result = tune.finish("voices")
    assert epochs[0] == (1, 1) and epochs[-1] == (0, result.epochs) and result.folds == 4
    assert result.heldout_mae < 0.5 * result.base_mae, (result.heldout_mae, result.base_mae)
    assert result.streams == {"acoustic": 16, "visual": 0}
    assert any("No clip had a face" in w for w in result.warnings)
    assert any("fewer than 20" in w for w in result.warnings)
    assert all(torch.equal(v, text_before[k]) for k, v in base.model.text.state_dict().items())

    held = extract_clips(held_out_clips(voices), extractor)
    scores, contributions = score(result.checkpoint, [c.sample for c in held])
    low, high = scores[0::2], scores[1::2]  # each sentence in the low (+2) then the high (-2) voice
    assert np.all(low - high > 2.0), (low, high)
    acoustic = np.array([c.values["acoustic"] for c in contributions])
    assert np.all(acoustic[0::2] - acoustic[1::2] > 0.6 * (low - high)), (acoustic, scores)
    text = np.array([c.values["text"] for c in contributions])
    assert np.all(np.abs(text[0::2] - text[1::2]) < 0.25 * (low - high))  # same words, same text part


@pytest.mark.slow
def test_a_face_rule_on_real_blendshapes_is_learnt(base: Checkpoint, extractor) -> None:
    """Each real face frame of the shipped clips is a sample whose label is planted on its own
    blendshapes (eyes closed: -2, open: +2); the words are the same everywhere and there is no
    voice. Held out by k-fold, the frames are scored by the rule, and the face carries it."""
    frames = np.concatenate(
        [
            extractor.extract(CLIPS / name, transcript="it was a film").sample.visual
            for name in ("mosi_Sqr0AcuoNnk_12.mp4", "mosi_Oz06ZWiO20M_6.mp4")
        ]  # fmt: skip
    )
    names = extractor.spec.visual_features
    blink = frames[:, [names.index("eyeBlinkLeft"), names.index("eyeBlinkRight")]].mean(axis=1)
    labels = np.where(blink > np.median(blink), -2.0, 2.0)
    clips = [
        ExtractedClip(LabelledClip(Path(f"frame{i}.mp4"), y), Sample(f"f{i}", "it was a film", None, f[None], y))
        for i, (f, y) in enumerate(zip(frames, labels))
    ]
    tune = Finetune(base, clips, extractor.spec, dataclasses.replace(QUICK, batch_size=16))
    for _ in tune.train():
        pass
    result = tune.finish()
    assert len(clips) >= 40 and result.heldout_mae < 0.5 * result.base_mae, (result.heldout_mae, result.base_mae)
    right = np.mean([np.sign(h["heldout"]) == np.sign(h["label"]) for h in result.heldout])
    assert right >= 0.8, right
    _, contributions = score(result.checkpoint, [c.sample for c in clips])
    face = np.array([c.values["visual"] for c in contributions])
    assert face[labels > 0].mean() - face[labels < 0].mean() > 2.0


def test_labels_from_the_text_path_and_a_stop(base: Checkpoint, extractor, voices: Path) -> None:
    clips = extract_clips(read_labels(voices / "labels.csv", voices)[:6], extractor)
    tune = Finetune(base, clips, extractor.spec, QUICK, label_with_text=True)
    teacher = [s.label for s in tune.samples]
    words_only = [dataclasses.replace(c.sample, acoustic=None, visual=None) for c in clips]
    collator = Collator.for_model(base.tokenizer, base.model.config)
    with torch.no_grad():
        expected = base.model(collator(words_only)).score.numpy()
    np.testing.assert_allclose(teacher, expected, atol=1e-5)
    for p in tune.train():
        if p.epoch == 2:
            tune.stop()
    with pytest.raises(ClipError, match="stopped by you: no model was made, nothing is saved"):
        tune.finish()
    with pytest.raises(ClipError, match="needs at least 4"):
        Finetune(base, clips[:3], extractor.spec)
    with pytest.raises(ClipError, match="every clip needs a label"):
        Finetune(base, [dataclasses.replace(c, sample=dataclasses.replace(c.sample, label=np.nan)) for c in clips],
                 extractor.spec)  # fmt: skip
    with pytest.raises(ClipError, match="folds=1"):
        FinetuneSettings(folds=1)


def test_a_time_budget_plans_fewer_epochs_and_a_run_far_past_it_stops(
    base: Checkpoint, extractor, voices: Path
) -> None:
    clips = extract_clips(read_labels(voices / "labels.csv", voices)[:8], extractor)
    tune = Finetune(base, clips, extractor.spec, dataclasses.replace(QUICK, epochs=40, max_seconds=6.0))
    assert tune.k == 4
    # By hand: 0.05 s an epoch on 6 training clips; 4 folds of 6 clips and the final model on 8
    # cost 0.05 / 6 * (4 * 6 + 8) = 0.2667 s per planned epoch, so 6 s fit 22 epochs.
    tune._plan(0.05, 6)
    assert tune.epochs == 22
    tune._plan(10.0, 6)  # nothing fits: the fewest epochs still run
    assert tune.epochs == 5
    hopeless = Finetune(base, clips, extractor.spec, dataclasses.replace(QUICK, max_seconds=1e-4))
    p = list(hopeless.train())[-1]
    assert p.fold == 1 and p.epoch == 1 and hopeless.stopped == "stopped at the time limit (0 s)"
    with pytest.raises(ClipError, match="time limit"):
        hopeless.finish()


def test_a_saved_checkpoint_loads_as_it_was_and_a_killed_save_leaves_none(
    base: Checkpoint, extractor, voices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = extract_clips(read_labels(voices / "labels.csv", voices)[:8], extractor)
    tune = Finetune(base, clips, extractor.spec, dataclasses.replace(QUICK, epochs=3))
    for _ in tune.train():
        pass
    result = tune.finish()
    folder = save_finetuned(result, tmp_path / "mine")
    card = (folder / CARD_FILE).read_text()
    assert "8 labelled clips" in card and "the voice**: 8 of the 8 clips had a voice" in card
    assert "no clip had a face; this branch never trained" in card and "Held-out mean absolute error" in card
    assert json.loads((folder / RESULT_FILE).read_text())["clips"] == 8
    loaded = load_checkpoint(folder)
    samples = [c.sample for c in clips]
    np.testing.assert_allclose(score(loaded, samples)[0], score(result.checkpoint, samples)[0], atol=1e-5)
    assert loaded.training.modalities == {"text": 8, "acoustic": 8, "visual": 0}
    assert loaded.meta["label_source"] == "your labels" and loaded.meta["finetuned_from"] == "words-only"
    predictor = Predictor(loaded, extractor=extractor)  # the app's and `msa predict`'s way in
    assert predictor.reads == ("text", "acoustic")

    # A kill while writing: the folder keeps the old checkpoint, with no half-written files beside it.
    import msa.model.checkpoint as checkpoint_module

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        save_finetuned(result, folder)
    with pytest.raises(KeyboardInterrupt):
        save_finetuned(result, tmp_path / "new")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    np.testing.assert_allclose(score(load_checkpoint(folder), samples)[0], score(loaded, samples)[0], atol=1e-6)
    # Only a fine-tuned checkpoint is replaced.
    other = tmp_path / "other"
    shutil.copytree(base.path, other)
    with pytest.raises(ClipError, match="exists and is not a fine-tuned checkpoint"):
        save_finetuned(result, other)


@pytest.mark.slow
def test_the_command_line_fine_tunes_the_shipped_checkpoints(voices: Path, tmp_path: Path, capsys) -> None:
    """``python -m msa finetune`` from the real words-only checkpoint (a new voice branch on the
    fresh stream) learns the voice rule, and ``python -m msa predict`` scores the held-out sentences
    apart by voice; from the real default (which hears) it keeps the default's stream and starts
    from its trained voice encoder."""
    from msa.__main__ import main

    out = tmp_path / "mine"
    argv = ["finetune", "--clips", str(voices), "--labels", str(voices / "labels.csv"), "--out", str(out)]
    words_only = ["--base", str(ROOT / "checkpoints" / "words-only")]
    assert main([*argv, *words_only, "--epochs", "20", "--folds", "4", "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["base_name"] == "words-only" and result["heldout_mae"] < 0.5 * result["base_mae"]
    assert load_checkpoint(out).feature_spec.voice_stream == FRESH_VOICE_STREAM
    assert main(["predict", "--checkpoint", str(out), "--json", *(str(c.path) for c in held_out_clips(voices))]) == 0
    predictions = json.loads(capsys.readouterr().out)
    scores = np.array([p["score"] for p in predictions])
    assert np.all(scores[0::2] - scores[1::2] > 2.0), scores
    assert all(p["modalities_present"] == ["text", "acoustic"] for p in predictions), predictions[0]

    refined = tmp_path / "refined"
    default = load_checkpoint(ROOT / "checkpoints" / "default")
    argv_default = [*argv[:-1], str(refined), "--epochs", "1", "--folds", "2", "--quiet", "--json"]
    assert main(argv_default) == 0
    assert json.loads(capsys.readouterr().out)["base_name"] == "default"
    assert load_checkpoint(refined).feature_spec.voice_stream == default.feature_spec.voice_stream

    # Bad input on the command line: one clear line, no folder.
    (voices / "bad.csv").write_text("file,label\nnowhere.wav,1\n")
    assert main([*argv[:4], str(voices / "bad.csv"), "--out", str(tmp_path / "bad")]) == 2
    assert "nowhere.wav is not in" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_a_ravdess_folder_is_read_with_every_bad_file_named(base: Checkpoint, tmp_path: Path, capsys) -> None:
    """``python -m msa finetune --ravdess``: a corpus folder in RAVDESS's layout with a misnamed
    file, an unknown emotion code, an unreadable file, a 48 kHz stereo file and a missing actor
    folder trains on what it can use and names the rest; labels come from the names, folds by actor."""
    from msa.__main__ import main

    src = Path(__file__).parent / "data" / "ravdess"
    corpus = tmp_path / "corpus"
    shutil.copytree(src, corpus, ignore=shutil.ignore_patterns("*.md"))
    plain = corpus / "Actor_06" / "03-01-04-01-01-01-06.flac"
    # The same take as the corpus ships it: 48 kHz, two channels (read as 16 kHz mono).
    ffmpeg("-i", str(plain), "-ar", "48000", "-ac", "2", str(corpus / "Actor_06" / "03-01-04-01-01-02-06.wav"))
    ffmpeg("-i", str(corpus / "Actor_20" / "03-01-02-02-02-02-20.flac"), "-ar", "48000", "-ac", "2",
           str(corpus / "Actor_20" / "03-01-02-02-02-01-20.wav"))  # fmt: skip
    (corpus / "Actor_06" / "03-01-05-01-01-01-06.wav").write_bytes(b"RIFF but not really a wave file" * 10)
    shutil.copy(plain, corpus / "Actor_06" / "take one.flac")
    shutil.copy(plain, corpus / "Actor_06" / "03-01-11-01-01-01-06.flac")
    base_folder = tmp_path / "words"
    shutil.copytree(base.path, base_folder)
    out = tmp_path / "voice"
    argv = ["finetune", "--ravdess", str(corpus), "--base", str(base_folder), "--out", str(out)]
    voice = ["--voice-stream", "whisper-base+librosa"]  # a corpus: the study's stream for a new voice branch
    assert main([*argv, "--epochs", "2", "--asr-model", "tiny.en", *voice, "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["clips"] == 5 and result["speakers"] == 2 and result["folds"] == 2
    for name, why in (
        ("03-01-05-01-01-01-06.wav", "not a readable media file"),
        ("take one.flac", "not a RAVDESS name"),
        ("03-01-11-01-01-01-06.flac", "unknown emotion code 11"),
    ):
        assert any(name in line and why in line for line in result["warnings"]), (name, result["warnings"])
    assert "2 file(s) resampled to 16 kHz mono" in captured.err and "48000 Hz, 2 channel(s)" in captured.err
    labels = {Path(r["file"]).name: r["label"] for r in result["heldout"]}
    assert labels["03-01-04-01-01-02-06.wav"] == pytest.approx(-1.9125)  # sad, normal: from the name
    assert {r["emotion"] for r in result["heldout"]} == {"sad", "happy", "calm"}
    card = (out / CARD_FILE).read_text()
    assert "CC BY-NC-SA 4.0" in card and "| happy |" in card and "Warriner" in card
    assert load_checkpoint(out).feature_spec.voice_stream == "whisper-base+librosa"
    # One actor is too few for folds by actor, and nothing is written.
    only = tmp_path / "one"
    shutil.copytree(corpus / "Actor_20", only / "Actor_20")
    assert main([*argv[:2], str(only), *argv[3:6], str(tmp_path / "none"), "--epochs", "1"]) == 2
    assert "folds by actor need at least 2" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_the_best_constant_answer_is_the_median_label() -> None:
    # By hand: the median of -2, -2, -2, -2, 1, 2 is -2; it errs by 0, 0, 0, 0, 3 and 4.
    assert best_constant([-2.0, -2.0, -2.0, 2.0, 1.0, -2.0]) == (-2.0, pytest.approx(7 / 6))
    assert best_constant([-1.0, 0.5, 3.0]) == (0.5, pytest.approx((1.5 + 0 + 2.5) / 3))


def test_unbalanced_labels_and_a_model_that_barely_beats_one_answer_are_warned_of(base: Checkpoint) -> None:
    """The Train tab's trap: 14 of 20 labels at -2, and a held-out error that always answering -2
    nearly matches."""
    rows = [{"file": f"c{i}.wav", "label": -2.0 if i < 14 else 2.0, "heldout": -2.0, "base": 0.0} for i in range(20)]
    run = {"clips": 20, "streams": {"acoustic": 20, "visual": 0}, "speakers": 4, "label_source": "given"}
    errors = {"heldout_mae": 1.15, "base_mae": 1.9, "constant_mae": 1.2, "constant_label": -2.0, "curve": [1.15]}
    how = {"folds": 4, "epochs": 10, "fold_epochs": 10, "train_seconds": 1.0, "settings": QUICK}
    result = FinetuneResult(checkpoint=base, heldout=rows, base_name="default", **run, **errors, **how)
    said = warnings_for(result)
    assert any(w.startswith("14 of 20 labels are -2.0: a model that always answers -2.0 scores") for w in said), said
    assert any("barely better than always answering -2.0 (1.15 vs 1.20 MAE)" in w for w in said), said
    worse = warnings_for(dataclasses.replace(result, heldout_mae=1.3))
    assert any("no better than always answering -2.0 (1.30 vs 1.20 MAE)" in w for w in worse), worse
    learnt = warnings_for(dataclasses.replace(result, heldout_mae=0.4, heldout=rows[:8] + rows[14:]))
    assert not any("always answer" in w for w in learnt), learnt  # 8 of 14 at -2: balanced enough, and learnt
    card = model_card(result, "mine")
    assert "**1.200** for always answering -2.0" in card and "fusion and the head that read it trained" in card
