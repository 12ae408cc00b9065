"""Batch scoring and extraction, on worker processes here or on Ray (msa/parallel.py, msa/batch/).

Both engines run the same work, so they must give the same rows; a broken file is an error row
and the rest are still processed; a file that kills its worker is an error row too; a table is
resumed; a feature store is what `FeatureExtractor(cache_dir=STORE)` (and so train.py) reads.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIP, WAV, feature_checkpoint
from msa.__main__ import main
from msa.batch.inputs import InputsError, expand_inputs
from msa.batch.table import ResultTable, journal_path
from msa.features import FeatureExtractor
from msa.parallel import CRASHED, EngineError, map_items, pool_size
from msa.predict import Predictor
from msa.testing import ToyWork

ITEMS = [{"x": i} for i in range(8)]


def _by_x(rows: list[dict]) -> dict[int, tuple]:
    return {r["x"]: (r.get("double"), r.get("error")) for r in rows}


def test_local_workers_survive_a_crash_and_a_failing_item() -> None:
    rows = list(map_items(ToyWork(die_on=3, raise_on=5), ITEMS, "local", workers=2))
    got = _by_x(rows)
    assert sorted(got) == list(range(8))  # every item has exactly one row
    assert got[3] == (None, CRASHED) and got[5] == (None, "a work's own error")
    assert all(got[i] == (2 * i, None) for i in (0, 1, 2, 4, 6, 7))
    # The work ran in worker processes (how many took part depends on scheduling: not asserted).
    pids = {r["pid"] for r in rows if "pid" in r}
    assert pids and os.getpid() not in pids


def test_without_the_scale_engine_ray_and_parquet_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make app` and a Space install no Ray and no pyarrow: asking for them names the install."""
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as without the package
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(EngineError, match=r"needs Ray, which this install left out: pip install -r requirements-scale"):
        list(map_items(ToyWork(), ITEMS, "ray"))
    out = tmp_path / "scores.parquet"
    assert main(["predict", str(WAV), "--out", str(out), "--transcript", "fine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs pyarrow" in err[0] and "requirements-scale.txt" in err[0] and ".csv" in err[0]
    assert not out.exists() and not journal_path(out).exists()
    # A CSV table needs neither.
    table = ResultTable(tmp_path / "scores.csv", ["file", "score"])
    table.add({"file": "a.wav", "score": 1.5})
    assert table.write().read_text() == "file,score\na.wav,1.5\n"


def test_the_ray_pool_is_sized_by_what_the_cluster_reports() -> None:
    assert pool_size({"CPU": 2.0}, 1.0) == (1, 0.0)  # one CPU left for Ray's own tasks: no deadlock
    assert pool_size({"CPU": 32.0}, 2.0) == (15, 0.0)
    assert pool_size({"CPU": 32.0}, 2.0, workers=4) == (4, 0.0)
    assert pool_size({"CPU": 64.0, "GPU": 4.0}, 1.0) == (4, 1.0)  # an actor per GPU
    assert pool_size({"CPU": 1.0}, 1.0) == (1, 0.0)


def test_an_unreachable_cluster_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(EngineError, match=r"cannot reach a Ray cluster at 127.0.0.1:1 \("):
        list(map_items(ToyWork(), ITEMS, "ray", address="127.0.0.1:1"))
    assert (
        main(["extract", str(WAV), "--out", "/nonexistent/store", "--engine", "ray", "--address", "127.0.0.1:1"]) == 2
    )
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: cannot reach a Ray cluster")
    with pytest.raises(EngineError, match="use it with --engine ray"):
        map_items(ToyWork(), ITEMS, "local", address="10.0.0.1:6379")


def test_inputs_are_files_folders_and_manifests(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    a = shutil.copy(WAV, tmp_path / "a.wav")
    b = shutil.copy(WAV, tmp_path / "sub" / "b.wav")
    (tmp_path / "notes.txt").write_text("x")
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,transcript\nsub/b.wav,it was good\nmissing.mp4,\n")
    items = expand_inputs([tmp_path / "a.wav", manifest, tmp_path])  # b.wav twice: once
    assert [(Path(i["file"]).name, i["transcript"]) for i in items] == [
        ("a.wav", None),
        ("b.wav", "it was good"),
        ("missing.mp4", None),  # a missing file becomes an error row, like a broken one
    ]
    assert {Path(a).resolve(), Path(b).resolve()} <= {Path(i["file"]).resolve() for i in items}
    with pytest.raises(InputsError, match="no such file or folder"):
        expand_inputs([tmp_path / "nowhere"])
    with pytest.raises(InputsError, match="not a media file"):
        expand_inputs([tmp_path / "notes.txt"])
    (tmp_path / "bad.csv").write_text("path\nx.wav\n")
    with pytest.raises(InputsError, match="needs the column file"):
        expand_inputs([tmp_path / "bad.csv"])


def test_a_table_is_resumed_from_its_journal(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    table = ResultTable(out, ["file", "score", "error"])
    table.add({"file": "a", "score": 1.5, "error": ""})
    table.add({"file": "b", "score": None, "error": "broken"})
    table.close()  # killed here: no table yet, the journal holds both rows
    with journal_path(out).open("a") as f:
        f.write('{"file": "c", "sco')  # and a line cut by the kill
    again = ResultTable(out, ["file", "score", "error"])
    assert again.done("a") and not again.done("b") and not again.done("c")
    again.add({"file": "b", "score": -0.5, "error": ""})
    again.write(["b", "a"])
    assert not journal_path(out).exists()
    import pyarrow.parquet as pq

    assert pq.read_table(out).to_pylist() == [
        {"file": "b", "score": -0.5, "error": ""},
        {"file": "a", "score": 1.5, "error": ""},
    ]
    with pytest.raises(ValueError, match="must end in .csv or .parquet"):
        ResultTable(tmp_path / "r.json", ["file"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real clips, a broken file and a manifest with their transcripts (no Whisper needed)."""
    folder = tmp_path_factory.mktemp("clips")
    shutil.copy(CLIP, folder / "face.mp4")
    shutil.copy(WAV, folder / "voice.wav")
    (folder / "broken.mp4").write_text("not a video\n" * 20)
    rows = ["file,transcript", "face.mp4,and he is one of my favorite actors ever", "voice.wav,it was really good"]
    (folder / "two.csv").write_text("\n".join(rows) + "\n")
    (folder / "all.csv").write_text("\n".join([*rows, "broken.mp4,words"]) + "\n")
    return folder


@pytest.mark.slow  # worker processes load Whisper: real weights, end to end
def test_predict_writes_a_resumable_table_with_error_rows(
    clips: Path, tmp_path: Path, fx, tokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = feature_checkpoint(tmp_path / "ckpt", fx, tokenizer)
    out = tmp_path / "results.csv"
    args = ["predict", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*args, str(clips / "two.csv"), "--workers", "2"]) == 0
    assert main([*args, str(clips / "all.csv")]) == 1  # one failed
    err = capsys.readouterr().err
    assert "1 to score, 2 done in an earlier run (local)" in err
    rows = {Path(r["file"]).name: r for r in csv.DictReader(out.open())}
    assert list(rows) == ["face.mp4", "voice.wav", "broken.mp4"]  # the inputs' order
    assert "not a readable media file" in rows["broken.mp4"]["error"] and rows["broken.mp4"]["score"] == ""
    assert (
        rows["face.mp4"]["modalities"] == "text;acoustic;visual" and rows["voice.wav"]["modalities"] == "text;acoustic"
    )
    # The worker's scores are the in-process Predictor's.
    predictor = Predictor(checkpoint, extractor=fx)
    for name, text in (("face.mp4", "and he is one of my favorite actors ever"), ("voice.wav", "it was really good")):
        expected = predictor.run(clips / name, transcript=text).prediction.score
        assert float(rows[name]["score"]) == pytest.approx(expected, abs=1e-5)
    assert float(rows["face.mp4"]["seconds"]) > 0 and rows["face.mp4"]["label7"]


def test_extract_fills_the_store_that_training_reads(clips: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert main(["extract", str(clips / "all.csv"), "--out", str(store), "--asr-model", "tiny.en", "--quiet"]) == 1
    index = {Path(r["file"]).name: r for r in csv.DictReader((store / "index.csv").open())}
    assert index["face.mp4"]["status"] == "done" and index["face.mp4"]["modalities"] == "text;acoustic;visual"
    assert index["broken.mp4"]["status"] == "failed" and "not a readable media file" in index["broken.mp4"]["error"]
    fx = FeatureExtractor({"asr_model": "tiny.en"}, store)
    ex = fx.extract(clips / "face.mp4", transcript="and he is one of my favorite actors ever", sample_id="face")
    assert ex.from_cache  # train.py --videos --cache-dir STORE reads it without extracting again


@pytest.mark.slow
def test_ray_gives_the_local_engines_rows(clips: Path, tmp_path: Path, fx, tokenizer) -> None:
    """Ray on this machine's 2 CPUs (a local cluster, one actor): the same rows as local workers,
    for a toy work with a crash and for the real scoring."""
    local = _by_x(list(map_items(ToyWork(die_on=3, raise_on=5), ITEMS, "local", workers=2)))
    assert _by_x(list(map_items(ToyWork(die_on=3, raise_on=5), ITEMS, "ray"))) == local
    checkpoint = feature_checkpoint(tmp_path / "ckpt", fx, tokenizer)
    tables = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.parquet"
        args = ["predict", str(clips / "all.csv"), "--checkpoint", str(checkpoint), "--out", str(out)]
        assert main([*args, "--engine", engine, "--explain", "--quiet"]) == 1
        import pyarrow.parquet as pq

        tables[engine] = {Path(r["file"]).name: r for r in pq.read_table(out).to_pylist()}
    for name, row in tables["local"].items():
        other = tables["ray"][name]
        # The same work; float sums in another process (its own thread count) may differ in the 8th digit.
        assert (row["error"] or "") == (other["error"] or ""), name
        assert (row["score"] is None) == (other["score"] is None), name
        assert row["score"] is None or row["score"] == pytest.approx(other["score"], abs=1e-6), name
    explanation = json.loads(tables["ray"]["face.mp4"]["explanation"])
    assert set(explanation["contributions"]["values"]) == {"text", "acoustic", "visual"}

    # train.py --videos --engine ray: the features Ray's workers extract are the ones read here.
    from msa.features import FeatureError, extract_many

    paths = [clips / "face.mp4", clips / "broken.mp4"]
    here = extract_many(paths[:1], fx, transcripts=["words"], progress=False)
    there = extract_many(paths, fx, transcripts=["words", None], engine="ray", on_error="return", progress=False)
    assert np.array_equal(there[0].sample.visual, here[0].sample.visual)
    assert np.array_equal(there[0].sample.acoustic, here[0].sample.acoustic)
    assert isinstance(there[1], FeatureError) and "not a readable media file" in str(there[1])
