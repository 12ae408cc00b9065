"""The page: its layout, the events that connect components to `Handlers`, and the queue.

`build_demo` makes the Gradio Blocks that ``app.py`` launches (and the tests and benchmarks
build); one public API endpoint, ``predict``, rides on hidden components.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from gradio_client import handle_file

from ..features import sha256_file
from ..features.media import VIDEO_SUFFIXES, suffixes_said
from .handlers import (
    MEAN_OF_HEADS,
    OUTPUTS,
    PICKER_WIDTH,
    VIEW_OUTPUTS,
    WHAT_IF_CHOICES,
    WHAT_IF_OUTPUTS,
    Handlers,
)
from .lab_tab import LabLimits, LabTab, build_lab_tab
from .service import Checkpoints, Service
from .texts import ATTENTION_HELP, GATES_HELP, GLOSSARY, INTRO, SHAPLEY_HELP, SHARES_HELP
from .train_tab import TrainLimits, TrainTab, build_train_tab
from .trainer import TrainerSlot
from .uploads import UploadLedger

log = logging.getLogger("msa.app")

ROOT = Path(__file__).resolve().parents[2]  # the repository (or a Space's snapshot): checkpoints/, assets/
CHECKPOINTS = ROOT / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINTS / "default"
EXAMPLES = ROOT / "assets" / "examples"

# (file, label) of the shipped examples: real CMU-MOSI segments with the corpus's human rating,
# and one RAVDESS sentence said by one actor in a happy and a sad voice (assets/examples/README.md).
EXAMPLE_CLIPS = (
    ("mosi_Sqr0AcuoNnk_12.mp4", "\u201cone of my favorite actors\u201d (rated +2.0 by people)"),
    ("mosi_Oz06ZWiO20M_6.mp4", "\u201ca really ambitious weird failure\u201d (rated -0.8 by people)"),
    ("mosi_03bSnISJMiM_1.wav", "audio only: \u201cit was really good\u201d (rated +2.4 by people)"),
    ("ravdess_03-01-03-02-01-01-01.flac", "\u201ckids are talking by the door\u201d, a happy voice (RAVDESS)"),
    ("ravdess_03-01-04-02-01-01-01.flac", "\u201ckids are talking by the door\u201d, a sad voice (RAVDESS)"),
)
# Said beside the examples: RAVDESS's licence asks for attribution.
EXAMPLES_NOTE = (
    "The two RAVDESS clips: actor 1 of the Ryerson Audio-Visual Database of Emotional Speech and Song "
    "(Livingstone & Russo, 2018, CC BY-NC-SA 4.0): the same neutral words, acted happy and sad. The "
    "default checkpoint's voice trained on this corpus, these clips included."
)


def build_demo(
    checkpoints: Checkpoints | Service,
    concurrency: int = 1,
    lab_limits: LabLimits | None = None,
    train_limits: TrainLimits | None = None,
    background: list[Callable[[], None]] | None = None,
) -> gr.Blocks:
    """The page: the Analyse tab, the Fusion Lab and the Train tab. ``concurrency`` requests run
    at once (the rest wait in the queue); one suits 2 cores, since each request already uses
    both. A lab run or a fine-tuning trains on one core, one at a time each (`msa.app.lab_tab`,
    `msa.app.train_tab`); ``lab_limits`` and ``train_limits`` cap them (default: from the environment).
    Work for after the server answers (the Lab's lesson, prepared) is added to ``background``."""
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
    trainer = TrainerSlot()  # the Lab's runs and the fine-tunings take turns on one core
    h = Handlers(checkpoints, uploads)
    with gr.Blocks(title="Multimodal sentiment: gated fusion", delete_cache=(600, 1800)) as demo:
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Analyse", id="analyse"):
                gr.Markdown(INTRO)
                state = gr.State(None)
                with gr.Row():
                    with gr.Column(scale=2):
                        with gr.Tabs():
                            with gr.Tab("Video", id="video-tab"):
                                # Files are dropped here, not on the player: the player is handed only
                                # what a browser plays (the file or its preview, `Handlers.show_upload`);
                                # given an flv it raised "Video not playable" while the preview was made.
                                upload = gr.File(
                                    label=f"Upload a video ({suffixes_said(VIDEO_SUFFIXES)})",
                                    file_types=["video", *VIDEO_SUFFIXES],
                                    height=140,
                                    elem_id="video-file",
                                )
                                video = gr.Video(
                                    label="Video: the upload plays here, or record from the webcam",
                                    sources=["webcam"],
                                    # With the webcam as its only source Gradio would otherwise
                                    # mirror every clip and strip its sound (with ffmpeg).
                                    webcam_options=gr.WebcamOptions(mirror=False),
                                    include_audio=True,
                                    elem_id="video-input",
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
                            label="Examples: real CMU-MOSI clips and acted voices (click one to analyse it)",
                            elem_id="examples",
                        )
                        gr.Markdown(EXAMPLES_NOTE, elem_id="examples-note")
                    with gr.Column(scale=3):
                        score = gr.Markdown("Results appear here.", elem_id="score")
                        score_plot = gr.Plot(label="Score", elem_id="score-plot", show_label=False)
                        modalities = gr.Markdown(elem_id="modalities")
                        download = gr.DownloadButton(
                            "Download everything as JSON", elem_id="download", size="md", interactive=False
                        )
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
                # Plots show no Gradio label: their own title names them, and a label would cover its corner.
                shares = gr.Plot(
                    label="Share of each word's update from the other modality", elem_id="shares", show_label=False
                )
                gr.Markdown(SHARES_HELP, elem_id="shares-help")
                with gr.Accordion("Overview: every branch and layer at a glance", open=True):
                    share_grid = gr.Plot(
                        label="Overview (branches \u00d7 layers)", elem_id="share-grid", show_label=False
                    )

                gr.Markdown("## Where each word looks")
                gr.Markdown(ATTENTION_HELP)
                with gr.Row():
                    view_pick = gr.Dropdown(
                        label="Branch and layer", choices=[], min_width=PICKER_WIDTH, elem_id="view-pick"
                    )
                    word_pick = gr.Dropdown(label="Word", choices=[], min_width=PICKER_WIDTH, elem_id="word-pick")
                    head_pick = gr.Dropdown(
                        label="Attention head",
                        choices=[MEAN_OF_HEADS],
                        value=MEAN_OF_HEADS,
                        min_width=PICKER_WIDTH,
                        elem_id="head-pick",
                    )
                word_strip = gr.HighlightedText(
                    label="The words, darker where they take in more in this branch and layer "
                    "(\u25b8 the word shown; click another)",
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
                    with gr.Column():  # one above the other: side by side their words were unreadable on a phone
                        gates_acoustic = gr.Plot(
                            label="text \u2192 acoustic", elem_id="gates-acoustic", show_label=False
                        )
                        gates_visual = gr.Plot(label="text \u2192 visual", elem_id="gates-visual", show_label=False)
                timeline = gr.Plot(label="Timeline", elem_id="timeline", visible=False, show_label=False)
                timings = gr.Markdown(elem_id="timings")
                with gr.Accordion("Words used on this page", open=False, elem_id="glossary"):
                    gr.Markdown(GLOSSARY)
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
                inputs = [video, audio, transcript, checkpoint, upload]
                # Results are emptied first: a failed analysis leaves no earlier clip's results behind.
                run.click(h.clear, None, outputs, queue=False, api_visibility="private").then(
                    h.analyse, inputs, outputs, api_name="analyse", api_visibility="private", **common
                )
                # An example replaces an uploaded file (it is what the upload box holds that is analysed).
                examples.load_input_event.then(lambda: None, None, upload, queue=False, api_visibility="private").then(
                    h.clear, None, outputs, queue=False, api_visibility="private"
                ).then(h.analyse, inputs, outputs, api_visibility="private", **common)
                view_inputs = [state, view_pick, word_pick, head_pick]
                for picker in (view_pick, word_pick, head_pick):
                    picker.input(
                        h.view,
                        view_inputs,
                        [components[k] for k in VIEW_OUTPUTS],
                        api_visibility="private",
                        queue=False,
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
                demo.load(h.checkpoint_choices, None, checkpoint, queue=False, api_visibility="private")
                video.change(h.use_video, video, audio, queue=False, api_visibility="private")
                # A format the browser cannot play (flv, avi, mkv, mov) plays as a preview.
                upload.upload(h.show_upload, upload, video, api_visibility="private", concurrency_id="preview")
                # The upload box and the player show one clip: emptying or recording over one empties the other.
                upload.clear(lambda: None, None, video, queue=False, api_visibility="private")
                for event in (video.clear, video.stop_recording):
                    event(lambda: None, None, upload, queue=False, api_visibility="private")
                audio.change(h.use_audio, audio, [video, upload], queue=False, api_visibility="private")

            with gr.Tab("Fusion Lab", id="lab"):
                build_lab_tab(LabTab(checkpoints, lab_limits, trainer), checkpoint, tabs, demo, background)

            with gr.Tab("Train", id="train", elem_id="train"):
                build_train_tab(TrainTab(checkpoints, train_limits, trainer), checkpoint, demo)

        # The API: hidden components, one public endpoint.
        with gr.Row(visible=False):
            api_file = gr.File(label="file", type="filepath")
            # The API page's sample code sends a shipped example clip (path in a clone of the
            # repository), not Gradio's default sample PDF, which this endpoint refuses.
            example = f"assets/examples/{EXAMPLE_CLIPS[0][0]}"
            api_file.example_value = lambda: example  # type: ignore[method-assign]
            api_file.example_payload = lambda: handle_file(example)  # type: ignore[method-assign]
            api_transcript = gr.Textbox(label="transcript")
            api_result = gr.JSON(label="result")
            api_button = gr.Button("predict")
        api_button.click(
            h.api_predict,
            [api_file, api_transcript],
            api_result,
            api_name="predict",
            api_description="Sentiment of a video or audio file and its explanation, as "
            "`python -m msa predict --json --explain`. The transcript is optional: leave it out "
            "and the speech is recognised.",
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
