"""A class on one server (issue 35): a lab run is a pure function of its settings, so a run
trained once is served to everyone who asks for the same settings; identical runs asked for
meanwhile follow the one training; other runs wait their turn and are told their place."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from msa.lab.cache import InFlight, KeptRun, RunCache, run_key
from msa.lab.recipe import Recipe
from msa.lab.run import LabRun, run_lab
from msa.lab.worlds import preset

gr = pytest.importorskip("gradio")

from test_lab import Request, _settings, checkpoints  # noqa: E402,F401

from msa.app.lab_tab import CLIP_OUTPUTS, SETTINGS, TRAIN_OUTPUTS, LabLimits, LabTab  # noqa: E402
from msa.app.texts import FOLLOWING, MEMORY_FULL, REPLAYED  # noqa: E402
from msa.app.trainer import MemoryBudget, TrainerSlot, resident_megabytes, waiting_line  # noqa: E402

SMALL = dict(clips=100, seed=4)


def _numbers(result: dict) -> dict:
    """A result's numbers without its timings (wall-clock seconds differ between two runs)."""
    out = {k: v for k, v in result.items() if k != "train_seconds"}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in result["history"]]
    out["variants"] = {
        n: {k: v for k, v in var.items() if k not in ("train_seconds", "history")}
        for n, var in result["variants"].items()
    }
    return out


def test_the_same_settings_give_the_same_numbers() -> None:
    """The cache's premise: on one thread, a run is a pure function of its settings."""
    world, recipes = preset("face-flips", **SMALL), [Recipe(epochs=2, seed=3), Recipe(epochs=2, seed=3, gates="none")]
    a, b = run_lab(world, recipes).to_dict(), run_lab(world, recipes).to_dict()
    assert _numbers(a) == _numbers(b)
    c = run_lab(world, [Recipe(epochs=2, seed=4), recipes[1]]).to_dict()  # another seed: other numbers
    assert _numbers(c)["test_mae"] != _numbers(a)["test_mae"]


def test_every_setting_is_in_the_key() -> None:
    world, recipe = preset("face-flips", **SMALL), Recipe(epochs=2)
    key = run_key(world, [recipe])
    assert run_key(preset("face-flips", **SMALL), [Recipe(epochs=2)]) == key  # equal settings, one run
    changed = [
        run_key(
            dataclasses.replace(
                world, **{f.name: getattr(world, f.name) + (1 if f.name in ("clips", "seed") else 0.1)}
            ),
            [recipe],
        )
        for f in dataclasses.fields(world)
        if f.name in ("clips", "seed") or isinstance(getattr(world, f.name), float)
    ]
    changed += [
        run_key(world, [dataclasses.replace(recipe, **change)])
        for change in ({"epochs": 3}, {"seed": 1}, {"gates": "none"}, {"cmd": False}, {"mi": False})
    ]
    changed.append(run_key(world, [recipe, dataclasses.replace(recipe, gates="none")]))  # a second model
    assert len(set(changed)) == len(changed) and key not in changed


def _kept(seed: int) -> KeptRun:
    run = LabRun(preset("words-only", clips=20, seed=seed), [Recipe(epochs=1)])
    progress = list(run.train())
    return KeptRun(run, run.finish(), progress)


def test_the_cache_keeps_the_recently_used_within_its_bounds() -> None:
    runs = [_kept(s) for s in range(3)]
    assert all(k.nbytes > 0 for k in runs)
    cache = RunCache(max_runs=2, max_bytes=10**9)
    for i, kept in enumerate(runs[:2]):
        assert cache.claim(f"k{i}")[0] == "train"
        cache.land(f"k{i}", kept)
    assert cache.claim("k0") == ("kept", runs[0])  # used: k1 is now the least recent
    cache.claim("k2")
    cache.land("k2", runs[2])
    assert "k1" not in cache and "k0" in cache and "k2" in cache and len(cache) == 2
    # By size: room for one run only.
    small = RunCache(max_runs=10, max_bytes=runs[0].nbytes + runs[1].nbytes // 2)
    for i, kept in enumerate(runs[:2]):
        small.claim(f"k{i}")
        small.land(f"k{i}", kept)
    assert len(small) == 1 and "k1" in small and small.nbytes <= small.max_bytes
    # A run that ended early is not kept: the next request trains.
    small.claim("x")
    small.land("x", None, "stopped by you")
    assert small.claim("x")[0] == "train"


def test_identical_requests_while_one_trains_follow_it() -> None:
    cache = RunCache()
    kind, flight = cache.claim("k")
    assert kind == "train" and isinstance(flight, InFlight)
    assert cache.claim("k") == ("follow", flight)
    kept = _kept(0)
    woke = threading.Event()
    threading.Thread(target=lambda: flight.done.wait(5) and woke.set()).start()
    cache.land("k", kept)
    assert woke.wait(5) and flight.kept is kept and cache.claim("k") == ("kept", kept)


def test_a_repeated_run_is_a_replay_and_a_changed_one_trains(checkpoints) -> None:  # noqa: F811
    """Bob asks for alice's settings: served from her run (marked a replay, the same numbers,
    nothing trained); a changed seed trains anew."""
    tab = LabTab(checkpoints, LabLimits())
    settings = _settings(preset="face-flips", **SMALL)

    def train(who: str, values: list) -> list[dict]:
        return [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in tab.train(Request(who), *values)]

    alice = train("alice", settings)
    assert not any(REPLAYED in str(o["status"]) for o in alice) and len(tab.runs) == 1
    bob = train("bob", settings)
    assert bob[0]["status"].startswith(REPLAYED) and bob[-1]["status"].startswith(REPLAYED)
    assert (
        sum(o["loss_plot"] is not None and not isinstance(o["loss_plot"], dict) for o in bob) >= 3
    )  # drawn as it goes
    assert bob[-1]["results"] == alice[-1]["results"] and bob[-1]["train"]["interactive"]
    assert tab.sessions.get("bob").run is tab.sessions.get("alice").run  # one run, two pages' views
    assert tab.sessions.get("bob").explorer is not tab.sessions.get("alice").explorer
    carol = train("carol", _settings(preset="face-flips", clips=100, seed=5))
    assert not any(REPLAYED in str(o["status"]) for o in carol) and len(tab.runs) == 2


def test_a_second_page_follows_an_identical_run_and_another_waits_its_turn(checkpoints) -> None:  # noqa: F811
    tab = LabTab(checkpoints, LabLimits())
    same = _settings(preset="voice-adds", clips=100, seed=6, epochs=3)
    first = tab.train(Request("dan"), *same)
    next(first)  # dan's run has the trainer
    assert tab.slot._rounds == {"dan": 1}  # the page's share is counted
    follower = _in_thread(tab, "eve", same)
    for _ in range(200):  # eve's request has claimed the run and follows it
        if tab.sessions.get("eve").training:
            break
        threading.Event().wait(0.05)
    other = tab.train(Request("fay"), *_settings(preset="voice-adds", clips=100, seed=7, epochs=1))
    waiting = dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, next(other)))
    assert waiting["status"] == waiting_line(1, None), waiting["status"]  # not timed yet: no estimate
    dan = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in first]
    rest = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in other]
    eve = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in follower.result(timeout=120)]
    assert any(str(o["status"]).startswith(FOLLOWING) for o in eve)
    assert eve[-1]["results"] == dan[-1]["results"]
    assert "Trained in" in rest[-1]["status"] and len(tab.runs) == 2 and len(tab.slot) == 0


def _in_thread(tab: LabTab, who: str, values: list):  # a page whose request runs beside another's
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    future = pool.submit(lambda: list(tab.train(Request(who), *values)))
    pool.shutdown(wait=False)
    return future


def test_the_slot_estimates_from_the_runs_it_timed() -> None:
    slot = TrainerSlot()
    a, b = slot.join(100.0), slot.join(50.0)
    assert slot.wait(a, 0) and not slot.wait(b, 0)
    assert slot.ahead(b) == (1, None)
    slot.leave(a, trained=True)
    c = slot.join(10.0)
    assert slot.wait(b, 0)
    place, seconds = slot.ahead(c)
    assert place == 1 and seconds is not None and seconds >= 0
    slot.leave(b)  # left, not timed
    assert slot.wait(c, 0) and len(slot) == 1
    assert waiting_line(2, 31.4) == "Waiting for the trainer: 2 runs ahead, about 31 s. Stop leaves the queue."


@pytest.mark.slow  # trains the lesson's six runs
def test_the_lesson_is_prepared_behind_the_learners_and_then_served(checkpoints) -> None:  # noqa: F811
    """On start the app trains each lesson step at the page's first settings; a learner who sets
    up a step while it is being prepared is told so, and one who trains it after is served it."""
    from msa.app.lab_tab import initial_settings
    from msa.lab.lesson import LESSON

    tab = LabTab(checkpoints, LabLimits(max_clips=100))
    initial = list(initial_settings(100).values())
    step = LESSON[0]
    out = tab.set_up_step(step.title, "http://host/", *initial)
    values = {**dict(zip(SETTINGS, initial)), **{k: u["value"] for k, u in zip(SETTINGS, out) if "value" in u}}
    assert values["clips"] == 100  # within this server's limit (the world's own is 600)
    key = run_key(*tab_settings(values))
    tab.runs.claim(key)  # as if it were being prepared now
    assert "still being prepared" in tab.set_up_step(step.title, "http://host/", *initial)[len(SETTINGS)]
    tab.runs.land(key, None)

    tab.prepare_lesson(LESSON[:2])
    assert len(tab.runs) == 2 and len(tab.slot) == 0
    shown = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in tab.train(Request("gus"), *values.values())]
    assert shown[0]["status"].startswith(REPLAYED) and shown[-1]["train"]["interactive"]
    assert "still being prepared" not in tab.set_up_step(step.title, "http://host/", *initial)[len(SETTINGS)]


def test_a_learner_goes_before_the_lesson_being_prepared() -> None:
    slot = TrainerSlot()
    first = slot.join(10.0, background=True)
    later_background = slot.join(10.0, background=True)
    learner = slot.join(10.0)
    assert slot.wait(first, 0)  # the one training keeps the trainer
    assert slot.ahead(learner)[0] == 1 and slot.ahead(later_background)[0] == 2


def test_past_the_memory_budget_the_kept_runs_go_first_then_runs_are_refused(checkpoints) -> None:  # noqa: F811
    """The server's resident memory (measured: here a stand-in) past the budget: the kept runs are
    released and the run goes ahead if that is enough; else the page says why, and nothing is
    left claimed, queued or training."""
    base = [500.0]
    slot = TrainerSlot(MemoryBudget(1000, lambda: base[0] + 800 * len(tab.runs)))
    tab = LabTab(checkpoints, LabLimits(), slot)
    assert tab.slot is slot  # the one the page shares with the Train tab (an empty line is falsy)
    first = _settings(preset="voice-adds", clips=100, seed=8, epochs=1)
    list(tab.train(Request("ida"), *first))
    assert len(tab.runs) == 1
    shown = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in tab.train(Request("ida"), *_settings(seed=9))]
    assert "Trained in" in shown[-1]["status"] and len(tab.runs) == 1  # the first was released for it
    base[0] = 1500.0  # past the budget with no run kept
    refused = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in tab.train(Request("jo"), *first)]
    assert len(refused) == 1 and MEMORY_FULL.format(used=1.5, budget=1000 / 1024) in refused[0]["status"]
    assert len(tab.runs) == 0 and len(tab.slot) == 0 and not tab.sessions.get("jo").training
    assert resident_megabytes() > 0  # the real measure reads this process


def test_stop_on_a_replay_and_a_page_leaving_mid_run_leave_nothing_behind(checkpoints) -> None:  # noqa: F811
    """A page closed mid-run: its run stops at the epoch's end, is not kept, and frees the trainer
    and its claim (the next page to ask trains it anew). Stop on a replay: the results at once,
    the kept run as it was for everyone else."""
    tab = LabTab(checkpoints, LabLimits())
    settings = _settings(preset="voice-adds", clips=100, seed=11, epochs=4)
    key = run_key(*tab_settings(dict(zip(SETTINGS, settings))))
    leaving = tab.train(Request("kim"), *settings)
    for out in leaving:
        if str(dict(zip(TRAIN_OUTPUTS, out))["status"]).startswith("Training"):
            break  # an epoch has ended
    tab.page_closed(Request("kim"))
    list(leaving)  # Gradio runs the generator out; the run stops at this epoch's end
    assert len(tab.sessions) == 0 and len(tab.slot) == 0 and tab.runs.state(key) is None

    lee = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in tab.train(Request("lee"), *settings)]
    assert "Trained in" in lee[-1]["status"] and tab.runs.state(key) == "kept"
    replay = tab.train(Request("mia"), *settings)
    assert dict(zip(TRAIN_OUTPUTS, next(replay)))["status"].startswith(REPLAYED)
    tab.stop(Request("mia"))
    rest = [dict(zip(TRAIN_OUTPUTS + CLIP_OUTPUTS, o)) for o in replay]
    assert len(rest) == 1 and rest[-1]["results"] == lee[-1]["results"] and rest[-1]["train"]["interactive"]
    assert not tab.sessions.get("mia").training and tab.runs.state(key) == "kept"
    assert tab.sessions.get("mia").explorer is not tab.sessions.get("lee").explorer


def test_a_pages_second_run_goes_behind_the_others_first() -> None:
    """Fair share: a page that asks again at once waits behind every other page's first run, even
    one asked for after it; a background run stays behind them all; once the trainer is idle the
    share starts again."""
    slot = TrainerSlot()
    ann = slot.join(10.0, "ann")
    prepared = slot.join(10.0, background=True)
    ben = slot.join(10.0, "ben")
    assert slot.wait(ann, 0)
    slot.leave(ann, trained=True)
    ann_again = slot.join(10.0, "ann")  # at once, before cy asks
    cy = slot.join(10.0, "cy")
    ann_third = slot.join(10.0, "ann")
    assert slot.wait(ben, 0)
    order = sorted([cy, ann_again, ann_third, prepared], key=lambda t: slot.ahead(t)[0])
    assert order == [cy, ann_again, ann_third, prepared]
    for ticket in (ben, cy, ann_again, ann_third, prepared):
        assert slot.wait(ticket, 0)
        slot.leave(ticket, trained=True)
    dan, ann_later = slot.join(10.0, "dan"), slot.join(10.0, "ann")  # a new round: the order asked
    eve = slot.join(10.0, "eve")
    assert [slot.ahead(t)[0] for t in (dan, ann_later, eve)] == [0, 1, 2]


def tab_settings(values: dict) -> tuple:
    from msa.app.lab_tab import read_settings

    world, recipes, _ = read_settings(values)
    return world, recipes
