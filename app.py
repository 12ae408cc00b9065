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

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import gradio as gr  # noqa: E402

from msa import plots  # noqa: E402
from msa.features import ACCEPTED, sha256_file  # noqa: E402
from msa.service import (  # noqa: E402
    STAGES,
    Analysis,
    InputError,
    Limits,
    Service,
    UploadLedger,
    describe_modalities,
    gate_scale_sentence,
)

log = logging.getLogger("msa.app")

ROOT = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = ROOT / "checkpoints" / "default"
EXAMPLES = ROOT / "assets" / "examples"

# (file, label) of the shipped examples: real CMU-MOSI segments (gold label in brackets).
EXAMPLE_CLIPS = (
    ("mosi_Sqr0AcuoNnk_12.mp4", "\u201cone of my favorite actors\u201d (gold +2.0)"),
    ("mosi_Oz06ZWiO20M_6.mp4", "\u201ca really ambitious weird failure\u201d (gold -0.8)"),
    ("mosi_03bSnISJMiM_1.wav", "audio only: \u201cit was really good\u201d (gold +2.4)"),
)

MINUS = "\u2212"

# Names of the analysis handler's outputs, in order (tests read results by name).
OUTPUTS = (
    "score", "score_plot", "modalities", "transcript", "words", "contrib_plot", "contrib_text",
    "gate_text", "gates_acoustic", "gates_visual", "gates_summary", "timeline", "timings", "download",
)  # fmt: skip

INTRO = f"""# How does this clip feel?
Upload or record a short opinion clip: a {ACCEPTED} file. The app transcribes it, measures the
voice and the face, and predicts the sentiment on a scale from **-3** (strongly negative) to
**+3** (strongly positive). Then it shows *how* the model got there: the gates with which each
word takes in the voice and the face, and how much each modality moved the score.
"""

GATES_HELP = """Each word of the transcript is a row of numbers (channels) that is updated twice per branch,
once per layer, by looking at the voice (**text \u2192 acoustic**) or the face (**text \u2192 visual**).
Two gates decide each update, channel by channel:

- the **retain gate** says how much of the word's own meaning each channel keeps;
- the **fusion gate** says how much of what the word found in the voice or face is mixed in.

The new word is `LayerNorm(fusion \u00d7 found + retain \u00d7 word)`. In the heatmaps words run
across and channels down; a word split by the tokenizer shows the mean of its pieces."""

SHAPLEY_HELP = """The bars start at the score the model gives with **no** modality (each replaced by a
learned stand-in), then add each modality's exact **Shapley value**: its average effect on the score
over all 8 ways of switching the three modalities on and off. They add up to the final score exactly.
A modality the clip does not carry contributes 0."""


# ----------------------------------------------------------------------------------------------
# Handlers
# ----------------------------------------------------------------------------------------------


class Handlers:
    """The page's event handlers around one `Service` (one loaded model for every request)."""

    def __init__(self, service: Service, uploads: UploadLedger | None = None):
        self.service = service
        self.uploads = uploads
        # Set by build_demo: how many queued or running requests name a file (None: unknown).
        self.queued_references: Callable[[Path], int | None] | None = None

    def analyse(
        self,
        video: str | None,
        audio: str | None,
        transcript: str | None,
        request: gr.Request | None = None,
        progress: Any = gr.Progress(),
    ) -> tuple:
        """Everything the results panel shows, in `OUTPUTS` order."""
        path = video or audio
        if self.uploads is not None and request is not None:
            self.uploads.hold(request.session_hash, path)  # deleted when this page closes

        def on_stage(stage: str) -> None:
            fraction, label = STAGES[stage]
            progress(fraction, desc=label)

        a = self._call(self.service.analyse, path, transcript, on_stage)
        progress(0.97, desc="Drawing")
        t0 = time.perf_counter()
        out = self._views(a)
        a.timings["figures"] = time.perf_counter() - t0
        out["timings"] = _timings_text(a)
        out["download"] = str(self.service.write_json(a))
        return tuple(out[k] for k in OUTPUTS)

    def predict(self, file: str | None, transcript: str | None) -> dict[str, Any]:
        """The ``predict`` API endpoint: the JSON object of ``python -m msa predict --json``.
        The uploaded file is deleted afterwards unless another request or a page still uses it."""
        started = time.time()
        try:
            return self._call(self.service.predict, file, transcript)
        finally:
            if self.uploads is not None and self.queued_references is not None and file:
                others = self.queued_references(Path(file))
                if self.uploads.drop(file, started, None if others is None else others - 1):
                    log.info("deleted upload %s (its API request ended)", Path(file).name)

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except InputError as e:
            # The user's file, not the server: say what was wrong and what is accepted; no traceback.
            raise gr.Error(str(e), title="Cannot analyse this file", print_exception=False) from None
        except Exception as e:
            log.exception("request failed")
            raise gr.Error(f"Something went wrong on the server ({type(e).__name__}: {e}). The app is still "
                           "running: try again, or try another file.", title="Server error") from None  # fmt: skip

    def _views(self, a: Analysis) -> dict[str, Any]:
        p = a.prediction
        out: dict[str, Any] = {}
        name = p.label7 if p.label7 == p.polarity else f"{p.label7} ({p.polarity})"
        out["score"] = (f"## {p.score:+.2f} \u2014 {name}\n"
                        "On a scale from -3 (strongly negative) to +3 (strongly positive).")  # fmt: skip
        out["score_plot"] = plots.score_figure(p.score, p.label7, p.polarity)
        out["modalities"] = describe_modalities(p)
        source = "typed by you" if p.transcript_source == "user" else f"speech recognition, Whisper {p.asr_model}"
        out["transcript"] = f"**Transcript** ({source}): {p.transcript or '*(none)*'}"
        out["words"] = [[w.word, round(w.start, 2), round(w.end, 2)] for w in p.words]

        c = a.contributions
        out["contrib_plot"] = plots.shapley_figure(c)
        parts = " ".join(f"{'+' if v >= 0 else MINUS} {abs(v):.3f} ({m})" for m, v in c.values.items())
        out["contrib_text"] = f"{SHAPLEY_HELP}\n\n`{c.base:+.3f} (no modality) {parts} = {c.score:+.3f}`"

        out["gate_text"] = f"{GATES_HELP}\n\n**Scale.** {gate_scale_sentence(a.gate_activation, a.use_gates)}"
        for branch in ("acoustic", "visual"):
            layers = [g for g in a.gates if g.branch == branch]
            out[f"gates_{branch}"] = plots.gate_heatmaps(layers, a.words, a.gate_activation) if layers else None
        out["gates_summary"] = plots.gate_summary_figure(a.gates, a.words, a.gate_activation) if a.gates else None
        # A timeline only means something for several utterances; otherwise it stays hidden.
        segments = [dataclasses.asdict(s) for s in p.segments]
        figure = plots.timeline_figure(segments, p.duration) if segments else None
        out["timeline"] = gr.update(value=figure, visible=bool(segments))
        return out

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


def _timings_text(a: Analysis) -> str:
    t = dict(a.prediction.timings)
    gates = a.timings.get("gates", 0.0)
    stages = " \u00b7 ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "total" and v > 0)
    cached = " (features from cache)" if a.prediction.from_cache else ""
    return (f"Seconds: {stages} (Shapley subsets included) \u00b7 gate summaries {gates:.3f} \u00b7 figures "
            f"{a.timings.get('figures', 0):.2f} \u00b7 **total {t.get('total', 0) + gates:.2f}**{cached}. "
            f"Checkpoint `{a.prediction.checkpoint}`.")  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------


def build_demo(service: Service, concurrency: int = 1) -> gr.Blocks:
    """The page. ``concurrency`` requests run at once (the rest wait in the queue); one suits
    2 cores, since each request already uses both."""
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
    h = Handlers(service, uploads)
    with gr.Blocks(title="Multimodal sentiment: gated fusion", delete_cache=(600, 1800)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Video", id="video-tab"):
                        video = gr.Video(label="Video (upload or webcam)", sources=["upload", "webcam"], elem_id="video-input")
                    with gr.Tab("Audio", id="audio-tab"):
                        audio = gr.Audio(label="Audio (upload or microphone)", sources=["upload", "microphone"],
                                         type="filepath", elem_id="audio-input")  # fmt: skip
                transcript = gr.Textbox(label="Transcript (optional)", lines=2, elem_id="transcript-input",
                                        placeholder="Leave empty to transcribe automatically; type what is said to "
                                        "correct the transcription, then run again.")  # fmt: skip
                run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                limits = service.limits
                gr.Markdown(f"Up to {limits.max_seconds:g} s and {limits.max_megabytes:g} MB per clip.")
                # Clicking an example fills the inputs, then analyses it (see the .then below).
                examples = gr.Examples(
                    examples=[[str(EXAMPLES / f), None, ""] if f.endswith(".mp4") else [None, str(EXAMPLES / f), ""]
                              for f, _ in EXAMPLE_CLIPS],
                    example_labels=[label for _, label in EXAMPLE_CLIPS], inputs=[video, audio, transcript],
                    cache_examples=False, label="Examples: real CMU-MOSI clips (click one to analyse it)",
                    elem_id="examples",
                )  # fmt: skip
            with gr.Column(scale=3):
                score = gr.Markdown("Results appear here.", elem_id="score")
                score_plot = gr.Plot(label="Score", elem_id="score-plot", show_label=False)
                modalities = gr.Markdown(elem_id="modalities")
                download = gr.DownloadButton("Download everything as JSON", elem_id="download", size="md")
        with gr.Row():
            with gr.Column():
                transcript_md = gr.Markdown(elem_id="transcript")
                words = gr.Dataframe(headers=["word", "start (s)", "end (s)"], label="Word timings",
                                     interactive=False, max_height=260, elem_id="words")  # fmt: skip
            with gr.Column():
                contrib_plot = gr.Plot(label="Contributions", elem_id="contrib-plot", show_label=False)
                contrib_text = gr.Markdown(SHAPLEY_HELP, elem_id="contrib-text")
        gr.Markdown("## Gates: how each word takes in the voice and the face")
        gate_text = gr.Markdown(GATES_HELP, elem_id="gate-text")
        with gr.Row():
            gates_acoustic = gr.Plot(label="text \u2192 acoustic", elem_id="gates-acoustic")
            gates_visual = gr.Plot(label="text \u2192 visual", elem_id="gates-visual")
        gates_summary = gr.Plot(label="Per-word gate summary", elem_id="gates-summary")
        timeline = gr.Plot(label="Timeline", elem_id="timeline", visible=False)
        timings = gr.Markdown(elem_id="timings")
        outputs = [score, score_plot, modalities, transcript_md, words, contrib_plot, contrib_text, gate_text,
                   gates_acoustic, gates_visual, gates_summary, timeline, timings, download]  # fmt: skip
        assert len(outputs) == len(OUTPUTS)

        common = dict(concurrency_id="model", concurrency_limit=concurrency)
        run.click(h.analyse, [video, audio, transcript], outputs, api_name="analyse", api_visibility="private",
                  **common)  # fmt: skip
        examples.load_input_event.then(h.analyse, [video, audio, transcript], outputs, api_visibility="private",
                                       **common)  # fmt: skip
        demo.unload(h.page_closed)
        video.change(h.use_video, video, audio, queue=False, api_visibility="private")
        audio.change(h.use_audio, audio, video, queue=False, api_visibility="private")

        # The API: hidden components, one public endpoint.
        with gr.Row(visible=False):
            api_file = gr.File(label="file", type="filepath")
            api_transcript = gr.Textbox(label="transcript")
            api_result = gr.JSON(label="result")
            api_button = gr.Button("predict")
        api_button.click(h.predict, [api_file, api_transcript], api_result, api_name="predict",
                         api_description="Sentiment of a video or audio file, as `python -m msa predict --json`.",
                         **common)  # fmt: skip
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    h.queued_references = lambda p: _queued_references(demo, p)
    return demo


def _queued_references(demo: gr.Blocks, path: Path) -> int | None:
    """How many queued or running requests name ``path`` (the calling one included), from
    Gradio's queue (internal; pinned gradio). None when it cannot be read: nothing is deleted."""
    try:
        key = f"{path.parent.name}/{path.name}"  # uploads live in <content hash>/<name>
        events = list(demo._queue.event_ids_to_events.values())
        return sum(key in json.dumps(e.data.data, default=str, ensure_ascii=False) for e in events if e.data is not None)
    except Exception as e:  # a gradio upgrade moved things: keep files (the sweep still runs)
        log.warning("cannot read the request queue (%s); uploads are left to the sweep", e)
        return None


THEME = gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])  # no web fonts


# ----------------------------------------------------------------------------------------------
# Start-up
# ----------------------------------------------------------------------------------------------


def build_service(checkpoint: str | os.PathLike[str], asr_model: str | None = None, limits: Limits | None = None,
                  warm_up: bool = True) -> Service:  # fmt: skip
    """Load the checkpoint and the feature models once, and pay their first-call costs now."""
    from msa.predict import Predictor

    predictor = Predictor(checkpoint, asr_model=asr_model)
    if warm_up:
        predictor.warm_up()
    return Service(predictor, limits)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="The multimodal sentiment app (Gradio).")
    ap.add_argument("--checkpoint", default=os.environ.get("MSA_CHECKPOINT") or str(DEFAULT_CHECKPOINT),
                    help="checkpoint folder (default: $MSA_CHECKPOINT, else checkpoints/default)")  # fmt: skip
    ap.add_argument("--asr-model", choices=("base", "tiny.en"), default=os.environ.get("MSA_ASR_MODEL") or None,
                    help="Whisper model (default: $MSA_ASR_MODEL, else base)")  # fmt: skip
    ap.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)")
    ap.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    ap.add_argument("--max-seconds", type=float, default=None, help="longest clip accepted (default: $MSA_MAX_SECONDS, else 300)")
    ap.add_argument("--max-mb", type=float, default=None, help="largest upload in MB (default: $MSA_MAX_MB, else 200)")
    ap.add_argument("--concurrency", type=int, default=int(os.environ.get("MSA_CONCURRENCY", "1")),
                    help="requests processed at once; the rest queue (default 1: each already uses every core)")  # fmt: skip
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
    demo = build_demo(service, args.concurrency)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=limits.max_bytes, theme=THEME,
                footer_links=["api"], show_error=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
