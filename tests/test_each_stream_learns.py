"""Each path carries signal: when the label depends on one stream only, training on that stream
brings validation MAE well below the predict-the-mean baseline."""

import numpy as np
import pytest

from msa.config import TrainConfig
from msa.data.synthetic import make_synthetic
from msa.testing import tiny_model
from msa.training.loop import fit


@pytest.mark.parametrize("signal", ["acoustic", "visual", "text"])
def test_training_learns_from_each_stream_alone(signal, tmp_path, tokenizer):
    data = make_synthetic(
        "mosi", n_train=256, n_valid=64, n_test=0, seed=11, signal=signal, min_frames=3, max_frames=10
    )
    train_mean = np.mean([s.label for s in data["train"]])
    baseline = float(np.mean([abs(s.label - train_mean) for s in data["valid"]]))
    cfg = TrainConfig(epochs=6, batch_size=32, lr=3e-3, text_lr=3e-3, patience=6, seed=1)
    result = fit(tiny_model(seed=1), tokenizer, data, cfg, tmp_path, progress=False)
    assert result.valid["mae"] < 0.6 * baseline, (signal, result.valid["mae"], baseline)
    assert result.valid["corr"] > 0.7


def test_plain_text_baseline_script_learns_the_text_signal(tokenizer):
    """scripts/text_baseline.py, the regressor issue 5 compares the default checkpoint with."""
    from msa.testing import tiny_text_backbone
    from scripts.text_baseline import train_one_seed

    data = make_synthetic("mosi", n_train=256, n_valid=0, n_test=64, seed=11, signal="text")
    train_mean = np.mean([s.label for s in data["train"]])
    baseline = float(np.mean([abs(s.label - train_mean) for s in data["test"]]))
    got = train_one_seed(
        tiny_text_backbone(seed=1), tokenizer, data["train"], {"test": data["test"]}, seed=1, epochs=6, lr=3e-3
    )["test"]
    assert got["mae"] < 0.6 * baseline, (got["mae"], baseline)
    assert got["corr"] > 0.7
