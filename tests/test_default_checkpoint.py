"""The shipped checkpoint: loads from safetensors + JSON, reproduces its model card, and gets the
polarity of the three real MOSI clips right."""

import json
import math

import numpy as np
import pytest

from conftest import CLIPS as CLIP_DIR
from conftest import DATA, ROOT

# Slow (the shipped checkpoint on the MOSI test fold and the real clips):
# `pytest -m "not slow"` leaves it out.
pytestmark = pytest.mark.slow

DEFAULT = ROOT / "checkpoints" / "default"
CLIPS = {  # data/README.md
    "mosi_Oz06ZWiO20M_6.mp4": -0.8,
    "mosi_Sqr0AcuoNnk_12.mp4": 2.0,
    "mosi_03bSnISJMiM_1.wav": 2.4,
}


def test_checkpoint_is_small_and_safe():
    files = [p for p in DEFAULT.rglob("*") if p.is_file()]
    # 40 MB, decimal (the stricter reading): the trained top layers in float16; the frozen
    # all-mpnet-base-v2 layers are loaded by name from their packages
    assert sum(p.stat().st_size for p in files) < 40 * 10**6
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".bin", ".pkl", ".ckpt")]
    config = json.loads((DEFAULT / "config.json").read_text())
    assert config["backbone_weights"] == "trained"
    assert config["model"]["text_encoder"] == "all-mpnet-base-v2" and config["model"]["text_trainable_layers"] == 2


def test_reproduces_the_model_card_on_mosi_test(tmp_path):
    from msa.__main__ import main

    out = tmp_path / "out.csv"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(DEFAULT),
                "--labels",
                str(DATA / "mosi" / "label.csv"),
                "--split",
                "test",
                "--predictions",
                str(out),
            ]
        )
        == 0
    )
    rows = out.read_text().splitlines()
    assert rows[0] == "id,label,prediction" and len(rows) == 686
    preds = np.array([float(r.rsplit(",", 1)[1]) for r in rows[1:]])
    labels = np.array([float(r.rsplit(",", 2)[1]) for r in rows[1:]])
    from msa.metrics import evaluate

    m = evaluate(preds, labels)
    # the "shipped seed 1113" row of checkpoints/default/README.md
    assert m["acc2_non0"] == pytest.approx(83.97, abs=0.01)
    assert m["mae"] == pytest.approx(0.7102, abs=1e-4)
    assert m["acc7"] == pytest.approx(44.09, abs=0.01)


def test_polarity_of_the_real_clips_matches_their_labels():
    from msa.predict import Predictor

    predictor = Predictor(DEFAULT, asr_model="base")
    for name, label in CLIPS.items():
        result = predictor.run(CLIP_DIR / name).prediction
        assert math.copysign(1, result.score) == math.copysign(1, label), (name, result.score, result.transcript)
        assert result.modalities_present == ["text"]
