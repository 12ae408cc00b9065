"""The page's own behaviour without a browser: the API page's sample, clearing stale results, the
download button, the tabs."""

from __future__ import annotations

import pytest

from conftest import ROOT, feature_checkpoint

gr = pytest.importorskip("gradio")
from msa.app.handlers import OUTPUTS, Handlers  # noqa: E402
from msa.app.page import build_demo  # noqa: E402
from msa.app.service import Checkpoints, Limits, Service  # noqa: E402
from msa.predict import Predictor  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, fx, tokenizer) -> gr.Blocks:
    root = tmp_path_factory.mktemp("checkpoints")
    path = feature_checkpoint(root / "default", fx, tokenizer)
    return build_demo(Checkpoints(Service(Predictor(path, extractor=fx), Limits()), root))


def test_the_api_page_sends_a_shipped_clip_and_the_transcript_is_optional(demo: gr.Blocks) -> None:
    params = {p["parameter_name"]: p for p in demo.get_api_info()["named_endpoints"]["/predict"]["parameters"]}
    example = params["file"]["example_input"]
    path = example["path"] if isinstance(example, dict) else example
    assert path.startswith("assets/examples/") and (ROOT / path).is_file(), example
    assert not params["file"]["parameter_has_default"]
    assert params["transcript"]["parameter_has_default"] and params["transcript"]["parameter_default"] is None


def test_a_new_analysis_first_clears_the_old_results() -> None:
    cleared = dict(zip(OUTPUTS, Handlers.clear()))
    assert len(cleared) == len(OUTPUTS)
    assert cleared["download"]["interactive"] is False and cleared["download"]["value"] is None
    assert cleared["state"] is None and cleared["score_plot"] is None and cleared["shares"] is None
    assert cleared["view_pick"]["choices"] == [] and cleared["timeline"]["visible"] is False


def test_download_starts_disabled_and_the_page_has_both_tabs(demo: gr.Blocks) -> None:
    config = demo.get_config_file()
    by_id = {c.get("props", {}).get("elem_id"): c["props"] for c in config["components"]}
    assert by_id["download"]["interactive"] is False
    labels = {c["props"].get("label") for c in config["components"] if c.get("type") == "tabitem"}
    assert {"Analyse", "Fusion Lab", "Train"} <= labels


def test_the_word_strip_marks_the_chosen_word_and_colours_only_real_evidence() -> None:
    from test_plots import make_explanation

    from msa.app.handlers import _word_strip

    e = make_explanation(visual_present=False)
    shares = next(g.share for g in e.gates if g.branch == "acoustic" and g.layer == 1)
    strip = _word_strip(e, "acoustic", 1, chosen=2)
    assert [t for t, _ in strip] == ["the ", "good ", "\u25b8 film ", "good "]
    assert [v for _, v in strip] == pytest.approx(list(shares / shares.max()), abs=1e-3)
    assert max(v for _, v in strip) == pytest.approx(1.0)  # the word taking most is fully coloured
    assert all(v is None for _, v in _word_strip(e, "visual", 1))  # no face here: stand-in only, not coloured
