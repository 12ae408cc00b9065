"""What the two trainer tabs (the Fusion Lab, Train) share: each page's session with one run at a
time, a Stop that only asks (the run itself says it is stopping, then how it ended, so its last
word is the status that stays), and a run whose every ending leaves the page usable."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import gradio as gr

log = logging.getLogger(__name__)

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


class TrainerSlot:
    """One run trains at a time, the Lab's or a fine-tuning (a Space has two cores, and the page's
    Analyse requests keep the other); the rest wait in the order they asked, each told its place
    and, once a run of each kind ahead has been timed here, about how long: the work ahead (as
    each run states it: clips x epochs x models) at the seconds per unit this server measured."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[object, float, str]] = []  # (ticket, work, kind), the one training first
        self._background: set[object] = set()
        self._seconds_per_work: dict[str, float] = {}
        self._started = 0.0

    def join(self, work: float, background: bool = False, kind: str = "lab") -> object:
        """A place in the line; a ``background`` run (the lesson prepared on start) goes behind
        every run a person asked for, even one who asks later."""
        ticket = object()
        with self._cond:
            place = len(self._queue)
            if not background:  # before the first waiting background run (never the one training)
                place = next((i for i in range(1, len(self._queue)) if self._queue[i][0] in self._background), place)
            else:
                self._background.add(ticket)
            self._queue.insert(place, (ticket, work, kind))
        return ticket

    def wait(self, ticket: object, timeout: float) -> bool:
        """Whether it is ``ticket``'s turn (waiting at most ``timeout`` seconds for it)."""
        with self._cond:
            turn = self._cond.wait_for(lambda: self._queue[0][0] is ticket, timeout)
            if turn and not self._started:
                self._started = time.monotonic()
            return turn

    def ahead(self, ticket: object) -> tuple[int, float | None]:
        """How many runs are before ``ticket`` and about how many seconds they need (None while a
        kind of run ahead has not been timed on this server)."""
        with self._cond:
            place = next(i for i, (t, _, _) in enumerate(self._queue) if t is ticket)
            rates = [self._seconds_per_work.get(kind) for _, _, kind in self._queue[:place]]
            if any(r is None for r in rates):
                return place, None
            work = sum(w * r for (_, w, _), r in zip(self._queue[:place], rates))  # type: ignore[operator]
            done = time.monotonic() - self._started if self._started and place else 0.0
            return place, max(0.0, work - done)

    def leave(self, ticket: object, trained: bool = False) -> None:
        """``ticket`` trained (``trained``: timed, to estimate the next waits) or left the line."""
        with self._cond:
            i = next(i for i, (t, _, _) in enumerate(self._queue) if t is ticket)
            _, work, kind = self._queue.pop(i)
            self._background.discard(ticket)
            if i == 0:
                if trained and self._started and work > 0:
                    rate = (time.monotonic() - self._started) / work
                    old = self._seconds_per_work.get(kind)
                    self._seconds_per_work[kind] = rate if old is None else 0.5 * (old + rate)
                self._started = 0.0
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._queue)


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
