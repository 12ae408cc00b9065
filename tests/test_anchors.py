"""The anchors (msa/finetune/anchors.py): train-fold transcripts read aloud by espeak-ng, each
labelled with the words-only checkpoint's score of its words alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from msa.data import Collator
from msa.features import FeatureExtractor
from msa.finetune.anchors import MANIFEST, VOICES, anchor_clips, make_anchors
from msa.finetune.clips import ClipError
from msa.finetune.run import FRESH_VOICE_STREAM
from msa.model.checkpoint import load_checkpoint, save_checkpoint
from msa.sample import Sample
from msa.testing import tiny_model

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")

ROWS = {  # id -> (text, mode): the dev and test rows must never be read aloud
    "a_1": ("the film was a real joy to watch from start to end", "train"),
    "a_2": ("i did not like the ending at all", "train"),
    "a_3": ("the actors were fine but the story dragged on", "train"),
    "a_4": ("too short", "train"),  # two words: shorter than a sentence
    "b_1": ("this one i would watch again with my friends", "dev"),
    "c_1": ("the music was the best part of the whole thing", "test"),
}


@pytest.fixture()
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "label.csv"
    lines = ["id,text,label,mode", *(f"{i},{t},1.0,{m}" for i, (t, m) in ROWS.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_anchors_read_train_transcripts_aloud_the_same_way_each_time(tmp_path: Path, labels: Path) -> None:
    first = json.loads(make_anchors(tmp_path / "one", [labels], n=3, seed=5).read_text())
    again = json.loads(make_anchors(tmp_path / "two", [labels], n=3, seed=5).read_text())
    assert first == again
    assert sorted(m["id"] for m in first) == ["a_1", "a_2", "a_3"]  # train rows of 4+ words only
    assert [m["voice"] for m in first] == list(VOICES[:3])
    for m in first:
        assert m["text"] == ROWS[m["id"]][0]
        audio, rate = sf.read(tmp_path / "one" / m["file"])
        assert audio.size / rate > 1.0 and np.abs(audio).max() > 0.05  # speech, not silence
        assert (tmp_path / "one" / m["file"]).read_bytes() == (tmp_path / "two" / m["file"]).read_bytes()
    assert not list((tmp_path / "one").glob(".*.tmp"))  # each file written aside and renamed
    with pytest.raises(ClipError, match="4 anchors asked for, but the train folds hold 3 transcripts"):
        make_anchors(tmp_path / "three", [labels], n=4)


def test_anchors_are_labelled_with_the_words_alone(tmp_path: Path, labels: Path, tokenizer) -> None:
    folder = tmp_path / "anchors"
    manifest = json.loads(make_anchors(folder, [labels], n=3, seed=5).read_text())
    (folder / manifest[2]["file"]).write_bytes(b"RIFF not audio")  # one anchor unreadable
    save_checkpoint(tmp_path / "words", tiny_model(acoustic_dim=5, visual_dim=20), tokenizer)
    words_only = load_checkpoint(tmp_path / "words")
    fx = FeatureExtractor({"asr_model": "tiny.en", "voice_stream": FRESH_VOICE_STREAM}, tmp_path / "cache")
    clips, report = anchor_clips(folder, fx, words_only)
    assert [c.clip.name for c in clips] == [m["file"] for m in manifest[:2]]
    assert len(report.skipped) == 1 and manifest[2]["file"] in report.skipped[0]
    # The reference: the words-only model on each text alone, fed by hand.
    texts = [Sample(id=m["id"], text=m["text"], acoustic=None, visual=None, label=0.0) for m in manifest[:2]]
    batch = Collator.for_model(words_only.tokenizer, words_only.model.config)(texts)
    with torch.no_grad():
        expected = words_only.model.eval()(batch).score.numpy()
    np.testing.assert_allclose([c.sample.label for c in clips], expected, atol=1e-5)
    for c, m in zip(clips, manifest):
        assert c.sample.acoustic is not None and c.sample.text == m["text"]  # the voice is heard, the words given
        assert c.sample.meta["anchor"] == 1 and c.clip.speaker == m["voice"]
    assert (folder / MANIFEST).is_file()
