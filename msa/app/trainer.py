"""What the two trainer tabs (the Fusion Lab, Train) share: each page's session with one run at a
time, a Stop that only asks (the run itself says it is stopping, then how it ended, so its last
word is the status that stays), and a run whose every ending leaves the page usable."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import gradio as gr

from .texts import MEMORY_FULL

log = logging.getLogger(__name__)

try:  # glibc's, to give freed memory back (`give_back_memory`); None elsewhere
    _MALLOC_TRIM: Callable[[int], int] | None = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):
    _MALLOC_TRIM = None

T = TypeVar("T")
# The trainer thread's niceness (0 normal, 19 lowest): it takes a core only when no request wants it.
TRAINER_NICENESS = 10

# The Train and Stop buttons when no run goes on.
IDLE: dict[str, Any] = {"train": gr.update(interactive=True), "stop": gr.update(interactive=False)}


@dataclass(kw_only=True)
class RunState:
    """What each trainer tab keeps of a page's run: whether one trains, whether Stop was pressed,
    and when the page was last heard from. (Keyword-only: a tab's session adds fields of its own
    with or without defaults.)"""

    training: bool = False
    stop_requested: bool = False
    used: float = field(default_factory=time.monotonic)
    page: str = ""  # the page's key (`page_key`), set by `Sessions`: its share of the trainer


S = TypeVar("S", bound=RunState)


class Sessions(Generic[S]):
    """Each page's state, by Gradio's session hash: no page sees another's. A page unused for
    ``ttl_seconds`` (and not training) is forgotten, as is one that closes; ``forget`` frees what
    a session holds besides memory (its files)."""

    def __init__(self, make: Callable[[], S], ttl_seconds: float, forget: Callable[[S], None] | None = None):
        self.make, self.ttl, self.forget = make, ttl_seconds, forget
        self._sessions: dict[str, S] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> S:
        with self._lock:
            now = time.monotonic()
            stale = [k for k, s in self._sessions.items() if not s.training and now - s.used > self.ttl]
            gone = [self._sessions.pop(k) for k in stale]  # pages that vanished without closing
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = self.make()
                session.page = key
            session.used = now
        for s in gone:
            self._forget(s)
        return session

    def drop(self, key: str) -> None:
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            session.stop_requested = True  # a run still training stops at its next epoch
            self._forget(session)
            give_back_memory()

    def _forget(self, session: S) -> None:
        if self.forget is not None:
            self.forget(session)

    def __len__(self) -> int:
        return len(self._sessions)


def running(session: RunState) -> dict[str, Any]:
    """The Train and Stop buttons while a run goes on: Stop is live until it is pressed."""
    return {"train": gr.update(interactive=False), "stop": gr.update(interactive=not session.stop_requested)}


def ask_to_stop(session: RunState) -> Any:
    """Stop: ask the page's run to end after its epoch. Only the Stop button changes (disabled);
    the run writes the status."""
    if session.training:
        session.stop_requested = True
    return gr.update(interactive=False)


def guarded_run(
    session: RunState,
    steps: Iterator[tuple],
    outputs: Callable[..., tuple],
    expected: tuple[type[Exception], ...],
    what: str,
    reason: Callable[[Exception], str] = str,
) -> Iterator[tuple]:
    """``steps``' page updates, and whatever ends them leaves the page usable: an ``expected``
    error's ``reason`` and a bug's one line (its story in the server's log) on the status line,
    the buttons idle, the session free for its next run."""
    session.training, session.stop_requested = True, False
    try:
        yield from steps
    except expected as e:
        yield outputs(status=f"\u26a0\ufe0f {reason(e)}", **IDLE)
    except Exception as e:
        log.exception("%s failed", what)
        yield outputs(status=f"\u26a0\ufe0f The {what} failed on the server ({type(e).__name__}); try again.", **IDLE)
    finally:
        session.training = False


def give_back_memory() -> None:
    """Collect what was freed and hand the free heap back to the system (glibc's ``malloc_trim``):
    otherwise a closed page's labs stay in the server's resident memory, free but not returned."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def resident_megabytes(pid: int | str = "self") -> float:
    """A process's resident memory (VmRSS) in MB, this one's by default; 0 where there is no /proc
    to read it from."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return 0.0


@dataclass(frozen=True)
class MemoryBudget:
    """The resident memory past which the server starts no new run (``MSA_MEMORY_MB``; 12 GB by
    default, of a free Space's 16, leaving room for the uploads being read and the page's own
    requests). The budget is read from the process as a whole, so it holds whatever holds memory:
    the models, the sessions' labs and checkpoints, the kept runs."""

    megabytes: float = 12 * 1024
    measure: Callable[[], float] = resident_megabytes

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> MemoryBudget:
        return cls(float(env.get("MSA_MEMORY_MB") or cls.megabytes))

    def refusal(self, release: Callable[[], object] = lambda: None) -> str | None:
        """None when a run may start; past the budget, ``release`` first gives back what may go
        (the kept runs), and if that is not enough, the line the page shows instead of a run."""
        if self.measure() <= self.megabytes:
            return None
        release()
        give_back_memory()
        used = self.measure()
        if used <= self.megabytes:
            return None
        log.warning("a run was refused: %.0f MB resident, past the budget of %.0f MB", used, self.megabytes)
        return MEMORY_FULL.format(used=used / 1024, budget=self.megabytes / 1024)


@dataclass(eq=False)
class _Place:
    """A run's place in the trainer's line."""

    work: float  # clips x epochs x models: what the estimate of the wait multiplies
    kind: str  # "lab" or "finetune": each kind's seconds per unit of work are timed apart
    round: int  # the page's how-manieth run since the trainer was last idle (fair share)
    background: bool


class TrainerSlot:
    """One run trains at a time, the Lab's or a fine-tuning (a Space has two cores, and the page's
    Analyse requests keep the other); the rest wait, each told its place and, once a run of each
    kind ahead has been timed here, about how long: the work ahead (as each run states it: clips x
    epochs x models) at the seconds per unit this server measured.

    The order is a fair share: a page's second run goes behind every other page's first that waits
    (then by the order asked), so that no page holds the trainer with repeated runs while others
    wait; background runs (the lesson prepared on start) go behind every run a person asked for."""

    def __init__(self, budget: MemoryBudget | None = None) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="trainer", initializer=_lower_priority)
        self.budget = budget if budget is not None else MemoryBudget.from_env()  # no run starts past it
        self._cond = threading.Condition()
        self._queue: list[_Place] = []  # the one training first
        self._rounds: dict[str, int] = {}  # runs each page has had in line since the trainer was idle
        self._seconds_per_work: dict[str, float] = {}
        self._started = 0.0

    def on_trainer(self, steps: Iterator[T]) -> Iterator[T]:
        """``steps`` advanced on the trainer's own thread, at a lower CPU priority than the page's
        other work: while a run trains, an Analyse request still gets both cores when it asks.
        (A thread of its own: Gradio's pool threads, once lowered, could not be raised again
        without privileges, and would slow whatever request they serve next.)"""
        try:
            while True:
                try:
                    item = self._thread.submit(next, steps).result()
                except StopIteration:
                    return
                yield item
        finally:  # stopped early or done: the steps end on the thread they ran on
            close = getattr(steps, "close", None)
            if close is not None:
                self._thread.submit(close).result()

    def join(self, work: float, owner: str | None = None, background: bool = False, kind: str = "lab") -> object:
        """A place in the line for a run of ``work`` units asked for by the page ``owner``."""
        with self._cond:
            rank = 0
            if owner is not None:
                rank = self._rounds.get(owner, 0)
                self._rounds[owner] = rank + 1
            place = _Place(work, kind, rank, background)
            # Before the first waiting run (never the one training) that is later in the share.
            later = (i for i in range(1, len(self._queue)) if self._behind(place, self._queue[i]))
            self._queue.insert(next(later, len(self._queue)), place)
        return place

    @staticmethod
    def _behind(new: _Place, waiting: _Place) -> bool:
        """Whether ``waiting`` goes after ``new``: a background run after any a person asked for, a
        page's later round after an earlier one."""
        if new.background:
            return False
        return waiting.background or waiting.round > new.round

    def wait(self, ticket: object, timeout: float) -> bool:
        """Whether it is ``ticket``'s turn (waiting at most ``timeout`` seconds for it)."""
        with self._cond:
            turn = self._cond.wait_for(lambda: self._queue[0] is ticket, timeout)
            if turn and not self._started:
                self._started = time.monotonic()
            return turn

    def ahead(self, ticket: object) -> tuple[int, float | None]:
        """How many runs are before ``ticket`` and about how many seconds they need (None while a
        kind of run ahead has not been timed on this server)."""
        with self._cond:
            place = self._queue.index(ticket)  # type: ignore[arg-type]
            rates = [self._seconds_per_work.get(p.kind) for p in self._queue[:place]]
            if any(r is None for r in rates):
                return place, None
            work = sum(p.work * r for p, r in zip(self._queue[:place], rates))  # type: ignore[operator]
            done = time.monotonic() - self._started if self._started and place else 0.0
            return place, max(0.0, work - done)

    def leave(self, ticket: object, trained: bool = False) -> None:
        """``ticket`` trained (``trained``: timed, to estimate the next waits) or left the line."""
        with self._cond:
            i = self._queue.index(ticket)  # type: ignore[arg-type]
            place = self._queue.pop(i)
            if i == 0:
                if trained and self._started and place.work > 0:
                    rate = (time.monotonic() - self._started) / place.work
                    old = self._seconds_per_work.get(place.kind)
                    self._seconds_per_work[place.kind] = rate if old is None else 0.5 * (old + rate)
                self._started = 0.0
            if not self._queue:
                self._rounds.clear()  # the share starts again when no one waits
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._queue)


def _lower_priority() -> None:
    """This thread (alone) to a lower CPU priority; nothing where the system does not allow it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), TRAINER_NICENESS)
    except (OSError, AttributeError):
        pass


def wait_turn(slot: TrainerSlot, ticket: object, session: RunState, outputs: Callable[..., tuple]) -> Iterator[tuple]:
    """Wait for ``ticket``'s turn, showing its place as it changes; Stop leaves the line
    (`LeftTheLine`)."""
    shown = ""
    while not slot.wait(ticket, 0.5):
        if session.stop_requested:
            raise LeftTheLine("left the line before training: nothing was trained")
        line = waiting_line(*slot.ahead(ticket))
        if line != shown:
            shown = line
            yield outputs(status=line, **running(session))


class LeftTheLine(Exception):
    """Stop pressed while a run waited for the trainer."""


def waiting_line(place: int, seconds: float | None) -> str:
    """A queued run's place, in words."""
    runs = "1 run" if place == 1 else f"{place} runs"
    about = f", about {seconds:.0f} s" if seconds is not None else ""
    return f"Waiting for the trainer: {runs} ahead{about}. Stop leaves the queue."


__all__ = [
    "IDLE",
    "LeftTheLine",
    "RunState",
    "Sessions",
    "TrainerSlot",
    "ask_to_stop",
    "guarded_run",
    "running",
    "wait_turn",
    "waiting_line",
]
