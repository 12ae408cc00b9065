"""Which uploaded files are still in use, so that each is deleted as soon as nothing needs it.

A public endpoint receives files from strangers: a page's upload stays while the page is open
(the user may correct the transcript and run it again), an API call's goes when the call ends.
Nothing here imports gradio: the app tells the ledger about page sessions and requests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


class UploadLedger:
    """Which page sessions hold which uploaded files, so that a file is deleted as soon as the
    last page that used it is closed.

    A page keeps its upload while it is open: the user may correct the transcript and run the
    same clip again, and the page still shows it. Uploads are stored by content hash, so two
    pages that send the same file share one path: it goes when the last of them closes. Only
    files under ``root`` (the web framework's upload folder) are ever deleted, and never one
    for which ``protected(path)`` is true (the app's examples, whatever path they were given).
    A file sent by an API call is deleted when that call ends (`drop`) unless something else
    still uses it. What remains (pages that never close cleanly) is left to the periodic sweep
    of the upload folder.
    """

    def __init__(self, root: str | os.PathLike[str], protected: Callable[[Path], bool] = lambda p: False):
        self.root = Path(root).resolve()
        self.protected = protected
        self._held: dict[str, set[Path]] = {}
        self._lock = threading.Lock()

    def hold(self, session: str | None, path: str | os.PathLike[str] | None) -> None:
        """Record that ``session`` uses ``path`` (ignored without a session or outside ``root``)."""
        if not session or not path:
            return
        p = Path(path).resolve()
        if self.root in p.parents:
            with self._lock:
                self._held.setdefault(session, set()).add(p)

    def release(self, session: str | None) -> list[Path]:
        """Forget ``session``; delete its files that no other session holds. Returns them."""
        with self._lock:
            mine = self._held.pop(session or "", set())
            still = set().union(*self._held.values()) if self._held else set()
        return [p for p in sorted(mine - still) if self._delete(p)]

    def drop(self, path: str | os.PathLike[str] | None, started: float, other_requests: int | None) -> bool:
        """After a request that was not made from a page (an API call) that started at
        ``started`` (``time.time()``): delete its file unless a page holds it, it is protected,
        it was written again after ``started`` (another client uploaded the same content), or
        ``other_requests`` (queued or running requests naming it besides this one; None:
        unknown) is not 0. Returns whether it was deleted."""
        if not path or other_requests != 0:
            return False
        p = Path(path).resolve()
        with self._lock:
            if any(p in held for held in self._held.values()):
                return False
        try:
            if p.stat().st_ctime >= started:
                return False
        except FileNotFoundError:
            return False
        return self._delete(p)

    def _delete(self, p: Path) -> bool:
        if self.root not in p.parents:
            return False
        try:
            if self.protected(p):
                return False
            p.unlink()
        except FileNotFoundError:
            return False  # swept already
        if p.parent != self.root:
            try:
                p.parent.rmdir()  # the per-upload folder, when empty
            except OSError:
                pass
        return True


__all__ = ["UploadLedger"]
