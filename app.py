"""The Gradio app: upload or record a clip, read its sentiment, see the gates and each
modality's contribution. Layout and handlers only: the pipeline is `msa.service`, the figures
`msa.plots`.

    python app.py                                  # checkpoints/default, http://127.0.0.1:7860
    python app.py --checkpoint runs/x/best --asr-model tiny.en --port 7861
    MSA_CHECKPOINT=runs/x/best python app.py       # the same, as a Space setting

API: one endpoint, ``predict`` (a file and an optional transcript -> the JSON object that
``python -m msa predict --json`` prints for that file); see README.md, "The app".
"""

from __future__ import annotations

import os

# Before gradio is imported: it reads these at import time. Nothing leaves the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before any thread starts. With the default (8 per core) each
    queue worker thread grows its own arena and the server's memory rose ~20% over its first
    60 concurrent requests in bench/load.py; with 2 it stayed flat (+1.4%)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8 = M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


_limit_malloc_arenas()

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from msa import plots
from msa.explain import BRANCH_NAMES, Explanation
from msa.features import ACCEPTED, sha256_file
from msa.service import (
    PROGRESS,
    Analysis,
    Checkpoints,
    InputError,
    Limits,
    Service,
    describe_modalities,
    gate_scale_sentence,
    scrub_paths,
)
from msa.uploads import UploadLedger

log = logging.getLogger("msa.app")

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ROOT / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINTS / "default"
EXAMPLES = ROOT / "assets" / "examples"

# (file, label) of the shipped examples: real CMU-MOSI segments (gold label in brackets).
EXAMPLE_CLIPS = (
    ("mosi_Sqr0AcuoNnk_12.mp4", "\u201cone of my favorite actors\u201d (gold +2.0)"),
    ("mosi_Oz06ZWiO20M_6.mp4", "\u201ca really ambitious weird failure\u201d (gold -0.8)"),
    ("mosi_03bSnISJMiM_1.wav", "audio only: \u201cit was really good\u201d (gold +2.4)"),
)

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

INTRO = f"""# How does this clip feel?
Upload or record a short opinion clip: a {ACCEPTED} file. The app transcribes it, measures the
voice and the face, and predicts the sentiment on a scale from **-3** (strongly negative) to
**+3** (strongly positive). Then it shows *how* the model got there: how much each word takes in
from the voice and the face, where in the clip each word looks, and how much each modality moved
the score. Ask "what if" to hear the clip without its voice, its face or with other words.
"""

SHARES_HELP = """Each word of the transcript is updated twice per branch (two layers) by what it finds in
the voice (**text \u2192 acoustic**) or the face (**text \u2192 visual**). Two gates decide each update:
the **retain gate** keeps part of the word, the **fusion gate** lets in part of what it found, and
the new word is `LayerNorm(fusion \u00d7 found + retain \u00d7 word)`. A bar is the **share** of that
update that comes from the voice or face: 0% = the word ignores it, 100% = the word is replaced
by it. (The share is measured on the two terms after the LayerNorm's centring, which is exact
whatever the gates' scale; see the README.) Grey rows are branches that had no real stream here or
never saw one in training: what they take in is a learned stand-in, not evidence from this clip."""

ATTENTION_HELP = """Pick a branch and layer, then a word (or click a word in the coloured transcript): the
curve is where that word looks in the voice or the face over time (its attention, the mean over
heads unless you pick one). The shaded band is when the word was spoken. Frames of the video and
the voice's loudness and pitch share the time axis."""

GATES_HELP = """The gate values themselves, channel by channel: words across, channels down. With the
paper's LayerNorm gates single values are hard to read (each word's values are centred near 0); the
shares above are the readable summary."""

SHAPLEY_HELP = """The bars start at the score the model gives with **no** modality (each replaced by a
learned stand-in), then add each modality's exact **Shapley value**: its average effect on the score
over all 8 ways of switching the three modalities on and off. They add up to the final score exactly.
A modality the clip does not carry contributes 0."""

WHAT_IF_CHOICES = {"remove the voice": "acoustic", "remove the face": "visual"}


# ----------------------------------------------------------------------------------------------
# Handlers
# ----------------------------------------------------------------------------------------------


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
        request: gr.Request | None = None,
        progress: Any = gr.Progress(),  # noqa: B008  (Gradio's own pattern: it injects the tracker here)
    ) -> tuple:
        """Everything the results panel shows, in `OUTPUTS` order."""
        path = video or audio
        if self.uploads is not None and request is not None:
            self.uploads.hold(request.session_hash, path)  # deleted when this page closes

        def on_stage(stage: str) -> None:
            fraction, label = PROGRESS[stage]
            progress(fraction, desc=label)

        service = self._call(self.checkpoints.get, checkpoint)
        a = self._call(service.analyse, path, transcript, on_stage)
        progress(0.97, desc="Drawing")
        t0 = time.perf_counter()
        out = self._views(a)
        a.timings["figures"] = time.perf_counter() - t0
        out["timings"] = _timings_text(a)
        out["download"] = str(service.write_json(a))
        return tuple(out[k] for k in OUTPUTS)

    def predict(self, file: str | None, transcript: str | None) -> dict[str, Any]:
        """The ``predict`` API endpoint: the JSON object of ``python -m msa predict --json --explain``.
        The uploaded file is deleted afterwards unless another request or a page still uses it."""
        started = time.time()
        try:
            return self._call(self.service.predict, file, transcript)
        finally:
            if self.uploads is not None and self.queued_references is not None and file:
                others = self.queued_references(Path(file))
                if self.uploads.drop(file, started, None if others is None else others - 1):
                    log.info("deleted upload %s (its API request ended)", Path(file).name)

    def view(self, state: dict | None, pick: str | None, word: str | None, head: str | None) -> tuple:
        """Redraw "where each word looks" for another branch/layer, word or head (no model run)."""
        expl, context = self._kept(state)
        if expl is None:
            return tuple(None for _ in VIEW_OUTPUTS)
        branch, layer = _parse_pick(pick, expl)
        index = _parse_word(word, expl)
        h = None if not head or head == MEAN_OF_HEADS else int(head.split()[-1]) - 1
        figure = plots.attention_figure(expl, branch, layer, index, head=h, context=context)
        return figure, _word_strip(expl, branch, layer)

    def pick_word(self, state: dict | None, evt: gr.SelectData) -> Any:
        """A click on a word of the coloured transcript picks it for the attention view."""
        expl, _ = self._kept(state)
        if expl is None or evt.index is None:
            return gr.update()
        i = evt.index if isinstance(evt.index, int) else evt.index[0]
        return _word_choices(expl)[int(i)] if 0 <= int(i) < len(expl.words) else gr.update()

    def what_if(self, state: dict | None, remove: list[str] | None, words: str | None) -> tuple:
        """Re-run the analysed clip without the voice and/or the face, or with edited words."""
        if not state or not state.get("key"):
            raise gr.Error("Analyse a clip first, then ask what if.", title="Nothing to vary")
        service = self._call(self.checkpoints.get, state.get("checkpoint"))
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
            names = ", ".join(untrained)
            lines.append(
                f"\u26a0\ufe0f This checkpoint's stand-in for {names} never trained ({names} was in every "
                "training sample and modality dropout was 0): the removed stream was replaced by a vector "
                "the model never saw, so this is not what it would say about a clip without it."
            )
        figure = plots.what_if_figure(
            (o.score, original.explanation), (v.score, variant.explanation), "original", label
        )
        return "\n\n".join(lines), figure

    def _kept(self, state: dict | None) -> tuple[Explanation | None, Any]:
        if not state or not state.get("key"):
            return None, None
        try:
            a = self.checkpoints.get(state.get("checkpoint")).kept_analysis(state["key"])
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
        out["score"] = (
            f"## {p.score:+.2f} \u2014 {name}\nOn a scale from -3 (strongly negative) to +3 (strongly positive)."
        )
        out["score_plot"] = plots.score_figure(p.score, p.label7, p.polarity)
        out["modalities"] = describe_modalities(p)
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
        picks = _pick_choices(e)
        first = next((k for k, g in zip(picks, e.gates) if g.attention is not None), picks[0] if picks else None)
        words = _word_choices(e)
        word = words[0] if words else None
        heads = [MEAN_OF_HEADS] + [f"head {h + 1}" for h in range(self._heads(e))]
        out["view_pick"] = gr.update(choices=picks, value=first)
        out["word_pick"] = gr.update(choices=words, value=word)
        out["head_pick"] = gr.update(choices=heads, value=MEAN_OF_HEADS)
        branch, layer = _parse_pick(first, e)
        out["attention"] = (
            plots.attention_figure(e, branch, layer, 0, head=None, context=a.context) if e.gates else None
        )
        out["word_strip"] = _word_strip(e, branch, layer)

        scale = gate_scale_sentence(e.gate_activation)
        out["gate_text"] = f"{GATES_HELP}\n\n**Scale.** {scale}"
        for b in ("acoustic", "visual"):
            views = [g for g in e.gates if g.branch == b]
            out[f"gates_{b}"] = (
                plots.gate_heatmaps(views, e.words, e.gate_activation or "ln") if e.gate_activation else None
            )
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
    def use_audio(audio: str | None) -> Any:
        return None if audio else gr.update()


def _pick_choices(e: Explanation) -> list[str]:
    """One entry per branch and layer, as the attention view's picker shows them."""
    return [f"{_branch_title(g.branch)} \u00b7 layer {g.layer}" for g in e.gates]


def _branch_title(branch: str) -> str:
    """ "text \u2192 acoustic": the JSON's "text->acoustic" with an arrow."""
    return BRANCH_NAMES[branch].replace("->", " \u2192 ")


def _parse_pick(pick: str | None, e: Explanation) -> tuple[str, int]:
    choices = _pick_choices(e)
    g = e.gates[choices.index(pick)] if pick in choices else (e.gates[0] if e.gates else None)
    return (g.branch, g.layer) if g is not None else ("acoustic", 1)


def _word_choices(e: Explanation) -> list[str]:
    """Numbered, so that a word said twice is two choices."""
    return [f"{i + 1}. {w.text}" for i, w in enumerate(e.words)]


def _parse_word(word: str | None, e: Explanation) -> int:
    choices = _word_choices(e)
    return choices.index(word) if word in choices else 0


def _word_strip(e: Explanation, branch: str, layer: int) -> list[tuple[str, float | None]]:
    """The transcript for gr.HighlightedText: each word coloured by its share in this branch and
    layer (click one to see where it looks)."""
    g = next((g for g in e.gates if g.branch == branch and g.layer == layer), None)
    if g is None:
        return [(w.text + " ", None) for w in e.words]
    return [(w.text + " ", round(float(s), 3)) for w, s in zip(e.words, g.share)]


def _branch_notes(a: Analysis) -> str:
    """What each branch had to work with here and in training (honesty about the checkpoint)."""
    lines = [f"**Checkpoint `{a.checkpoint}`.**"]
    for info in a.explanation.branches.values():
        grey = not info.stream_present or info.trained_samples == 0
        tag = " *(drawn grey: stand-in only)*" if grey else ""
        lines.append(f"- **{_branch_title(info.branch)}**{tag}: {info.note}")
    return "\n".join(lines)


def _timings_text(a: Analysis) -> str:
    t = dict(a.prediction.timings)
    stages = " \u00b7 ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "total" and v > 0)
    cached = " (features from cache)" if a.prediction.from_cache else ""
    extra = a.timings.get("context", 0.0) + a.timings.get("figures", 0.0)
    return (
        f"Seconds: {stages} (Shapley subsets inside model) \u00b7 frames and voice "
        f"{a.timings.get('context', 0):.2f} \u00b7 figures {a.timings.get('figures', 0):.2f} \u00b7 "
        f"**total {t.get('total', 0) + extra:.2f}**{cached}. Checkpoint `{a.checkpoint}`."
    )


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------


def build_demo(checkpoints: Checkpoints | Service, concurrency: int = 1) -> gr.Blocks:
    """The page. ``concurrency`` requests run at once (the rest wait in the queue); one suits
    2 cores, since each request already uses both."""
    if isinstance(checkpoints, Service):
        checkpoints = Checkpoints(checkpoints)
    # A page's uploads are deleted when it closes, an API call's when it ends (UploadLedger);
    # whatever is left (pages that vanish without closing) is swept: older than 30 minutes, every 10.
    # Examples are recognised by content (any cached copy); the size check spares hashing every
    # upload (up to the size limit) when its request ends or its page closes.
    example_digests = {(f.stat().st_size, sha256_file(f)) for f in (EXAMPLES / name for name, _ in EXAMPLE_CLIPS)}
    example_sizes = {size for size, _ in example_digests}

    def is_example(p: Path) -> bool:
        size = p.stat().st_size
        return size in example_sizes and (size, sha256_file(p)) in example_digests

    uploads = UploadLedger(gr.utils.get_upload_folder(), is_example)
    h = Handlers(checkpoints, uploads)
    with gr.Blocks(title="Multimodal sentiment: gated fusion", delete_cache=(600, 1800)) as demo:
        gr.Markdown(INTRO)
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Video", id="video-tab"):
                        video = gr.Video(
                            label="Video (upload or webcam)", sources=["upload", "webcam"], elem_id="video-input"
                        )
                    with gr.Tab("Audio", id="audio-tab"):
                        audio = gr.Audio(
                            label="Audio (upload or microphone)",
                            sources=["upload", "microphone"],
                            type="filepath",
                            elem_id="audio-input",
                        )
                transcript = gr.Textbox(
                    label="Transcript (optional)",
                    lines=2,
                    elem_id="transcript-input",
                    placeholder="Leave empty to transcribe automatically; type what is said to "
                    "correct the transcription, then run again.",
                )
                checkpoint = gr.Dropdown(
                    checkpoints.names,
                    value=checkpoints.names[0],
                    label="Checkpoint",
                    info="Folders under checkpoints/: run the same clip with two models to compare them.",
                    elem_id="checkpoint",
                )
                run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                limits = checkpoints.limits
                gr.Markdown(f"Up to {limits.max_seconds:g} s and {limits.max_megabytes:g} MB per clip.")
                # Clicking an example fills the inputs, then analyses it (see the .then below).
                examples = gr.Examples(
                    examples=[
                        [str(EXAMPLES / f), None, ""] if f.endswith(".mp4") else [None, str(EXAMPLES / f), ""]
                        for f, _ in EXAMPLE_CLIPS
                    ],
                    example_labels=[label for _, label in EXAMPLE_CLIPS],
                    inputs=[video, audio, transcript],
                    cache_examples=False,
                    label="Examples: real CMU-MOSI clips (click one to analyse it)",
                    elem_id="examples",
                )
            with gr.Column(scale=3):
                score = gr.Markdown("Results appear here.", elem_id="score")
                score_plot = gr.Plot(label="Score", elem_id="score-plot", show_label=False)
                modalities = gr.Markdown(elem_id="modalities")
                download = gr.DownloadButton("Download everything as JSON", elem_id="download", size="md")
        with gr.Row():
            with gr.Column():
                transcript_md = gr.Markdown(elem_id="transcript")
                words = gr.Dataframe(
                    headers=["word", "start (s)", "end (s)"],
                    label="Word timings",
                    interactive=False,
                    max_height=260,
                    elem_id="words",
                )
            with gr.Column():
                contrib_plot = gr.Plot(label="Contributions", elem_id="contrib-plot", show_label=False)
                contrib_text = gr.Markdown(SHAPLEY_HELP, elem_id="contrib-text")

        gr.Markdown("## How much each word takes in from the voice and the face")
        branch_notes = gr.Markdown(elem_id="branch-notes")
        shares = gr.Plot(label="Share of each word's update from the other modality", elem_id="shares")
        gr.Markdown(SHARES_HELP, elem_id="shares-help")
        with gr.Accordion("Overview: every branch and layer at a glance", open=True):
            share_grid = gr.Plot(label="Overview (branches \u00d7 layers)", elem_id="share-grid", show_label=False)

        gr.Markdown("## Where each word looks")
        gr.Markdown(ATTENTION_HELP)
        with gr.Row():
            view_pick = gr.Dropdown(label="Branch and layer", choices=[], elem_id="view-pick")
            word_pick = gr.Dropdown(label="Word", choices=[], elem_id="word-pick")
            head_pick = gr.Dropdown(
                label="Attention head", choices=[MEAN_OF_HEADS], value=MEAN_OF_HEADS, elem_id="head-pick"
            )
        word_strip = gr.HighlightedText(
            label="The words, coloured by their share in this branch and layer (click one)",
            show_legend=False,
            combine_adjacent=False,
            elem_id="word-strip",
        )
        attention = gr.Plot(label="Attention over time", elem_id="attention", show_label=False)

        gr.Markdown("## What if?")
        with gr.Row():
            remove = gr.CheckboxGroup(list(WHAT_IF_CHOICES), label="Remove", elem_id="what-if-remove")
            edited = gr.Textbox(
                label="...or edit the words (the voice and face stay)", lines=1, elem_id="what-if-words"
            )
            what_if_button = gr.Button("What if?", elem_id="what-if")
        what_if_result = gr.Markdown(elem_id="what-if-result")
        what_if_plot = gr.Plot(label="What if: beside the original", elem_id="what-if-plot", show_label=False)

        with gr.Accordion("Advanced: the gate values channel by channel", open=False):
            gate_text = gr.Markdown(GATES_HELP, elem_id="gate-text")
            with gr.Row():
                gates_acoustic = gr.Plot(label="text \u2192 acoustic", elem_id="gates-acoustic")
                gates_visual = gr.Plot(label="text \u2192 visual", elem_id="gates-visual")
        timeline = gr.Plot(label="Timeline", elem_id="timeline", visible=False)
        timings = gr.Markdown(elem_id="timings")
        components = dict(
            score=score,
            score_plot=score_plot,
            modalities=modalities,
            transcript=transcript_md,
            words=words,
            contrib_plot=contrib_plot,
            contrib_text=contrib_text,
            branch_notes=branch_notes,
            shares=shares,
            share_grid=share_grid,
            view_pick=view_pick,
            word_pick=word_pick,
            head_pick=head_pick,
            attention=attention,
            word_strip=word_strip,
            gate_text=gate_text,
            gates_acoustic=gates_acoustic,
            gates_visual=gates_visual,
            timeline=timeline,
            timings=timings,
            download=download,
            state=state,
            what_if_result=what_if_result,
            what_if_plot=what_if_plot,
        )
        outputs = [components[k] for k in OUTPUTS]

        common = dict(concurrency_id="model", concurrency_limit=concurrency)
        inputs = [video, audio, transcript, checkpoint]
        run.click(h.analyse, inputs, outputs, api_name="analyse", api_visibility="private", **common)
        examples.load_input_event.then(h.analyse, inputs, outputs, api_visibility="private", **common)
        view_inputs = [state, view_pick, word_pick, head_pick]
        for picker in (view_pick, word_pick, head_pick):
            picker.input(
                h.view, view_inputs, [components[k] for k in VIEW_OUTPUTS], api_visibility="private", queue=False
            )
        word_strip.select(h.pick_word, state, word_pick, api_visibility="private", queue=False).then(
            h.view, view_inputs, [components[k] for k in VIEW_OUTPUTS], api_visibility="private", queue=False
        )
        what_if_button.click(
            h.what_if,
            [state, remove, edited],
            [components[k] for k in WHAT_IF_OUTPUTS],
            api_visibility="private",
            **common,
        )
        demo.unload(h.page_closed)
        video.change(h.use_video, video, audio, queue=False, api_visibility="private")
        audio.change(h.use_audio, audio, video, queue=False, api_visibility="private")

        # The API: hidden components, one public endpoint.
        with gr.Row(visible=False):
            api_file = gr.File(label="file", type="filepath")
            api_transcript = gr.Textbox(label="transcript")
            api_result = gr.JSON(label="result")
            api_button = gr.Button("predict")
        api_button.click(
            h.predict,
            [api_file, api_transcript],
            api_result,
            api_name="predict",
            api_description="Sentiment of a video or audio file and its explanation, as "
            "`python -m msa predict --json --explain`.",
            **common,
        )
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    h.queued_references = lambda p: _queued_references(demo, p)
    return demo


def _queued_references(demo: gr.Blocks, path: Path) -> int | None:
    """How many queued or running requests name ``path`` (the calling one included), from
    Gradio's queue (internal; pinned gradio). None when it cannot be read: nothing is deleted."""
    try:
        key = f"{path.parent.name}/{path.name}"  # uploads live in <content hash>/<name>
        events = list(demo._queue.event_ids_to_events.values())
        return sum(
            key in json.dumps(e.data.data, default=str, ensure_ascii=False) for e in events if e.data is not None
        )
    except Exception as e:  # a gradio upgrade moved things: keep files (the sweep still runs)
        log.warning("cannot read the request queue (%s); uploads are left to the sweep", e)
        return None


THEME = gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])  # no web fonts


# ----------------------------------------------------------------------------------------------
# Start-up
# ----------------------------------------------------------------------------------------------


def build_service(
    checkpoint: str | os.PathLike[str], asr_model: str | None = None, limits: Limits | None = None, warm_up: bool = True
) -> Service:
    """Load the checkpoint and the feature models once, side by side, and pay their first-call
    costs now."""
    from msa.predict import load_predictor

    return Service(load_predictor(checkpoint, asr_model=asr_model, warm_up=warm_up), limits)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="The multimodal sentiment app (Gradio).")
    ap.add_argument(
        "--checkpoint",
        default=os.environ.get("MSA_CHECKPOINT") or str(DEFAULT_CHECKPOINT),
        help="checkpoint folder (default: $MSA_CHECKPOINT, else checkpoints/default)",
    )
    ap.add_argument(
        "--checkpoints-dir",
        type=Path,
        default=CHECKPOINTS,
        help="folder whose checkpoint folders the page's picker lists (default: checkpoints/)",
    )
    ap.add_argument(
        "--asr-model",
        choices=("base", "tiny.en"),
        default=os.environ.get("MSA_ASR_MODEL") or None,
        help="Whisper model (default: $MSA_ASR_MODEL, else base)",
    )
    ap.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)")
    ap.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    ap.add_argument(
        "--max-seconds", type=float, default=None, help="longest clip accepted (default: $MSA_MAX_SECONDS, else 300)"
    )
    ap.add_argument("--max-mb", type=float, default=None, help="largest upload in MB (default: $MSA_MAX_MB, else 200)")
    ap.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("MSA_CONCURRENCY", "1")),
        help="requests processed at once; the rest queue (default 1: each already uses every core)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    env = Limits.from_env()
    limits = Limits(args.max_seconds or env.max_seconds, args.max_mb or env.max_megabytes)
    t0 = time.perf_counter()
    try:
        service = build_service(args.checkpoint, args.asr_model, limits)
    except (OSError, ValueError, RuntimeError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    log.info("model and feature extractors loaded and warmed up in %.1f s", time.perf_counter() - t0)
    demo = build_demo(Checkpoints(service, args.checkpoints_dir), args.concurrency)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=limits.max_bytes,
        theme=THEME,
        footer_links=["api"],
        show_error=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
