"""The model's shapes, masks, gates and absent-modality mechanism on a tiny random model."""

import numpy as np
import pytest
import torch

from conftest import random_samples
from msa.data import Collator
from msa.model import GatedCrossModalLayer
from msa.sample import Sample
from msa.testing import tiny_model


@pytest.fixture
def collator(tokenizer):
    return Collator(tokenizer, acoustic_dim=5, visual_dim=20, max_text_len=50)


def test_output_shapes_and_gate_tensors(collator):
    model = tiny_model().eval()
    batch = collator(random_samples(3))
    out = model(batch)
    assert out.score.shape == (3,)
    T = batch.input_ids.shape[1]
    for branch in ("acoustic", "visual"):
        assert len(out.gates[branch]) == model.config.fusion_layers
        for g in out.gates[branch]:
            assert g.retain.shape == (3, T, model.config.hidden)
            assert g.fusion.shape == (3, T, model.config.hidden)
            frames = getattr(batch, branch).shape[1]
            assert g.attention.shape == (3, model.config.fusion_heads, T, frames)
    for m in ("text", "acoustic", "visual"):
        u = out.utterances[m]
        assert u.shape == (3, model.config.hidden) and (u >= 0).all() and (u <= 1).all()


def test_batch_of_one_works(collator):
    model = tiny_model().eval()
    out = model(collator(random_samples(1)))
    assert out.score.shape == (1,)
    assert out.gates["visual"][0].retain.shape[0] == 1


def test_padded_keys_get_zero_attention(collator):
    model = tiny_model().eval()
    samples = random_samples(4)
    batch = collator(samples)
    out = model(batch)
    for branch in ("acoustic", "visual"):
        lengths = getattr(batch, f"{branch}_lengths")
        for g in out.gates[branch]:
            for b, n in enumerate(lengths.tolist()):
                assert torch.all(g.attention[b, :, :, n:] == 0)
                assert torch.allclose(g.attention[b, :, :, :n].sum(-1), torch.ones(()))


def test_padding_does_not_change_a_score(collator):
    # Scored alone or beside longer samples (more padding of every stream), the score is the same.
    model = tiny_model().eval()
    samples = random_samples(5, seed=3)
    together = model(collator(samples)).score
    alone = torch.stack([model(collator([s])).score[0] for s in samples])
    assert torch.allclose(together, alone, atol=1e-5)


def test_absent_modality_ignores_its_data(collator):
    model = tiny_model().eval()
    s = random_samples(1, seed=1)[0]
    batch = collator([s])
    enc = model.encode(batch)
    present = torch.tensor([[True, False, True]])
    base = model.fuse(enc, present).score
    other = Sample(s.id, s.text, s.acoustic * 10 + 5, s.visual, s.label)
    changed = model.fuse(model.encode(collator([other])), present).score
    assert torch.allclose(base, changed)
    # ...while a present stream does matter
    assert not torch.allclose(
        model.fuse(enc, torch.ones(1, 3, dtype=torch.bool)).score,
        model.fuse(model.encode(collator([other])), torch.ones(1, 3, dtype=torch.bool)).score,
    )


def test_collator_marks_absent_streams(collator):
    s = [Sample("a", "nice", None, np.ones((3, 20), np.float32)), Sample("b", None, np.ones((2, 5), np.float32), None)]
    batch = collator(s)
    assert batch.present.tolist() == [[True, False, True], [False, True, False]]
    model = tiny_model().eval()
    out = model(batch)
    assert torch.isfinite(out.score).all()
    # every subset of modalities gives a finite score, the empty one included
    enc = model.encode(batch)
    for bits in range(8):
        present = torch.tensor([[bool(bits & 1), bool(bits & 2), bool(bits & 4)]] * 2)
        assert torch.isfinite(model.fuse(enc, present).score).all()


def test_collator_rejects_wrong_feature_width(collator):
    with pytest.raises(ValueError, match="'bad': acoustic frames have shape"):
        collator([Sample("bad", "x", np.ones((3, 7), np.float32), None)])
    with pytest.raises(ValueError, match="NaN"):
        collator([Sample("nan", "x", np.full((3, 5), np.nan, np.float32), None)])


def test_no_gates_really_bypasses_them():
    torch.manual_seed(0)
    layer = GatedCrossModalLayer(16, 2, 2, 0.0, gates="none").eval()
    assert not any("gate" in name for name, _ in layer.named_parameters())
    z, x = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    mask = torch.ones(2, 7, dtype=torch.bool)
    out, gates = layer(z, x, mask)
    assert gates.retain is None and gates.fusion is None
    m, _ = layer.attention(z, x, x, key_padding_mask=~mask)
    mixed = layer.norm_mix(m + z)  # g_r = g_f = 1
    assert torch.allclose(out, layer.norm_out(mixed + layer.ffn(mixed)), atol=1e-6)
    model = tiny_model(gates="none")
    assert not any("gate" in n for n, _ in model.named_parameters())


def test_attention_matches_torch_and_shares_one_stream():
    """The layer's own attention is nn.MultiheadAttention's arithmetic (weights and output), and a
    modality stream of batch 1 serves every text row as if it had been repeated."""
    torch.manual_seed(1)
    layer = GatedCrossModalLayer(16, 4, 2, 0.0, gates="ln").eval()
    z, x = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    ref, ref_w = layer.attention(z, x, x, key_padding_mask=~mask, average_attn_weights=False)
    for need_weights in (True, False):
        out, w = layer.attend(z, x, mask, need_weights)
        assert torch.allclose(out, ref, atol=1e-6)
        assert (w is None) != need_weights
    assert torch.allclose(layer.attend(z, x, mask)[1], ref_w, atol=1e-6)
    shared, _ = layer.attend(z, x[1:2], mask[1:2])
    repeated, _ = layer.attention(
        z, x[1:2].expand(3, -1, -1), x[1:2].expand(3, -1, -1), key_padding_mask=~mask[1:2].expand(3, -1)
    )
    assert torch.allclose(shared, repeated, atol=1e-6)


@pytest.mark.parametrize("layers", [1, 2])
def test_bilstm_is_the_packed_lstm(layers):
    """The encoders' BiLSTM (padded, each direction reversed within its length) gives the packed
    nn.LSTM's outputs, final states and gradients, for any lengths, an empty stream included."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from msa.model.network import SequenceEncoder

    torch.manual_seed(layers)
    enc = SequenceEncoder(6, 5, layers, 4, dropout=0.0)
    x = torch.randn(4, 9, 6, requires_grad=True)
    lengths = torch.tensor([9, 3, 0, 7])
    seq, utt = enc(x, lengths)

    packed = pack_padded_sequence(x, lengths.clamp_min(1), batch_first=True, enforce_sorted=False)
    out, (h, _) = enc.lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=9)
    ref_seq = enc.sequence_proj(out)
    ref_utt = torch.sigmoid(enc.utterance_proj(torch.cat([h[-2], h[-1]], dim=-1)))
    valid = torch.arange(9)[None] < lengths.clamp_min(1)[:, None]
    assert torch.allclose(seq[valid], ref_seq[valid], atol=1e-6)
    assert torch.allclose(utt, ref_utt, atol=1e-6)
    assert torch.allclose(seq[~valid], enc.sequence_proj.bias.expand_as(seq[~valid]))  # zeros in, as unpacked

    weights = torch.randn_like(seq) * valid[..., None]
    grads = torch.autograd.grad((seq * weights).sum() + utt.sum(), [x, enc.lstm.weight_hh_l0_reverse])
    ref = torch.autograd.grad((ref_seq * weights).sum() + ref_utt.sum(), [x, enc.lstm.weight_hh_l0_reverse])
    for g, r in zip(grads, ref):
        assert torch.allclose(g, r, atol=1e-5)


def test_bilstm_steps_on_one_thread_and_gives_the_callers_threads_back(monkeypatch):
    """The recurrence runs on one torch thread (thousands of tiny steps: a second thread only
    adds a hand-over per step), and the caller's thread count is what it was afterwards, also
    when the recurrence fails."""
    from msa.model.network import SequenceEncoder

    enc = SequenceEncoder(6, 5, 1, 4, dropout=0.0).eval()
    seen = []
    real_lstm = torch.lstm

    def recording_lstm(*args):
        seen.append(torch.get_num_threads())
        return real_lstm(*args)

    monkeypatch.setattr(torch, "lstm", recording_lstm)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        enc(torch.randn(2, 9, 6), torch.tensor([9, 4]))
        assert seen == [1, 1]  # both directions
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(torch, "lstm", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError, match="boom"):
            enc(torch.randn(2, 9, 6), torch.tensor([9, 4]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_request_thread_born_during_a_one_thread_run_predicts_on_the_process_threads(tmp_path, tokenizer):
    """torch gives a thread that starts while another holds `one_thread` (a Lab or fine-tuning
    run) one thread for good; a prediction on such a thread still runs on the process's count."""
    import threading

    from msa.model.checkpoint import save_checkpoint
    from msa.predict import Predictor
    from msa.sample import Sample
    from msa.threads import one_thread, process_threads, set_process_threads

    save_checkpoint(tmp_path / "ck", tiny_model(), tokenizer)
    predictor = Predictor(tmp_path / "ck")
    seen: list[int] = []
    text_forward = predictor.model.text.forward

    def recording_forward(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return text_forward(*args, **kwargs)

    predictor.model.text.forward = recording_forward
    before = process_threads()
    set_process_threads(2)
    holding, release = threading.Event(), threading.Event()
    inherited: list[int] = []

    def trainer() -> None:
        with one_thread():
            holding.set()
            release.wait()

    def request() -> None:
        inherited.append(torch.get_num_threads())  # this thread's first torch call
        predictor.run_features(Sample(id="x", text="a fine film"), [], 1.0)
        inherited.append(torch.get_num_threads())

    try:
        run = threading.Thread(target=trainer)
        run.start()
        holding.wait()
        asked = threading.Thread(target=request)
        asked.start()
        asked.join()
        release.set()
        run.join()
    finally:
        set_process_threads(before)
    # inherited[0] is 1 on torch 2.13 (the hazard); the prediction leaves the thread as it found it.
    assert inherited[1] == inherited[0]
    assert seen == [2]


def test_gate_activations(collator):
    batch = collator(random_samples(2))
    sig = tiny_model(gates="sigmoid").eval()(batch)
    for g in sig.gates["acoustic"]:
        assert (g.retain >= 0).all() and (g.retain <= 1).all()
    ln = tiny_model(gates="ln").eval()(batch)
    for g in ln.gates["visual"]:
        # LayerNorm output at init: zero mean, unit variance over channels at every position
        assert torch.allclose(g.fusion.mean(-1), torch.zeros(()), atol=1e-5)
        assert (g.fusion < 0).any()


def test_frozen_text_encoder_gets_no_gradient(collator):
    model = tiny_model(freeze_text_encoder=True).train()
    out = model(collator(random_samples(2)))
    out.score.sum().backward()
    assert all(p.grad is None for p in model.text.backbone.parameters())
    assert model.text.utterance_proj.weight.grad is not None
    assert not model.text.backbone.training  # frozen encoder stays in eval mode (no dropout)


def test_text_trainable_layers_fine_tunes_only_the_top(collator):
    model = tiny_model(text_trainable_layers=1).train()  # tiny backbone: 2 layers
    model(collator(random_samples(2))).score.sum().backward()
    named = dict(model.text.backbone.named_parameters())
    assert all(p.grad is not None for n, p in named.items() if n.startswith("encoder.layer.1."))
    assert all(p.grad is None for n, p in named.items() if not n.startswith("encoder.layer.1."))
    with pytest.raises(ValueError, match="has 2 layers"):
        tiny_model(text_trainable_layers=3)
