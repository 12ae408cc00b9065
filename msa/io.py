"""Writing files so that a kill at any moment never leaves one that reads as valid.

Every file the project writes for later use (checkpoints, the training state and logs, the
feature cache, the text cache's shards, the joined Whisper weights, the assembled text encoder)
goes through here: a file is written beside its target and renamed over it, a folder is filled
aside and swapped in with two renames that `recover_folder` can finish or undo.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends
    without an error, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def atomic_concatenate(path: str | os.PathLike[str], parts: Iterable[Path]) -> None:
    """Join the files ``parts``, in order, into ``path`` (a model shipped in pieces)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, length=1 << 22)


def atomic_save_tensors(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def _hidden(path: Path, kind: str) -> str:
    return f".{path.name}.{kind}."


def recover_folder(path: str | os.PathLike[str]) -> None:
    """Undo what a kill can leave of `replace_folder`: the previous folder set aside and the new
    one not yet in place (restored), and unfinished or discarded copies (removed)."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    for aside in sorted(path.parent.glob(_hidden(path, "old") + "*")):
        if not path.exists() and (aside / path.name).is_dir():
            os.replace(aside / path.name, path)
        shutil.rmtree(aside, ignore_errors=True)
    for unfinished in path.parent.glob(_hidden(path, "new") + "*"):
        shutil.rmtree(unfinished, ignore_errors=True)


def replace_folder(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Fill a fresh hidden sibling folder with ``write(folder)``, then swap it in for ``path``.

    Two renames swap it in; a kill between them leaves the old folder set aside, which
    `recover_folder` (called here, and by readers before they look) puts back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path)
    fresh = Path(tempfile.mkdtemp(dir=path.parent, prefix=_hidden(path, "new")))
    try:
        write(fresh)
        if path.exists():
            aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=_hidden(path, "old")))
            os.replace(path, aside / path.name)
            os.replace(fresh, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(fresh, path)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh, ignore_errors=True)


__all__ = [
    "atomic_concatenate",
    "atomic_path",
    "atomic_save_tensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "recover_folder",
    "replace_folder",
]
