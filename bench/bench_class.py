"""A class of thirty on one server (issue 35): the Lab under a teacher's link, Analyse beside it.

Starts ``python app.py`` on 127.0.0.1 with the lesson prepared in the background (as a Space
does), waits until it is, then plays a class through the page's own HTTP calls
(`bench.page_client`: each learner a page with its own session and heartbeat):

1. idle: ``--analysers`` clients send ``--idle-requests`` Analyse requests each (the public
   ``predict`` endpoint, users' own files: remuxed copies of the examples), one after another;
2. the class: ``--learners`` pages open the teacher's link to the lesson's step 3 within
   ``--within`` seconds and press Train; ``--custom`` more open the plain page, each changes the
   seed (their own settings, so a run of their own) and presses Train, one a second, in order;
   the same Analyse clients keep sending requests until every learner has a result;
3. the pages close (their sessions end) and the server's memory is read again.

Reported: per learner the seconds from pressing Train to the first point of the loss curve and
to the result, and how it was served (a replay of a kept run, following one in flight, or trained);
the custom runs' finishing order; Analyse latency under the class beside idle; errors; the
server's resident memory before the class, at its peak and after the pages closed, and the runs
the Lab keeps for everyone (a bounded cache, kept by design: the next class is served them).

    python -m bench.bench_class [--learners 30] [--custom 10] [--analysers 4] [--asr-model base]

Goals (issue 35): every lesson learner has a result within 20 s, median under 5 s; the custom
runs finish in the order asked; Analyse latency under load at most 1.5x idle (medians); 0 errors;
memory after the pages close within 10 % of before, beside the kept runs' growth (both are
printed). Exit status 1 when one is missed.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.load import EXAMPLES, HOST, percentile, rss_mb, user_copies
from bench.page_client import PageConfig, PageSession, plain

PREPARED = re.compile(r"the Lab's lesson: (\d+) steps ready in ([\d.]+) s")
KEPT = re.compile(r"the Lab keeps (\d+) runs, ([\d.]+) MB")


def kept_runs(log: Path) -> tuple[int, float]:
    """The runs the server's Lab keeps for everyone and their MB, as it last logged them."""
    found = KEPT.findall(log.read_text(errors="replace"))
    return (int(found[-1][0]), float(found[-1][1])) if found else (0, 0.0)


@dataclass
class Learner:
    """One page of the class: what it asked for and what it saw, in seconds from pressing Train."""

    kind: str  # "lesson" or "custom"
    order: int
    start_at: float  # seconds after the class began
    pressed: float = float("nan")  # time.perf_counter() when Train was pressed
    first_curve: float = float("nan")
    result: float = float("nan")
    status: str = ""
    error: str = ""
    statuses: list[str] = field(default_factory=list)

    @property
    def served(self) -> str:
        text = " ".join(self.statuses)
        for word in ("Replay", "Followed", "Following"):
            if word in text:
                return "replay" if word == "Replay" else "followed"
        return "trained"


class Analysers:
    """``n`` clients sending Analyse requests, one after another each, while ``running``."""

    def __init__(self, url: str, clips: list[Path], n: int) -> None:
        self.url, self.clips, self.n = url, clips, n
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def run(self, requests_each: int | None = None, until: threading.Event | None = None) -> None:
        def loop(k: int) -> None:
            from gradio_client import Client, handle_file

            client = Client(self.url, verbose=False)
            i = 0
            while (requests_each is None or i < requests_each) and not (until is not None and until.is_set()):
                clip = self.clips[(k + i) % len(self.clips)]
                t0 = time.perf_counter()
                try:
                    out = client.predict(handle_file(str(clip)), "", api_name="/predict")
                    if not isinstance(out, dict) or "score" not in out:
                        raise ValueError(f"unexpected answer {str(out)[:200]}")
                    with self.lock:
                        self.latencies.append(time.perf_counter() - t0)
                except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                    with self.lock:
                        self.errors.append(f"analyse {clip.name}: {type(e).__name__}: {e}")
                i += 1

        threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(self.n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class Memory:
    """The server's resident memory, sampled every ``every`` seconds while started."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        self.pid, self.every = pid, every
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class Class:
    """The page's Lab events and first values, and the learners' pages."""

    def __init__(self, url: str) -> None:
        from msa.app.lab_tab import SETTINGS, TRAIN_OUTPUTS, LabTab
        from msa.lab.lesson import LESSON

        self.url = url
        page = PageConfig.fetch(url)
        self.train = page.event("lab-train", "click")
        self.settings_ids = self.train["inputs"]  # the settings, in `SETTINGS`' order
        if len(self.settings_ids) != len(SETTINGS):
            raise RuntimeError(f"Train reads {len(self.settings_ids)} values; the Lab has {len(SETTINGS)} settings")
        self.fresh = [page.values[i] for i in self.settings_ids]
        address = page.elem_ids["lab-page-address"]
        self.from_link = page.event_with([address, *self.settings_ids], page.elem_ids["lab-status"])
        self.loss = TRAIN_OUTPUTS.index("loss_plot")
        self.status = TRAIN_OUTPUTS.index("status")
        self.results = TRAIN_OUTPUTS.index("results")
        self.seed = SETTINGS.index("seed")
        self.sessions: list[PageSession] = []
        self.lock = threading.Lock()
        # The teacher's link: step 3 of the lesson set up on a fresh page, as the page writes it.
        self.link = LabTab.lesson_step(LESSON[2].title, url, *self.fresh)[-1]
        if not self.link.startswith(url):
            raise RuntimeError(f"the lesson step's link is not this page's address: {self.link}")

    def learn(self, who: Learner, t0: float) -> None:
        """Open the page (the teacher's link, or the plain page for a custom run), press Train,
        follow the run to its result; the page stays open until the class ends."""
        time.sleep(max(0.0, t0 + who.start_at - time.perf_counter()))
        page = PageSession(self.url).open()
        with self.lock:
            self.sessions.append(page)
        try:
            link = self.link if who.kind == "lesson" else self.url
            opened = page.call(self.from_link, [link, *self.fresh], urlsplit(link).query)
            settings = [v if plain(o) is None else plain(o) for v, o in zip(self.fresh, opened)]
            if who.kind == "custom":
                settings[self.seed] = 1000 + who.order  # a run of its own
            who.pressed = time.perf_counter()
            final: list | None = None
            for update in page.stream(self.train, settings):
                if update.outputs is None:
                    continue
                status = str(plain(update.outputs[self.status]) or "")
                if status and (not who.statuses or who.statuses[-1] != status):
                    who.statuses.append(status)
                if math.isnan(who.first_curve) and plain(update.outputs[self.loss]):
                    who.first_curve = update.at - who.pressed
                if update.kind == "process_completed":
                    if not update.success:
                        raise RuntimeError(f"the run failed: {str(update.outputs)[:300]}")
                    who.result, who.status, final = update.at - who.pressed, status, update.outputs
            if final is None or not plain(final[self.results]):
                raise RuntimeError(f"no result; the page said: {who.statuses[-3:]}")
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            who.error = f"{who.kind} {who.order}: {type(e).__name__}: {e}"

    def leave(self) -> None:
        for page in self.sessions:
            page.close()


def wait_for_lesson(log: Path, timeout: float) -> tuple[int, float]:
    """Steps and seconds of the lesson's preparation, read from the app's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = PREPARED.search(log.read_text(errors="replace"))
        if found:
            return int(found.group(1)), float(found.group(2))
        time.sleep(1)
    raise RuntimeError(f"the lesson was not prepared within {timeout:g} s; see {log}")


def summary(xs: list[float]) -> str:
    if not xs:
        return "none"
    return f"median {statistics.median(xs):.1f} s, 95th pct {percentile(xs, 95):.1f} s, max {max(xs):.1f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--learners", type=int, default=30, help="pages opening the teacher's link")
    ap.add_argument("--within", type=float, default=10.0, help="seconds over which they open it")
    ap.add_argument("--custom", type=int, default=10, help="pages training settings of their own")
    ap.add_argument("--analysers", type=int, default=4, help="Analyse clients meanwhile")
    ap.add_argument("--idle-requests", type=int, default=3, help="Analyse requests per client on the idle server")
    ap.add_argument("--asr-model", choices=("base", "tiny.en"), default=None, help="the app's (default: base)")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds after the pages close before memory is read")
    args = ap.parse_args(argv)

    from gradio_client import Client, handle_file

    from msa.testing import free_port, launch_app, stop_app

    tmp = Path(tempfile.mkdtemp(prefix="msa-class-"))
    clips = user_copies(tmp / "clips")
    log = tmp / "app.log"
    port = free_port()
    app_args = ["--host", HOST] + (["--asr-model", args.asr_model] if args.asr_model else [])
    proc, ready_s = launch_app(
        app_args, port, log, env={"MSA_LAB_PREPARE": "1", "GRADIO_TEMP_DIR": str(tmp / "server_uploads")}
    )
    url = f"http://{HOST}:{port}/"
    try:
        lab = Class(url)  # the page's events, found before the long wait
        steps, prepared_s = wait_for_lesson(log, 900)
        warm = Client(url, verbose=False)
        for clip in EXAMPLES:  # first use of each code path
            warm.predict(handle_file(str(clip)), "", api_name="/predict")
        idle = Analysers(url, clips, args.analysers)
        idle.run(requests_each=args.idle_requests)
        rss_before, kept_before = rss_mb(proc.pid), kept_runs(log)

        learners = [Learner("lesson", i, args.within * i / max(1, args.learners)) for i in range(args.learners)]
        learners += [Learner("custom", i, 1.0 + i) for i in range(args.custom)]
        busy = Analysers(url, clips, args.analysers)
        done = threading.Event()
        with Memory(proc.pid) as memory:
            analysing = threading.Thread(target=busy.run, kwargs={"until": done}, daemon=True)
            analysing.start()
            t0 = time.perf_counter() + 0.5
            threads = [threading.Thread(target=lab.learn, args=(w, t0), daemon=True) for w in learners]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            done.set()
            analysing.join()
            lab.leave()
            time.sleep(args.settle)  # the pages' unload handlers run once their heartbeats end
        rss_after, kept_after = rss_mb(proc.pid), kept_runs(log)
        alive = proc.poll() is None
    finally:
        stop_app(proc, timeout=20)

    lesson = [w for w in learners if w.kind == "lesson"]
    custom = [w for w in learners if w.kind == "custom"]
    errors = [w.error for w in learners if w.error] + idle.errors + busy.errors
    print(f"app ready in {ready_s:.1f} s; the lesson's {steps} steps prepared in {prepared_s:.0f} s")
    print(f"teacher's link: {lab.link}\n")
    print("| learner | opened at (s) | served | first curve point (s) | result (s) |")
    print("|---|---:|---|---:|---:|")
    for w in learners:
        print(
            f"| {w.kind} {w.order} | {w.start_at:.1f} | {w.served if not w.error else 'error'} "
            f"| {w.first_curve:.1f} | {w.result:.1f} |"
        )
    lesson_results = [w.result for w in lesson if not w.error]
    print(f"\nlesson learners, to the first curve point: {summary([w.first_curve for w in lesson if not w.error])}")
    print(f"lesson learners, to the result: {summary(lesson_results)}")
    print(f"custom runs, to the result: {summary([w.result for w in custom if not w.error])}")
    # Asked: when each page pressed Train (opening a page under load takes a while, so pages
    # opened a second apart may press in another order).
    asked = [w.order for w in sorted((w for w in custom if not w.error), key=lambda w: w.pressed)]
    order = [w.order for w in sorted((w for w in custom if not w.error), key=lambda w: w.pressed + w.result)]
    print(f"custom runs finished in the order: {order} (asked: {asked})")
    idle_med = statistics.median(idle.latencies) if idle.latencies else float("nan")
    busy_med = statistics.median(busy.latencies) if busy.latencies else float("nan")
    print(
        f"\nAnalyse, idle: {len(idle.latencies)} requests, {summary(idle.latencies)}\n"
        f"Analyse, during the class: {len(busy.latencies)} requests, {summary(busy.latencies)} "
        f"({busy_med / idle_med:.2f}x idle's median)"
    )
    growth = (rss_after - rss_before) / rss_before * 100
    # The kept runs stay by design (the next class is served them), within their own bound.
    beside = (rss_after - rss_before - (kept_after[1] - kept_before[1])) / rss_before * 100
    print(
        f"\nserver memory (MB): before the class {rss_before:.0f}, peak {memory.peak:.0f}, "
        f"after the pages closed {rss_after:.0f} ({growth:+.1f} %); the runs kept for everyone: "
        f"{kept_before[0]} runs, {kept_before[1]:.0f} MB before, {kept_after[0]} runs, {kept_after[1]:.0f} MB after; "
        f"beside them {beside:+.1f} %"
    )
    for e in errors[:10]:
        print("error:", e)
    goals = {
        "every lesson learner within 20 s": len(lesson_results) == len(lesson) and max(lesson_results, default=0) <= 20,
        "lesson median under 5 s": bool(lesson_results) and statistics.median(lesson_results) < 5,
        "custom runs in the order asked": order == asked and len(order) == len(custom),
        "Analyse under load at most 1.5x idle": busy_med <= 1.5 * idle_med,
        "0 errors": not errors and alive,
        "memory back within 10 % (beside the kept runs)": beside <= 10,
    }
    print("\n" + "\n".join(f"{'met   ' if ok else 'MISSED'} {goal}" for goal, ok in goals.items()))
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
