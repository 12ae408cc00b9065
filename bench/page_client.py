"""A browser page's session against a running app, spoken over HTTP as Gradio's own page speaks.

The Lab's and the Train tab's events are private: hidden from the API and refused by
`gradio_client`. A page calls them anyway (that is what private means: for the page only), so a
load test that simulates learners does what their pages do:

- ``heartbeat/{session}``: held open while the page is; closing it ends the session (the app's
  ``unload`` handlers free its lab and checkpoints);
- ``run/predict?QUERY`` for an event with ``queue=False`` (the link's page-load handler reads the
  page address's query from it);
- ``queue/join`` then ``queue/data`` for a queued event, whose updates arrive as server-sent
  events (after the first, as diffs of the previous outputs: protocol ``sse_v3``).

For benchmarks, against 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from gradio_client.utils import apply_diff


@dataclass(frozen=True)
class PageConfig:
    """What a page learns from ``/config``: its components' first values and its events."""

    values: dict[int, Any]  # component id -> value on a fresh page
    elem_ids: dict[str, int]  # elem_id -> component id
    events: list[dict[str, Any]]  # the config's "dependencies"

    @classmethod
    def fetch(cls, url: str) -> PageConfig:
        config = httpx.get(url.rstrip("/") + "/config", timeout=30).raise_for_status().json()
        values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
        elem_ids = {c["props"]["elem_id"]: c["id"] for c in config["components"] if c.get("props", {}).get("elem_id")}
        return cls(values, elem_ids, config["dependencies"])

    def event(self, elem_id: str, trigger: str) -> dict[str, Any]:
        """The one event that ``trigger`` (e.g. "click") on the component ``elem_id`` starts."""
        target = self.elem_ids[elem_id]
        found = [e for e in self.events if [target, trigger] in [list(t) for t in e["targets"]]]
        if len(found) != 1:
            raise LookupError(f"{len(found)} events for {trigger} on #{elem_id}")
        return found[0]

    def event_with(self, inputs: list[int], output: int) -> dict[str, Any]:
        """The one event whose inputs are ``inputs`` and whose outputs include ``output``, for an
        event with no trigger of its own (a ``load(...).then(...)``)."""
        found = [e for e in self.events if e["inputs"] == inputs and output in e["outputs"]]
        if len(found) != 1:
            raise LookupError(f"{len(found)} events read {inputs} and write {output}")
        return found[0]


@dataclass
class Update:
    """One message of a queued event: its kind, every output as it now stands, and when."""

    kind: str  # "estimation", "process_starts", "process_generating", "process_completed", ...
    outputs: list[Any] | None
    at: float  # time.perf_counter()
    success: bool = True


def plain(value: Any) -> Any:
    """An output's value: ``gr.update(value=...)`` arrives as a dict marked "update"."""
    if isinstance(value, dict) and value.get("__type__") == "update":
        return value.get("value")
    return value


class PageSession:
    """One open page: its own session hash, heartbeat and events."""

    def __init__(self, url: str, timeout: float = 300) -> None:
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"a load test talks to this machine only, not {host}")
        self.url = url.rstrip("/") + "/"
        self.session = uuid.uuid4().hex[:12]
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def open(self) -> PageSession:
        """Hold the heartbeat open, as a page does while it is shown."""

        def beat() -> None:
            try:
                with self.http.stream("GET", f"gradio_api/heartbeat/{self.session}") as r:
                    for _ in r.iter_lines():
                        if self._closed.is_set():
                            return
            except httpx.HTTPError:
                pass

        self._heartbeat = threading.Thread(target=beat, daemon=True)
        self._heartbeat.start()
        return self

    def close(self) -> None:
        """Leave the page: the heartbeat ends and the app's unload handlers run."""
        self._closed.set()
        self.http.close()

    def call(self, event: dict[str, Any], data: list[Any], query: str = "") -> list[Any]:
        """An event with ``queue=False``; ``query`` is the page address's (``lab=1&...``)."""
        body = {"data": data, "fn_index": event["id"], "session_hash": self.session, "event_data": None}
        r = self.http.post("gradio_api/run/predict" + (f"?{query}" if query else ""), json=body)
        answer = r.raise_for_status().json()
        if "data" not in answer:
            raise RuntimeError(f"event {event['id']}: {str(answer)[:300]}")
        return answer["data"]

    def stream(self, event: dict[str, Any], data: list[Any]) -> Iterator[Update]:
        """A queued event's messages as they arrive, each with the outputs as they now stand."""
        body = {
            "data": data,
            "fn_index": event["id"],
            "session_hash": self.session,
            "event_data": None,
            "trigger_id": event["targets"][0][0] if event["targets"] else None,
        }
        event_id = self.http.post("gradio_api/queue/join", json=body).raise_for_status().json()["event_id"]
        outputs: list[Any] | None = None
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": self.session}) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") not in (None, event_id):
                    continue
                kind = msg.get("msg", "")
                now = time.perf_counter()
                if kind == "process_generating":
                    data_now = msg["output"]["data"]
                    outputs = (
                        list(data_now) if outputs is None else [apply_diff(o, d) for o, d in zip(outputs, data_now)]
                    )
                    yield Update(kind, outputs, now)
                elif kind == "process_completed":
                    out = msg.get("output", {})
                    yield Update(kind, out.get("data", outputs), now, bool(msg.get("success", False)))
                    return
                elif kind in ("unexpected_error", "server_stopped"):
                    yield Update(kind, outputs, now, False)
                    return
                elif kind != "heartbeat":
                    yield Update(kind, outputs, now)
        raise RuntimeError(f"the queue's stream ended before event {event_id} completed")
