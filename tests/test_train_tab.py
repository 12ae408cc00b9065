"""The Train tab without a browser (issue 26): clips and labels in (uploads, a zip with a labels
CSV, the table), each bad input refused with a message that names it; a fine-tuning on a voice
corpus made here with espeak-ng (neutral sentences in two voices, labelled by the voice) gives a
checkpoint that its own page can list, pick, analyse with and download, and no other page can;
Stop and the time limit leave nothing; a closed page takes its clips and checkpoints with it.

The base is a tiny words-only checkpoint (random text encoder, no feature spec, like the shipped
default in kind): its voice branch is grey until the fine-tuning teaches it.
"""

from __future__ import annotations

import io
import struct
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import espeak, make_media
from msa.features import FeatureExtractor
from msa.finetune import ClipError, ClipLimits
from msa.finetune.run import too_few_clips
from msa.model.checkpoint import load_checkpoint, save_checkpoint
from msa.predict import Predictor
from msa.testing import NEUTRAL_SENTENCES, TWO_VOICES, tiny_model

gr = pytest.importorskip("gradio")
from msa.app.handlers import OUTPUTS, Handlers  # noqa: E402
from msa.app.private import PrivateCheckpoint, PrivateCheckpoints, private_name  # noqa: E402
from msa.app.service import Checkpoints, InputError, Limits, Service  # noqa: E402
from msa.app.texts import TRAIN_STOPPING  # noqa: E402
from msa.app.train_tab import TRAIN_OUTPUTS, TrainLimits, TrainTab  # noqa: E402
from msa.app.train_tab_clips import unzip_clips  # noqa: E402

SENTENCES = NEUTRAL_SENTENCES[:9]  # the last is held out: never trained on
VOICES = TWO_VOICES
TRAINED = len(SENTENCES) - 1


def quiet(*_: Any, **__: Any) -> None:
    """Stands in for gr.Progress."""


class Request:
    """What the handlers read of a Gradio request."""

    def __init__(self, session: str):
        self.session_hash = session


def clip_name(voice: str, i: int) -> str:
    return f"{voice.replace('+', '_')}_{i:02d}.wav"


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("voices")
    for i, sentence in enumerate(SENTENCES):
        for voice in VOICES:
            espeak(voice, sentence, folder / clip_name(voice, i))
    return folder


def corpus_zip(voices: Path, out: Path, rows: list[str] | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """The training clips and their labels.csv (file,label,text) in one zip, in a folder."""
    if rows is None:
        rows = [f'{clip_name(v, i)},{label:+g},"{SENTENCES[i]}"' for i in range(TRAINED) for v, label in VOICES.items()]
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("my clips/labels.csv", "file,label,text\n" + "\n".join(rows) + "\n")
        for row in rows:
            name = row.split(",")[0]
            if (voices / name).is_file():
                zf.write(voices / name, f"my clips/{name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out


@pytest.fixture(scope="module")
def clips_zip(voices: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corpus_zip(voices, tmp_path_factory.mktemp("zip") / "clips.zip")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, fx: FeatureExtractor, tokenizer) -> Checkpoints:
    """The app's picker: a tiny words-only default (folder "words-only") under a checkpoints folder."""
    root = tmp_path_factory.mktemp("checkpoints")
    save_checkpoint(root / "words-only", tiny_model(acoustic_dim=5, visual_dim=20), tokenizer)
    return Checkpoints(Service(Predictor(root / "words-only", extractor=fx), Limits()), root)


@pytest.fixture(scope="module")
def tab(checkpoints: Checkpoints) -> TrainTab:
    return TrainTab(checkpoints, TrainLimits())


def named(outputs: tuple) -> dict[str, Any]:
    return dict(zip(TRAIN_OUTPUTS, outputs))


def train(tab: TrainTab, session: str, rows: list, **kw: Any) -> list[dict[str, Any]]:
    args = dict(label_with_text=False, base=None, epochs=40, name="my-voice") | kw
    return [named(o) for o in tab.train(Request(session), rows, *args.values())]


# -- clips and labels in ------------------------------------------------------------------------


def test_clips_and_labels_in_with_a_clear_message_for_each_bad_one(tab: TrainTab, voices: Path, tmp_path: Path) -> None:
    a, b = voices / clip_name("en-us", 0), voices / clip_name("en-us+f3", 0)
    rows, note, cleared = tab.add_files([str(a)], [], 2.0, False, Request("labels"))
    assert rows == [[a.name, "+2", "", ""]] and cleared is None
    # Too few to train: the table says so in the sentence Train itself would give, never "Ready".
    assert "**1 clip**: 1 with a sound track, 0 with a picture" in note and "Ready to train" not in note
    assert too_few_clips(1) == "1 clip(s); fine-tuning needs at least 4 (20 or more to be trusted)"
    assert too_few_clips(1) in note
    rows, note, _ = tab.add_files([str(b)], rows, -1.5, False, Request("labels"))
    assert rows[1] == [b.name, "-1.5", "", ""]

    # Refused files are named with why; the rest of the upload is added.
    notes = tmp_path / "notes.wav"
    notes.write_text("this is not audio\n" * 20)
    text = tmp_path / "words.txt"
    text.write_text("hello")
    copy = tmp_path / "again.wav"
    copy.write_bytes(a.read_bytes())
    more, note, _ = tab.add_files([str(notes), str(text), str(copy)], rows, 0.0, False, Request("labels"))
    assert more == rows
    assert "notes.wav:" in note and "words.txt: not a clip; clips are video or audio files (.mp4" in note
    assert f"again.wav: the same clip is already in the table (as {a.name})" in note
    assert str(tab.root) not in note and str(tmp_path) not in note  # no server folder named

    # Labels: a number in [-3, 3] or a class name; each bad row named, and Train refuses them.
    bad = [[a.name, "4", "", ""], [b.name, "great", "", ""], ["elsewhere.wav", "1", "", ""], ["", "", "", ""]]
    note = tab.describe(bad, False, Request("labels"))
    assert f"row 1 ({a.name}): label 4 is outside [-3, 3]" in note
    assert f"row 2 ({b.name}): label 'great' is neither a number in [-3, 3] nor one of: strongly negative" in note
    assert "row 3 (elsewhere.wav): not a clip added on this page" in note
    # Train refuses them too, and the reason stays on the status line (the toast comes and goes).
    for shown, why in (
        (train(tab, "labels", bad), "label 4 is outside [-3, 3]"),
        (train(tab, "labels", rows, name="../up"), "Name the checkpoint with letters"),
        (train(tab, "labels", rows, base="nope"), "No checkpoint named 'nope'"),
    ):
        assert len(shown) == 1 and shown[0]["status"].startswith("\u26a0\ufe0f Cannot train on these clips"), shown
        assert why in shown[0]["status"], shown[0]["status"]
    assert too_few_clips(2) in tab.describe(
        [[a.name, "positive", "", ""], [b.name, "", "", ""]], True, Request("labels")
    )
    assert "row 2" in tab.describe([[a.name, "positive", "", ""], [b.name, "", "", ""]], False, Request("labels"))

    # A recording is added as a clip too, with the slider's label.
    rows, note, video, audio = tab.record(
        None, str(voices / clip_name("en-us", 1)), rows, 0.5, False, Request("labels")
    )
    assert rows[-1] == ["recording-3.wav", "+0.5", "", ""] and (video, audio) == (None, None)
    with pytest.raises(gr.Error, match="Record a video or some audio first"):
        tab.record(None, None, rows, 0.5, False, Request("labels"))

    # Another page has none of these clips.
    assert "not a clip added on this page" in tab.describe(rows, False, Request("stranger"))
    rows, note = tab.clear(False, Request("labels"))
    assert rows == [] and note == "No clips yet." and not tab.sessions.get("labels").shelf.files


def test_too_many_or_too_long_clips(checkpoints: Checkpoints, voices: Path) -> None:
    small = TrainTab(checkpoints, TrainLimits(max_clips=3, max_clip_seconds=2.0))
    long = voices / clip_name("en-us", 5)  # "My brother lives in a small town by the river.": about 3 s
    rows, note, _ = small.add_files([str(long)], [], 1.0, False, Request("long"))
    assert rows == [] and f"{long.name} lasts" in note and "clips up to 2 s are taken" in note

    roomy = TrainTab(checkpoints, TrainLimits(max_clips=3))
    four = [str(voices / clip_name("en-us", i)) for i in range(4)]
    rows, note, _ = roomy.add_files(four, [], 1.0, False, Request("many"))
    assert len(rows) == 3 and "the table holds 3 clips, the most one fine-tuning takes" in note


def test_zips_are_unpacked_safely_and_their_labels_checked(
    tab: TrainTab, voices: Path, clips_zip: Path, tmp_path: Path
) -> None:
    good = clips_zip
    rows, note, _ = tab.add_files([str(good)], [], 0.0, False, Request("zips"))
    assert len(rows) == 2 * TRAINED and "Ready to train" in note
    assert rows[0] == [clip_name("en-us", 0), "+2", SENTENCES[0], ""]

    def refused(archive: Path, label_with_text: bool = False) -> str:
        more, note, _ = tab.add_files([str(archive)], rows, 0.0, label_with_text, Request("zips"))
        assert more == rows  # a bad zip adds nothing
        assert str(tab.root) not in note and str(tmp_path) not in note
        return note

    missing = corpus_zip(voices, tmp_path / "missing.zip", ["en-us_00.wav,1,", "gone.wav,1,"])
    assert "labels.csv row 3: gone.wav is not in missing.zip" in refused(missing)
    escape = corpus_zip(voices, tmp_path / "escape.zip", ["en-us_00.wav,1,"], {"../evil.wav": b"x"})
    assert "escape.zip: ../evil.wav would be unpacked outside its folder; refused" in refused(escape)
    clash = corpus_zip(voices, tmp_path / "clash.zip", ["en-us_00.wav,1,"], {"my clips/en-us_00.wav/x.wav": b"x"})
    assert "clash.zip: my clips/en-us_00.wav is both a file and a folder; refused" in refused(clash)
    unlabelled = corpus_zip(voices, tmp_path / "unlabelled.zip", ["en-us_00.wav,,"])
    assert "labels.csv row 2: label '' is neither a number" in refused(unlabelled)
    no_csv = tmp_path / "no_csv.zip"
    with zipfile.ZipFile(no_csv, "w") as zf:
        zf.write(voices / "en-us_00.wav", "en-us_00.wav")
    assert "no_csv.zip holds no CSV file; it needs exactly one labels CSV" in refused(no_csv)
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip")
    assert "fake.zip: not a zip file (or a damaged one)" in refused(fake)
    small = TrainTab(tab.checkpoints, TrainLimits(max_clips=4), tab.slot)
    assert small.slot is tab.slot  # one trainer for the tabs that are handed it (an empty line is falsy)
    _, note, _ = small.add_files([str(good)], [], 0.0, False, Request("zips"))
    assert f"clips.zip holds {2 * TRAINED + 1} files; at most 4 clips (and their labels CSV)" in note
    # With the text path as the teacher, the labels may be blank.
    more, note, _ = tab.add_files([str(unlabelled)], [], 0.0, True, Request("zips-text"))
    assert more == [["en-us_00.wav", "", "", ""]] and too_few_clips(1) in tab.describe(more, True, Request("zips-text"))


# -- malformed zips (issue 35): each named with its member and what is wrong; nothing stays behind --

_CSV, _WAV = "file,label\na.wav,1\n", b"RIFF" + bytes(range(256)) * 64  # unzip_clips does not probe media
_OK = [("labels.csv", _CSV), ("a.wav", _WAV)]


def _zip(members: list[tuple[str, str | bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytearray:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": some are made on purpose
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return bytearray(buf.getvalue())


Field = tuple[int, str, int]  # a header field: its offset, struct format and value


def _headers(data: bytearray, name: bytes) -> tuple[int, int]:
    """Where member ``name``'s central and local headers start."""
    c = data.index(b"PK\x01\x02")
    while data[c + 46 : c + 46 + struct.unpack_from("<H", data, c + 28)[0]] != name:
        c = data.index(b"PK\x01\x02", c + 4)
    return c, struct.unpack_from("<I", data, c + 42)[0]


def _patched(members: list, name: str, central: Sequence[Field] = (), local: Sequence[Field] = ()) -> bytearray:
    """``members`` zipped, then fields of ``name``'s central and local headers overwritten, each
    given as (offset, struct format, value)."""
    data = _zip(members)
    for start, fields in zip(_headers(data, name.encode()), (central, local)):
        for offset, fmt, value in fields:
            struct.pack_into(fmt, data, start + offset, value)
    return data


def _renamed(members: list, name: str, new: bytes, central: bool = True) -> bytearray:
    """``members`` zipped, then ``name`` spelled as the bytes ``new`` (as long) in its local header,
    and in the central directory too unless not ``central``."""
    data = _zip(members)
    c, local = _headers(data, name.encode())
    data[local + 30 : local + 30 + len(new)] = new
    if central:
        data[c + 46 : c + 46 + len(new)] = new
    return data


def _garbled(method: int) -> bytearray:
    """A zip whose a.wav has bytes of its packed data changed."""
    data = _zip(_OK, method)
    _, local = _headers(data, b"a.wav")
    start = local + 30 + sum(struct.unpack_from("<HH", data, local + 26))
    data[start + 5 : start + 40] = bytes(b ^ 0x5A for b in data[start + 5 : start + 40])
    return data


_LONG = "x" * 300 + ".wav"
# (case, the zip, the member the message names, what it says is wrong); every one escaped as a raw
# exception (or was taken silently) before issue 35.
_MALFORMED: list[tuple[str, Any, str | None, str]] = [
    ("stored-bad-crc", lambda: _garbled(zipfile.ZIP_STORED), "a.wav", "is damaged"),
    ("deflated-garbled", lambda: _garbled(zipfile.ZIP_DEFLATED), "a.wav", "is damaged"),
    ("bzip2-garbled", lambda: _garbled(zipfile.ZIP_BZIP2), "a.wav", "is damaged"),
    ("lzma-garbled", lambda: _garbled(zipfile.ZIP_LZMA), "a.wav", "is damaged"),
    ("states-too-small-a-size", lambda: _patched(_OK, "a.wav", [(24, "<I", 100)]), "a.wav", "is damaged"),
    ("states-too-large-a-size", lambda: _patched(_OK, "a.wav", [(24, "<I", 10 * len(_WAV))]), "a.wav", "is damaged"),
    ("states-too-small-a-packed-size", lambda: _patched(_OK, "a.wav", [(20, "<I", 10)]), "a.wav", "is damaged"),
    (
        "bomb-stating-1-KB",
        lambda: _patched(
            [("labels.csv", _CSV), ("a.wav", bytes(8 << 20))], "a.wav", [(24, "<I", 2**10)], [(22, "<I", 2**10)]
        ),
        "a.wav",
        "is damaged",
    ),
    ("header-elsewhere", lambda: _patched(_OK, "a.wav", [(42, "<I", 3)]), "a.wav", "is damaged"),
    ("headers-disagree-on-the-name", lambda: _renamed(_OK, "a.wav", b"b.wav", central=False), "a.wav", "is damaged"),
    ("encrypted", lambda: _patched(_OK, "a.wav", [(8, "<H", 0x1)]), "a.wav", "is encrypted"),
    ("strongly-encrypted", lambda: _patched(_OK, "a.wav", [(8, "<H", 0x40)]), "a.wav", "is encrypted"),
    ("deflate64", lambda: _patched(_OK, "a.wav", [(10, "<H", 9)]), "a.wav", "packed in a way not read here"),
    ("aes", lambda: _patched(_OK, "a.wav", [(10, "<H", 99)]), "a.wav", "packed in a way not read here"),
    ("newer-zip-version", lambda: _patched(_OK, "a.wav", [(6, "<H", 255)]), None, "a zip format not read here"),
    (
        "name-not-the-utf8-stated",
        lambda: _renamed(_OK + [("a\u00e9.wav", _WAV)], "a\u00e9.wav", b"a\xff\xfe.wav"),
        "a\\xff\\xfe.wav",
        "is not the UTF-8",
    ),
    (
        "local-name-not-the-utf8-stated",
        lambda: _renamed(_OK + [("a\u00e9.wav", _WAV)], "a\u00e9.wav", b"a\xff\xfe.wav", central=False),
        "a\u00e9.wav",
        "is damaged",
    ),
    ("twice", lambda: _zip(_OK + [("a.wav", _WAV)]), "a.wav", "is in the zip twice"),
    ("twice-as-dot-slash", lambda: _zip(_OK + [("./a.wav", _WAV)]), "./a.wav", "is in the zip twice"),
    ("twice-with-a-backslash", lambda: _zip(_OK + [("d/b.wav", _WAV), ("d\\b.wav", _WAV)]), "d\\b.wav", "twice"),
    ("file-then-folder", lambda: _zip(_OK + [("d", b"x"), ("d/b.wav", _WAV)]), "d", "is both a file and a folder"),
    ("folder-then-file", lambda: _zip(_OK + [("d/b.wav", _WAV), ("d", b"x")]), "d", "is both a file and a folder"),
    ("csv-as-a-folder", lambda: _zip(_OK + [("labels.csv/b.wav", _WAV)]), "labels.csv", "both a file and a folder"),
    ("empty-name", lambda: _zip(_OK + [("", b"x")]), "''", "is not a file name"),
    ("dot-name", lambda: _zip(_OK + [(".", b"x")]), ".", ": . is not a file name"),
    (
        "nul-in-a-name",
        lambda: _renamed(_OK + [("b.wav_.txt", b"x")], "b.wav_.txt", b"b.wav\0.txt"),
        "b.wav\\x00.txt",
        "NUL",
    ),
    ("nul-first", lambda: _renamed(_OK + [("_b.wav", b"x")], "_b.wav", b"\0b.wav"), "\\x00b.wav", "NUL"),
    ("name-over-255-bytes", lambda: _zip(_OK + [(_LONG, _WAV)]), "x" * 77, "too long a name"),
    ("utf8-name-over-255-bytes", lambda: _zip(_OK + [("\u00e9" * 200 + ".wav", _WAV)]), "\u00e9" * 77, "too long"),
    ("path-over-1024-bytes", lambda: _zip(_OK + [("/".join(["y" * 250] * 20) + "/b.wav", _WAV)]), "y" * 77, "too long"),
    (
        "csv-cell-too-big",
        lambda: _zip([("labels.csv", f'file,label\n"{"x" * 200_000}",1\n'), ("a.wav", _WAV)]),
        "labels.csv",
        "cannot be read as a CSV",
    ),
    (
        "csv-names-a-nul",
        lambda: _zip([("labels.csv", "file,label\na\0.wav,1\n"), ("a.wav", _WAV)]),
        "a\\x00.wav",
        "cannot name a file",
    ),
    (
        "csv-names-too-long-a-file",
        lambda: _zip([("labels.csv", f"file,label\n{_LONG},1\n"), ("a.wav", _WAV)]),
        "x" * 80,
        "cannot name a file",
    ),
]


@pytest.mark.parametrize(("make", "member", "wrong"), [c[1:] for c in _MALFORMED], ids=[c[0] for c in _MALFORMED])
def test_a_malformed_zip_is_refused_naming_the_zip_the_member_and_what_is_wrong(
    make: Any, member: str | None, wrong: str, tmp_path: Path
) -> None:
    archive = tmp_path / "lesson 3.zip"
    archive.write_bytes(make())
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ClipError) as refused:
        unzip_clips(archive, dest, ClipLimits(), True, 2**20)
    message = str(refused.value)
    assert "lesson_3.zip" in message and wrong in message and (member is None or member in message), message
    assert str(tmp_path) not in message and "/tmp/" not in message
    assert list(dest.iterdir()) == []  # nothing half-unpacked stays


def test_the_bytes_a_zip_unpacks_to_are_counted_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """zipfile stops at a member's stated size; were it not to, the bytes written are capped still."""
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(_zip(_OK))
    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *_, **__: io.BytesIO(bytes(2 * 2**20)))
    with pytest.raises(ClipError, match="bomb.zip: labels.csv unpacks to more than the zip states"):
        unzip_clips(archive, dest, ClipLimits(), True, 2**20)
    assert list(dest.iterdir()) == []


def test_a_clip_with_neither_a_voice_nor_a_face_is_named(tab: TrainTab, voices: Path, tmp_path: Path) -> None:
    silent = make_media("silence", tmp_path)
    files = [str(voices / clip_name("en-us", i)) for i in range(3)] + [str(silent)]
    rows, _, _ = tab.add_files(files, [], 1.0, False, Request("silent"))
    shown = train(tab, "silent", rows)
    last = shown[-1]
    assert last["status"].startswith("\u26a0\ufe0f These clips cannot be used: silent.wav: neither a voice nor a face")
    assert last["train"]["interactive"] and not last["stop"]["interactive"]
    assert tab.checkpoints.private.names("silent") == []


# -- training, and whose checkpoint it is -------------------------------------------------------


# The tests that read the trained run are in the slow set: it reads 16 clips through Whisper and
# fine-tunes on them (about 25 s); the fast set keeps every clips-and-labels test.
@pytest.fixture(scope="module")
def trained(tab: TrainTab, clips_zip: Path) -> dict[str, Any]:
    """Alice's page adds the corpus as a zip and trains; what it showed, and how long it took."""
    rows, _, _ = tab.add_files([str(clips_zip)], [], 0, False, Request("alice"))
    t0 = time.perf_counter()
    shown = train(tab, "alice", rows)
    return {"shown": shown, "rows": rows, "seconds": time.perf_counter() - t0}


@pytest.mark.slow
def test_training_streams_progress_and_learns_the_voice(trained: dict[str, Any], tab: TrainTab) -> None:
    shown = trained["shown"]
    statuses = [s["status"] for s in shown if isinstance(s["status"], str)]
    assert any(s.startswith(f"Reading clip 1 of {2 * TRAINED}") for s in statuses)
    assert any("Training \u2014 fold 1 of" in s for s in statuses)
    assert sum(s["loss_plot"] is not None and not isinstance(s["loss_plot"], dict) for s in shown) >= 3
    last = shown[-1]
    assert last["status"].startswith(f"Trained on {2 * TRAINED} clips: {2 * TRAINED} with a voice, 0 with a face")
    mine = private_name("my-voice")
    assert last["mine"]["value"] == mine and last["analyse_pick"]["choices"] == ["words-only", mine]
    assert last["analyse_pick"]["value"] == mine  # picked for the next Analyse, not left on the old one
    item = tab.checkpoints.private.get("alice", mine)
    r = item.result
    # The voice rule is learnt: on clips each fold did not train on, far below the base (which
    # cannot hear, so it errs by about 2 on every clip).
    assert r.heldout_mae < 0.5 and r.base_mae > 1.5, (r.heldout_mae, r.base_mae)
    results = last["results"]
    assert f"**my-voice: {r.heldout_mae:.3f}** ({r.folds} folds, {r.epochs} epochs)" in results
    assert f"the base `words-only`: {r.base_mae:.3f}, on the same clips" in results
    # Beside the base: one answer for every clip, the median label (half the clips at +2, half at
    # -2: 0, an error of 2 on every clip).
    assert r.constant_label == 0.0 and r.constant_mae == pytest.approx(2.0)
    assert f"always answering +0.0: {r.constant_mae:.3f}" in results and "now picked in the Analyse tab" in results
    assert "fusion and the head that read it trained" in results  # the words may count differently now
    assert f"**the voice**: {2 * TRAINED} of the {2 * TRAINED} clips had a voice" in results
    assert "**the face**: no clip had a face; this branch never trained" in results
    assert "fewer than 20" in results  # the card's warnings, on the page
    names = [t.name for t in last["loss_plot"].data]
    assert names.count("held-out, each fold") == r.folds and "held-out, every clip" in names
    assert "final model, training" in names
    assert names[-1] == f"base {r.base_mae:.2f}" and not last["loss_plot"].layout.annotations  # named in the legend


@pytest.mark.slow
def test_only_its_own_page_lists_picks_and_downloads_it(
    trained: dict[str, Any], tab: TrainTab, checkpoints: Checkpoints, voices: Path, tmp_path: Path
) -> None:
    mine = private_name("my-voice")
    assert checkpoints.names_for("alice") == ["words-only", mine]
    assert checkpoints.names_for("bob") == ["words-only"] and mine not in checkpoints.names
    with pytest.raises(InputError, match="No checkpoint named"):
        checkpoints.get(mine, "bob")
    with pytest.raises(gr.Error, match="Pick one of this page's fine-tuned checkpoints"):
        tab.show(mine, Request("bob"))

    # Alice analyses a held-out sentence in each voice: the voice branch is fed and trained (not
    # grey), and the score follows the voice; the words-only base's voice branch is grey.
    h = Handlers(checkpoints)
    held = {v: voices / clip_name(v, TRAINED) for v in VOICES}

    def analyse(clip: Path, checkpoint: str, page: str) -> dict[str, Any]:
        out = h.analyse(None, str(clip), SENTENCES[TRAINED], checkpoint, None, Request(page), progress=quiet)
        return dict(zip(OUTPUTS, out))

    def voice_note(out: dict[str, Any]) -> str:
        return next(line for line in out["branch_notes"].splitlines() if "acoustic" in line)

    scores = {}
    for voice, clip in held.items():
        out = analyse(clip, mine, "alice")
        assert "grey" not in voice_note(out), voice_note(out)
        assert out["state"]["checkpoint"] == mine  # what-ifs and redraws find it again
        r = checkpoints.get(mine, "alice").predictor.checkpoint.meta["heldout"]
        assert (
            f"Scored by `{mine}`, fine-tuned from `words-only`: on clips it did not train on its error is "
            in out["score"]
            and f"{r['mae']:.2f}, the base's {r['base_mae']:.2f}, one answer for every clip {r['constant_mae']:.2f}."
            in (out["score"])
        )
        scores[voice] = checkpoints.get(mine, "alice").kept_analysis(out["state"]["key"]).prediction.score
    assert scores["en-us"] > 1.0 and scores["en-us+f3"] < -1.0, scores
    assert "grey" in voice_note(analyse(held["en-us"], "words-only", "alice"))
    refused = analyse(held["en-us"], mine, "bob")  # Bob's page asks for it by name: not his to use
    assert "No checkpoint named" in refused["score"] and refused["state"] is None

    # The zip: the checkpoint folder with its model card, loading as any checkpoint does.
    text, download = tab.show(mine, Request("alice"))
    archive = Path(download["value"])
    assert archive.name == "my-voice.zip" and "0 with a face" not in text
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path)
    card = (tmp_path / "my-voice" / "README.md").read_text()
    assert card.startswith("# Fine-tuned on your own clips: my-voice") and "## What each branch saw" in card
    loaded = load_checkpoint(tmp_path / "my-voice")
    assert loaded.training.modalities["acoustic"] == 2 * TRAINED
    unzipped = Predictor(loaded, extractor=checkpoints.default.predictor.extractor)
    assert unzipped.run(held["en-us+f3"], transcript=SENTENCES[TRAINED]).prediction.score == pytest.approx(
        scores["en-us+f3"], abs=1e-3
    )


@pytest.mark.slow
def test_saving_writes_a_shared_checkpoint_and_guards_other_folders(
    trained: dict[str, Any], tab: TrainTab, checkpoints: Checkpoints
) -> None:
    mine = private_name("my-voice")
    text, analyse_pick, _ = tab.save(mine, "voice-v1", Request("alice"))
    folder = checkpoints.root / "voice-v1"
    assert "checkpoints/voice-v1" in text and (folder / "README.md").read_text().startswith("# Fine-tuned")
    assert "voice-v1" in checkpoints.names_for("bob") and "voice-v1" in analyse_pick["choices"]
    assert mine in analyse_pick["choices"]  # alice's own stays listed for her
    assert checkpoints.get("voice-v1", "bob").predictor.checkpoint.training.modalities["acoustic"] == 2 * TRAINED
    tab.save(mine, "voice-v1", Request("alice"))  # a fine-tuned folder may be replaced
    (checkpoints.root / "notes").mkdir()
    (checkpoints.root / "notes" / "README.md").write_text("# my notes\n")
    for bad, why in (
        ("words-only", "words-only is the checkpoint this app runs with"),
        ("notes", "notes exists and is not a fine-tuned checkpoint: choose another folder"),
        ("../up", "Name the folder with letters"),
    ):
        with pytest.raises(gr.Error, match=why):
            tab.save(mine, bad, Request("alice"))
    assert (checkpoints.root / "notes" / "README.md").read_text() == "# my notes\n"
    with pytest.raises(gr.Error, match="Pick one of this page's"):
        tab.save(mine, "stolen", Request("bob"))
    with pytest.raises(gr.Error, match="off on this server"):
        TrainTab(checkpoints, TrainLimits(can_save=False)).save(mine, "x", Request("alice"))


@pytest.mark.slow
def test_stop_and_the_time_limit_leave_no_checkpoint(
    trained: dict[str, Any], tab: TrainTab, clips_zip: Path, voices: Path
) -> None:
    """The same clips again on other pages (their features from memory, not extracted again):
    stopped in the first fold, and run past a tiny time limit; neither leaves a checkpoint."""
    rows, _, _ = tab.add_files([str(clips_zip)], [], 0, False, Request("carol"))
    hits = tab.features.hits
    folders = sorted(tab.root.glob("checkpoint-*"))
    run = tab.train(Request("carol"), rows, False, None, 40, "stopped")
    for out in map(named, run):
        if "Training \u2014" in str(out["status"]):
            # Stop only disables itself: the run writes the status, so its last word stays.
            assert tab.stop(Request("carol")) == gr.update(interactive=False)
            break
    shown = [named(out) for out in run]
    assert shown[0]["status"] == TRAIN_STOPPING and not shown[0]["stop"]["interactive"], shown[0]
    last = shown[-1]
    assert last["status"] == "\u26a0\ufe0f Stopped by you: no checkpoint was made from this run"
    assert last["train"]["interactive"] and not last["stop"]["interactive"]
    assert tab.stop(Request("carol")) == gr.update(interactive=False)  # nothing is training: nothing changes
    assert tab.features.hits - hits == len(rows)  # every clip's features came from memory
    assert tab.checkpoints.private.names("carol") == []

    # Stopped while the clips are read (new ones, not in memory): nothing either.
    fresh = [str(voices / clip_name(v, TRAINED)) for v in VOICES] + [
        str(voices / clip_name("en-us", i)) for i in (0, 1)
    ]
    rows, _, _ = tab.add_files(fresh, [], 1.0, False, Request("erin"))
    run = tab.train(Request("erin"), rows, False, None, 40, "early")
    assert named(next(run))["status"].startswith("Reading clip 1 of 4")
    tab.stop(Request("erin"))
    last = named(list(run)[-1])
    assert last["status"].startswith("\u26a0\ufe0f Stopped by you"), last["status"]
    assert tab.checkpoints.private.names("erin") == []

    hurried = TrainTab(tab.checkpoints, TrainLimits(max_train_seconds=0.01))
    hurried.features = tab.features
    rows, _, _ = hurried.add_files([str(clips_zip)], [], 0, False, Request("dave"))
    last = train(hurried, "dave", rows)[-1]
    assert last["status"].startswith("\u26a0\ufe0f Stopped at the time limit"), last["status"]
    assert "no model was made, nothing is saved" in last["status"]
    assert tab.checkpoints.private.names("dave") == [] and not list(hurried.root.glob("checkpoint-*"))
    assert sorted(tab.root.glob("checkpoint-*")) == folders  # no files were written for any of them


def test_a_second_page_waits_its_turn_and_can_leave_the_line(tab: TrainTab, clips_zip: Path) -> None:
    """One trainer on the server (shared with the Lab): a second page's run waits, told its
    place, and Stop takes it out of the line with nothing made; the first run is undisturbed."""
    rows, _, _ = tab.add_files([str(clips_zip)], [], 0, False, Request("hal"))
    first = tab.train(Request("hal"), rows, False, None, 2, "first")
    next(first)  # hal's run has the trainer
    rows, _, _ = tab.add_files([str(clips_zip)], [], 0, False, Request("ida"))
    second = tab.train(Request("ida"), rows, False, None, 2, "second")
    waiting = named(next(second))
    assert waiting["status"].startswith("Waiting for the trainer: 1 run ahead"), waiting["status"]
    assert waiting["stop"]["interactive"] and not waiting["train"]["interactive"]
    tab.stop(Request("ida"))
    last = named(list(second)[-1])
    assert last["status"] == "\u26a0\ufe0f Left the line before training: nothing was trained", last["status"]
    assert last["train"]["interactive"] and tab.checkpoints.private.names("ida") == []
    assert named(list(first)[-1])["status"].startswith("Trained on") and len(tab.slot) == 0


@pytest.mark.slow
def test_the_text_path_as_the_teacher(trained: dict[str, Any], tab: TrainTab, clips_zip: Path) -> None:
    """No labels: the base's score of the words labels each clip, and the page says so."""
    rows, _, _ = tab.add_files([str(clips_zip)], [], 0, True, Request("frank"))
    rows = [[r[0], "", r[2], r[3]] for r in rows]
    assert "Ready to train" in tab.describe(rows, True, Request("frank"))
    last = train(tab, "frank", rows, label_with_text=True, epochs=5, name="taught")[-1]
    item = tab.checkpoints.private.get("frank", private_name("taught"))
    assert item is not None and item.result.label_source == "the base checkpoint's text score"
    assert "Its labels are the base checkpoint's text score" in last["results"]


@pytest.mark.slow
def test_a_closed_page_takes_its_clips_and_checkpoints(trained: dict[str, Any], tab: TrainTab) -> None:
    mine = private_name("my-voice")
    session = tab.sessions.get("alice")
    item = tab.checkpoints.private.get("alice", mine)
    assert item is not None and item.folder.is_dir() and session.folder.is_dir()
    tab.page_closed(Request("alice"))
    assert tab.checkpoints.names_for("alice") == [n for n in tab.checkpoints.names]
    assert not item.folder.exists() and not session.folder.exists()
    with pytest.raises(InputError):
        tab.checkpoints.get(mine, "alice")


# -- the parts ------------------------------------------------------------------------------------


def test_private_checkpoints_are_capped_and_expire(fx: FeatureExtractor, tokenizer, tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "tiny", tiny_model(acoustic_dim=5, visual_dim=20), tokenizer)

    def item(name: str) -> PrivateCheckpoint:
        folder = tmp_path / name
        folder.mkdir()
        return PrivateCheckpoint(private_name(name), Service(Predictor(tmp_path / "tiny", extractor=fx)), None, folder)  # type: ignore[arg-type]

    store = PrivateCheckpoints(max_per_session=2, ttl_seconds=3600)
    first, second, third = item("a"), item("b"), item("c")
    assert store.add("p1", first) == [] and store.add("p1", second) == []
    assert store.add("p1", third) == [private_name("a")] and not first.folder.exists()
    assert store.names("p1") == [private_name("b"), private_name("c")]
    assert store.names("p2") == [] and store.get("p2", private_name("b")) is None and store.get(None, "x") is None
    store.ttl = 0.05
    time.sleep(0.1)
    assert store.names("p1") == [] and not second.folder.exists() and not third.folder.exists() and len(store) == 0


def test_limits_on_a_space() -> None:
    space = TrainLimits.from_env({"SPACE_ID": "user/app"})
    assert (space.max_clips, space.max_clip_seconds, space.max_train_seconds) == (40, 30.0, 180.0)
    assert (space.max_checkpoints, space.keep_minutes, space.can_save) == (3, 60.0, False)
    local = TrainLimits.from_env({})
    assert local.can_save and local.max_train_seconds is None and local == TrainLimits()
    tuned = TrainLimits.from_env({"SPACE_ID": "x", "MSA_TRAIN_MAX_CLIPS": "10", "MSA_TRAIN_SAVE": "1"})
    assert tuned.max_clips == 10 and tuned.can_save
    with pytest.raises(ValueError, match="MSA_TRAIN_MAX_SECONDS='soon' is not a number"):
        TrainLimits.from_env({"MSA_TRAIN_MAX_SECONDS": "soon"})
    assert TrainLimits(max_clip_seconds=60).clip_limits(max_seconds=20).max_seconds == 20  # never past the app's


def test_gradio_hands_every_session_handler_its_request() -> None:
    """Every handler that reads the page's own clips or checkpoints finds them by the request:
    Gradio passes it only to a positional parameter annotated gr.Request."""
    from gradio.helpers import special_args

    tab = TrainTab.__new__(TrainTab)
    h = Handlers.__new__(Handlers)
    for fn in (
        tab.add_files, tab.record, tab.describe, tab.clear, tab.train, tab.stop, tab.show, tab.save, tab.choices,
        tab.page_closed, h.analyse, h.view, h.what_if, h.checkpoint_choices,
    ):  # fmt: skip
        inputs: list[object] = ["x"] * 5
        special_args(fn, inputs, request="the request")
        assert "the request" in inputs, fn.__name__


def test_the_loss_figure_draws_what_it_says() -> None:
    from msa.app.plots.finetune import finetune_figure

    folds = {1: [(1, 2.0), (2, 1.0)], 2: [(1, 1.8), (2, 0.9)]}
    during = finetune_figure(folds)
    assert [t.name for t in during.data] == ["held-out, each fold"] * 2
    assert [t.showlegend for t in during.data] == [True, False] and not during.layout.annotations
    done = finetune_figure(folds, [(1, 1.5)], [1.9, 0.95], base_mae=2.1)
    assert [t.name for t in done.data][2:] == ["held-out, every clip", "final model, training", "base 2.10"]
    assert list(done.data[2].y) == [1.9, 0.95] and list(done.data[2].x) == [1, 2]
    assert not done.layout.annotations  # the base is named in the legend: no curve crosses its label
    assert np.isclose(done.layout.shapes[0].y0, 2.1)
