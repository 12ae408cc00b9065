"""Shapley contributions are exact and add up; the per-word share, display words and the
explanation object against hand-computed values."""

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from conftest import random_samples
from msa.config import MODALITIES
from msa.data import Collator
from msa.explain import (
    Contributions,
    Explanation,
    display_words,
    explain_output,
    fuse_with_coalitions,
    pool_over_time,
    shapley,
    shapley_batch,
    update_share,
)
from msa.model import GatedCrossModalLayer, LayerGates
from msa.sample import Sample, TimedWord
from msa.testing import tiny_model


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


def test_shapley_batch_is_each_samples_own(collator):
    """The batched values (one fusion per subset for the whole batch) are each sample's own, for
    samples of different lengths and with streams missing."""
    model = tiny_model(seed=6).eval()
    samples = random_samples(4, seed=2)
    samples[1] = dataclasses.replace(samples[1], visual=None)
    samples[3] = dataclasses.replace(samples[3], acoustic=None)
    batch = collator(samples)
    enc = model.encode(batch)
    together = shapley_batch(model, enc, batch.present)
    for i, c in enumerate(together):
        alone = shapley(model, enc, batch.present, index=i)
        for m in MODALITIES:
            assert c.values[m] == pytest.approx(alone.values[m], abs=1e-5)
        assert c.base == pytest.approx(alone.base, abs=1e-5)
    assert together[1].values["visual"] == 0.0 and together[3].values["acoustic"] == 0.0


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


# ----------------------------------------------------------------------------------------------
# The per-word share, against hand-computed values
# ----------------------------------------------------------------------------------------------


def _gates(z, m, retain, fusion) -> LayerGates:
    t = lambda x: torch.tensor([[x]], dtype=torch.float32)  # noqa: E731  (1, 1, d)
    return LayerGates(
        retain=None if retain is None else t(retain),
        fusion=None if fusion is None else t(fusion),
        attention=None,
        query=t(z),
        attended=t(m),
    )


def _layer(d: int = 4, gamma=None) -> GatedCrossModalLayer:
    layer = GatedCrossModalLayer(d, 2, 2, 0.0, "ln")
    if gamma is not None:
        with torch.no_grad():
            layer.norm_mix.weight.copy_(torch.tensor(gamma, dtype=torch.float32))
    return layer


def test_update_share_by_hand() -> None:
    z, m = [1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, -2.0]  # centred already: |z| = sqrt 2, |m| = sqrt 8
    layer = _layer()
    # Gates of 1: share = sqrt 8 / (sqrt 8 + sqrt 2) = 2/3.
    assert update_share(layer, _gates(z, m, [1.0] * 4, [1.0] * 4)).item() == pytest.approx(2 / 3, abs=1e-6)
    # The fusion gate multiplies m, the retain gate multiplies Z: 2m vs 0.5Z -> 4 sqrt 2 / (4 sqrt 2 + sqrt 2 / 2).
    assert update_share(layer, _gates(z, m, [0.5] * 4, [2.0] * 4)).item() == pytest.approx(8 / 9, abs=1e-6)
    assert update_share(layer, _gates(z, m, [2.0] * 4, [0.5] * 4)).item() == pytest.approx(1 / 3, abs=1e-6)
    # No gates ("w/o mf"): g = 1.
    assert update_share(layer, _gates(z, m, None, None)).item() == pytest.approx(2 / 3, abs=1e-6)
    # Channel means do not count (LayerNorm removes them): a constant m takes no share.
    assert update_share(layer, _gates(z, [3.0] * 4, [1.0] * 4, [1.0] * 4)).item() == pytest.approx(0.0, abs=1e-6)
    # LayerNorm's gamma weighs channels: with gamma 0 where m lives, m takes no share.
    assert update_share(_layer(gamma=[1.0, 1.0, 0.0, 0.0]), _gates(z, m, [1.0] * 4, [1.0] * 4)).item() == pytest.approx(
        0.0, abs=1e-6
    )
    # Negative gate values (LayerNorm gates) flip signs but not sizes.
    assert update_share(layer, _gates(z, m, [-1.0] * 4, [1.0] * 4)).item() == pytest.approx(2 / 3, abs=1e-6)


def test_the_share_splits_the_layers_own_mix_exactly() -> None:
    """The claim behind the share: LN(a + b) - beta = gamma c(a) / s + gamma c(b) / s, with the
    layer's own norm, gates and inputs (a = g_f m, b = g_r Z) from a real forward pass."""
    torch.manual_seed(0)
    layer = GatedCrossModalLayer(8, 2, 2, 0.0, "ln").eval()
    with torch.no_grad():
        layer.norm_mix.weight.uniform_(0.5, 1.5)
        layer.norm_mix.bias.uniform_(-0.5, 0.5)
    z, x = torch.randn(1, 5, 8), torch.randn(1, 7, 8)
    _, g = layer(z, x, torch.ones(1, 7, dtype=torch.bool))
    a, b = g.fusion * g.attended, g.retain * g.query
    ln = layer.norm_mix
    s = ((a + b).var(-1, unbiased=False, keepdim=True) + ln.eps).sqrt()
    c = lambda v: v - v.mean(-1, keepdim=True)  # noqa: E731
    assert torch.allclose(ln(a + b) - ln.bias, ln.weight * c(a) / s + ln.weight * c(b) / s, atol=1e-5)
    share = update_share(layer, g)[0]
    ref = (ln.weight * c(a)).norm(dim=-1) / ((ln.weight * c(a)).norm(dim=-1) + (ln.weight * c(b)).norm(dim=-1))
    assert torch.allclose(share, ref[0], atol=1e-6) and share.min() >= 0 and share.max() <= 1


# ----------------------------------------------------------------------------------------------
# Display words and their spoken times
# ----------------------------------------------------------------------------------------------


def test_display_words_follow_the_transcript(tokenizer) -> None:
    text = "And he is one of my favorite actors, ever. Ever!"
    ids = tokenizer(text)["input_ids"]
    words = display_words(tokenizer, text, ids)
    assert [w.text for w in words] == text.split()  # punctuation stays with its word; repeats kept
    assert sorted(p for w in words for p in w.tokens) == list(range(1, len(ids) - 1))  # no [CLS]/[SEP]
    assert [len(w.tokens) for w in words][-3:] == [2, 2, 2]  # "actors," "ever." "Ever!"
    assert all(w.start is None for w in words)  # no timings given
    # Truncated as the collator does it ([SEP] written over the last id kept): only what the model saw.
    cut = ids[:6] + [tokenizer.sep_token_id]
    assert [w.text for w in display_words(tokenizer, text, cut)] == ["And", "he", "is", "one", "of"]
    # No text: the one stand-in position.
    assert [(w.text, w.tokens) for w in display_words(tokenizer, None, [tokenizer.cls_token_id])] == [
        ("(no text)", [0])
    ]


def test_display_words_with_the_default_checkpoints_mpnet_tokenizer() -> None:
    """The shipped all-mpnet-base-v2 tokenizer (<s> ... </s>, pieces without ##): the gate views
    show whole words, one per whitespace-separated piece of the transcript, and no specials."""
    from conftest import ROOT
    from msa.model.text_encoder import load_tokenizer

    tok = load_tokenizer(str(ROOT / "checkpoints" / "default" / "tokenizer"))
    assert tok.cls_token == "<s>" and tok.sep_token == "</s>"
    text = "I don't think it's a well-made movie, honestly"
    ids = tok(text)["input_ids"]
    words = display_words(tok, text, ids)
    assert [w.text for w in words] == text.split()
    assert [len(w.tokens) for w in words] == [1, 3, 1, 3, 1, 3, 2, 1]  # don ' t / well - made / movie ,
    assert sorted(p for w in words for p in w.tokens) == list(range(1, len(ids) - 1))  # not <s>, </s>


def test_display_words_get_asr_times_by_their_letters(tokenizer) -> None:
    text = "it was REALLY good, i think"
    pieces = [(" It", 0.0, 0.2), (" was", 0.2, 0.4), (" um", 0.4, 0.5), (" really", 0.5, 0.9), (" good.", 0.9, 1.3)]
    timed = [TimedWord(*p) for p in pieces]
    words = display_words(tokenizer, text, tokenizer(text)["input_ids"], timed)
    got = {w.text: (w.start, w.end) for w in words}
    assert got == {
        "it": (0.0, 0.2),
        "was": (0.2, 0.4),
        "REALLY": (0.5, 0.9),
        "good,": (0.9, 1.3),
        "i": (None, None),
        "think": (None, None),
    }


def test_slow_tokenizers_fall_back_to_word_pieces(tokenizer) -> None:
    class Slow:
        is_fast = False
        all_special_ids = tokenizer.all_special_ids

        def convert_ids_to_tokens(self, ids):
            return tokenizer.convert_ids_to_tokens(ids)

    text = "an unforgettable film"
    words = display_words(Slow(), text, tokenizer(text)["input_ids"])
    assert [w.text for w in words] == ["an", "unforgettable", "film"]
    assert len(words[1].tokens) > 1  # "unforgettable" is several WordPieces, merged back


# ----------------------------------------------------------------------------------------------
# The explanation object
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("present", [(1, 1, 1), (1, 0, 1), (1, 1, 0), (0, 1, 1)])
def test_explanation_contract(collator, tokenizer, present) -> None:
    model = tiny_model(seed=1).eval()
    s = random_samples(1, seed=2)[0]
    s = Sample(
        s.id, s.text if present[0] else None, s.acoustic if present[1] else None, s.visual if present[2] else None
    )
    batch = collator([s])
    out, c = fuse_with_coalitions(model, model.encode(batch), batch.present)
    n = int(batch.text_mask[0].sum())
    words = display_words(tokenizer, s.text, batch.input_ids[0, :n].tolist())
    times = {
        "acoustic": None if s.acoustic is None else np.arange(len(s.acoustic)) / 50.0,
        "visual": None if s.visual is None else np.linspace(0.1, 3.0, len(s.visual)),
    }
    e = explain_output(model, out, c, words, times, {"text": 10, "acoustic": 0, "visual": None})
    j = e.to_dict()
    assert json.loads(json.dumps(j, allow_nan=False)) == j
    assert j["contributions"]["base"] + sum(j["contributions"]["values"].values()) == pytest.approx(
        j["contributions"]["score"], abs=1e-4
    )
    assert j["contributions"]["score"] == pytest.approx(out.score.item(), abs=1e-6)
    assert j["words"] == [w.text for w in words]
    assert [(g["branch"], g["layer"]) for g in j["gates"]] == [
        (b, layer) for b in ("text->acoustic", "text->visual") for layer in (1, 2)
    ]
    for g, view in zip(j["gates"], e.gates):
        assert len(g["share"]) == len(words) and all(0.0 <= v <= 1.0 for v in g["share"])
        here = bool(present[("text->acoustic", "text->visual").index(g["branch"]) + 1])
        if not here:
            assert g["attention"] is None and view.times is None
            continue
        t, w = np.asarray(g["attention"]["times"]), np.asarray(g["attention"]["weights"])
        assert np.all(np.diff(t) > 0) and w.shape == (len(words), len(t))
        np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
        # A word's row is the mean of its tokens' rows, averaged over heads.
        layer_gates = out.gates[view.branch][view.layer - 1]
        first = words[0].tokens
        np.testing.assert_allclose(w[0], layer_gates.attention[0, :, first].mean((0, 1)).numpy(), atol=1e-5)
    acoustic, visual = j["branches"]["text->acoustic"], j["branches"]["text->visual"]
    assert acoustic["trained_samples"] == 0 and "never saw voice data" in acoustic["note"]
    assert visual["trained_samples"] is None and "does not record" in visual["note"]
    assert acoustic["stream_present"] == bool(present[1]) and visual["stream_present"] == bool(present[2])


def test_explanation_needs_the_frame_times(collator, tokenizer) -> None:
    model = tiny_model(seed=1).eval()
    s = random_samples(1, seed=2)[0]
    batch = collator([s])
    out, c = fuse_with_coalitions(model, model.encode(batch), batch.present)
    words = display_words(tokenizer, s.text, batch.input_ids[0, : int(batch.text_mask[0].sum())].tolist())
    with pytest.raises(ValueError, match="frame times"):
        explain_output(model, out, c, words, {"acoustic": np.arange(3) / 50.0, "visual": None})


def test_the_caveat_names_each_untrained_stand_in_and_a_missing_stream_it_replaces():
    """Text in every training sample and no modality dropout: the subsets without text use an
    untrained vector; a clip without voice whose voice stand-in never trained has its very score
    made with one."""

    def explanation(trained: dict, present: tuple[bool, bool, bool]) -> Explanation:
        contributions = Contributions(dict.fromkeys(MODALITIES, 0.0), 0.0, 0.0, {})
        return Explanation(contributions, [], [], {}, "ln", trained, present)

    assert explanation({"text": True, "acoustic": True, "visual": None}, (True, True, True)).caveat is None
    e = explanation({"text": False, "acoustic": True, "visual": True}, (True, True, True))
    assert e.untrained_stand_ins() == ["text"]
    assert "stand-in for text never trained" in e.caveat and "this clip has no" not in e.caveat.lower()
    e = explanation({"text": False, "acoustic": False, "visual": True}, (True, False, True))
    assert "text, acoustic" in e.caveat and "This clip has no acoustic, so its score" in e.caveat
    assert e.to_dict()["caveat"] == e.caveat
    assert e.to_dict()["stand_ins_trained"] == {"text": False, "acoustic": False, "visual": True}


def test_attention_is_pooled_into_equal_time_bins_past_the_column_limit() -> None:
    # 50 frames a second: 0.00 ... 0.38 s (20 frames), a gap, then 1.00 ... 1.18 s (10 frames).
    times = np.concatenate([np.arange(20) * 0.02, 1.0 + np.arange(10) * 0.02])
    rng = np.random.default_rng(0)
    weights = rng.random((2, times.size))
    weights /= weights.sum(1, keepdims=True)
    same_t, same_w, k = pool_over_time(times, weights, max_columns=30)
    assert k == 1 and np.array_equal(same_t, times) and np.array_equal(same_w, weights)
    t, w, k = pool_over_time(times, weights, max_columns=10)
    # 30 frames, at most 10 columns: 3 frames a bin, 0.06 s from the first frame; bin b is centred
    # at 0.06 b + 0.02. By hand: frames 0-2 ... 18-19 fill bins 0-6; 1.00 s falls in bin 16,
    # 1.02-1.06 s in 17, 1.08-1.12 s in 18, 1.14-1.18 s in 19; bins 7-15 (the gap) are left out.
    groups = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13, 14], [15, 16, 17], [18, 19]]
    groups += [[20], [21, 22, 23], [24, 25, 26], [27, 28, 29]]
    bins = [0, 1, 2, 3, 4, 5, 6, 16, 17, 18, 19]
    assert k == 3 and w.shape == (2, len(groups))
    np.testing.assert_allclose(t, [0.06 * b + 0.02 for b in bins], atol=1e-9)
    for g, col in zip(groups, w.T):
        np.testing.assert_allclose(col, weights[:, g].sum(1))
    np.testing.assert_allclose(w.sum(1), 1.0)  # a word's row is still a distribution
