"""Checkpoints: identical predictions after a round trip; anything unsafe or corrupt refused."""

import dataclasses
import json
import pickle

import pytest
import torch

from conftest import random_samples
from msa.data import Collator
from msa.features import FeatureSpec
from msa.model.checkpoint import CheckpointError, TrainingRecord, load_checkpoint, load_tensors, save_checkpoint
from msa.testing import tiny_model
from msa.training.loop import predict_scores


def _scores(model, tokenizer, samples):
    c = model.config
    return predict_scores(model, samples, Collator.for_model(tokenizer, c))


def test_round_trip_gives_identical_predictions(tmp_path, tokenizer):
    model = tiny_model(seed=5, gates="sigmoid")
    samples = random_samples(6, seed=2)
    before = _scores(model, tokenizer, samples)
    spec = FeatureSpec(voice_stream="librosa", acoustic_rate=100.0)  # typed objects in, the same objects out
    record = TrainingRecord.of(samples[:4] + [dataclasses.replace(samples[4], visual=None)], 0.0)
    assert record.stand_ins_trained == {"text": False, "acoustic": False, "visual": True}
    for _ in range(2):  # saving over an existing checkpoint (every epoch) leaves no stray files
        save_checkpoint(tmp_path / "ck", model, tokenizer, feature_spec=spec, meta={"note": "x"}, training=record)
        assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors", "tokenizer"]
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.model.config == model.config
    assert loaded.feature_spec is not None and loaded.feature_spec.to_dict() == spec.to_dict()
    assert loaded.meta == {"note": "x"} and loaded.training == record
    assert not loaded.model.training
    after = _scores(loaded.model, loaded.tokenizer, samples)
    assert (before == after).all()


def test_frozen_pretrained_backbone_is_referenced_not_stored(tmp_path, tokenizer):
    from msa.config import ModelConfig
    from msa.model import SentimentModel

    torch.manual_seed(0)
    cfg = ModelConfig(freeze_text_encoder=True, hidden=32, lstm_hidden=16, fusion_heads=2, head_hidden=32)
    model = SentimentModel(cfg)  # the packaged MiniLM
    samples = random_samples(3)
    before = _scores(model, tokenizer, samples)
    save_checkpoint(tmp_path / "ck", model, tokenizer)
    stored = load_tensors(tmp_path / "ck" / "model.safetensors")
    assert not any(k.startswith("text.backbone.") for k in stored)
    assert (tmp_path / "ck" / "model.safetensors").stat().st_size < 5_000_000
    after = _scores(load_checkpoint(tmp_path / "ck").model, tokenizer, samples)
    assert (before == after).all()


def test_partly_fine_tuned_backbone_stores_only_its_trained_layers(tmp_path, tokenizer):
    from msa.config import ModelConfig
    from msa.model import SentimentModel

    torch.manual_seed(0)
    cfg = ModelConfig(text_trainable_layers=1, hidden=32, lstm_hidden=16, fusion_heads=2, head_hidden=32)
    model = SentimentModel(cfg)  # the packaged 6-layer MiniLM
    with torch.no_grad():  # stand-in for training: change the trained top layer
        model.text.backbone.encoder.layer[5].output.dense.bias.add_(0.5)
    samples = random_samples(3)
    before = _scores(model, tokenizer, samples)
    save_checkpoint(tmp_path / "ck", model, tokenizer)
    backbone_keys = {k for k in load_tensors(tmp_path / "ck" / "model.safetensors") if k.startswith("text.backbone.")}
    assert backbone_keys and all(k.startswith("text.backbone.encoder.layer.5.") for k in backbone_keys)
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["backbone_weights"] == "trained"
    loaded = load_checkpoint(tmp_path / "ck")
    assert (before == _scores(loaded.model, tokenizer, samples)).all()


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path, tokenizer):
    model = tiny_model(seed=3)
    samples = random_samples(4)
    save_checkpoint(tmp_path / "f32", model, tokenizer)
    save_checkpoint(tmp_path / "f16", model, tokenizer, weights_dtype="float16")
    size = lambda p: (p / "model.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "f16") < 0.55 * size(tmp_path / "f32")
    loaded = load_checkpoint(tmp_path / "f16")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert json.loads((tmp_path / "f16" / "config.json").read_text())["weights_dtype"] == "float16"
    before, after = _scores(model, tokenizer, samples), _scores(loaded.model, tokenizer, samples)
    assert abs(before - after).max() < 1e-2 and (before != after).any()
    with pytest.raises(ValueError, match="weights_dtype"):
        save_checkpoint(tmp_path / "bad", model, tokenizer, weights_dtype="int8")


def test_corrupt_weights_are_refused(tmp_path, tokenizer):
    save_checkpoint(tmp_path / "ck", tiny_model(), tokenizer)
    weights = tmp_path / "ck" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(tmp_path / "ck")


def test_pickle_offered_as_weights_is_refused_without_running_it(tmp_path, tokenizer):
    save_checkpoint(tmp_path / "ck", tiny_model(), tokenizer)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "ck" / "model.safetensors").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(tmp_path / "ck")
    assert not marker.exists()
    torch.save({"a": torch.zeros(1)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="pickle-based files are never loaded"):
        load_tensors(tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="not a single file"):
        load_checkpoint(tmp_path / "model.pt")


def test_bad_config_is_refused(tmp_path, tokenizer):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "ck", tiny_model(), tokenizer)
    cfg_path = tmp_path / "ck" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["hidden"] = 64  # weights no longer match
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_checkpoint(tmp_path / "ck")
    cfg_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "ck")


@pytest.mark.parametrize(
    ("stored", "gates"),
    [
        ({"use_gates": True, "gate_activation": "ln"}, "ln"),
        ({"use_gates": True, "gate_activation": "sigmoid"}, "sigmoid"),
        ({"use_gates": False, "gate_activation": "sigmoid"}, "none"),  # no gates, whatever the activation
        ({"use_gates": False}, "none"),
        ({"gate_activation": "sigmoid"}, "sigmoid"),
    ],
)
def test_a_checkpoint_with_the_two_old_gate_flags_loads_as_one_setting(tmp_path, tokenizer, stored, gates):
    """Before `gates`, the fusion variant was use_gates + gate_activation (the shipped default's
    config.json still says so): such a checkpoint loads with the same weights and the same scores."""
    model = tiny_model(seed=4, gates=gates)
    save_checkpoint(tmp_path / "ck", model, tokenizer)
    config_file = tmp_path / "ck" / "config.json"
    config = json.loads(config_file.read_text())
    del config["model"]["gates"]
    config["model"].update(stored)
    config_file.write_text(json.dumps(config))
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.model.config.gates == gates
    samples = random_samples(4, seed=1)
    assert (_scores(loaded.model, loaded.tokenizer, samples) == _scores(model.eval(), tokenizer, samples)).all()


def test_an_unknown_fusion_variant_is_refused_with_the_accepted_ones():
    from msa.config import ModelConfig

    with pytest.raises(ValueError, match="gates must be one of ln, sigmoid, none, got 'relu'"):
        ModelConfig(gates="relu")  # type: ignore[arg-type]
