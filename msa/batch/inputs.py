"""What a batch command reads: files, folders of media files, or a manifest CSV, as one list of
items ``{"file", "transcript", "id"}`` in the order given (a file named twice is taken once)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..features.videos import MEDIA_SUFFIXES


class InputsError(ValueError):
    """An input that is neither a media file, a folder nor a manifest; the message says which."""


def _item(path: Path, transcript: str | None = None) -> dict[str, Any]:
    return {"file": str(path), "transcript": transcript or None, "id": path.stem}


def read_manifest(manifest: Path) -> list[dict[str, Any]]:
    """A CSV with the column ``file`` (relative to the CSV's folder, or absolute) and optionally
    ``transcript`` (the spoken words; replaces speech recognition)."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputsError(f"{manifest}: cannot be read as a UTF-8 CSV ({e})") from e
    reader = csv.DictReader(io.StringIO(text))
    columns = [(c or "").strip().lower() for c in reader.fieldnames or []]
    if "file" not in columns:
        raise InputsError(f"{manifest}: a manifest needs the column file (and optionally transcript); found {columns}")
    items = []
    for raw in reader:
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if row.get("file"):
            path = Path(row["file"])
            items.append(_item(path if path.is_absolute() else manifest.parent / path, row.get("transcript")))
    return items


def expand_inputs(inputs: list[str | Path]) -> list[dict[str, Any]]:
    """Every item the inputs name: a media file as it is (a broken one is still an item: its row
    will say why), a folder's media files (searched recursively, in name order), a manifest's rows.

    Raises
    ------
    InputsError
        For an input that does not exist, or a file that is neither media nor a ``.csv`` manifest.
    """
    items: list[dict[str, Any]] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            items += [_item(f) for f in sorted(path.rglob("*")) if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES]
        elif path.suffix.lower() == ".csv" and path.is_file():
            items += read_manifest(path)
        elif path.suffix.lower() in MEDIA_SUFFIXES:
            items.append(_item(path))  # a missing file gets an error row, like a broken one
        elif not path.exists():
            raise InputsError(f"{given}: no such file or folder")
        else:
            raise InputsError(
                f"{given}: not a media file ({', '.join(MEDIA_SUFFIXES)}), a folder of them, or a manifest .csv"
            )
    seen: set[str] = set()
    unique = []
    for item in items:
        key = str(Path(item["file"]).resolve())
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


__all__ = ["InputsError", "expand_inputs", "read_manifest"]
