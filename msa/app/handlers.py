"""The page's event handlers: a request in, the views' values out (in `OUTPUTS` order).

They turn the service's `Analysis` into what each component shows; the figures are
`msa.app.plots`, the pipeline `msa.app.service`, the layout `msa.app.page`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from ..explain import Explanation, wording
from . import plots
from .service import (
    PROGRESS,
    Analysis,
    Checkpoints,
    InputError,
    Service,
    scrub_paths,
)
from .texts import GATES_HELP, SHAPLEY_HELP
from .uploads import UploadLedger

log = logging.getLogger("msa.app")

MINUS = "\u2212"
MEAN_OF_HEADS = "mean of heads"

# Names of the analysis handler's outputs, in order (tests read results by name).
OUTPUTS = (
    "score",
    "score_plot",
    "modalities",
    "transcript",
    "words",
    "contrib_plot",
    "contrib_text",
    "branch_notes",
    "shares",
    "share_grid",
    "view_pick",
    "word_pick",
    "head_pick",
    "attention",
    "word_strip",
    "gate_text",
    "gates_acoustic",
    "gates_visual",
    "timeline",
    "timings",
    "download",
    "state",
    "what_if_result",
    "what_if_plot",
)
# Outputs of the attention view's handler (a new branch/layer, word or head picked).
VIEW_OUTPUTS = ("attention", "word_strip")
WHAT_IF_OUTPUTS = ("what_if_result", "what_if_plot")

WHAT_IF_CHOICES = {"remove the voice": "acoustic", "remove the face": "visual"}


class Handlers:
    """The page's event handlers around the pickable checkpoints (one loaded model each).

    The page keeps a small state per session: which checkpoint analysed the clip and the key of
    the run the service kept, so that the attention view and the what-if re-use it.
    """

    def __init__(self, checkpoints: Checkpoints | Service, uploads: UploadLedger | None = None):
        self.checkpoints = checkpoints if isinstance(checkpoints, Checkpoints) else Checkpoints(checkpoints)
        self.uploads = uploads
        # Set by build_demo: how many queued or running requests name a file (None: unknown).
        self.queued_references: Callable[[Path], int | None] | None = None

    @property
    def service(self) -> Service:
        """The default checkpoint's service (the API's)."""
        return self.checkpoints.default

    def analyse(
        self,
        video: str | None,
        audio: str | None,
        transcript: str | None,
        checkpoint: str | None = None,
        upload: str | None = None,
        request: gr.Request | None = None,
        progress: Any = gr.Progress(),  # noqa: B008  (Gradio's own pattern: it injects the tracker here)
    ) -> tuple:
        """Everything the results panel shows, in `OUTPUTS` order. ``upload`` is the file dropped
        on the page's upload box, if any: it is analysed, whatever the player shows (its preview)."""
        path = upload or video or audio
        if self.uploads is not None and request is not None:
            self.uploads.hold(request.session_hash, path)  # deleted when this page closes

        def on_stage(stage: str) -> None:
            fraction, label = PROGRESS[stage]
            progress(fraction, desc=label)

        try:
            service = self._call(self.checkpoints.get, checkpoint, _session(request))
            a = self._call(service.analyse, path, transcript, on_stage)
        except gr.Error as e:
            return self.failed(e.title, e.message)
        progress(0.97, desc="Drawing")
        t0 = time.perf_counter()
        out = self._views(a)
        a.timings["figures"] = time.perf_counter() - t0
        out["timings"] = _timings_text(a)
        out["download"] = gr.update(value=str(service.write_json(a)), interactive=True)
        return tuple(out[k] for k in OUTPUTS)

    @staticmethod
    def clear() -> tuple:
        """Every result emptied before a new analysis: if it fails, no earlier clip's results stay
        on the page under the error, and there is nothing to download."""
        empty = gr.update(choices=[], value=None)
        out: dict[str, Any] = dict.fromkeys(OUTPUTS)
        out.update(
            score="Analysing\u2026 the results appear here.",
            modalities="",
            transcript="",
            contrib_text=SHAPLEY_HELP,
            branch_notes="",
            view_pick=empty,
            word_pick=empty,
            head_pick=gr.update(choices=[MEAN_OF_HEADS], value=MEAN_OF_HEADS),
            gate_text=GATES_HELP,
            timeline=gr.update(value=None, visible=False),
            timings="",
            download=gr.update(value=None, interactive=False),
            what_if_result="",
        )
        return tuple(out[k] for k in OUTPUTS)

    @classmethod
    def failed(cls, title: str, message: str) -> tuple:
        """The results panel after a failed analysis: empty, and the reason in plain words where
        the score would be (it stays until the next run)."""
        out = dict(zip(OUTPUTS, cls.clear()))
        out["score"] = f"### {refused(title, message)}"
        return tuple(out[k] for k in OUTPUTS)

    def show_upload(self, upload: str | None) -> str | None:
        """What the player shows for a file dropped on the upload box (`Service.playable`): the
        file, its playable preview, or nothing; the upload itself is what is analysed."""
        shown = self.service.playable(upload) if upload else None
        return None if shown is None else str(shown)

    def api_predict(self, file: str | None, transcript: str | None = None) -> dict[str, Any]:
        """The ``predict`` API endpoint: the JSON object of ``python -m msa predict --json --explain``.
        The uploaded file is deleted afterwards unless another request or a page still uses it."""
        started = time.time()
        try:
            return self._call(self.service.answer, file, transcript)
        finally:
            if self.uploads is not None and self.queued_references is not None and file:
                others = self.queued_references(Path(file))
                if self.uploads.drop(file, started, None if others is None else others - 1):
                    log.info("deleted upload %s (its API request ended)", Path(file).name)

    def view(
        self,
        state: dict | None,
        pick: str | None,
        word: str | None,
        head: str | None,
        request: gr.Request | None = None,
    ) -> tuple:
        """Redraw "where each word looks" for another branch/layer, word or head (no model run)."""
        expl, context = self._kept(state, request)
        if expl is None:
            return tuple(None for _ in VIEW_OUTPUTS)
        branch, layer = parse_pick(pick, expl)
        index = parse_word(word, expl)
        h = None if not head or head == MEAN_OF_HEADS else int(head.split()[-1]) - 1
        figure = plots.attention_figure(expl, branch, layer, index, head=h, context=context)
        return figure, _word_strip(expl, branch, layer, index)

    def pick_word(self, state: dict | None, evt: gr.SelectData, request: gr.Request | None = None) -> Any:
        """A click on a word of the coloured transcript picks it for the attention view."""
        expl, _ = self._kept(state, request)
        if expl is None or evt.index is None:
            return gr.update()
        i = evt.index if isinstance(evt.index, int) else evt.index[0]
        return word_choices(expl)[int(i)] if 0 <= int(i) < len(expl.words) else gr.update()

    def what_if(
        self, state: dict | None, remove: list[str] | None, words: str | None, request: gr.Request | None = None
    ) -> tuple:
        """Re-run the analysed clip without the voice and/or the face, or with edited words."""
        if not state or not state.get("key"):
            raise gr.Error("Analyse a clip first, then ask what if.", title="Nothing to vary")
        service = self._call(self.checkpoints.get, state.get("checkpoint"), _session(request))
        removed = [r for r in (remove or []) if r in WHAT_IF_CHOICES]
        drop = [WHAT_IF_CHOICES[r] for r in removed]
        edited = (words or "").strip()
        text = edited if edited and edited != (state.get("transcript") or "").strip() else None
        if not drop and text is None:
            raise gr.Error("Tick what to remove, or edit the words, then click What if.", title="Nothing to vary")
        variant = self._call(service.what_if, state["key"], drop, text)
        original = self._call(service.kept_analysis, state["key"])
        label = "what if: " + ", ".join(removed + (["other words"] if text is not None else []))
        v, o = variant.prediction, original.prediction
        lines = [
            f"**{label}** \u2192 **{v.score:+.2f}** ({v.label7}), was {o.score:+.2f} ({o.label7}); "
            f"change {v.score - o.score:+.2f}."
        ]
        if text is not None:
            lines.append(f"Words: *{v.transcript or '(none)'}*")
        if text is None:  # modalities_present is in the Shapley subsets' order
            subset = "+".join(v.modalities_present) or "none"
            lines.append(f"This is the `{subset}` subset among the Shapley values: the same number.")
        untrained = [m for m in drop if m in variant.explanation.untrained_stand_ins()]
        if untrained:
            lines.append(f"\u26a0\ufe0f {wording.what_if_caveat(untrained)}")
        figure = plots.what_if_figure(
            (o.score, original.explanation), (v.score, variant.explanation), "original", label
        )
        return "\n\n".join(lines), figure

    def _kept(self, state: dict | None, request: gr.Request | None) -> tuple[Explanation | None, Any]:
        if not state or not state.get("key"):
            return None, None
        try:
            a = self.checkpoints.get(state.get("checkpoint"), _session(request)).kept_analysis(state["key"])
        except InputError:
            return None, None
        return a.explanation, a.context

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except InputError as e:
            # The user's file, not the server: say what was wrong and what is accepted; no traceback.
            raise gr.Error(scrub_paths(str(e)), title="Cannot analyse this file", print_exception=False) from None
        except Exception as e:
            log.exception("request failed")  # the whole story, paths included, goes to the server's log only
            detail = scrub_paths(f"{type(e).__name__}: {e}")
            raise gr.Error(
                f"Something went wrong on the server ({detail}). The app is still "
                "running: try again, or try another file.",
                title="Server error",
            ) from None

    def _views(self, a: Analysis) -> dict[str, Any]:
        p, e = a.prediction, a.explanation
        out: dict[str, Any] = {}
        name = p.label7 if p.label7 == p.polarity else f"{p.label7} ({p.polarity})"
        reads = wording.reads_sentence(a.reads)
        out["score"] = (
            f"## {p.score:+.2f} \u2014 {name}\nOn a scale from -3 (strongly negative) to +3 (strongly positive). "
            f"**{reads}** {a.scored_by}"
        )
        out["score_plot"] = plots.score_figure(p.score, p.label7, p.polarity)
        out["modalities"] = wording.describe_modalities(p.modalities_present, p.absent, p.transcript_source, p.notes)
        source = "typed by you" if p.transcript_source == "user" else f"speech recognition, Whisper {p.asr_model}"
        out["transcript"] = f"**Transcript** ({source}): {p.transcript or '*(none)*'}"
        out["words"] = [[w.word, round(w.start, 2), round(w.end, 2)] for w in p.words]

        c = e.contributions
        out["contrib_plot"] = plots.shapley_figure(c)
        parts = " ".join(f"{'+' if v >= 0 else MINUS} {abs(v):.3f} ({m})" for m, v in c.values.items())
        out["contrib_text"] = f"{SHAPLEY_HELP}\n\n`{c.base:+.3f} (no modality) {parts} = {c.score:+.3f}`"
        if e.caveat:
            out["contrib_text"] += f"\n\n\u26a0\ufe0f {e.caveat}"

        out["branch_notes"] = _branch_notes(a)
        out["shares"] = plots.share_rows_figure(e)
        out["share_grid"] = plots.share_grid_figure(e)
        picks = pick_choices(e)
        first = next((k for k, g in zip(picks, e.gates) if g.attention is not None), picks[0] if picks else None)
        words = word_choices(e)
        word = words[0] if words else None
        heads = [MEAN_OF_HEADS] + [f"head {h + 1}" for h in range(self._heads(e))]
        out["view_pick"] = gr.update(choices=picks, value=first)
        out["word_pick"] = gr.update(choices=words, value=word)
        out["head_pick"] = gr.update(choices=heads, value=MEAN_OF_HEADS)
        branch, layer = parse_pick(first, e)
        out["attention"] = (
            plots.attention_figure(e, branch, layer, 0, head=None, context=a.context) if e.gates else None
        )
        out["word_strip"] = _word_strip(e, branch, layer)

        scale = wording.gate_scale_sentence(e.gate_activation)
        out["gate_text"] = f"{GATES_HELP}\n\n**Scale.** {scale}"
        for b in ("acoustic", "visual"):
            out[f"gates_{b}"] = plots.gate_heatmaps(e, b) if e.gate_activation else None
        # A timeline only means something for several utterances; otherwise it stays hidden.
        segments = [dataclasses.asdict(s) for s in p.segments]
        figure = plots.timeline_figure(segments, p.duration) if segments else None
        out["timeline"] = gr.update(value=figure, visible=bool(segments))
        out["state"] = {"checkpoint": a.checkpoint, "key": a.key, "transcript": p.transcript}
        out["what_if_result"] = ""
        out["what_if_plot"] = None
        return out

    @staticmethod
    def _heads(e: Explanation) -> int:
        return next((g.attention.shape[0] for g in e.gates if g.attention is not None), 0)

    def checkpoint_choices(self, request: gr.Request | None = None) -> Any:
        """On page load: the picker lists the checkpoints as they are now (folders saved since the
        server started included) and none of another page's own."""
        return gr.update(choices=self.checkpoints.names_for(_session(request)))

    def page_closed(self, request: gr.Request) -> None:
        """The page's session ended (tab closed or reloaded): delete the uploads only it held."""
        if self.uploads is not None:
            for p in self.uploads.release(request.session_hash):
                log.info("deleted upload %s (its page closed)", p.name)

    @staticmethod
    def use_video(video: str | None) -> Any:
        """A new video clears the audio input, so the analysis uses what came last."""
        return None if video else gr.update()

    @staticmethod
    def use_audio(audio: str | None) -> tuple[Any, Any]:
        """A new audio clears the video: the player and the upload box."""
        return (None, None) if audio else (gr.update(), gr.update())


def _session(request: gr.Request | None) -> str:
    """The page's session hash: what its own (fine-tuned) checkpoints are kept under (the Train
    tab's key; "local" for a call without a page)."""
    return getattr(request, "session_hash", None) or "local"


# Pickers side by side wrap onto lines of their own below twice this width (a phone): side by
# side there, "text → visual · layer 1" and a clip's "flipped" mark were cut off.
PICKER_WIDTH = 300


def pick_choices(e: Explanation) -> list[str]:
    """One entry per branch and layer, as the attention view's picker shows them."""
    return [f"{wording.branch_title(g.branch)} \u00b7 layer {g.layer}" for g in e.gates]


def parse_pick(pick: str | None, e: Explanation) -> tuple[str, int]:
    choices = pick_choices(e)
    g = e.gates[choices.index(pick)] if pick in choices else (e.gates[0] if e.gates else None)
    return (g.branch, g.layer) if g is not None else ("acoustic", 1)


def word_choices(e: Explanation) -> list[str]:
    """Numbered, so that a word said twice is two choices."""
    return [f"{i + 1}. {w.text}" for i, w in enumerate(e.words)]


def parse_word(word: str | None, e: Explanation) -> int:
    choices = word_choices(e)
    return choices.index(word) if word in choices else 0


CHOSEN_MARK = "\u25b8 "  # before the word the attention view shows


def _word_strip(e: Explanation, branch: str, layer: int, chosen: int = 0) -> list[tuple[str, float | None]]:
    """The transcript for gr.HighlightedText: each word coloured by its share in this branch and
    layer relative to the row's largest (shares are often a few percent: on an absolute scale every
    word looked blank), the chosen word marked; a branch that saw only the stand-in is not coloured
    (the grey rule: its shares are no evidence). Click a word to see where it looks."""
    g = next((g for g in e.gates if g.branch == branch and g.layer == layer), None)
    share = None if g is None or e.stand_in_reason(branch) else np.asarray(g.share, dtype=float)
    top = float(share.max()) if share is not None and share.size else 0.0
    return [
        (
            (CHOSEN_MARK if i == chosen else "") + w.text + " ",
            round(float(share[i]) / top, 3) if share is not None and top > 0 else None,
        )
        for i, w in enumerate(e.words)
    ]


def refused(title: str, message: str) -> str:
    """What a tab keeps on the page when a request is refused or fails (Analyse's results area, the
    trainers' status line): the reason in plain words, until the next run. The toast raised here
    too comes and goes."""
    gr.Warning(message, title=title)
    return f"\u26a0\ufe0f {title}\n\n{message}"


def _branch_notes(a: Analysis) -> str:
    """What each branch had to work with here and in training (honesty about the checkpoint)."""
    lines = [f"**Checkpoint `{a.checkpoint}`.**"]
    for info in a.explanation.branches.values():
        tag = f" *({wording.grey_line(info.stand_in_reason)})*" if info.stand_in_reason else ""
        lines.append(f"- **{wording.branch_title(info.branch)}**{tag}: {info.note}")
    return "\n".join(lines)


def _timings_text(a: Analysis) -> str:
    t = dict(a.prediction.timings)
    stages = " \u00b7 ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "total" and v > 0)
    cached = " (features from cache)" if a.prediction.from_cache else ""
    extra = a.timings.get("context", 0.0) + a.timings.get("figures", 0.0)
    return (
        f"Seconds: {stages} (the Shapley values' 8 variants run inside the model) \u00b7 frames and voice "
        f"{a.timings.get('context', 0):.2f} \u00b7 figures {a.timings.get('figures', 0):.2f} \u00b7 "
        f"**total {t.get('total', 0) + extra:.2f}**{cached}. Checkpoint `{a.checkpoint}`."
    )
