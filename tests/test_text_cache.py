"""The frozen lower layers of the text encoder, computed once per text (msa.model.text_cache): the
cached path gives the whole encoder's states and gradients, persists, refuses other weights, and
training through it equals training without it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import transformers

from conftest import random_samples
from msa.config import TrainConfig
from msa.data import Collator
from msa.model import SentimentModel
from msa.model.text_cache import FrozenLayerCache, attach
from msa.testing import tiny_config
from msa.training.loop import make_optimisers, train_epoch

DEPTH = 3


def _backbone(kind: str, dropout: float = 0.1, seed: int = 0, vocab_size: int = 200) -> torch.nn.Module:
    torch.manual_seed(seed)
    shared = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=DEPTH,
        num_attention_heads=2,
        intermediate_size=48,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=80,
    )
    if kind == "bert":
        return transformers.BertModel(transformers.BertConfig(**shared))
    # MPNet: a relative position bias computed by the encoder, layers that return tuples
    return transformers.MPNetModel(transformers.MPNetConfig(**shared))


def _batch(pad: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = [9, 4, 7, 1]
    ids = torch.full((len(lengths), max(lengths)), pad, dtype=torch.long)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(3, 200, (n,), generator=g)
        mask[i, :n] = True
    return ids, mask


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
@pytest.mark.parametrize("frozen", range(DEPTH + 1))
def test_cached_states_are_the_whole_encoders(kind: str, frozen: int) -> None:
    bb = _backbone(kind).eval()
    ids, mask = _batch(bb.config.pad_token_id or 0)
    whole = bb(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    cache = FrozenLayerCache(bb, frozen)
    for i in range(len(ids)):  # filled one text at a time: other padding than the batch below
        n = int(mask[i].sum())
        cache.lower_states(ids[i : i + 1, :n], mask[i : i + 1, :n])
    assert cache.computed == len(ids)
    got = cache.forward(ids, mask)
    assert cache.computed == len(ids)  # the batch was served from the cache
    assert torch.allclose(got[mask], whole[mask], atol=1e-5)
    if frozen < DEPTH:  # the lower states alone are not the answer: the top layers did run
        assert not torch.allclose(cache.lower_states(ids, mask)[mask], whole[mask], atol=1e-3)
    assert len(bb.encoder.layer) == DEPTH and not bb.embeddings._forward_hooks  # encoder restored


@pytest.mark.parametrize("kind", ["bert", "mpnet"])
def test_gradients_of_the_top_layers_are_the_whole_encoders(kind: str) -> None:
    bb = _backbone(kind, dropout=0.0)
    bb.requires_grad_(False)
    bb.encoder.layer[-1].requires_grad_(True)
    ids, mask = _batch(bb.config.pad_token_id or 0, seed=1)
    target = torch.randn(*ids.shape, 32)

    def grads(states: torch.Tensor) -> list[torch.Tensor]:
        loss = ((states - target)[mask] ** 2).mean()
        return list(torch.autograd.grad(loss, list(bb.encoder.layer[-1].parameters())))

    whole = grads(bb(input_ids=ids, attention_mask=mask.long()).last_hidden_state)
    cached = grads(FrozenLayerCache(bb, DEPTH - 1).forward(ids, mask))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole, cached))
    assert any(a.abs().sum() > 0 for a in whole)


def test_states_persist_and_an_unfinished_shard_is_ignored(tmp_path: Path) -> None:
    bb = _backbone("bert").eval()
    ids, mask = _batch(0)
    first = FrozenLayerCache(bb, 2, tmp_path / "cache")
    expected = first.lower_states(ids, mask)
    first.flush()
    (tmp_path / "cache" / "part-00001.tmp").write_bytes(b"killed while writing")
    again = FrozenLayerCache(bb, 2, tmp_path / "cache")
    assert len(again) == len(ids)
    assert torch.equal(again.lower_states(ids, mask), expected) and again.computed == 0
    assert sorted(p.name for p in (tmp_path / "cache").glob("part-*.safetensors")) == ["part-00000.safetensors"]


def test_a_cache_of_other_frozen_weights_is_refused(tmp_path: Path) -> None:
    bb = _backbone("bert").eval()
    ids, mask = _batch(0)
    cache = FrozenLayerCache(bb, 2, tmp_path / "cache")
    cache.fill([(ids, mask)])
    with torch.no_grad():
        bb.encoder.layer[2].output.dense.bias.add_(1.0)  # a trainable (top) layer: states still valid
    assert len(FrozenLayerCache(bb, 2, tmp_path / "cache")) == len(ids)
    with pytest.raises(ValueError, match="another number of frozen layers"):
        FrozenLayerCache(bb, 1, tmp_path / "cache")
    with torch.no_grad():
        bb.encoder.layer[0].output.dense.bias.add_(1.0)  # a frozen layer: the states are stale
    with pytest.raises(ValueError, match="other weights"):
        FrozenLayerCache(bb, 2, tmp_path / "cache")
    with pytest.raises(ValueError, match="differ"):
        cache.rebind(bb)
    with pytest.raises(ValueError, match="has 3 layers"):
        FrozenLayerCache(bb, 4)


def test_training_through_the_cache_equals_training_without_it(tokenizer) -> None:
    """One epoch, same seed, encoder dropout off (the cache runs the frozen layers in eval mode;
    with dropout the two runs differ by exactly that noise): the same weights come out."""
    torch.manual_seed(0)
    config = tiny_config(text_trainable_layers=1)
    plain = SentimentModel(config, _backbone("bert", dropout=0.0, seed=3, vocab_size=tokenizer.vocab_size))
    start = copy.deepcopy(plain.state_dict())
    cached = copy.deepcopy(plain)
    attach(cached.text, FrozenLayerCache(cached.text.backbone, cached.text.frozen_layers()))
    cfg = TrainConfig(batch_size=4, epochs=1)
    samples = random_samples(12, seed=4)
    collator = Collator.for_model(tokenizer, config)
    for model in (plain, cached):
        torch.manual_seed(1)
        train_epoch(model, samples, collator, make_optimisers(model, cfg), cfg, epoch=1, progress=False)
    top = "text.backbone.encoder.layer.2.output.dense.weight"
    assert not torch.allclose(plain.state_dict()[top], start[top])  # the top layer trained
    for (name, a), b in zip(plain.state_dict().items(), cached.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_the_fold_report_scores_the_same_through_the_cache(tmp_path: Path, tokenizer) -> None:
    """scripts/fold_report.py (the issue's per-fold table): a checkpoint with frozen lower layers
    (the packaged MiniLM, top layer trained) scores every fold identically with and without the
    training cache."""
    from msa.model.checkpoint import load_checkpoint, save_checkpoint
    from scripts.fold_report import attach_cache, folds_of, report

    torch.manual_seed(0)
    model = SentimentModel(tiny_config(text_trainable_layers=1, acoustic_dim=5, visual_dim=20))
    with torch.no_grad():
        model.text.backbone.encoder.layer[-1].output.dense.bias.add_(0.3)  # as if trained
    save_checkpoint(tmp_path / "ck", model, tokenizer)
    folds = folds_of(
        [
            "synthetic:mosi,n_train=4,n_valid=12,n_test=10,acoustic_dim=5,visual_dim=20",
            "synthetic:mosei,n_train=4,n_valid=6,n_test=8,acoustic_dim=5,visual_dim=20",
        ]
    )
    assert [len(v) for v in folds.values()] == [12, 10, 6, 8, 18]
    plain = report(load_checkpoint(tmp_path / "ck"), folds)
    through_cache = load_checkpoint(tmp_path / "ck")
    attach_cache(through_cache, tmp_path / "cache")
    cached = report(through_cache, folds)
    assert plain.keys() == cached.keys() and plain["pooled:valid"]["mae"] > 0
    for fold in plain:
        for metric, value in plain[fold].items():
            assert cached[fold][metric] == pytest.approx(value, abs=1e-6), (fold, metric)
    assert len(FrozenLayerCache(model.text.backbone, 5, tmp_path / "cache")) > 0  # written for the next run
