"""The Train tab: add one's own labelled clips, fine-tune a checkpoint's voice and face on them
(`msa.finetune`), and get a checkpoint with its model card, in this page's checkpoint picker and
as a zip.

The work is `msa.finetune`; the clips' intake is `msa.app.train_tab_clips`; this module is the tab's
layout, its handlers and what a public Space needs: each browser session has its own clips
(`train_sessions`) and its own checkpoints (`msa.app.private`, which the Analyse tab's picker asks
with the session's hash), one fine-tuning trains at a time on the server (the rest wait in the
queue), and the clips, their length, the training time and the checkpoints kept are capped
(`TrainLimits`).
"""

from __future__ import annotations

import atexit
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr

from ..features.media import AUDIO_SUFFIXES, VIDEO_SUFFIXES
from ..finetune import (
    ClipError,
    ClipLimits,
    ExtractedClip,
    Finetune,
    FinetuneResult,
    FinetuneSettings,
    LabelledClip,
    extract_clips,
)
from ..finetune.card import model_card, save_finetuned
from ..finetune.run import too_few_clips, voice_stream_for
from ..io import atomic_path
from ..model.checkpoint import Checkpoint
from ..predict import Predictor
from .handlers import refused
from .plots.finetune import finetune_figure
from .private import PRIVATE_SUFFIX, PrivateCheckpoint, page_key, private_name
from .service import Checkpoints, InputError, Service, scrub_paths
from .texts import (
    TRAIN_ADD_HELP,
    TRAIN_INTRO,
    TRAIN_PRIVATE_HELP,
    TRAIN_SAVE_HELP,
    TRAIN_STOPPING,
    TRAIN_TEXT_PATH_HELP,
)
from .train_tab_clips import TABLE_HEADERS, ClipShelf, FeatureMemo, clips_from_table, label_cell, unzip_clips
from .trainer import IDLE, LeftTheLine, RunState, Sessions, TrainerSlot, ask_to_stop, guarded_run, running, wait_turn

TRAIN_OUTPUTS = ("status", "loss_plot", "results", "mine", "download", "analyse_pick", "base_pick", "train", "stop")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}")
NAME_RULE = "letters, digits, '-', '_' and '.' (at most 60, starting with a letter or digit)"
REDRAW_SECONDS = 0.4  # the loss curve is sent at most this often (an epoch can take 50 ms)


@dataclass(frozen=True)
class TrainLimits:
    """What one page's fine-tuning may cost on this server.

    On a Hugging Face Space (``SPACE_ID`` is set) the defaults are those of a public page: 40
    clips of at most 30 s, 3 minutes of training, 3 checkpoints kept per page for an hour, no
    saving into the shared checkpoint folder. Each can be set: ``MSA_TRAIN_MAX_CLIPS``,
    ``MSA_TRAIN_MAX_CLIP_SECONDS``, ``MSA_TRAIN_MAX_SECONDS`` (0: no limit),
    ``MSA_TRAIN_CHECKPOINTS``, ``MSA_TRAIN_KEEP_MINUTES``, ``MSA_TRAIN_SAVE`` (0 or 1).
    """

    max_clips: int = ClipLimits.max_clips
    max_clip_seconds: float = ClipLimits.max_seconds
    max_train_seconds: float | None = None
    max_checkpoints: int = 5  # per page
    keep_minutes: float = 12 * 60.0  # a page's checkpoint unused this long is dropped
    max_zip_megabytes: float = 2000.0  # unpacked
    can_save: bool = True

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> TrainLimits:
        env = dict(os.environ) if env is None else env
        public = bool(env.get("SPACE_ID"))

        def number(name: str, local: float, space: float) -> float:
            raw = env.get(name)
            try:
                return float(raw) if raw else (space if public else local)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None

        seconds = number("MSA_TRAIN_MAX_SECONDS", 0, 180) or None
        return cls(
            max_clips=int(number("MSA_TRAIN_MAX_CLIPS", cls.max_clips, 40)),
            max_clip_seconds=number("MSA_TRAIN_MAX_CLIP_SECONDS", cls.max_clip_seconds, 30),
            max_train_seconds=seconds,
            max_checkpoints=max(1, int(number("MSA_TRAIN_CHECKPOINTS", cls.max_checkpoints, 3))),
            keep_minutes=number("MSA_TRAIN_KEEP_MINUTES", cls.keep_minutes, 60),
            max_zip_megabytes=number("MSA_TRAIN_MAX_ZIP_MB", cls.max_zip_megabytes, 300),
            can_save=env.get("MSA_TRAIN_SAVE", "0" if public else "1") not in ("0", "false", "no", ""),
        )

    def clip_limits(self, max_seconds: float | None = None) -> ClipLimits:
        """Per clip, never longer than the app's own limit ``max_seconds``."""
        seconds = self.max_clip_seconds if max_seconds is None else min(self.max_clip_seconds, max_seconds)
        return ClipLimits(max_clips=self.max_clips, max_seconds=seconds)


@dataclass
class TrainSession(RunState):
    """One browser session's clips (in a folder of its own) and its fine-tuning while it runs."""

    folder: Path
    shelf: ClipShelf


class FinetuneJob(NamedTuple):
    """What one press of Train asks for."""

    clips: list[LabelledClip]
    base: Checkpoint
    settings: FinetuneSettings
    label_with_text: bool
    name: str


def train_sessions(root: Path, ttl_seconds: float) -> Sessions[TrainSession]:
    """Each session's clips in a folder of its own under ``root`` (not named by the session hash:
    nothing to guess), the folder deleted with the session, when the page closes or after
    ``ttl_seconds`` unused."""

    def make() -> TrainSession:
        folder = Path(tempfile.mkdtemp(dir=root, prefix="page-"))
        return TrainSession(folder=folder, shelf=ClipShelf(folder / "clips"))

    return Sessions(make, ttl_seconds, forget=lambda s: shutil.rmtree(s.folder, ignore_errors=True))


def _clips(n: int) -> str:
    return f"{n} clip" if n == 1 else f"{n} clips"


def _duration(minutes: float) -> str:
    return f"{minutes / 60:g} hours" if minutes >= 120 else f"{minutes:g} minutes"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def check_name(name: str | None, what: str = "the checkpoint") -> str:
    name = (name or "").strip()
    if not NAME.fullmatch(name) or ".." in name:
        raise ClipError(f"Name {what} with {NAME_RULE}; {name!r} is not such a name")
    return name


def _rows(table: Any) -> list[list[Any]]:
    """The table's rows as lists, whatever form gradio hands it in (a list, or a DataFrame)."""
    if table is None:
        return []
    if hasattr(table, "values") and hasattr(table, "columns"):
        return [list(r) for r in table.values.tolist()]
    if isinstance(table, dict):
        return [list(r) for r in table.get("data") or []]
    return [list(r) for r in table]


def _filled(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """The rows with anything in them (the table's editor can leave blank ones)."""
    return [r for r in rows if any(str(v).strip() for v in r if v is not None)]


def branch_counts(extracted: Sequence[ExtractedClip]) -> str:
    """What the voice and face branches will see: "16 with a voice, 0 with a face"."""
    voice = sum(c.streams[0] for c in extracted)
    face = sum(c.streams[1] for c in extracted)
    return f"{_clips(len(extracted))}: {voice} with a voice, {face} with a face"


def _card_sections(card: str, titles: Sequence[str]) -> str:
    """The model card's sections ``titles``, their headings in bold: the page shows the card's
    own sentences rather than a second wording of them."""
    out = []
    for part in card.split("\n## ")[1:]:
        title, _, body = part.partition("\n")
        if title.strip() in titles:
            out.append(f"**{title.strip()}.**\n\n{body.strip()}")
    return "\n\n".join(out)


def result_text(item: PrivateCheckpoint, dropped: Sequence[str] = ()) -> str:
    """What a fine-tuning made: where the checkpoint is, its held-out error beside the base's on
    the same clips, what each branch saw and what to doubt (the model card's own sections)."""
    r = item.result
    lines = [
        f"**`{item.name}` is now picked in the Analyse tab:** the next clip you analyse there is scored by it.",
        "",
        "**Mean absolute error on clips a model did not train on:**",
        "",
        f"- **{item.short_name}: {r.heldout_mae:.3f}** ({r.folds} folds, {r.epochs} epochs)",
        f"- the base `{r.base_name}`: {r.base_mae:.3f}, on the same clips",
        f"- always answering {r.constant_label:+.1f}: {r.constant_mae:.3f}",
        "",
        _card_sections(model_card(r, item.short_name), ("What each branch saw", "Warnings")),
    ]
    if dropped:
        lines += ["", f"To make room, this page's oldest checkpoint was dropped: {', '.join(dropped)}."]
    return "\n".join(lines)


def write_zip(result: FinetuneResult, name: str, folder: Path) -> Path:
    """The checkpoint folder (with its model card) zipped as ``folder/NAME.zip``: written beside
    and renamed into place, so a download never gets half a zip."""
    unzipped = folder / "unzipped" / name
    try:
        save_finetuned(result, unzipped)
        out = folder / f"{name}.zip"
        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for f in sorted(p for p in unzipped.rglob("*") if p.is_file()):
                zf.write(f, f"{name}/{f.relative_to(unzipped)}")
    finally:
        shutil.rmtree(folder / "unzipped", ignore_errors=True)
    return out


class TrainTab:
    """The tab's handlers. The page's own checkpoints live in ``checkpoints.private``, the store
    the Analyse tab's picker asks too; their cap and time limit are set here, from ``limits``."""

    def __init__(self, checkpoints: Checkpoints, limits: TrainLimits | None = None, slot: TrainerSlot | None = None):
        self.checkpoints = checkpoints
        self.limits = limits or TrainLimits.from_env()
        checkpoints.private.max_per_session = self.limits.max_checkpoints
        checkpoints.private.ttl = self.limits.keep_minutes * 60
        self.root = Path(tempfile.mkdtemp(prefix="msa-train-"))
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)
        self.sessions = train_sessions(self.root, self.limits.keep_minutes * 60)
        # Shared with the Lab on the page: one trainer at a time. (`is None`: an empty line is falsy.)
        self.slot = slot if slot is not None else TrainerSlot()
        self.features = FeatureMemo(checkpoints.default.predictor.extractor)

    @property
    def clip_limits(self) -> ClipLimits:
        return self.limits.clip_limits(self.checkpoints.limits.max_seconds)

    # -- clips ----------------------------------------------------------------------------

    def add_files(
        self,
        files: Sequence[str] | str | None,
        table: Any,
        next_label: float,
        label_with_text: bool,
        request: gr.Request | None = None,
    ) -> tuple[Any, str, Any]:
        """Uploaded clips (and zips of clips with a labels CSV) added to the table; each clip gets
        ``next_label``, a zip's rows their CSV's labels. A file that cannot be used is named with
        why, and the rest are added; a bad zip adds nothing of it."""
        session = self.sessions.get(page_key(request))
        rows = _rows(table)
        paths = [files] if isinstance(files, str) else list(files or [])
        problems: list[str] = []
        for p in map(Path, paths):
            try:
                if p.suffix.lower() == ".zip":
                    rows += self._unzip(session, p, label_with_text, rows)
                else:
                    rows += self._add_clip(session, p, p.name, label_cell(float(next_label)), rows)
            except ClipError as e:
                problems.append(str(e))
        return rows, self.describe(rows, label_with_text, request, problems), None

    def record(
        self,
        video: str | None,
        audio: str | None,
        table: Any,
        next_label: float,
        label_with_text: bool,
        request: gr.Request | None = None,
    ) -> tuple[Any, str, Any, Any]:
        """The recording (the webcam's video, else the microphone's audio) added as a clip."""
        session = self.sessions.get(page_key(request))
        rows = _rows(table)
        path = video or audio
        if not path:
            raise gr.Error("Record a video or some audio first, then add it.", title="Nothing recorded")
        name = f"recording-{len(session.shelf.files) + 1}{Path(path).suffix.lower()}"
        try:
            rows += self._add_clip(session, Path(path), name, label_cell(float(next_label)), rows)
        except ClipError as e:
            return rows, self.describe(rows, label_with_text, request, [str(e)]), gr.update(), gr.update()
        return rows, self.describe(rows, label_with_text, request), None, None

    def _add_clip(self, session: TrainSession, path: Path, name: str, label: str, rows: list) -> list[list[str]]:
        if len(_filled(rows)) >= self.clip_limits.max_clips:
            raise ClipError(
                f"{name}: the table holds {self.clip_limits.max_clips} clips, the most one fine-tuning takes"
            )
        added, new = session.shelf.add(path, name, self.clip_limits)
        if not new and any(r and r[0] == added for r in rows):
            raise ClipError(f"{name}: the same clip is already in the table (as {added})")
        return [[added, label, "", ""]]

    def _unzip(self, session: TrainSession, archive: Path, label_with_text: bool, rows: list) -> list[list[str]]:
        limits = self.clip_limits
        dest = Path(tempfile.mkdtemp(dir=session.folder, prefix="zip-"))
        try:
            clips = unzip_clips(archive, dest, limits, not label_with_text, int(self.limits.max_zip_megabytes * 2**20))
            held = len(_filled(rows))
            if held + len(clips) > limits.max_clips:
                raise ClipError(
                    f"{archive.name}: {len(clips)} clips, and the table holds {held}; at most "
                    f"{limits.max_clips} are taken in one fine-tuning"
                )
            added: list[list[str]] = []
            for c in clips:
                try:
                    name, new = session.shelf.add(c.path, c.name, limits)
                except ClipError as e:  # e.g. too long: the zip is refused whole, as for a bad row
                    raise ClipError(f"{archive.name}: {e}") from None
                if new or not any(r and r[0] == name for r in rows + added):
                    added.append([name, label_cell(c.label), c.text or "", c.speaker or ""])
            return added
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def describe(
        self, table: Any, label_with_text: bool, request: gr.Request | None = None, problems: Sequence[str] = ()
    ) -> str:
        """What the table holds and whether it can train: the clips with a sound track and with a
        picture, and the first problems with the labels (or the files just refused)."""
        session = self.sessions.get(page_key(request))
        every = _rows(table)
        rows = _filled(every)
        lines = [f"\u26a0\ufe0f {scrub_paths(p)}" for p in problems]
        if not rows:
            return "\n\n".join(lines + ["No clips yet."])
        kinds = [session.shelf.streams.get(str(r[0]).strip(), (False, False)) for r in rows]
        sound, picture = sum(k[0] for k in kinds), sum(k[1] for k in kinds)
        summary = f"**{_clips(len(rows))}**: {sound} with a sound track, {picture} with a picture."
        try:
            clips_from_table(every, session.shelf, self.clip_limits, need_labels=not label_with_text)
            too_few = too_few_clips(len(rows))
            if too_few:
                raise ClipError(too_few)
            summary += " Ready to train." + (
                " (20 or more make a checkpoint worth trusting.)" if len(rows) < 20 else ""
            )
        except ClipError as e:
            summary += f"\n\n\u26a0\ufe0f {e}"
        return "\n\n".join(lines + [summary])

    def clear(self, label_with_text: bool, request: gr.Request | None = None) -> tuple[Any, str]:
        session = self.sessions.get(page_key(request))
        if session.training:
            raise gr.Error("The clips are in use: stop the training first.", title="Training")
        session.shelf.clear()
        return [], self.describe([], label_with_text, request)

    # -- training -------------------------------------------------------------------------

    def train(
        self,
        request: gr.Request | None,
        table: Any,
        label_with_text: bool,
        base_name: str | None,
        epochs: float,
        name: str | None,
    ) -> Iterator[tuple]:
        """Read the clips' features (streamed, one line a clip), fine-tune (the loss curve after
        each epoch), then keep the checkpoint for this page. (The request comes first: Gradio
        hands it only to a positional parameter.)"""
        key = page_key(request)
        session = self.sessions.get(key)
        if session.training:
            yield self._outputs(
                status=refused("One run at a time", "This page is already training: stop it or wait for it.")
            )
            return
        try:
            name = check_name(name)
            clips = clips_from_table(_rows(table), session.shelf, self.clip_limits, need_labels=not label_with_text)
            base = self.checkpoints.get(base_name, key).predictor.checkpoint
            settings = FinetuneSettings(epochs=int(epochs), max_seconds=self.limits.max_train_seconds)
        except (ClipError, InputError, ValueError) as e:
            yield self._outputs(status=refused("Cannot train on these clips", scrub_paths(str(e))))
            return
        full = self.slot.budget.refusal()
        if full:
            yield self._outputs(status=refused("Not now", full))
            return
        steps = self._steps(key, session, FinetuneJob(clips, base, settings, label_with_text, name))
        yield from guarded_run(
            session,
            steps,
            self._outputs,
            (ClipError, LeftTheLine),
            "fine-tuning",
            lambda e: _sentence(scrub_paths(str(e))),
        )

    def _steps(self, key: str, session: TrainSession, job: FinetuneJob) -> Iterator[tuple]:
        """The run's page updates: its place in the line for the trainer, a line a clip read, the
        loss curve as it trains, then the kept checkpoint (`ClipError`: unusable clips, or
        stopped, and nothing was made)."""
        work = len(job.clips) * job.settings.epochs * (job.settings.folds + 1)
        ticket = self.slot.join(work, session.page or None, kind="finetune")
        result = None
        try:
            yield from wait_turn(self.slot, ticket, session, self._outputs)
            result = yield from self._trained(key, session, *job)
        finally:
            self.slot.leave(ticket, trained=result is not None)

    def _trained(
        self,
        key: str,
        session: TrainSession,
        clips: list[LabelledClip],
        base: Checkpoint,
        settings: FinetuneSettings,
        label_with_text: bool,
        name: str,
    ) -> Generator[tuple, None, FinetuneResult]:
        """The fine-tuning once it has the trainer; returns its result."""
        extracted = None
        features = self.features.with_voice_stream(voice_stream_for(base))  # refine the base's own voice
        for status, done in self._extract(session, clips, features):
            if done is None:
                yield self._outputs(status=status, **running(session))
            else:
                extracted = done
        assert extracted is not None
        seen = branch_counts(extracted)
        tune = Finetune(base, extracted, features.spec, settings, label_with_text=label_with_text)
        folds: dict[int, list[tuple[int, float]]] = {}
        final: list[tuple[int, float]] = []
        shown = 0.0
        yield self._outputs(status=f"Read {seen}. Training\u2026", **running(session))
        # On the trainer's own thread, one torch thread at a lower priority: Analyse keeps its speed.
        epochs_run = self.slot.on_trainer(tune.train())
        try:
            for p in epochs_run:
                if p.valid is not None:
                    folds.setdefault(p.fold, []).append((p.epoch, p.valid))
                else:
                    final.append((p.epoch, p.train))
                if session.stop_requested:
                    tune.stop()
                if session.stop_requested or time.monotonic() - shown > REDRAW_SECONDS or p.epoch == p.epochs:
                    shown = time.monotonic()
                    status = f"Read {seen}. Training \u2014 {p.line()} \u00b7 {p.elapsed:.0f} s"
                    status = TRAIN_STOPPING if session.stop_requested else status
                    yield self._outputs(status=status, loss_plot=finetune_figure(folds, final), **running(session))
        finally:
            epochs_run.close()
        if session.stop_requested:  # also when Stop came during the final model's last epoch
            raise ClipError("stopped by you: no checkpoint was made from this run")
        result = tune.finish(private_name(name))
        item, dropped = self._keep(key, result, name)
        mine = self.checkpoints.private.names(key)
        yield self._outputs(
            status=f"Trained on {seen} in {result.train_seconds:.0f} s.",
            loss_plot=finetune_figure(folds, final, result.curve, result.base_mae),
            results=result_text(item, dropped),
            mine=gr.update(choices=mine, value=item.name),
            download=gr.update(value=str(item.folder / f"{name}.zip"), interactive=True),
            analyse_pick=gr.update(choices=self.checkpoints.names_for(key), value=item.name),
            base_pick=gr.update(choices=self.checkpoints.names_for(key)),
            **IDLE,
        )
        return result

    def _extract(
        self, session: TrainSession, clips: Sequence[Any], features: FeatureMemo
    ) -> Iterator[tuple[str, list[ExtractedClip] | None]]:
        """Each clip's features, through the app's extractor and the in-memory cache: a status
        line before each clip, then (None, the clips). Stop ends it before the next clip."""
        events: queue.Queue[tuple[int, int, str]] = queue.Queue()
        out: dict[str, Any] = {}

        def on_clip(i: int, n: int, name: str) -> None:
            if session.stop_requested:
                raise ClipError("stopped by you before the training began: nothing was made")
            events.put((i, n, name))

        def work() -> None:
            try:
                out["clips"] = extract_clips(clips, features, self.clip_limits, on_clip=on_clip)  # type: ignore[arg-type]
            except BaseException as e:  # handed to the generator, which raises it
                out["error"] = e

        worker = threading.Thread(target=work, name="train-features", daemon=True)
        worker.start()
        while worker.is_alive() or not events.empty():
            try:
                i, n, name = events.get(timeout=0.25)
            except queue.Empty:
                continue
            reading = f"Reading clip {i + 1} of {n}: {name} (its voice and face)\u2026"
            yield (TRAIN_STOPPING if session.stop_requested else reading), None
        if "error" in out:
            raise out["error"]
        yield "", out["clips"]

    def _keep(self, key: str, result: FinetuneResult, name: str) -> tuple[PrivateCheckpoint, list[str]]:
        """The new checkpoint as this page's own: loaded for the Analyse tab, zipped for download
        (in a folder of its own, which goes with the checkpoint, not with the page's clips)."""
        folder = Path(tempfile.mkdtemp(dir=self.root, prefix="checkpoint-"))
        write_zip(result, name, folder)
        default = self.checkpoints.default
        service = Service(Predictor(result.checkpoint, extractor=default.predictor.extractor), default.limits)
        item = PrivateCheckpoint(private_name(name), service, result, folder)
        return item, self.checkpoints.private.add(key, item)

    def stop(self, request: gr.Request | None = None) -> Any:
        """Stop after this epoch, keeping nothing (`ask_to_stop`: the run says how it ended)."""
        return ask_to_stop(self.sessions.get(page_key(request)))

    @staticmethod
    def _outputs(**values: Any) -> tuple:
        return tuple(values.get(k, gr.update()) for k in TRAIN_OUTPUTS)

    # -- this page's checkpoints ----------------------------------------------------------

    def _mine(self, name: str | None, request: gr.Request | None) -> PrivateCheckpoint:
        item = self.checkpoints.private.get(page_key(request), name)
        if item is None:
            raise gr.Error(
                "Pick one of this page's fine-tuned checkpoints (train one first).", title="No such checkpoint"
            )
        return item

    def show(self, name: str | None, request: gr.Request | None = None) -> tuple[str, Any]:
        """A picked checkpoint of this page: its numbers and its zip."""
        item = self._mine(name, request)
        zipped = next(item.folder.glob("*.zip"), None)
        return result_text(item), gr.update(value=str(zipped) if zipped else None, interactive=zipped is not None)

    def save(self, name: str | None, save_as: str | None, request: gr.Request | None = None) -> tuple[str, Any, Any]:
        """Write the picked checkpoint as ``checkpoints/SAVE_AS`` and list it for every page."""
        root = self.checkpoints.root
        if not self.limits.can_save or root is None:
            raise gr.Error(
                "Saving into the shared checkpoint folder is off on this server: download the zip instead.",
                title="Cannot save",
            )
        item = self._mine(name, request)
        try:
            folder_name = check_name(save_as or item.short_name, "the folder")
            if folder_name == self.checkpoints.default_name:
                raise ClipError(f"{folder_name} is the checkpoint this app runs with: choose another name")
            folder = save_finetuned(item.result, root / folder_name)
        except ClipError as e:
            raise gr.Error(scrub_paths(str(e)), title="Cannot save", print_exception=False) from None
        self.checkpoints.add(folder_name, folder)
        names = self.checkpoints.names_for(page_key(request))
        return (
            f"Saved as `checkpoints/{folder_name}`: every page lists it in the Analyse tab.",
            gr.update(choices=names),
            gr.update(choices=names),
        )

    def choices(self, request: gr.Request | None = None) -> Any:
        """On page load: the base checkpoints this page may start from."""
        return gr.update(choices=self.checkpoints.names_for(page_key(request)))

    def page_closed(self, request: gr.Request) -> None:
        """The page closed: its clips, its run and its checkpoints go."""
        key = page_key(request)
        self.sessions.drop(key)
        self.checkpoints.private.drop(key)


def build_train_tab(tab: TrainTab, analyse_checkpoint: gr.Dropdown, demo: gr.Blocks) -> None:
    """The tab's layout and events, inside an open ``gr.Tab``."""
    limits = tab.limits
    clip_limits = tab.clip_limits
    gr.Markdown(TRAIN_INTRO)
    # Three rows: the clips and the settings, then the run (Train on top, its status under it,
    # its curve beside it or under the status: in sight at every width), then what it made.
    with gr.Row():
        with gr.Column(scale=2):
            gr.Markdown(TRAIN_ADD_HELP, elem_id="train-add-help")
            next_label = gr.Slider(
                -3, 3, value=2, step=0.5, label="Label of the clips you add next (-3 negative \u2026 +3 positive)",
                elem_id="train-next-label",
            )  # fmt: skip
            files = gr.File(
                file_count="multiple",
                file_types=[*VIDEO_SUFFIXES, *AUDIO_SUFFIXES, ".zip"],
                label=f"Clips or a zip (up to {clip_limits.max_clips} clips of {clip_limits.max_seconds:g} s)",
                elem_id="train-files",
            )
            with gr.Accordion("Record a clip", open=False):
                with gr.Tabs():
                    with gr.Tab("Video"):
                        rec_video = gr.Video(label="Webcam", sources=["webcam"], elem_id="train-record-video")
                    with gr.Tab("Audio"):
                        rec_audio = gr.Audio(
                            label="Microphone", sources=["microphone"], type="filepath", elem_id="train-record-audio"
                        )
                rec_add = gr.Button("Add the recording", elem_id="train-record-add")
        with gr.Column(scale=3):
            table = gr.Dataframe(
                value=[],
                headers=TABLE_HEADERS,
                datatype="str",
                column_count=4,
                static_columns=[0],
                type="array",
                interactive=True,
                wrap=True,
                column_widths=["27%", "20%", "27%", "26%"],  # "label" and "speaker" unbroken, even at 400 px
                label="Your clips (edit a label, the words or the speaker here)",
                elem_id="train-table",
            )
            note = gr.Markdown("No clips yet.", elem_id="train-note")
            clear = gr.Button("Remove every clip", size="sm", elem_id="train-clear")
            with_text = gr.Checkbox(
                False,
                label="Label with the text path (no labels needed)",
                info=" ".join(TRAIN_TEXT_PATH_HELP.split()),  # an info line keeps the text's line breaks
                elem_id="train-with-text",
            )
            with gr.Row():
                base = gr.Dropdown(
                    tab.checkpoints.names,
                    value=tab.checkpoints.default_name,
                    label="Start from",
                    elem_id="train-base",
                )
                name = gr.Textbox("my-voice", label="Name the new checkpoint", elem_id="train-name")
            epochs = gr.Slider(
                5, 100, value=FinetuneSettings.epochs, step=1,
                label="Most epochs (the count kept is chosen on held-out clips)", elem_id="train-epochs",
            )  # fmt: skip
    with gr.Row():
        with gr.Column(scale=2):
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="train-go")
                stop = gr.Button("Stop", interactive=False, elem_id="train-stop")
            status = gr.Markdown("Add clips, label them, then Train.", elem_id="train-status")
        with gr.Column(scale=3):
            loss_plot = gr.Plot(show_label=False, elem_id="train-loss")
    with gr.Row():
        with gr.Column(scale=3):
            results = gr.Markdown(elem_id="train-results")
        with gr.Column(scale=2):
            mine = gr.Dropdown(label="This page's checkpoints", choices=[], elem_id="train-mine")
            download = gr.DownloadButton("Download as zip", interactive=False, size="md", elem_id="train-download")
            kept = TRAIN_PRIVATE_HELP.format(time=_duration(limits.keep_minutes), count=limits.max_checkpoints)
            gr.Markdown(kept, elem_id="train-private")
            if limits.can_save:
                with gr.Row():
                    save_as = gr.Textbox("my-voice", label="Save as checkpoints/", elem_id="train-save-name")
                    save = gr.Button("Save", elem_id="train-save")
                save_text = gr.Markdown(TRAIN_SAVE_HELP, elem_id="train-save-text")
                save.click(tab.save, [mine, save_as], [save_text, analyse_checkpoint, base], api_visibility="private")

    clip_events = dict(api_visibility="private", concurrency_id="train-clips")
    files.upload(tab.add_files, [files, table, next_label, with_text], [table, note, files], **clip_events)
    rec_add.click(
        tab.record, [rec_video, rec_audio, table, next_label, with_text], [table, note, rec_video, rec_audio],
        **clip_events,
    )  # fmt: skip
    for changed in (table.input, with_text.change):
        changed(tab.describe, [table, with_text], note, api_visibility="private", queue=False)
    clear.click(tab.clear, with_text, [table, note], api_visibility="private", queue=False)
    outputs = dict(
        status=status, loss_plot=loss_plot, results=results, mine=mine, download=download,
        analyse_pick=analyse_checkpoint, base_pick=base, train=train, stop=stop,
    )  # fmt: skip
    train.click(
        tab.train,
        [table, with_text, base, epochs, name],
        [outputs[k] for k in TRAIN_OUTPUTS],
        api_visibility="private",
        # Fine-tunings wait for the trainer in `TrainerSlot` (shared with the Lab), told their place.
        concurrency_id="finetune",
        concurrency_limit=8,
    )
    stop.click(tab.stop, None, stop, api_visibility="private", queue=False)
    mine.input(tab.show, mine, [results, download], api_visibility="private", queue=False)
    demo.load(tab.choices, None, base, api_visibility="private", queue=False)
    demo.unload(tab.page_closed)


__all__ = [
    "PRIVATE_SUFFIX",
    "TRAIN_OUTPUTS",
    "TrainLimits",
    "TrainSession",
    "train_sessions",
    "TrainTab",
    "build_train_tab",
    "check_name",
    "result_text",
    "write_zip",
]
