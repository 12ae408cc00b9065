"""The plain sentences about what a checkpoint reads, and the refusal advice that follows from it."""

from __future__ import annotations

import pytest

from conftest import feature_checkpoint
from msa.explain import wording
from msa.model.checkpoint import TrainingRecord, load_checkpoint, save_checkpoint
from msa.predict import Predictor
from msa.testing import tiny_model


@pytest.mark.parametrize(
    "reads, sentence",
    [
        (("text",), "This model reads only the words; tone of voice and facial expression do not change its score."),
        (
            ("text", "acoustic"),
            "This model reads the words and the voice; facial expression does not change its score.",
        ),
        (("text", "visual"), "This model reads the words and the face; tone of voice does not change its score."),
        (("text", "acoustic", "visual"), "This model reads the words, the voice and the face."),
        (("visual", "text"), "This model reads the words and the face; tone of voice does not change its score."),
    ],
)
def test_reads_sentence(reads: tuple[str, ...], sentence: str) -> None:
    assert wording.reads_sentence(reads) == sentence


def test_refusal_advice_fits_what_the_checkpoint_reads() -> None:
    words_only = wording.nothing_to_analyse("a.mp4", "text: no speech", ("text",))
    assert "face" not in words_only.split("reads only the words;")[1].split("Upload")[1]
    assert words_only.endswith("Upload a clip in which someone speaks, or type the transcript.")
    faces = wording.nothing_to_analyse("a.mp4", "text: no speech", ("text", "visual"))
    assert faces.endswith("Upload a clip in which someone speaks or their face is visible, or type the transcript.")


def test_a_predictor_reads_what_it_was_trained_on_and_is_fed(tmp_path, fx, tokenizer) -> None:
    text_only = tmp_path / "text"
    save_checkpoint(text_only, tiny_model(acoustic_dim=5, visual_dim=20), tokenizer)
    assert Predictor(text_only, extractor=fx).reads == ("text",)  # no feature spec: the streams are never fed
    streams = feature_checkpoint(tmp_path / "streams", fx, tokenizer)
    assert Predictor(streams, extractor=fx).reads == ("text", "acoustic", "visual")
    ck = load_checkpoint(streams)
    ck.training = TrainingRecord(10, {"text": 10, "acoustic": 10, "visual": 0}, {})
    assert Predictor(ck, extractor=fx).reads == ("text", "acoustic")  # never saw a face in training


@pytest.mark.slow
def test_a_stream_the_checkpoint_does_not_read_is_not_even_made(tmp_path, fx, tokenizer) -> None:
    """A checkpoint that never saw a face in training (the shipped one): the face landmarker does
    not run, and the face is absent because this model does not read it, in those words."""
    from conftest import CLIP

    ck = load_checkpoint(feature_checkpoint(tmp_path / "voice", fx, tokenizer))
    ck.training = TrainingRecord(10, {"text": 10, "acoustic": 10, "visual": 0}, {})
    run = Predictor(ck, extractor=fx).run(CLIP)
    assert run.extraction.timings["visual"] == 0 and run.extraction.sample.meta["frames_sampled"] == 0
    assert run.prediction.modalities_present == ["text", "acoustic"]
    assert run.prediction.absent == {"visual": wording.does_not_read("visual")}
