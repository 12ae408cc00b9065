"""Texts read packed end to end (msa.model.packed_text) get the states each gets alone."""

from __future__ import annotations

import pytest
import torch
import transformers

from msa.data import Collator
from msa.model.packed_text import first_position, pack_rows, packed_states
from msa.sample import Sample
from msa.testing import tiny_model

LENGTHS = [7, 3, 12, 1, 5]


# Two layers, 16 wide (transformers' test practice).
SIZE = {"vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2}


def _tiny(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    common = {**SIZE, "intermediate_size": 32, "max_position_embeddings": 40}
    if kind == "bert":
        return transformers.BertModel(transformers.BertConfig(**common)).eval()
    if kind == "mpnet":  # relative position bias as well as absolute positions
        return transformers.MPNetModel(transformers.MPNetConfig(**common, relative_attention_num_buckets=32)).eval()
    if kind == "roberta":
        return transformers.RobertaModel(transformers.RobertaConfig(**common, pad_token_id=1)).eval()
    raise ValueError(kind)


def _padded(lengths: list[int], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.full((len(lengths), max(lengths)), pad)
    mask = torch.zeros(ids.shape, dtype=torch.bool)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, 100, (n,))
        mask[i, :n] = True
    return ids, mask


@pytest.mark.parametrize("kind", ["bert", "mpnet", "roberta"])
@pytest.mark.parametrize("max_tokens", [10, 256])
def test_each_packed_text_gets_the_states_it_gets_alone(kind, max_tokens):
    """The independent reference is each text run alone (no padding, no neighbours)."""
    backbone = _tiny(kind)
    ids, mask = _padded(LENGTHS, backbone.config.pad_token_id or 0)
    with torch.no_grad():
        packed = packed_states(backbone, ids, mask, max_tokens=max_tokens)
        assert packed is not None and packed.shape == (*ids.shape, 16)
        for i, n in enumerate(LENGTHS):
            alone = backbone(input_ids=ids[i : i + 1, :n]).last_hidden_state[0]
            assert torch.allclose(packed[i, :n], alone, atol=1e-5), (kind, i)
            assert (packed[i, n:] == 0).all()


def test_rows_are_filled_in_order_up_to_the_limit():
    assert pack_rows([5, 5, 5], 10) == [[0, 1], [2]]
    assert pack_rows([12, 3, 4], 10) == [[0], [1, 2]]  # a text over the limit gets its own row
    assert pack_rows([1], 10) == [[0]]


def test_an_unknown_encoder_family_is_read_padded():
    backbone = transformers.DistilBertModel(
        transformers.DistilBertConfig(vocab_size=100, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    ).eval()
    ids, mask = _padded([3, 2], 0)
    assert first_position(backbone) is None
    assert packed_states(backbone, ids, mask) is None


def test_encode_many_is_encode_of_each_batch(tokenizer):
    """A clip (one long text) and its segments (short ones), encoded in one packed pass, get
    what `encode` gives each batch alone: states at real tokens, utterance vectors, masks."""
    model = tiny_model().eval()
    assert model.text.packs
    collator = Collator.for_model(tokenizer, model.config)
    rng = torch.Generator().manual_seed(0)

    def sample(i: int, text: str, frames: int) -> Sample:
        a = torch.randn(frames, model.config.acoustic_dim, generator=rng).numpy()
        return Sample(id=str(i), text=text, acoustic=a)

    clip = collator([sample(0, "it was a long film and i liked the second half a lot more than the first", 30)])
    segments = collator([sample(1, "it was a long film", 12), sample(2, "and i liked the second half", 9)])
    with torch.no_grad():
        many = model.encode_many([clip, segments])
        for batch, got in zip([clip, segments], many):
            want = model.encode(batch)
            for m in want.sequences:
                valid = want.masks[m]
                assert torch.equal(got.masks[m], valid)
                assert torch.allclose(got.sequences[m][valid], want.sequences[m][valid], atol=1e-5)
                assert torch.allclose(got.utterances[m], want.utterances[m], atol=1e-5)
            assert torch.allclose(model.fuse(got, batch.present).score, model(batch).score, atol=1e-5)
