"""Lab runs trained once, served to everyone who asks for the same settings.

A lab run is a pure function of its settings: the world (its seed makes the clips) and the
recipes (their seed makes the weights), trained on one thread (`LabRun` trains under
`one_thread`). So a class that opens one teacher's link asks for one run, not thirty: the first
learner trains it, those who ask while it trains follow its curve (`InFlight`), and those who ask
after get it at once (`KeptRun`). Only runs that ended on their own are kept: one stopped by a
person or by a time limit ended at a moment no setting says.

    cache = RunCache(max_runs=16, max_bytes=2 * 2**30)
    kind, entry = cache.claim(key)        # "kept", "follow" or "train"
    ...                                   # "train": train, entry.progress.append(p) per epoch
    cache.land(key, kept_or_none)         # followers wake up; a finished run is kept
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .recipe import Recipe
from .run import LabResult, LabRun, Progress
from .worlds import World


def run_key(world: World, recipes: Sequence[Recipe]) -> str:
    """Every setting a run's numbers depend on, as one string: a changed setting is a new run."""
    return json.dumps({"world": world.to_dict(), "recipes": [r.to_dict() for r in recipes]}, sort_keys=True)


@dataclass
class KeptRun:
    """A finished run: the trained models (in ``run``), what it measured and its curve."""

    run: LabRun
    result: LabResult
    progress: list[Progress]
    # What a page draws of it, made once for all (the app's figures of the curve and the results):
    # a class replaying one run is served these instead of each page drawing them again.
    drawn: dict[str, Any] = field(default_factory=dict)
    drawing: threading.Lock = field(default_factory=threading.Lock)

    @property
    def nbytes(self) -> int:
        """What keeping it costs: the clips' streams, the trained weights (best and current) and
        the text cache (the frozen text encoder is one object shared by every run, not counted)."""
        total = 0
        for clips in self.run.splits.values():
            for c in clips:
                total += sum(a.nbytes for a in (c.acoustic, c.visual) if a is not None)
        for v in self.run.variants:
            trained = [p for n, p in v.model.named_parameters() if not n.startswith("text.backbone.")]
            total += sum(p.numel() * p.element_size() for p in trained)
            total += sum(t.numel() * t.element_size() for t in (v.best_state or {}).values())
        caches = {id(c): c for v in self.run.variants if (c := getattr(v.model.text, "frozen_cache", None)) is not None}
        for cache in caches.values():
            total += sum(t.numel() * t.element_size() for t in cache.states.values())
        return int(total)


@dataclass
class InFlight:
    """A run being trained for someone: its curve so far, and how it ended (``kept`` None: it
    stopped early or failed, and was not kept)."""

    progress: list[Progress] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    kept: KeptRun | None = None
    ended: str | None = None  # why it was not kept, in words


class RunCache:
    """Finished runs by `run_key`, least recently used out past ``max_runs`` or ``max_bytes``;
    and the runs in flight, so that an identical request follows one instead of training again."""

    def __init__(self, max_runs: int = 16, max_bytes: int = 2 * 2**30):
        self.max_runs, self.max_bytes = max_runs, max_bytes
        self._kept: OrderedDict[str, tuple[KeptRun, int]] = OrderedDict()
        self._flying: dict[str, InFlight] = {}
        self._lock = threading.Lock()

    def claim(self, key: str) -> tuple[str, KeptRun | InFlight]:
        """``("kept", run)`` when it was trained before; ``("follow", in_flight)`` while another
        request trains it; else ``("train", in_flight)``: the caller trains it, appends each
        `Progress` to ``in_flight.progress`` and calls `land` however the run ends."""
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return "kept", self._kept[key][0]
            if key in self._flying:
                return "follow", self._flying[key]
            flight = self._flying[key] = InFlight()
            return "train", flight

    def state(self, key: str) -> str | None:
        """ "kept", "training" (claimed, not landed) or None: what asking for ``key`` would meet."""
        with self._lock:
            return "kept" if key in self._kept else "training" if key in self._flying else None

    def land(self, key: str, kept: KeptRun | None, ended: str | None = None) -> None:
        """The claimed run ended: keep it (a run that finished on its own) and wake its followers."""
        size = kept.nbytes if kept is not None else 0
        with self._lock:
            flight = self._flying.pop(key, None)
            if kept is not None and size <= self.max_bytes:
                self._kept[key] = (kept, size)
                self._kept.move_to_end(key)
                while len(self._kept) > self.max_runs or self.nbytes > self.max_bytes:
                    self._kept.popitem(last=False)
        if flight is not None:
            flight.kept, flight.ended = kept, ended
            flight.done.set()

    def release(self) -> int:
        """Forget every kept run (the runs in flight stay): the memory they held, for new runs. A
        page showing one keeps its own reference. Returns how many were dropped."""
        with self._lock:
            dropped = len(self._kept)
            self._kept.clear()
        return dropped

    @property
    def nbytes(self) -> int:
        return sum(size for _, size in self._kept.values())

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, key: str) -> bool:
        return key in self._kept


__all__ = ["InFlight", "KeptRun", "RunCache", "run_key"]
