"""Checkpoints that belong to one browser session: the ones its Train tab fine-tuned.

Each is listed, loaded and downloaded by the session that made it only, keyed by Gradio's
session hash (never sent to another page). Their number per session is capped (the oldest goes
first), and they are dropped when the page closes or after ``ttl_seconds`` unused, with the files
made for their download. Nothing here imports gradio or training code: `Checkpoints` (the
checkpoint picker) asks this store before the shared folders.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # the serving side never imports training code at run time
    from ..finetune import FinetuneResult

# What serves a checkpoint (the app's `Service`): generic, so this store imports nothing above it.
S = TypeVar("S")

# How a session's own checkpoint is named in its picker: never the name of a shared folder.
PRIVATE_SUFFIX = " (this page only)"


def private_name(name: str) -> str:
    return name + PRIVATE_SUFFIX


def page_key(request: Any) -> str:
    """The page a request (a `gr.Request`) comes from, by Gradio's session hash: what each page's
    own checkpoints, labs and share of the trainer are kept by; "local" when called without one."""
    return getattr(request, "session_hash", None) or "local"


@dataclass
class PrivateCheckpoint(Generic[S]):
    """One fine-tuned checkpoint of one session: its service (in memory) and the run behind it."""

    name: str  # as the picker shows it (`private_name`)
    service: S
    result: FinetuneResult
    folder: Path  # this checkpoint's files (its download); removed with it
    used: float = field(default_factory=time.monotonic)

    @property
    def short_name(self) -> str:
        return self.name.removesuffix(PRIVATE_SUFFIX)


class PrivateCheckpoints(Generic[S]):
    """Each session's own checkpoints, by session hash.

    Parameters
    ----------
    max_per_session : the most a session keeps; adding one more drops its oldest.
    ttl_seconds : a checkpoint unused this long is dropped (pages that vanish without closing).
    """

    def __init__(self, max_per_session: int = 5, ttl_seconds: float = 3600.0):
        self.max_per_session = max_per_session
        self.ttl = ttl_seconds
        self._by_session: dict[str, dict[str, PrivateCheckpoint[S]]] = {}
        self._lock = threading.Lock()

    def add(self, session: str, item: PrivateCheckpoint[S]) -> list[str]:
        """Keep ``item`` for ``session`` (replacing one of the same name); returns the names of
        the oldest ones dropped to stay within ``max_per_session``."""
        with self._lock:
            own = self._by_session.setdefault(session, {})
            gone = [own.pop(item.name)] if item.name in own else []
            own[item.name] = item
            while len(own) > self.max_per_session:
                oldest = min(own.values(), key=lambda c: c.used)
                gone.append(own.pop(oldest.name))
        self._discard(gone)
        self.sweep()
        return [c.name for c in gone if c.name != item.name]

    def names(self, session: str | None) -> list[str]:
        """``session``'s own checkpoints, oldest first; none for no session."""
        self.sweep()
        with self._lock:
            own = self._by_session.get(session or "", {})
            return [c.name for c in sorted(own.values(), key=lambda c: c.used)]

    def get(self, session: str | None, name: str | None) -> PrivateCheckpoint[S] | None:
        """``session``'s checkpoint ``name`` (its use time renewed), or None: a name another
        session made is None here, exactly as a name nobody made."""
        if not session or not name:
            return None
        self.sweep()
        with self._lock:
            item = self._by_session.get(session, {}).get(name)
            if item is not None:
                item.used = time.monotonic()
            return item

    def drop(self, session: str | None) -> list[str]:
        """Forget every checkpoint of ``session`` (its page closed) and delete their files."""
        with self._lock:
            gone = list(self._by_session.pop(session or "", {}).values())
        self._discard(gone)
        return [c.name for c in gone]

    def sweep(self) -> None:
        """Drop checkpoints unused for longer than the time limit."""
        cutoff = time.monotonic() - self.ttl
        with self._lock:
            gone = []
            for session, own in list(self._by_session.items()):
                for name in [n for n, c in own.items() if c.used < cutoff]:
                    gone.append(own.pop(name))
                if not own:
                    del self._by_session[session]
        self._discard(gone)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(own) for own in self._by_session.values())

    def _discard(self, items: list[PrivateCheckpoint[S]]) -> None:
        for item in items:
            shutil.rmtree(item.folder, ignore_errors=True)
            shutil.rmtree(item.service.tmp_dir, ignore_errors=True)  # its analyses' downloads


__all__ = ["PRIVATE_SUFFIX", "PrivateCheckpoint", "PrivateCheckpoints", "private_name"]
