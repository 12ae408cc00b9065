"""The equations of docs/model-spec.md against references written by hand in numpy.

Each reference below is computed from the module's weights (or from weights the test sets) with
plain numpy, never by calling the code under test, so an edit to an equation ([Z; Z] fed to the
gates, g_r and g_f swapped, the MI term's sign, CMD with K = 1, q in the main optimiser...) makes
a test fail. Where a check could pass by accident (a swapped pair of gates that happen to agree),
the test also runs its reference with that error and asserts that the layer disagrees with it.
`scripts/mutation_check.py` applies the edits of `scripts/mutations.py` one at a time and runs
these tests against each.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import ROOT
from msa.config import MODALITIES, TrainConfig
from msa.data import Batch
from msa.metrics import evaluate
from msa.model.losses import cmd, representation_loss
from msa.model.network import GatedCrossModalLayer, ModelOutput, SentimentModel, masked_mean
from msa.testing import tiny_model
from msa.training.loop import estimator_step, main_step, make_optimisers

LN_EPS = 1e-5  # nn.LayerNorm's default epsilon
Params = dict[str, np.ndarray]

# --- numpy building blocks --------------------------------------------------------------------


def np_linear(params: Params, name: str, x: np.ndarray) -> np.ndarray:
    """``x W^T + b`` with the weight and bias stored under ``name``."""
    return x @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def np_layer_norm(params: Params, name: str, x: np.ndarray) -> np.ndarray:
    """Layer norm over the last axis (biased variance), with its own affine weight and bias."""
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * params[f"{name}.weight"] + params[f"{name}.bias"]


def np_sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


def np_softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (a row of -inf but one entry gives that entry 1)."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_mlp(module: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """A Sequential of affine maps (anything with a 2-d ``weight`` and a ``bias``, trained or
    fixed), ReLU, Tanh, Sigmoid (and inactive Dropout), applied with numpy."""
    for layer in module:
        weight = getattr(layer, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 2:
            x = x @ to_np(weight).T + to_np(layer.bias)
        elif isinstance(layer, nn.ReLU):
            x = np.maximum(x, 0.0)
        elif isinstance(layer, nn.Tanh):
            x = np.tanh(x)
        elif isinstance(layer, nn.Sigmoid):
            x = np_sigmoid(x)
        elif not isinstance(layer, nn.Dropout):
            raise TypeError(f"np_mlp does not know {type(layer).__name__}")
    return x


def to_np(t: torch.Tensor) -> np.ndarray:
    """A tensor as a float64 numpy array, detached."""
    return t.detach().double().cpu().numpy()


def state_params(module: nn.Module) -> Params:
    """A module's state dict as float64 numpy arrays."""
    return {k: to_np(v) for k, v in module.state_dict().items()}


def np_cmd(x: np.ndarray, y: np.ndarray, k: int = 5, a: float = 0.0, b: float = 1.0) -> float:
    """CMD_K [4]: ||E x - E y|| / |b-a| + sum_{j=2..K} ||C_j(x) - C_j(y)|| / |b-a|^j."""
    span = abs(b - a)
    mx, my = x.mean(0), y.mean(0)
    total = np.linalg.norm(mx - my) / span
    for j in range(2, k + 1):
        total += np.linalg.norm(((x - mx) ** j).mean(0) - ((y - my) ** j).mean(0)) / span**j
    return float(total)


# --- the gated cross-modal layer [11]-[15] ----------------------------------------------------

# Errors a reviewer fears in [11]-[15]; `reference_layer` can make each one on purpose, so that a
# test shows its data tell the right layer from the wrong one.
LAYER_ERRORS = ("gates_fed_z_z", "gates_fed_m_z", "gates_swapped", "fusion_gate_on_z", "no_ffn_residual")


def reference_attention(
    params: Params, heads: int, z: np.ndarray, x: np.ndarray, key_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """m = MH-ATT(Q=Z, K=V=X) [13] with in_proj/out_proj weights; padded keys get no weight.

    Returns m (B, T_z, d) and the per-head weights (B, heads, T_z, T_x).
    """
    batch, t_z, d = z.shape
    dh = d // heads
    w_q, w_k, w_v = np.split(params["attention.in_proj_weight"], 3)
    b_q, b_k, b_v = np.split(params["attention.in_proj_bias"], 3)

    def split(t: np.ndarray) -> np.ndarray:  # (B, T, d) -> (B, heads, T, dh)
        return t.reshape(t.shape[0], t.shape[1], heads, dh).transpose(0, 2, 1, 3)

    q, k, v = split(z @ w_q.T + b_q), split(x @ w_k.T + b_k), split(x @ w_v.T + b_v)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
    weights = np_softmax(np.where(key_mask[:, None, None, :], scores, -np.inf))
    context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, t_z, d)
    return np_linear(params, "attention.out_proj", context), weights


def reference_layer(
    params: Params,
    heads: int,
    z: np.ndarray,
    x: np.ndarray,
    key_mask: np.ndarray,
    use_gates: bool = True,
    activation: str = "ln",
    error: str | None = None,
) -> dict[str, np.ndarray | None]:
    """One gated layer [11]-[15] in numpy, from the parameters in ``params``.

    g_r = act(W_r [Z; m] + b_r), g_f = act(W_f [Z; m] + b_f), each with its own LN (or a sigmoid);
    Z~ = LN(g_f * m + g_r * Z); Z' = LN(Z~ + FFN(Z~)). Without gates Z~ = LN(m + Z).
    ``error`` (one of `LAYER_ERRORS`) computes a wrong layer instead.

    Returns ``out``, ``retain``, ``fusion``, ``attention``, ``query`` (Z) and ``attended`` (m).
    """
    m, weights = reference_attention(params, heads, z, x, key_mask)
    retain = fusion = None
    if use_gates:
        first, second = {"gates_fed_z_z": (z, z), "gates_fed_m_z": (m, z)}.get(error or "", (z, m))
        both = np.concatenate([first, second], axis=-1)
        if activation == "ln":
            retain = np_layer_norm(params, "retain_act", np_linear(params, "retain_gate", both))
            fusion = np_layer_norm(params, "fusion_act", np_linear(params, "fusion_gate", both))
        else:
            retain = np_sigmoid(np_linear(params, "retain_gate", both))
            fusion = np_sigmoid(np_linear(params, "fusion_gate", both))
        if error == "gates_swapped":
            retain, fusion = fusion, retain
        update = fusion * (z if error == "fusion_gate_on_z" else m) + retain * z
    else:
        update = m + z
    mixed = np_layer_norm(params, "norm_mix", update)
    ffn = np_linear(params, "ffn.3", np.maximum(np_linear(params, "ffn.0", mixed), 0.0))
    out = np_layer_norm(params, "norm_out", ffn if error == "no_ffn_residual" else mixed + ffn)
    return {"out": out, "retain": retain, "fusion": fusion, "attention": weights, "query": z, "attended": m}


def set_random_params(module: nn.Module, seed: int) -> Params:
    """Give every entry of ``module``'s state dict seeded random values (LN scales near 1, not 1),
    load them, and return them: the reference reads these arrays, not the module.

    A module that shares one tensor under two names (one LN for both gates) keeps only the last
    value written, so it disagrees with a reference that holds two different ones.
    """
    rng = np.random.default_rng(seed)
    params = {}
    for name, value in module.state_dict().items():
        if name.endswith("weight") and value.dim() == 1:  # a LayerNorm's scale
            params[name] = 1.0 + 0.5 * rng.standard_normal(tuple(value.shape))
        else:
            params[name] = 0.4 * rng.standard_normal(tuple(value.shape))
    module.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, strict=True)
    return params


def layer_inputs(seed: int, d: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z (3, 5, d), X (3, 7, d) and a key mask with padding in two rows."""
    rng = np.random.default_rng(seed)
    z, x = rng.standard_normal((3, 5, d)), rng.standard_normal((3, 7, d))
    key_mask = np.ones((3, 7), dtype=bool)
    key_mask[1, 4:] = False
    key_mask[2, 1:] = False  # a row with a single key
    return z, x, key_mask


def run_layer(
    layer: GatedCrossModalLayer, z: np.ndarray, x: np.ndarray, key_mask: np.ndarray, need_weights: bool = True
) -> dict[str, np.ndarray | None]:
    """The layer's output and its LayerGates, as numpy (the keys of `reference_layer`)."""
    with torch.no_grad():
        out, gates = layer(torch.from_numpy(z), torch.from_numpy(x), torch.from_numpy(key_mask), need_weights)
    as_np = {
        "out": out,
        "retain": gates.retain,
        "fusion": gates.fusion,
        "attention": gates.attention,
        "query": gates.query,
        "attended": gates.attended,
    }
    return {k: None if v is None else to_np(v) for k, v in as_np.items()}


def assert_close(got: np.ndarray | None, want: np.ndarray | None, what: str, atol: float = 1e-5) -> None:
    """Same shape and every entry within ``atol``; the message names ``what`` and the error."""
    assert got is not None and want is not None, f"{what}: missing"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = float(np.max(np.abs(got - want)))
    assert err < atol, f"{what}: max |error| {err:.3g}"


@pytest.mark.parametrize("activation", ["ln", "sigmoid"])
def test_gated_layer_matches_numpy_reference(activation):
    d, heads = 16, 4
    layer = GatedCrossModalLayer(d, heads, 2, 0.0, gates=activation).double().eval()
    params = set_random_params(layer, seed=11)
    z, x, key_mask = layer_inputs(seed=12, d=d)
    want = reference_layer(params, heads, z, x, key_mask, activation=activation)
    got = run_layer(layer, z, x, key_mask)
    for key in ("out", "retain", "fusion", "attention", "query", "attended"):
        assert_close(got[key], want[key], f"{activation} {key}")
    assert np.all(got["attention"][1, :, :, 4:] == 0.0)  # padded keys get no attention
    # the fused attention kernel (no weights) computes the same layer
    assert_close(run_layer(layer, z, x, key_mask, need_weights=False)["out"], want["out"], "out without weights")

    # The data can tell the right layer from each wrong one: every error moves the output
    # (and, where the gates themselves are wrong, the gates) far beyond the tolerance.
    for error in LAYER_ERRORS:
        wrong = reference_layer(params, heads, z, x, key_mask, activation=activation, error=error)
        assert np.max(np.abs(wrong["out"] - got["out"])) > 1e-2, error
        if error in ("gates_fed_z_z", "gates_fed_m_z", "gates_swapped"):
            assert np.max(np.abs(wrong["retain"] - got["retain"])) > 1e-2, error
            assert np.max(np.abs(wrong["fusion"] - got["fusion"])) > 1e-2, error


def test_gates_have_their_own_layer_norms():
    layer = GatedCrossModalLayer(8, 2, 2, 0.0, gates="ln")
    assert isinstance(layer.retain_act, nn.LayerNorm) and isinstance(layer.fusion_act, nn.LayerNorm)
    assert layer.retain_act is not layer.fusion_act


def test_layer_without_gates_matches_numpy_reference():
    d, heads = 16, 2
    layer = GatedCrossModalLayer(d, heads, 2, 0.0, gates="none").double().eval()
    params = set_random_params(layer, seed=21)
    z, x, key_mask = layer_inputs(seed=22, d=d)
    want = reference_layer(params, heads, z, x, key_mask, use_gates=False)
    got = run_layer(layer, z, x, key_mask)
    assert got["retain"] is None and got["fusion"] is None
    assert_close(got["out"], want["out"], "out")
    assert_close(got["attention"], want["attention"], "attention")
    wrong = reference_layer(params, heads, z, x, key_mask, use_gates=False, error="no_ffn_residual")
    assert np.max(np.abs(wrong["out"] - got["out"])) > 1e-2


# --- fusion and head [16], [19] ---------------------------------------------------------------


def make_batch(
    labels: list[float], present: list[tuple[bool, bool, bool]], seed: int, dtype: torch.dtype = torch.float32
) -> Batch:
    """A batch built by hand (no tokenizer): random token ids and frames of varying lengths.

    An absent stream follows the collator's convention (a lone [CLS] / one zero frame).
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    t_len = rng.integers(3, 9, n)
    a_len, v_len = rng.integers(1, 12, n), rng.integers(1, 8, n)
    has = np.asarray(present, dtype=bool)
    t_len[~has[:, 0]], a_len[~has[:, 1]], v_len[~has[:, 2]] = 1, 1, 1
    input_ids = torch.zeros(n, int(t_len.max()), dtype=torch.long)
    text_mask = torch.zeros(n, int(t_len.max()), dtype=torch.bool)
    acoustic = torch.zeros(n, int(a_len.max()), 5, dtype=dtype)
    visual = torch.zeros(n, int(v_len.max()), 20, dtype=dtype)
    for i in range(n):
        input_ids[i, : t_len[i]] = torch.from_numpy(rng.integers(1000, 2000, t_len[i]))
        input_ids[i, 0] = 101  # [CLS]
        text_mask[i, : t_len[i]] = True
        if has[i, 1]:
            acoustic[i, : a_len[i]] = torch.from_numpy(rng.standard_normal((a_len[i], 5))).to(dtype)
        if has[i, 2]:
            visual[i, : v_len[i]] = torch.from_numpy(rng.standard_normal((v_len[i], 20))).to(dtype)
    return Batch(
        ids=[f"s{i}" for i in range(n)],
        input_ids=input_ids,
        text_mask=text_mask,
        acoustic=acoustic,
        acoustic_lengths=torch.from_numpy(a_len),
        visual=visual,
        visual_lengths=torch.from_numpy(v_len),
        present=torch.from_numpy(has),
        labels=torch.tensor(labels, dtype=dtype),
    )


def np_masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of each row of (B, T, d) ``x`` over its positions where ``mask`` is True."""
    return np.stack([x[i][mask[i]].mean(0) for i in range(x.shape[0])])


def test_masked_mean_ignores_padding():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 4))
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]], dtype=bool)
    got = to_np(masked_mean(torch.from_numpy(x), torch.from_numpy(mask)))
    assert_close(got, np_masked_mean(x, mask), "masked mean", atol=1e-12)


def test_fusion_and_head_match_numpy_reference():
    """score = head(Z_TA (+) Z_TV (+) h^r_t) [16], [19], each Z the masked mean of a branch of two
    reference layers run on the model's own encoder outputs; absent streams use the stand-ins."""
    model = tiny_model(seed=4).double().eval()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(5)
        for name, p in model.named_parameters():  # LN scales and biases away from 1 and 0
            if name.startswith(("branches.", "head.")):
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    present = [(True, True, True), (True, False, True), (True, True, False), (False, True, True)]
    batch = make_batch([0.5, -1.0, 2.0, -0.3], present, seed=6, dtype=torch.float64)
    with torch.no_grad():
        enc = model.encode(batch)
        out = model.fuse(enc, batch.present)
    seqs = {m: to_np(enc.sequences[m]) for m in MODALITIES}
    masks = {m: enc.masks[m].numpy().copy() for m in MODALITIES}
    utts = {m: to_np(enc.utterances[m]) for m in MODALITIES}
    has = batch.present.numpy()
    for j, m in enumerate(MODALITIES):  # an absent stream: one learned token, one learned vector
        for i in np.flatnonzero(~has[:, j]):
            seqs[m][i] = 0.0
            seqs[m][i, 0] = to_np(model.absent_token[j])
            masks[m][i] = False
            masks[m][i, 0] = True
            utts[m][i] = np_sigmoid(to_np(model.absent_utterance[j]))
    heads = model.config.fusion_heads
    pooled = {}
    for branch in ("acoustic", "visual"):
        z = seqs["text"]
        for layer in model.branches[branch]:
            z = reference_layer(state_params(layer), heads, z, seqs[branch], masks[branch])["out"]
        pooled[branch] = np_masked_mean(z, masks["text"])
        assert_close(to_np(out.pooled[branch]), pooled[branch], f"Z_T{branch[0].upper()}")
    fused = np.concatenate([pooled["acoustic"], pooled["visual"], utts["text"]], axis=-1)
    head = state_params(model.head)
    score = np_linear(head, "3", np.maximum(np_linear(head, "0", fused), 0.0))[:, 0]
    assert_close(to_np(out.score), score, "score")
    # the order of [16] matters: the head's first layer sees different weights per slot
    swapped = np.concatenate([utts["text"], pooled["acoustic"], pooled["visual"]], axis=-1)
    wrong = np_linear(head, "3", np.maximum(np_linear(head, "0", swapped), 0.0))[:, 0]
    assert np.max(np.abs(wrong - score)) > 1e-3


# --- CMD and L_DI [4]-[5] ---------------------------------------------------------------------


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.0, 2.0), (-1.0, 0.5)])
def test_cmd_matches_numpy_formula(bounds):
    a, b = bounds
    rng = np.random.default_rng(1)
    x = a + (b - a) * rng.beta(2.0, 5.0, (9, 6))  # skewed: odd moments are not zero
    y = a + (b - a) * rng.uniform(size=(13, 6))
    for k in (1, 2, 3, 5):
        got = cmd(torch.from_numpy(x), torch.from_numpy(y), k=k, bounds=bounds).item()
        assert got == pytest.approx(np_cmd(x, y, k, a, b), rel=1e-10), k
    # every moment counts at K = 5: dropping the last one, or all but the first, is visible
    full = np_cmd(x, y, 5, a, b)
    assert abs(full - np_cmd(x, y, 4, a, b)) > 1e-6 and abs(full - np_cmd(x, y, 1, a, b)) > 1e-3


def utterance_output(seed: int, present: np.ndarray) -> ModelOutput:
    """A ModelOutput carrying only what the losses read: utterance vectors and presence."""
    rng = np.random.default_rng(seed)
    n, d = present.shape[0], 6
    utts = {
        "text": rng.beta(2.0, 3.0, (n, d)),
        "acoustic": rng.beta(3.0, 2.0, (n, d)),
        "visual": rng.uniform(size=(n, d)) ** 2,
    }
    return ModelOutput(
        score=torch.zeros(n, dtype=torch.float64),
        utterances={m: torch.from_numpy(u) for m, u in utts.items()},
        gates={},
        text_mask=torch.ones(n, 1, dtype=torch.bool),
        present=torch.from_numpy(present),
        pooled={},
    )


def reference_l_di(out: ModelOutput, k: int = 5) -> float:
    """L_DI [5]: the mean of CMD_K over (t, a), (t, v), (v, a), each on the samples that carry
    both modalities of the pair; a pair with fewer than two such samples is left out of the mean."""
    has = out.present.numpy()
    u = {m: to_np(v) for m, v in out.utterances.items()}
    values = []
    for first, second in (("text", "acoustic"), ("text", "visual"), ("visual", "acoustic")):
        both = has[:, MODALITIES.index(first)] & has[:, MODALITIES.index(second)]
        if both.sum() >= 2:
            values.append(np_cmd(u[first][both], u[second][both], k))
    return float(np.mean(values)) if values else 0.0


def test_representation_loss_is_mean_of_three_pairwise_cmds():
    present = np.ones((12, 3), dtype=bool)
    present[[0, 1], 1] = False  # no acoustic
    present[[2, 3, 4], 2] = False  # no visual
    present[5, 0] = False  # no text
    out = utterance_output(seed=2, present=present)
    got = representation_loss(out.utterances, out.present, 5).item()
    assert got == pytest.approx(reference_l_di(out, 5), rel=1e-10)
    # the data tell K = 5 from K = 1 and "both present" from "all samples"
    assert abs(reference_l_di(out, 5) - reference_l_di(out, 1)) > 1e-3
    everyone = utterance_output(seed=2, present=np.ones((12, 3), dtype=bool))
    assert abs(reference_l_di(everyone) - got) > 1e-3


def test_representation_loss_leaves_out_a_pair_without_two_samples():
    """Visual on one sample only: (t, v) and (v, a) have no moments; L_DI is CMD(t, a) alone,
    not a third of it (a batch where a modality is rare must not shrink L_DI)."""
    present = np.ones((12, 3), dtype=bool)
    present[1:, 2] = False
    out = utterance_output(seed=3, present=present)
    u = {m: to_np(v) for m, v in out.utterances.items()}
    got = representation_loss(out.utterances, out.present, 5).item()
    assert got == pytest.approx(np_cmd(u["text"], u["acoustic"], 5), rel=1e-10)
    assert got == pytest.approx(reference_l_di(out, 5), rel=1e-10)
    present[:, 1:] = False  # text alone: no pair at all
    alone = utterance_output(seed=3, present=present)
    assert representation_loss(alone.utterances, alone.present, 5).item() == 0.0


# --- the MI bound and the main loss [6]-[10], [17]-[18] ---------------------------------------

MAIN_LABELS = [1.5, -0.5, 2.0, -2.5, 0.7, -1.2, 0.0, -0.1, 2.8, -0.9, 1.1, -2.2] * 2
MAIN_PRESENT = [(False, True, True), (True, False, True), (True, True, False)] + [(True, True, True)] * 21


def np_standardise(v: np.ndarray) -> np.ndarray:
    """Each column minus its mean over the rows, over its unbiased standard deviation."""
    return (v - v.mean(0)) / v.std(0, ddof=1)


def np_logvar(model: SentimentModel, m: str, x: np.ndarray) -> np.ndarray:
    """q's log-variance at x: the head's output, floored smoothly (floor + softplus(raw - floor))."""
    q = model.mi.predictors[m]
    raw = np_mlp(q.logvar, x)
    return raw if q.logvar_floor is None else q.logvar_floor + np.logaddexp(0.0, raw - q.logvar_floor)


def np_log_q(
    model: SentimentModel, m: str, x: np.ndarray, y: np.ndarray, logvar: np.ndarray | None = None
) -> np.ndarray:
    """log N(g(y); mu(x), diag exp(logvar(x))), the full Gaussian density, per sample, where g is
    the fixed tanh projection H is computed on (q models it: docs/model-spec.md section 9), x and
    g(y) are standardised over the rows given, and q's log-variance is floored smoothly, floor +
    softplus(raw - floor); with ``logvar`` given, that log-variance instead of q's at x."""
    q = model.mi.predictors[m]
    y = np_standardise(np_mlp(model.mi.entropy[m].project, y))
    x = np_standardise(x)
    mean = np_mlp(q.mean, x)
    logvar = np_logvar(model, m, x) if logvar is None else logvar
    return -0.5 * ((y - mean) ** 2 * np.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


def np_entropy(model: SentimentModel, m: str, y: np.ndarray, labels: np.ndarray) -> float:
    """H(Y) [7]-[9] of the tanh-projected vectors, standardised over the rows given (all of the
    pair's samples, both polarities): 1/4 (log det S_pos + log det S_neg), each
    the biased covariance plus jitter; zero labels left out (an empty memory: eval mode)."""
    z = np_standardise(np_mlp(model.mi.entropy[m].project, y))
    jitter = model.config.entropy_jitter
    total = 0.0
    for group in (z[labels > 0], z[labels < 0]):
        assert group.shape[0] > z.shape[1], "the test batch must give a full-rank covariance"
        c = group - group.mean(0)
        sign, logdet = np.linalg.slogdet(c.T @ c / group.shape[0] + jitter * np.eye(z.shape[1]))
        assert sign > 0
        total += logdet
    return 0.25 * total


def pair_rows(out: ModelOutput, m: str) -> np.ndarray:
    """The samples that carry text and modality ``m``: the ones I_SI(t, m) is computed on."""
    has = out.present.numpy()
    return has[:, 0] & has[:, MODALITIES.index(m)]


def reference_l_si(
    model: SentimentModel, out: ModelOutput, labels: np.ndarray, logvar: dict[str, np.ndarray] | None = None
) -> float:
    """L_SI [10] = -(I_SI(t, a) + I_SI(t, v)), I_SI = mean log q(y|x) + H(y) [6], each on the
    samples that carry text and the modality. ``logvar`` (pair -> array) holds q's log-variance
    fixed, as the main stage does (`GaussianPredictor.bound_term`)."""
    u = {m: to_np(v) for m, v in out.utterances.items()}
    total = 0.0
    for m in ("acoustic", "visual"):
        both = pair_rows(out, m)
        fixed = None if logvar is None else logvar[m]
        total += np_log_q(model, m, u["text"][both], u[m][both], fixed).mean()
        total += np_entropy(model, m, u[m][both], labels[both])
    return -total


def main_model() -> tuple[SentimentModel, Batch]:
    """A float64 tiny model in eval mode (no dropout, the entropy memory left empty) and a batch
    with every pair short of some samples."""
    model = tiny_model(seed=2).double().eval()
    return model, make_batch(MAIN_LABELS, MAIN_PRESENT, seed=3, dtype=torch.float64)


def sgd(model: SentimentModel, lr: float) -> torch.optim.Optimizer:
    """Plain SGD over what the main step trains, so an update is exactly -lr * gradient."""
    return torch.optim.SGD(model.main_parameters() + model.text_backbone_parameters(), lr=lr)


def test_main_loss_composes_the_terms_with_the_right_signs():
    model, batch = main_model()
    labels = batch.labels.numpy()
    cfg = TrainConfig(alpha=0.3, beta=0.7)  # unequal weights: swapping them shows
    out = model(batch)
    l_task = float(np.mean(np.abs(to_np(out.score) - labels)))
    l_di = reference_l_di(out, 5)
    l_si = reference_l_si(model, out, labels)
    got = main_step(model, out, batch, sgd(model, 1e-3), cfg)
    assert got["task"] == pytest.approx(l_task, rel=1e-9)
    assert got["cmd"] == pytest.approx(l_di, rel=1e-9)
    assert got["mi"] == pytest.approx(l_si, rel=1e-9)
    assert got["loss"] == pytest.approx(l_task + 0.3 * l_si + 0.7 * l_di, rel=1e-9)
    # the bound's two parts are both large enough here for a sign error in either to show
    h = sum(np_entropy(model, m, to_np(out.utterances[m]), labels) for m in ("acoustic", "visual"))
    assert abs(h) > 1e-2 and abs(l_si) > 1e-2


def test_main_step_descends_the_mi_term():
    """The gradient of alpha * L_SI is what the main step follows: SGD steps from the same
    weights with alpha = 1 and alpha = 0 differ by delta = -lr * grad L_SI, so the reference
    L_SI changes along delta by -|delta|^2 / lr to first order. (A flipped sign gives +, a
    detached term a zero delta.) The main stage holds q fixed, its log-variance included
    (`GaussianPredictor.bound_term`): the reference is differentiated with q's log-variance at
    the starting point held constant, which leaves its value unchanged there."""
    model, batch = main_model()
    labels = batch.labels.numpy()
    lr = 1e-5
    stepped, losses = {}, {}
    for alpha in (1.0, 0.0):
        m = copy.deepcopy(model)
        cfg = TrainConfig(alpha=alpha, beta=0.5, grad_clip=1e12)
        losses[alpha] = main_step(m, m(batch), batch, sgd(m, lr), cfg)["loss"]
        stepped[alpha] = dict(m.named_parameters())
    with torch.no_grad():
        out = model(batch)
    h_t = to_np(out.utterances["text"])
    logvar = {m: np_logvar(model, m, np_standardise(h_t[pair_rows(out, m)])) for m in ("acoustic", "visual")}
    l_si_before = reference_l_si(model, out, labels, logvar)
    assert l_si_before == pytest.approx(reference_l_si(model, out, labels), rel=1e-12)
    # the loss difference is the alpha difference times L_SI, with L_SI's sign
    assert losses[1.0] - losses[0.0] == pytest.approx(l_si_before, rel=1e-9)
    moved = copy.deepcopy(model)
    sq = 0.0
    with torch.no_grad():
        for name, p in moved.named_parameters():
            delta = stepped[1.0][name] - stepped[0.0][name]
            sq += float((delta**2).sum())
            p.add_(delta)
        l_si_after = reference_l_si(moved, moved(batch), labels, logvar)
    assert sq > 0, "the MI term sends no gradient to the main step's parameters"
    assert (l_si_after - l_si_before) / (-sq / lr) == pytest.approx(1.0, abs=0.01)


# --- the two stages [18]: which parameters each one moves -------------------------------------


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter, by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def q_names(model: SentimentModel) -> set[str]:
    """Names of the q(y|x) networks' parameters (MIBound's predictors), found by identity."""
    ids = {id(p) for p in model.mi.predictors.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def stage_model() -> tuple[SentimentModel, Batch]:
    """A float32 tiny model in training mode, as `train_epoch` runs it, and a batch."""
    model = tiny_model(seed=7).train()  # dropout is 0 in the tiny config; the memory fills
    return model, make_batch(MAIN_LABELS, MAIN_PRESENT, seed=8)


def test_optimisers_split_q_from_everything_else():
    model, _ = stage_model()
    opts = make_optimisers(model, TrainConfig())
    q = {id(p) for p in model.mi.predictors.parameters()}
    main = [id(p) for g in opts.main.param_groups for p in g["params"]]
    assert opts.estimator is not None
    estimator = [id(p) for g in opts.estimator.param_groups for p in g["params"]]
    assert q and not q & set(main)
    assert set(estimator) == q and len(estimator) == len(q)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(main) == trainable - q  # everything else


def test_estimator_step_changes_only_q():
    model, batch = stage_model()
    cfg = TrainConfig()
    opts = make_optimisers(model, cfg)
    # one whole iteration first (train_epoch's order): the main step leaves its gradients behind
    out = model(batch)
    estimator_step(model, out, opts.estimator, cfg)
    main_step(model, out, batch, opts.main, cfg)

    out = model(batch)
    before = snapshot(model)
    grads_before = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    estimator_step(model, out, opts.estimator, cfg)
    after = dict(model.named_parameters())
    q = q_names(model)
    assert q and all(not torch.equal(before[n], after[n]) for n in q), "q did not move"
    moved = sorted(n for n in before if n not in q and not torch.equal(before[n], after[n]))
    assert not moved, f"the estimator step moved {moved[:5]}"
    # no gradient reached the encoders: their (left-over) gradients are untouched
    for n, p in model.named_parameters():
        if n not in q:
            old = grads_before[n]
            assert (p.grad is None) == (old is None) and (old is None or torch.equal(p.grad, old)), n
    # and the main step can still back-propagate through the same outputs (train_epoch does)
    main_step(model, out, batch, opts.main, cfg)


def test_main_step_never_changes_q():
    model, batch = stage_model()
    cfg = TrainConfig()
    opts = make_optimisers(model, cfg)
    for _ in range(2):
        out = model(batch)
        before = snapshot(model)
        main_step(model, out, batch, opts.main, cfg)
        after = dict(model.named_parameters())
        q = q_names(model)
        assert all(torch.equal(before[n], after[n]) for n in q), "the main step moved q"
        for part in ("head.", "branches.", "acoustic.", "visual.", "text."):
            assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith(part)), part


# --- metrics (docs/model-spec.md section 6; MMSA metricsTop.py) -------------------------------


def test_zero_prediction_is_non_negative_for_has0_and_not_positive_for_non0():
    m = evaluate([0.0, 0.0], [2.0, 0.5])
    assert m["acc2_has0"] == 100.0 and m["f1_has0"] == 100.0  # 0 >= 0: the right side
    assert m["acc2_non0"] == 0.0 and m["f1_non0"] == 0.0  # 0 > 0 is false: the wrong side


def test_zero_labels_count_in_has0_and_are_dropped_from_non0():
    # p >= 0: T T F T T T; y >= 0: T T T F F T -> 3 of 6
    # non0 keeps y != 0 (rows 1, 3, 4): p > 0: F T F; y > 0: T F F -> 1 of 3
    m = evaluate([0.0, 0.0, -1e-6, 1e-6, 0.0, 2.0], [0.0, 1e-6, 0.0, -1e-6, -1e-6, 0.0])
    assert m["acc2_has0"] == pytest.approx(50.0)
    # class T: tp 3, fp 2, fn 1 -> F1 2/3, support 4; class F: tp 0 -> 0, support 2
    assert m["f1_has0"] == pytest.approx(100.0 * (2 / 3 * 4) / 6)
    assert m["acc2_non0"] == pytest.approx(100.0 / 3)
    # class T: tp 0 -> 0, support 1; class F: tp 1, fp 1, fn 1 -> 1/2, support 2
    assert m["f1_non0"] == pytest.approx(100.0 * (0.5 * 2) / 3)


def test_all_zero_labels():
    m = evaluate([0.5, -0.5, 0.0], [0.0, 0.0, 0.0])
    assert m["acc2_has0"] == pytest.approx(200.0 / 3)  # every label is non-negative
    assert m["f1_has0"] == pytest.approx(100.0 * 0.8)  # one class (T): tp 2, fn 1 -> 4/5
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    assert m["acc7"] == pytest.approx(100.0) and m["acc5"] == pytest.approx(100.0)  # -0.5, 0.5 -> 0


def test_tiny_values_keep_their_sign():
    m = evaluate([1e-9, -1e-9, 1e-9, -1e-9], [1e-9, -1e-9, -1e-9, 1e-9])
    assert m["acc2_has0"] == pytest.approx(50.0) and m["acc2_non0"] == pytest.approx(50.0)
    assert m["acc7"] == pytest.approx(100.0)  # all round to 0


def test_acc7_rounds_halves_to_even_and_clips_to_three():
    # np.round: 0.5 -> 0, -0.5 -> -0, 1.5 -> 2, 2.5 -> 2, -2.5 -> -2; 3.7 -> 3 and -4 -> -3 after clipping
    preds = [0.5, -0.5, 1.5, 2.5, -2.5, 3.7, -4.0, 0.49]
    labels = [0.0, 0.0, 2.0, 2.0, -2.0, 3.0, -3.0, 0.0]
    assert evaluate(preds, labels)["acc7"] == pytest.approx(100.0)
    assert evaluate([3.7, -4.0], [2.6, -2.9])["acc7"] == pytest.approx(100.0)  # both sides clip, then round
    assert evaluate([3.4], [2.0])["acc7"] == 0.0


def test_acc5_clips_to_two():
    # clipped to [-2, 2]: p 2, -2, 2, -0 | y 2, -2, 2, 0 -> all equal; in [-3, 3]: 3, -3, 2, -0 | 2, -3, 2, 0
    m = evaluate([2.6, -2.6, 1.5, -0.5], [2.0, -3.0, 2.0, 0.0])
    assert m["acc5"] == pytest.approx(100.0)
    assert m["acc7"] == pytest.approx(75.0)


def test_every_mutation_of_the_mutation_check_still_applies():
    """scripts/mutation_check.py edits exact strings; code that moves on must take its mutation
    list along (a mutation that no longer applies is an error of the check, not a kill)."""
    from scripts.mutations import MUTATIONS

    stale = [m.id for m in MUTATIONS if (ROOT / m.file).read_text().count(m.old) != 1]
    assert not stale, f"update scripts/mutations.py: {stale}"
    assert len({m.id for m in MUTATIONS}) == len(MUTATIONS)
