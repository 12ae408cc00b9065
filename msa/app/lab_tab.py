"""The Fusion Lab tab: pick a world and a model, train it live, then look at any clip of the world
with the Analyse tab's views beside the world's truth.

The work is `msa.lab` (worlds, `LabRun`, `Explorer`); this module is the tab's layout, its
handlers and what a public Space needs: each browser session has its own lab (`LabSession`,
kept by `trainer.Sessions` under Gradio's session hash and dropped when the page closes), one run trains at a time on
the server (the rest wait in the queue, in order), and a run's size and time are capped
(`LabLimits`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from ..data.synthetic import WORLD_RANGES
from ..explain import wording
from ..lab.cache import InFlight, KeptRun, RunCache, run_key
from ..lab.explore import CUE_NAMES, ClipView, Explorer, clip_title
from ..lab.lesson import LESSON, Step
from ..lab.recipe import MAX_EPOCHS, Recipe
from ..lab.run import LabResult, LabRun, Progress
from ..lab.worlds import MAX_CLIPS, PRESETS, World, WorldError, preset
from . import plots
from .handlers import PICKER_WIDTH, WHAT_IF_CHOICES, parse_pick, parse_word, pick_choices, refused, word_choices
from .plots.lab import loss_figure, mark_cue, truth_figure
from .private import page_key
from .service import Checkpoints
from .texts import (
    FLIPPED_CREDIT,
    FOLLOWED,
    FOLLOWING,
    LAB_INTRO,
    LAB_SAVE_HELP,
    LAB_VIEWS_HELP,
    LINK_REPAIRED,
    REPLAYED,
    STEP_PREPARING,
)
from .trainer import IDLE, LeftTheLine, RunState, Sessions, TrainerSlot, ask_to_stop, guarded_run, running, wait_turn

log = logging.getLogger("msa.app")

WORLD_FIELDS = ("words", "voice", "face", "flip", "noise", "missing_voice", "missing_face", "clips", "seed")
RECIPE_FIELDS = ("gates", "cmd", "mi", "epochs")
SECOND_FIELDS = ("compare", "gates2", "cmd2", "mi2")
# The tab's settings, in the order the handlers receive them; every one of them goes in the link.
SETTINGS = ("preset", *WORLD_FIELDS, *RECIPE_FIELDS, *SECOND_FIELDS)
TRAIN_OUTPUTS = ("status", "loss_plot", "results", "truth_plot", "model_pick", "clip_pick", "train", "stop")
CLIP_OUTPUTS = ("clip_text", "clip_plot", "contrib_plot", "shares", "share_grid", "view_pick", "word_pick", "attention")
GATE_NAMES = {"LN gates (the paper)": "ln", "sigmoid gates": "sigmoid", "no gates": "none"}


@dataclass(frozen=True)
class LabLimits:
    """What one lab run may cost on this server.

    On a Hugging Face Space (``SPACE_ID`` is set) the defaults are those of a public page:
    1200 clips, 90 s of training, no saving into the shared checkpoint picker. Each can be set:
    ``MSA_LAB_MAX_CLIPS``, ``MSA_LAB_MAX_SECONDS`` (0: no limit), ``MSA_LAB_SAVE`` (0 or 1).
    Finished runs are kept for everyone who asks for the same settings (`msa.lab.cache`): at most
    ``MSA_LAB_KEEP_RUNS`` (16) runs and ``MSA_LAB_KEEP_MB`` (2048) MB of them. The app prepares the
    lesson's runs once it answers, behind any learner's (``MSA_LAB_PREPARE``, 1; 0 turns it off).
    """

    max_clips: int = MAX_CLIPS
    max_seconds: float | None = None
    can_save: bool = True
    keep_runs: int = 16
    keep_megabytes: float = 2048.0
    prepare_lesson: bool = False  # train the lesson's steps once the server answers (`MSA_LAB_PREPARE`)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> LabLimits:
        env = dict(os.environ) if env is None else env
        public = bool(env.get("SPACE_ID"))
        clips = int(env.get("MSA_LAB_MAX_CLIPS") or (1200 if public else MAX_CLIPS))
        seconds = float(env.get("MSA_LAB_MAX_SECONDS") or (90 if public else 0)) or None
        save = env.get("MSA_LAB_SAVE", "0" if public else "1") not in ("0", "false", "no", "")
        keep = int(env.get("MSA_LAB_KEEP_RUNS") or cls.keep_runs)
        megabytes = float(env.get("MSA_LAB_KEEP_MB") or cls.keep_megabytes)
        prepare = env.get("MSA_LAB_PREPARE", "1") not in ("0", "false", "no", "")
        return cls(min(clips, MAX_CLIPS), seconds, save, keep, megabytes, prepare)


@dataclass
class LabSession(RunState):
    """One browser session's lab: its run (while and after training) and its explorer."""

    run: LabRun | None = None
    explorer: Explorer | None = None


def read_settings(values: dict[str, Any]) -> tuple[World, list[Recipe], str]:
    """The world and the recipes the tab's settings describe (WorldError when out of range)."""
    name = values.get("preset") or "face-flips"
    try:
        world = preset(name, **{k: _number(k, values[k]) for k in WORLD_FIELDS})
        first = Recipe(
            gates=GATE_NAMES.get(values["gates"], values["gates"]),
            cmd=bool(values["cmd"]),
            mi=bool(values["mi"]),
            seed=int(values["seed"]),
            epochs=int(values["epochs"]),
        )
    except (TypeError, ValueError) as e:
        raise WorldError(str(e)) from None
    recipes = [first]
    if values.get("compare"):
        gates = GATE_NAMES.get(values["gates2"], values["gates2"])
        recipes.append(dataclasses.replace(first, gates=gates, cmd=bool(values["cmd2"]), mi=bool(values["mi2"])))
    return world, recipes, name


def _number(name: str, value: Any) -> float | int:
    if value is None or value == "":
        raise WorldError(f"{name} is empty: give a number")
    return int(value) if name in ("clips", "seed") else float(value)


def settings_query(values: dict[str, Any]) -> str:
    """The settings as a URL query (``?lab=1&preset=face-flips&flip=0.3...``): a link a teacher hands out."""
    out = {"lab": "1"}
    for k in SETTINGS:
        v = values.get(k)
        if isinstance(v, bool):
            v = int(v)
        elif k in ("gates", "gates2"):
            v = GATE_NAMES.get(v, v)
        out[k] = f"{v:g}" if isinstance(v, float) else str(v)
    return urllib.parse.urlencode(out)


def initial_settings(max_clips: int) -> dict[str, Any]:
    """The tab's settings before anyone changes them (the lesson is prepared at these)."""
    world = PRESETS["face-flips"]
    return {
        "preset": "face-flips",
        **{k: getattr(world, k) for k in WORLD_FIELDS},
        "clips": min(world.clips, max_clips),
        "seed": 0,
        "gates": "LN gates (the paper)",
        "cmd": True,
        "mi": True,
        "epochs": Recipe.epochs,
        "compare": False,
        "gates2": "no gates",
        "cmd2": True,
        "mi2": True,
    }


def link_ranges(max_clips: int) -> dict[str, tuple[float, float]]:
    """Each numeric setting's range on this server (a Space trains fewer clips)."""
    return {**WORLD_RANGES, "clips": (20, max_clips), "seed": (0, 2**31 - 1), "epochs": (1, MAX_EPOCHS)}


def settings_from_query(query: dict[str, str], max_clips: int = MAX_CLIPS) -> tuple[dict[str, Any], list[str]]:
    """The settings a link carries, and what was changed to read it: a number out of range is
    moved to the nearest end of its range (a clip count to its step of 20), a value that cannot be
    read and an unknown key are left out (the control keeps its own). Never an error: a teacher's
    link with a typo still opens the Lab."""
    out: dict[str, Any] = {}
    changed: list[str] = []
    by_code = {v: k for k, v in GATE_NAMES.items()}
    ranges = link_ranges(max_clips)
    for k, raw in query.items():
        if k == "lab" or k.startswith("_"):  # the tab's own flag; a host's own parameters
            continue
        if k not in SETTINGS:
            changed.append(f"`{k}` is not a setting: left out")
        elif k == "preset":
            if raw in PRESETS:
                out[k] = raw
            else:
                changed.append(f"preset `{raw}` is not a world ({', '.join(PRESETS)}): left out")
        elif k in ("gates", "gates2"):
            if raw in by_code:
                out[k] = by_code[raw]
            else:
                changed.append(f"{k} `{raw}` is not one of {', '.join(by_code)}: left out")
        elif k in ("cmd", "mi", "compare", "cmd2", "mi2"):
            out[k] = raw.lower() in ("1", "true", "on", "yes")
        else:
            try:
                value = float(raw)
                if not np.isfinite(value):
                    raise ValueError
            except ValueError:
                changed.append(f"{k} `{raw}` is not a number: left out")
                continue
            lo, hi = ranges[k]
            near = min(max(value, lo), hi)
            if k == "clips":
                near = min(max(round(near / 20) * 20, lo), hi)
            if k in ("clips", "seed", "epochs"):
                near = int(round(near))
            if near != value:
                why = f"below {lo:g}" if value < lo else f"above {hi:g}" if value > hi else "between steps of 20"
                changed.append(f"{k} = {raw} is {why}: set to {near:g}")
            out[k] = near
    return out, changed


class LabTab:
    """The tab's handlers."""

    def __init__(self, checkpoints: Checkpoints, limits: LabLimits | None = None, slot: TrainerSlot | None = None):
        self.checkpoints = checkpoints
        self.limits = limits or LabLimits.from_env()
        self.sessions: Sessions[LabSession] = Sessions(LabSession, ttl_seconds=3600.0)
        self.runs = RunCache(self.limits.keep_runs, int(self.limits.keep_megabytes * 2**20))
        # Shared with the Train tab on the page: one trainer at a time. (`is None`: an empty line is falsy.)
        self.slot = slot if slot is not None else TrainerSlot()

    # -- settings -------------------------------------------------------------------------

    @staticmethod
    def preset_values(page: str, *values: Any) -> tuple:
        """The world sliders for the picked preset, then its rule and the link to the settings."""
        settings = dict(zip(SETTINGS, values))
        world = PRESETS.get(settings["preset"], PRESETS["face-flips"])
        sliders = {k: getattr(world, k) for k in WORLD_FIELDS if k != "seed"}
        return (*sliders.values(), *described(page, {**settings, **sliders}))

    @staticmethod
    def describe(page: str, *values: Any) -> tuple[str, str]:
        """The rule the settings make (or what is wrong with them), and the link to them."""
        return described(page, dict(zip(SETTINGS, values)))

    def from_link(self, request: gr.Request | None, page: str, *values: Any) -> tuple:
        """On page load: the settings a link carries over the controls' own, the Lab tab selected
        when it has any, and the rule and link of what the page now shows."""
        query = dict(request.query_params) if request is not None else {}
        found, changed = settings_from_query(query, self.limits.max_clips)
        if "preset" in found:  # the preset's world, then whatever the link changes
            world = PRESETS[found["preset"]]
            found = {**{k: getattr(world, k) for k in WORLD_FIELDS if k != "seed"}, **found}
        updates = [gr.update(value=found[k]) if k in found else gr.update() for k in SETTINGS]
        tab = gr.update(selected="lab") if query.get("lab") else gr.update()
        status = gr.update(value=LINK_REPAIRED + "; ".join(changed) + ".") if changed else gr.update()
        return (*updates, tab, status, *described(page, {**dict(zip(SETTINGS, values)), **found}))

    @staticmethod
    def lesson_step(title: str, page: str = "", *current: Any) -> tuple:
        """Set the tab up for a lesson step: its preset, changes, model(s) and question, with the
        rule and the link of the step's settings (the size, seed and epochs stay as they were)."""
        step = next((s for s in LESSON if s.title == title), LESSON[0])
        world = preset(step.preset, **step.world)
        recipe = {"gates": "ln", "cmd": True, "mi": True, **step.recipe}
        second = {**recipe, **(step.compare or {})}
        by_code = {v: k for k, v in GATE_NAMES.items()}
        values = {
            "preset": step.preset,
            **{k: getattr(world, k) for k in WORLD_FIELDS if k != "seed"},
            "gates": by_code[recipe["gates"]],
            "cmd": recipe["cmd"],
            "mi": recipe["mi"],
            "compare": step.compare is not None,
            "gates2": by_code[second["gates"]],
            "cmd2": second["cmd"],
            "mi2": second["mi"],
        }
        updates = [gr.update(value=values[k]) if k in values else gr.update() for k in SETTINGS]
        settings = {**dict(zip(SETTINGS, current)), **values}
        return (*updates, f"**{step.title}.** {step.question}", *described(page, settings))

    def set_up_step(self, title: str, page: str = "", *current: Any) -> tuple:
        """`lesson_step` on this server: the clips within its limit, and a line when the step's
        run is still being prepared (Train then follows it)."""
        out = list(self.lesson_step(title, page, *current))
        values = {**dict(zip(SETTINGS, current)), **_set_values(out[: len(SETTINGS)])}
        if values.get("clips", 0) > self.limits.max_clips:
            values["clips"] = self.limits.max_clips
            out[SETTINGS.index("clips")] = gr.update(value=values["clips"])
            out[-2:] = described(page, values)
        try:
            world, recipes, _ = read_settings(values)
        except WorldError:
            return tuple(out)
        if self.runs.state(run_key(world, recipes)) == "training":
            out[len(SETTINGS)] += "\n\n" + STEP_PREPARING
        return tuple(out)

    def prepare_lesson(self, steps: Sequence[Step] = LESSON) -> None:
        """Train each lesson step's run at the page's first settings, behind any learner's run, so
        that a class following the lesson is served kept runs (`msa.lab.cache`). For a thread of
        its own once the server answers; a step already kept or training is skipped."""
        initial = initial_settings(self.limits.max_clips)
        t0 = time.perf_counter()
        for step in steps:
            out = self.set_up_step(step.title, "", *initial.values())
            values = {**initial, **_set_values(out[: len(SETTINGS)])}
            try:
                world, recipes, name = read_settings(values)
                key = run_key(world, recipes)
                kind, flight = self.runs.claim(key)
                if kind != "train":
                    continue
                assert isinstance(flight, InFlight)
                run = LabRun(world, recipes, self.limits.max_seconds, name)
                for _ in self._steps(LabSession(), run, world, key, flight, background=True):
                    pass
            except Exception:  # a step that cannot be prepared is trained when a learner asks
                log.exception("preparing the lesson's step %r failed", step.title)
        log.info("the Lab's lesson: %d steps ready in %.0f s", len(steps), time.perf_counter() - t0)

    # -- training -------------------------------------------------------------------------

    def train(self, request: gr.Request | None, *values: Any) -> Iterator[tuple]:
        """Train the chosen model(s), yielding the loss plot after every epoch, then the results
        and the first test clip's views. (The request comes first: Gradio hands it only to a
        positional parameter, and the settings are many.)"""
        session = self.sessions.get(page_key(request))
        if session.training:
            yield self._outputs(
                status=refused("One run at a time", "This page's lab is already training: stop it or wait for it.")
            )
            return
        try:
            world, recipes, name = read_settings(dict(zip(SETTINGS, values)))
            if world.clips > self.limits.max_clips:
                raise WorldError(
                    f"clips = {world.clips}: this server trains at most {self.limits.max_clips} clips per run"
                )
            run = LabRun(world, recipes, self.limits.max_seconds, name)
        except WorldError as e:
            yield self._outputs(status=refused("Cannot train this", str(e)))
            return
        full = self.slot.budget.refusal(self.runs.release)
        if full:
            yield self._outputs(status=refused("Not now", full))
            return
        key = run_key(world, recipes)
        kind, entry = self.runs.claim(key)
        if isinstance(entry, KeptRun):
            steps = self._replay(session, entry, REPLAYED)
        elif kind == "follow":
            steps = self._follow(session, entry)
        else:
            session.run, session.explorer = run, None
            steps = self._steps(session, run, world, key, entry)
        yield from guarded_run(session, steps, self._outputs, (WorldError, LeftTheLine), "run")

    def _steps(
        self, session: LabSession, run: LabRun, world: World, key: str, flight: InFlight, background: bool = False
    ) -> Iterator[tuple]:
        """The run's page updates: the loss curve after each epoch, then the results (Stop: the
        epochs end there, each model keeping its best epoch so far). Those who ask for the same
        settings meanwhile follow ``flight``; a run that ends on its own is kept for everyone."""
        kept, ended = None, "it failed"
        work = world.clips * sum(r.epochs for r in [*run.recipes, run.recipes[0]])
        ticket = self.slot.join(work, session.page or None, background)
        epochs = self.slot.on_trainer(run.train())
        try:
            try:
                yield from wait_turn(self.slot, ticket, session, self._outputs)
            except LeftTheLine:
                ended = "the page that asked for it left the line"
                raise
            yield self._outputs(status=f"Making {world.clips} clips and reading their words\u2026", **running(session))
            for progress in epochs:
                flight.progress.append(progress)
                if session.stop_requested:
                    run.stop()
                    break
                histories = {v.name: v.history for v in run.variants if v.history}
                status = f"Training \u2014 {progress.line()} \u00b7 {progress.elapsed:.0f} s"
                yield self._outputs(status=status, loss_plot=loss_figure(histories), **running(session))
            epochs.close()
            result = run.finish()  # WorldError when stopped before the first epoch ended
            if run.stopped is None:
                kept = KeptRun(run, result, flight.progress)
        finally:
            epochs.close()
            self.slot.leave(ticket, trained=kept is not None)
            self.runs.land(key, kept, run.stopped or ended)
            log.info("the Lab keeps %d runs, %.0f MB", len(self.runs), self.runs.nbytes / 2**20)
        session.explorer = Explorer(run, self.checkpoints.default.predictor.extractor)
        results = self._results(run, result, session.explorer)
        if kept is not None:
            with kept.drawing:
                kept.drawn.setdefault("results", _copied(results))
        yield self._outputs(**results, **IDLE)

    def _replay(self, session: LabSession, kept: KeptRun, how: str) -> Iterator[tuple]:
        """A kept run, its curve drawn as if live but quickly (`REPLAY_SECONDS`), then its results,
        marked as a replay; this page gets its own views of the shared models."""
        frames, results = self._drawn(kept)
        last = frames[-1][0] if frames else 0
        for upto, figure in frames:
            if session.stop_requested:
                break
            status = f"{how} \u2014 epoch {upto} of {last}"
            yield self._outputs(status=status, loss_plot=figure, **running(session))
            time.sleep(REPLAY_SECONDS / len(frames))
        session.run = kept.run
        session.explorer = Explorer(kept.run, self.checkpoints.default.predictor.extractor)
        final = _copied(results)
        yield self._outputs(**{**final, "status": f"{how}. {final['status']}"}, **IDLE)

    def _drawn(self, kept: KeptRun) -> tuple[list[tuple[int, Any]], dict[str, Any]]:
        """A kept run's replay frames (the epoch shown, the curve up to it) and its results as the
        tab shows them, drawn once for every page that replays it: a class replaying one run at
        once would otherwise draw the same figures thirty times over on the server's two cores."""
        with kept.drawing:
            if "frames" not in kept.drawn:
                last = max((p.epoch for p in kept.progress), default=0)
                frames = min(REPLAY_FRAMES, last)
                uptos = [math.ceil(last * f / frames) for f in range(1, frames + 1)]
                kept.drawn["frames"] = [
                    (upto, loss_figure(_histories([p for p in kept.progress if p.epoch <= upto]))) for upto in uptos
                ]
            if "results" not in kept.drawn:
                explorer = Explorer(kept.run, self.checkpoints.default.predictor.extractor)
                kept.drawn["results"] = self._results(kept.run, kept.result, explorer)
            return kept.drawn["frames"], kept.drawn["results"]

    def _follow(self, session: LabSession, flight: InFlight) -> Iterator[tuple]:
        """The same settings are training for another page: its curve as it grows, then its results."""
        shown = -1
        while not flight.done.wait(FOLLOW_POLL_SECONDS):
            if session.stop_requested:
                raise WorldError("stopped following the identical run another page is training")
            if len(flight.progress) != shown:
                shown = len(flight.progress)
                last = f": {flight.progress[-1].line()}" if flight.progress else "\u2026"
                status = f"{FOLLOWING}{last}"
                loss = loss_figure(_histories(flight.progress)) if flight.progress else gr.update()
                yield self._outputs(status=status, loss_plot=loss, **running(session))
        if flight.kept is None:
            raise WorldError(
                f"the identical run this page followed ended early ({flight.ended}): press Train to run it"
            )
        yield from self._replay(session, flight.kept, FOLLOWED)

    def _results(self, run: LabRun, result: LabResult, explorer: Explorer) -> dict[str, Any]:
        """Everything the tab shows once training ended: the run's results and a first clip."""
        first = run.names[0]
        clips = [clip_title(c) for c in run.splits["test"]]
        shown = _first_interesting(explorer)
        return dict(
            status=_status(result),
            loss_plot=loss_figure(
                {v.name: v.history for v in run.variants},
                result.baselines,
                "Training<br>(dotted: the baselines' test error)",
            ),
            results=_results_table(result),
            truth_plot=truth_figure(
                {n: v["shapley"] for n, v in result.variants.items()},
                result.truth,
                "Mean |Shapley value| over the test clips:<br>each model beside the rule",
            ),
            model_pick=gr.update(choices=run.names, value=first),
            clip_pick=gr.update(choices=clips, value=clips[shown]),
            **self._clip_views(explorer, first, shown),
        )

    def stop(self, request: gr.Request | None = None) -> Any:
        """Stop after this epoch, each model keeping its best so far (`ask_to_stop`)."""
        return ask_to_stop(self.sessions.get(page_key(request)))

    @staticmethod
    def _outputs(**values: Any) -> tuple:
        return tuple(values.get(k, gr.update()) for k in TRAIN_OUTPUTS + CLIP_OUTPUTS)

    # -- one clip -------------------------------------------------------------------------

    def _explorer(self, request: gr.Request | None) -> Explorer:
        explorer = self.sessions.get(page_key(request)).explorer
        if explorer is None:
            raise gr.Error("Train a model first: then pick a clip.", title="Nothing trained yet")
        return explorer

    def show_clip(self, model: str, clip: str, request: gr.Request | None = None) -> tuple:
        """Every view of one clip for the picked model."""
        explorer = self._explorer(request)
        views = self._clip_views(explorer, model, _clip_index(explorer, clip))
        return tuple(views[k] for k in CLIP_OUTPUTS)

    def view(self, model: str, clip: str, pick: str, word: str, request: gr.Request | None = None) -> Any:
        """The attention view for another branch/layer or word."""
        explorer = self._explorer(request)
        view = explorer.clip(model, _clip_index(explorer, clip))
        return _attention(view, pick, word)

    def what_if(self, model: str, clip: str, remove: list[str] | None, request: gr.Request | None = None) -> tuple:
        explorer = self._explorer(request)
        drop = [WHAT_IF_CHOICES[r] for r in (remove or []) if r in WHAT_IF_CHOICES]
        if not drop:
            raise gr.Error("Tick the voice or the face to remove, then click What if.", title="Nothing to vary")
        view = explorer.clip(model, _clip_index(explorer, clip))
        variant = explorer.what_if(model, view, drop)
        o, v = view.run, variant
        label = "what if: " + ", ".join(r for r in remove or [] if r in WHAT_IF_CHOICES)
        text = (
            f"**{label}** \u2192 **{v.prediction.score:+.2f}**, was {o.prediction.score:+.2f} "
            f"(label {view.label:+.2f}). This is the `{'+'.join(v.prediction.modalities_present) or 'none'}` "
            "subset among the Shapley values: the same number."
        )
        figure = plots.what_if_figure(
            (o.prediction.score, o.explanation), (v.prediction.score, v.explanation), "original", label
        )
        return text, figure

    def save(self, model: str, name: str, request: gr.Request | None = None) -> tuple[str, Any]:
        """Write the picked model under the checkpoints folder and list it in the Analyse tab."""
        if not self.limits.can_save or self.checkpoints.root is None:
            raise gr.Error("Saving lab models is off on this server.", title="Cannot save")
        explorer = self._explorer(request)
        name = (name or "").strip()
        if not re.fullmatch(r"lab-[A-Za-z0-9_.-]{1,60}", name) or ".." in name:
            raise gr.Error(
                "Name it lab-SOMETHING: letters, digits, '-', '_' and '.' only (at most 64 characters).",
                title="Cannot save",
            )
        if name in self.checkpoints.paths and not (self.checkpoints.root / name / "README.md").is_file():
            raise gr.Error(f"{name} is already another checkpoint: choose another name.", title="Cannot save")
        try:
            folder = explorer.save(model, self.checkpoints.root / name)
        except WorldError as e:
            raise gr.Error(str(e), title="Cannot save") from None
        self.checkpoints.add(name, folder)
        return f"Saved as `{name}`: pick it in the Analyse tab's checkpoint list.", gr.update(
            choices=self.checkpoints.names_for(page_key(request))
        )

    def page_closed(self, request: gr.Request) -> None:
        self.sessions.drop(page_key(request))

    def _clip_views(self, explorer: Explorer, model: str, index: int) -> dict[str, Any]:
        view = explorer.clip(model, index)
        e = view.run.explanation
        assert e is not None
        c = e.contributions
        branch = _cue_branch(view)
        picks = pick_choices(e)
        pick = next((p for p, g in zip(picks, e.gates) if g.branch == branch and g.layer == 1), picks[0])
        words = word_choices(e)
        cue_word = next((cue["word"] for cue_name, cue in view.cues.items() if CUE_NAMES[cue_name][0] == branch), 0)
        word = words[min(cue_word, len(words) - 1)] if words else None
        return {
            "clip_text": _clip_text(view),
            "clip_plot": truth_figure(
                {model: c.values}, view.truth, "This clip's Shapley values:<br>the model beside the rule"
            ),
            "contrib_plot": plots.shapley_figure(c),
            "shares": plots.share_rows_figure(e),
            "share_grid": plots.share_grid_figure(e),
            "view_pick": gr.update(choices=picks, value=pick),
            "word_pick": gr.update(choices=words, value=word),
            "attention": _attention(view, pick, word),
        }


def _attention(view: ClipView, pick: str | None, word: str | None) -> Any:
    e = view.run.explanation
    assert e is not None
    branch, layer = parse_pick(pick, e)
    fig = plots.attention_figure(e, branch, layer, parse_word(word, e), head=None, context=None)
    for cue_name, cue in view.cues.items():
        modality, label = CUE_NAMES[cue_name]
        if modality == branch:
            mark_cue(fig, tuple(cue["window"]), label, float(view.clip.meta["duration"]))
    return fig


def _cue_branch(view: ClipView) -> str:
    """The branch to show first: where this clip has a cue (the face's flip first)."""
    for cue_name in ("flip", "face", "voice"):
        if cue_name in view.cues:
            return CUE_NAMES[cue_name][0]
    return "visual"


def _first_interesting(explorer: Explorer) -> int:
    """The first test clip with a cue (a flipped one first): the one worth showing first."""
    for wanted in ("flip", "face", "voice"):
        for i, c in enumerate(explorer.test):
            if wanted in c.meta["cues"]:
                return i
    return 0


def _clip_index(explorer: Explorer, title: str | None) -> int:
    titles = [clip_title(c) for c in explorer.test]
    return titles.index(title) if title in titles else 0


def _clip_text(view: ClipView) -> str:
    p = view.run.prediction
    parts = view.parts
    rule = [f"the words add {parts['words']:+g}"]
    if view.flipped:
        rule.append("the face raises its brows: the words' sentiment is reversed")
    if parts["voice"] and view.clip.acoustic is not None:
        rule.append(f"the voice adds {parts['voice']:+g}")
    if parts["face"] and view.clip.visual is not None:
        rule.append(f"the face adds {parts['face']:+g}")
    cues = [
        f"{CUE_NAMES[n][1]} during \u201c{view.clip.meta['words'][cue['word']].word}\u201d "
        f"({cue['window'][0]:.2f}\u2013{cue['window'][1]:.2f} s)"
        for n, cue in view.cues.items()
    ]
    lines = [
        f"**Model {p.score:+.2f}**, label {view.label:+.2f} (error {abs(p.score - view.label):.2f}).",
        "**The rule here:** " + "; ".join(rule) + ".",
        "**Cues:** " + ("; ".join(cues) if cues else "none in this clip") + ".",
    ]
    if view.flipped:
        lines.append(FLIPPED_CREDIT)
    missing = [wording.MODALITY_WORDS[m] for m, why in p.absent.items()]
    if missing:
        lines.append("**Missing:** " + wording.join_words(missing) + " (the model used its learned stand-in).")
    return "\n\n".join(lines)


def _results_table(result: LabResult) -> str:
    rows = ["| | test MAE | on flipped clips |", "| --- | --- | --- |"]
    for r in result.error_rows():
        flipped = "" if r.mae_flipped is None else f"{r.mae_flipped:.3f}"
        rows.append(f"| **{r.name}** | **{r.mae:.3f}** | {flipped} |" if r.trained else f"| {r.name} | {r.mae:.3f} | |")
    return "\n".join(rows) + "\n\n" + LAB_VIEWS_HELP


def _status(result: LabResult) -> str:
    epochs = ", ".join(f"{n}: best epoch {v['best_epoch']} of {v['epochs_run']}" for n, v in result.variants.items())
    text = f"Trained in {result.train_seconds:.0f} s ({epochs})."
    return text + (f" {result.stopped.capitalize()}." if result.stopped else "")


# A kept run's curve is redrawn in this many frames over this many seconds: seen to train, not
# waited for. (Each frame is a message to the page: a class replaying at once shares the cores.)
REPLAY_FRAMES = 5
REPLAY_SECONDS = 1.0
LAB_REQUESTS = 24  # Lab requests served side by side (waiting, following, replaying); beyond, Gradio's queue
FOLLOW_POLL_SECONDS = 0.25


def _copied(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs served to another page: its own copy of each update (Gradio may change an update as
    it sends it); the figures are shared, only read."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in outputs.items()}


def _histories(progress: list[Progress]) -> dict[str, list[dict[str, float]]]:
    """Each model's curve (as `loss_figure` draws it) from a run's progress so far."""
    out: dict[str, list[dict[str, float]]] = {}
    for p in progress:
        out.setdefault(p.variant, []).append({"epoch": p.epoch, "train": p.train, "valid": p.valid})
    return out


def _set_values(updates: Sequence[Any]) -> dict[str, Any]:
    """The settings a handler's updates set (one update per setting, in `SETTINGS` order)."""
    return {k: u["value"] for k, u in zip(SETTINGS, updates) if isinstance(u, dict) and "value" in u}


def described(page: str, settings: dict[str, Any]) -> tuple[str, str]:
    """The rule ``settings`` make (or what is wrong with them) and the link to them: ``page``, the
    address the browser shows (so a Space's proxy or a path prefix is kept), with the settings as
    its query. Every handler that changes settings returns both, so the link is never a step behind."""
    try:
        world, _, _ = read_settings(settings)
        rule = f"**The rule.** {world.rule}"
    except WorldError as e:
        rule = f"\u26a0\ufe0f {e}"
    return rule, f"{page}?{settings_query(settings)}"


# The page's own address, read in the browser: what the server sees of a request is the API's
# path (/gradio_api/...) and, behind a proxy, not the host a visitor typed.
PAGE_ADDRESS_JS = "() => window.location.origin + window.location.pathname"


def _loss_boxes(c: dict[str, Any], suffix: str) -> None:
    """A model's two extra losses, on or off (``suffix`` "2" for the second model)."""
    with gr.Row():
        c[f"cmd{suffix}"] = gr.Checkbox(True, label="CMD loss", elem_id=f"lab-cmd{suffix}")
        c[f"mi{suffix}"] = gr.Checkbox(True, label="MI bound", elem_id=f"lab-mi{suffix}")


def build_lab_tab(
    tab: LabTab,
    analyse_checkpoint: gr.Dropdown,
    tabs: gr.Tabs,
    demo: gr.Blocks,
    background: list[Callable[[], None]] | None = None,
) -> None:
    """The tab's layout and events, inside an open ``gr.Tab``; what to run once the server answers
    goes into ``background`` (the lesson's runs, when the limits say so)."""
    if background is not None and tab.limits.prepare_lesson:
        background.append(tab.prepare_lesson)
    limits = tab.limits
    initial = initial_settings(limits.max_clips)
    gr.Markdown(LAB_INTRO)
    c: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=2):
            with gr.Accordion("Lesson: six steps", open=False):
                lesson = gr.Dropdown([s.title for s in LESSON], label="Step", value=LESSON[0].title, elem_id="lab-step")
                lesson_go = gr.Button("Set up this step", elem_id="lab-step-go")
                question = gr.Markdown(elem_id="lab-question")
            c["preset"] = gr.Dropdown(list(PRESETS), value=initial["preset"], label="World", elem_id="lab-preset")
            rule = gr.Markdown(f"**The rule.** {PRESETS[initial['preset']].rule}", elem_id="lab-rule")
            with gr.Accordion("Change the world", open=False):
                for k, label, step in (
                    ("words", "each sentiment word adds", 0.1),
                    ("voice", "the voice's cue adds", 0.1),
                    ("face", "a smile or frown adds", 0.1),
                    ("flip", "share of clips the face flips", 0.05),
                    ("noise", "label noise (sd)", 0.05),
                    ("missing_voice", "share of clips without a voice", 0.05),
                    ("missing_face", "share of clips without a face", 0.05),
                ):
                    c[k] = gr.Slider(
                        *WORLD_RANGES[k], value=initial[k], step=step, label=label, elem_id=f"lab-{k.replace('_', '-')}"
                    )
                c["clips"] = gr.Slider(
                    *link_ranges(limits.max_clips)["clips"],
                    value=initial["clips"],
                    step=20,
                    label="clips (60% train, 20% validation, 20% test)",
                    elem_id="lab-clips",
                )
            with gr.Accordion("The model", open=True):
                c["gates"] = gr.Radio(list(GATE_NAMES), value=initial["gates"], label="Gates", elem_id="lab-gates")
                _loss_boxes(c, "")
                with gr.Row():
                    c["seed"] = gr.Number(
                        initial["seed"], precision=0, minimum=0, label="Seed (clips and weights)", elem_id="lab-seed"
                    )
                    c["epochs"] = gr.Slider(
                        *link_ranges(limits.max_clips)["epochs"],
                        value=initial["epochs"],
                        step=1,
                        label="Epochs",
                        elem_id="lab-epochs",
                    )
                c["compare"] = gr.Checkbox(
                    initial["compare"], label="Train a second model beside it", elem_id="lab-compare"
                )
                c["gates2"] = gr.Radio(
                    list(GATE_NAMES), value=initial["gates2"], label="Second model's gates", elem_id="lab-gates2"
                )
                _loss_boxes(c, "2")
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="lab-train")
                stop = gr.Button("Stop", interactive=False, elem_id="lab-stop")
            link = gr.Textbox(label="Link to these settings", interactive=False, buttons=["copy"], elem_id="lab-link")
            page = gr.Textbox(visible=False, elem_id="lab-page-address")
        with gr.Column(scale=3):
            status = gr.Markdown("Pick a world, then Train.", elem_id="lab-status")
            loss_plot = gr.Plot(show_label=False, elem_id="lab-loss")
            results = gr.Markdown(elem_id="lab-results")
            truth_plot = gr.Plot(show_label=False, elem_id="lab-truth")
    gr.Markdown("## One clip of the world")
    with gr.Row():
        model_pick = gr.Dropdown(label="Model", choices=[], min_width=PICKER_WIDTH, elem_id="lab-model")
        clip_pick = gr.Dropdown(label="Test clip", choices=[], min_width=PICKER_WIDTH, elem_id="lab-clip")
    with gr.Row():
        with gr.Column():
            clip_text = gr.Markdown(elem_id="lab-clip-text")
            clip_plot = gr.Plot(show_label=False, elem_id="lab-clip-plot")
        with gr.Column():
            contrib_plot = gr.Plot(show_label=False, elem_id="lab-contrib")
    shares = gr.Plot(show_label=False, elem_id="lab-shares")
    share_grid = gr.Plot(show_label=False, elem_id="lab-share-grid")
    with gr.Row():
        view_pick = gr.Dropdown(label="Branch and layer", choices=[], min_width=PICKER_WIDTH, elem_id="lab-view-pick")
        word_pick = gr.Dropdown(label="Word", choices=[], min_width=PICKER_WIDTH, elem_id="lab-word-pick")
    attention = gr.Plot(show_label=False, elem_id="lab-attention")
    with gr.Row():
        remove = gr.CheckboxGroup(
            list(WHAT_IF_CHOICES), label="What if the clip had no\u2026", elem_id="lab-what-if-remove"
        )
        what_if_button = gr.Button("What if?", elem_id="lab-what-if")
    what_if_text = gr.Markdown(elem_id="lab-what-if-text")
    what_if_plot = gr.Plot(show_label=False, elem_id="lab-what-if-plot")
    if limits.can_save:
        with gr.Row():
            save_name = gr.Textbox("lab-model", label="Save the picked model as", elem_id="lab-save-name")
            save = gr.Button("Save to the checkpoint list", elem_id="lab-save")
        save_text = gr.Markdown(LAB_SAVE_HELP, elem_id="lab-save-text")
        save.click(tab.save, [model_pick, save_name], [save_text, analyse_checkpoint], api_visibility="private")

    settings = [c[k] for k in SETTINGS]
    outputs = dict(
        status=status, loss_plot=loss_plot, results=results, truth_plot=truth_plot, model_pick=model_pick,
        clip_pick=clip_pick, train=train, stop=stop, clip_text=clip_text, clip_plot=clip_plot,
        contrib_plot=contrib_plot, shares=shares, share_grid=share_grid, view_pick=view_pick,
        word_pick=word_pick, attention=attention,
    )  # fmt: skip
    train.click(
        tab.train,
        settings,
        [outputs[k] for k in TRAIN_OUTPUTS + CLIP_OUTPUTS],
        api_visibility="private",
        # Runs wait for the trainer in `TrainerSlot` (one trains; the others see their place),
        # so that a kept run's replay and an identical run's followers are served at once.
        concurrency_id="lab",
        concurrency_limit=LAB_REQUESTS,
    )
    stop.click(tab.stop, None, stop, api_visibility="private", queue=False)
    clip_views = [outputs[k] for k in CLIP_OUTPUTS]
    for picker in (model_pick, clip_pick):
        picker.input(tab.show_clip, [model_pick, clip_pick], clip_views, api_visibility="private", queue=False)
    for picker in (view_pick, word_pick):
        picker.input(
            tab.view, [model_pick, clip_pick, view_pick, word_pick], attention, api_visibility="private", queue=False
        )
    what_if_button.click(
        tab.what_if, [model_pick, clip_pick, remove], [what_if_text, what_if_plot], api_visibility="private"
    )
    # The rule and the link follow the settings. Only a person's edits trigger `describe` (`input`,
    # not `change`): a handler that sets controls returns the rule and link itself, since the
    # change events of its many outputs would each send a mix of old and new values.
    world_sliders = [c[k] for k in WORLD_FIELDS if k != "seed"]
    private: dict[str, Any] = dict(api_visibility="private", queue=False)
    c["preset"].input(tab.preset_values, [page, *settings], [*world_sliders, rule, link], **private)
    for control in settings:
        if control is not c["preset"]:
            control.input(tab.describe, [page, *settings], [rule, link], trigger_mode="always_last", **private)
    lesson_go.click(tab.set_up_step, [lesson, page, *settings], [*settings, question, rule, link], **private)
    demo.load(None, None, page, js=PAGE_ADDRESS_JS).then(
        tab.from_link, [page, *settings], [*settings, tabs, status, rule, link], **private
    )
    demo.unload(tab.page_closed)


__all__ = [
    "LabLimits",
    "LabSession",
    "LabTab",
    "build_lab_tab",
    "read_settings",
    "settings_from_query",
    "settings_query",
]
