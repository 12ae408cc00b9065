"""Shapley contributions are exact and add up; gate summaries line up with the tokens."""

import itertools

import numpy as np
import pytest
import torch

from conftest import random_samples, tiny_model
from msa.data import Collator, Sample
from msa.explain import fuse_with_coalitions, gate_summaries, shapley


@pytest.fixture
def collator(tokenizer):
    return Collator(tokenizer, 5, 20)


def test_shapley_adds_up_and_matches_brute_force(collator):
    model = tiny_model(seed=4).eval()
    batch = collator(random_samples(3, seed=9))
    enc = model.encode(batch)
    c = shapley(model, enc, batch.present, index=1)
    assert sum(c.values.values()) == pytest.approx(c.score - c.base, abs=1e-9)
    out = model.fuse(enc, batch.present)
    assert c.score == pytest.approx(out.score[1].item(), abs=1e-5)
    # brute force over orderings: the mean marginal contribution of each modality
    names = ("text", "acoustic", "visual")
    single = collator([random_samples(3, seed=9)[1]])  # the same sample, encoded on its own

    def v(subset):
        present = torch.tensor([[m in subset for m in names]])
        return model.fuse(model.encode(single), present).score.item()

    perms = list(itertools.permutations(names))
    for m in names:
        marginal = []
        for order in perms:
            before = set(order[: order.index(m)])
            marginal.append(v(before | {m}) - v(before))
        assert c.values[m] == pytest.approx(np.mean(marginal), abs=1e-5)


@pytest.mark.parametrize("present", [(1, 1, 1), (1, 0, 1), (0, 1, 1), (1, 0, 0), (0, 0, 1)])
def test_fuse_with_coalitions_is_the_models_own_fusion(collator, present):
    """The prediction computed with the Shapley rows riding along equals a plain `fuse`: score,
    utterances, pooled branch outputs, every gate and attention map; and the 8 subset scores
    equal separate fusions with those modalities switched off."""
    model = tiny_model(seed=5).eval()
    batch = collator(random_samples(1, seed=3))
    mask = torch.tensor([present], dtype=torch.bool)
    enc = model.encode(batch)
    plain = model.fuse(enc, mask)
    out, c = fuse_with_coalitions(model, enc, mask)
    assert torch.allclose(out.score, plain.score, atol=1e-6)
    assert torch.equal(out.text_mask[0, : int(out.text_mask.sum())], plain.text_mask[0, : int(plain.text_mask.sum())])
    for m in out.utterances:
        assert torch.allclose(out.utterances[m], plain.utterances[m], atol=1e-6)
    for b in out.gates:
        assert torch.allclose(out.pooled[b], plain.pooled[b], atol=1e-5)
        n = int(plain.text_mask[0].sum())
        for g, h in zip(out.gates[b], plain.gates[b]):
            assert torch.allclose(g.retain[0, :n], h.retain[0, :n], atol=1e-5)
            assert torch.allclose(g.fusion[0, :n], h.fusion[0, :n], atol=1e-5)
            k = g.attention.shape[-1]
            assert torch.allclose(g.attention[0, :, :n], h.attention[0, :, :n, :k], atol=1e-6)
    for names, v in c.subset_scores.items():
        sub = mask & torch.tensor([[m in names for m in ("text", "acoustic", "visual")]])
        assert v == pytest.approx(model.fuse(enc, sub).score.item(), abs=1e-5)
    assert sum(c.values.values()) == pytest.approx(c.score - c.base, abs=1e-9)
    with pytest.raises(ValueError, match="one sample"):
        fuse_with_coalitions(model, model.encode(collator(random_samples(2))), torch.ones(2, 3, dtype=torch.bool))


def test_absent_modality_gets_zero_contribution(collator):
    model = tiny_model(seed=2).eval()
    s = Sample("x", "a fine film", None, np.ones((4, 20), np.float32))
    batch = collator([s])
    c = shapley(model, model.encode(batch), batch.present)
    assert c.values["acoustic"] == 0.0
    assert c.values["text"] + c.values["visual"] == pytest.approx(c.score - c.base, abs=1e-9)
    assert c.subset_scores[("text", "visual")] == pytest.approx(c.score)


def test_gate_summaries_per_token(collator, tokenizer):
    model = tiny_model().eval()
    batch = collator(random_samples(2))
    out = model(batch)
    n = int(batch.text_mask[1].sum())
    tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[1, :n].tolist())
    summaries = gate_summaries(out, tokens, index=1)
    assert len(summaries) == 2 * model.config.fusion_layers
    for g in summaries:
        assert len(g.retain) == len(g.fusion) == n == len(g.tokens)
        assert np.array(g.retain_map).shape == (n, model.config.hidden)
    with pytest.raises(ValueError):
        gate_summaries(out, tokens[:-1], index=1)
    assert gate_summaries(tiny_model(use_gates=False).eval()(batch), tokens, index=1) == []
