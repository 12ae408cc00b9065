"""The model: encoders, the gated cross-modal layer, the fusion, the head (docs/model-spec.md 1-4).

The forward pass is split in two so that explanations are cheap:
``encode`` runs the three encoders once; ``fuse`` runs fusion and the head for any choice of
present modalities (an absent one is replaced by its learned stand-in).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import GATES, MODALITIES, ModelConfig
from ..data import Batch
from ..threads import one_thread
from .losses import MIBound
from .packed_text import first_position, packed_states
from .text_cache import FrozenLayerCache, encoder_layers, freeze_lower_layers
from .text_encoder import load_text_backbone

BRANCHES: tuple[str, str] = ("acoustic", "visual")  # text -> acoustic, text -> visual


@dataclass
class Encoded:
    """Encoder outputs for a batch, before presence is applied."""

    sequences: dict[str, torch.Tensor]  # modality -> (B, T_m, d)
    masks: dict[str, torch.Tensor]  # modality -> (B, T_m) bool, True at real positions
    utterances: dict[str, torch.Tensor]  # modality -> (B, d), in [0, 1]


@dataclass
class LayerGates:
    """What one gated layer of one branch did, for every text position and channel.

    ``retain`` and ``fusion`` are (B, T_text, d), or None in a model without gates ("w/o mf").
    ``attention`` is (B, heads, T_text, T_m): text positions attending to the modality's frames
    (None when the layer was run without weights). ``query`` is the text stream Z entering the
    layer and ``attended`` what it found in the other modality, m = MH-ATT(Z, X_m): the two terms
    the gates weigh (references to tensors the layer computes anyway; `msa.explain` measures
    each word's share of the update from them).
    """

    retain: torch.Tensor | None
    fusion: torch.Tensor | None
    attention: torch.Tensor | None
    query: torch.Tensor | None = None
    attended: torch.Tensor | None = None


@dataclass
class ModelOutput:
    """The model's answer for a batch.

    ``utterances`` are the bounded utterance vectors h^r (stand-ins where a modality is absent),
    ``gates[branch]`` lists `LayerGates` for each layer of the text->branch stack, and
    ``text_mask`` marks the text positions the gates are defined on.
    """

    score: torch.Tensor  # (B,)
    utterances: dict[str, torch.Tensor]
    gates: dict[str, list[LayerGates]]
    text_mask: torch.Tensor  # (B, T_text) bool
    present: torch.Tensor  # (B, 3) bool
    pooled: dict[str, torch.Tensor]  # branch -> (B, d): Z_TA, Z_TV, the head's other inputs


class SequenceEncoder(nn.Module):
    """BiLSTM over variable-length frames [2]-[3].

    Each direction runs on the padded batch, the backward one on every sequence reversed within
    its own length, so each output and final state is the packed BiLSTM's (same weights, same
    numbers) without packing: on a CPU, autograd through a packed LSTM copies the whole packed
    batch at every time step; at the extractor's 50 frames/s that made the BiLSTM's forward and
    backward 13x slower, and a small model's whole training step about 3x.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, out_dim: int, dropout: float):
        super().__init__()
        # Holds the weights (the checkpoints' names); `forward` calls torch.lstm with them.
        self.lstm = nn.LSTM(
            in_dim, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )
        self.sequence_proj = nn.Linear(2 * hidden, out_dim)
        self.utterance_proj = nn.Linear(2 * hidden, out_dim)

    def _direction(self, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        """One layer, one direction, from zero states: (B, T, in) -> (B, T, hidden)."""
        weights = [
            getattr(self.lstm, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]
        zeros = x.new_zeros(1, x.shape[0], self.lstm.hidden_size)
        out, _, _ = torch.lstm(x, (zeros, zeros), weights, True, 1, 0.0, self.training, False, True)
        return out

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = lengths.clamp_min(1)  # an absent stream: one zero frame, as packing required
        steps = torch.arange(x.shape[1], device=x.device)
        flip = reverse_within(lengths, x.shape[1])
        last = lengths - 1
        rows = torch.arange(x.shape[0], device=x.device)
        # One thread: each of the thousands of steps is a tiny matrix product, and a second
        # thread only adds a hand-over per step. Once Whisper (CTranslate2, with its own OpenMP
        # threads) has run in the process, OpenMP stops spinning and each hand-over waits on
        # the kernel: a 30 s clip's BiLSTM took 70 ms on two threads, 15 ms on one.
        with one_thread():
            for layer in range(self.lstm.num_layers):
                if layer:
                    x = F.dropout(x, self.lstm.dropout, self.training)
                forward = self._direction(x, layer, "")
                backward_reversed = self._direction(_take(x, flip), layer, "_reverse")
                x = torch.cat([forward, _take(backward_reversed, flip)], dim=-1)
        valid = (steps[None] < lengths[:, None]).unsqueeze(-1)
        out = x * valid  # zeros after each sequence's end, as unpacking gives
        final = torch.cat([forward[rows, last], backward_reversed[rows, last]], dim=-1)
        return self.sequence_proj(out), torch.sigmoid(self.utterance_proj(final))


def reverse_within(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(B, total) time indices that reverse each sequence's first ``lengths[b]`` steps and leave
    its padding in place; applying them twice gives the identity."""
    steps = torch.arange(total, device=lengths.device)[None].expand(len(lengths), total)
    mirrored = lengths[:, None] - 1 - steps
    return torch.where(mirrored >= 0, mirrored, steps)


def _take(x: torch.Tensor, time_index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, time_index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class TextEncoder(nn.Module):
    """A BERT-family encoder; the utterance vector is [CLS] (the paper) or the masked mean [1]."""

    def __init__(self, backbone: nn.Module, pooling: str, out_dim: int, freeze: bool, trainable_layers: int = -1):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.freeze = freeze or trainable_layers == 0
        width = backbone.config.hidden_size
        self.sequence_proj = nn.Linear(width, out_dim)
        self.utterance_proj = nn.Linear(width, out_dim)
        self.trainable_layers = 0 if self.freeze else trainable_layers
        freeze_lower_layers(backbone, self.trainable_layers)
        # Set by training (msa.model.text_cache.attach) to run the frozen lower layers once per text.
        self.frozen_cache: FrozenLayerCache | None = None

    @property
    def packs(self) -> bool:
        """Whether ``forward(..., pack=True)`` reads texts packed (a known encoder family, no cache)."""
        return self.frozen_cache is None and first_position(self.backbone) is not None

    def frozen_layers(self) -> int:
        """How many layers from the bottom of the encoder are frozen (the cacheable part)."""
        if self.trainable_layers < 0:
            raise ValueError("every text layer trains (text_trainable_layers=-1): there is nothing frozen to cache")
        return len(encoder_layers(self.backbone)) - self.trainable_layers

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.freeze:
            self.backbone.eval()  # a frozen encoder keeps its dropout off
        return self

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, pack: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, out) states and (B, out) utterance vectors; with ``pack``, the texts run packed
        end to end (`msa.model.packed_text`: the same states, without computing the padding)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            states = None
            if self.frozen_cache is not None:
                states = self.frozen_cache.forward(input_ids, mask)
            elif pack:
                states = packed_states(self.backbone, input_ids, mask)
            if states is None:
                states = self.backbone(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
        pooled = states[:, 0] if self.pooling == "cls" else masked_mean(states, mask)
        return self.sequence_proj(states), torch.sigmoid(self.utterance_proj(pooled))


class GatedCrossModalLayer(nn.Module):
    """One layer of a text->modality branch [11]-[15].

    m = MH-ATT(Q=Z, K=V=X_m); g_r = act(W_r [Z; m]); g_f = act(W_f [Z; m]);
    Z~ = LN(g_f * m + g_r * Z); Z' = LN(Z~ + FFN(Z~)). act is LN (``gates="ln"``, the paper)
    or sigmoid (``"sigmoid"``); ``"none"`` ("w/o mf") has no gates: g_r = g_f = 1.
    """

    def __init__(self, d: int, heads: int, ffn_mult: int, dropout: float, gates: str = "ln"):
        super().__init__()
        if gates not in GATES:
            raise ValueError(f"gates must be one of {', '.join(GATES)}, got {gates!r}")
        self.attention = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.gated = gates != "none"
        if self.gated:
            self.retain_gate = nn.Linear(2 * d, d)
            self.fusion_gate = nn.Linear(2 * d, d)
            if gates == "ln":
                self.retain_act: nn.Module = nn.LayerNorm(d)
                self.fusion_act: nn.Module = nn.LayerNorm(d)
            else:
                self.retain_act, self.fusion_act = nn.Sigmoid(), nn.Sigmoid()
        self.norm_mix = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_mult * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_mult * d, d))
        self.norm_out = nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)

    def attend(
        self, z: torch.Tensor, x: torch.Tensor, x_mask: torch.Tensor, need_weights: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """MH-ATT(Q=Z, K=V=X) with ``self.attention``'s weights.

        ``x_mask`` is (B_x, T_x), True at the keys every query may see, or (B_x, T_z, T_x): a
        mask per query. ``x`` (and its mask) may have batch 1 for any batch of ``z``: its keys
        and values are then projected once and shared by every row.

        Returns the attended values (B, T_z, d) and, with ``need_weights``, the per-head
        weights (B, heads, T_z, T_x); without them PyTorch's fused attention kernel runs.
        """
        a = self.attention
        batch, t_z, d = z.shape
        heads = a.num_heads
        w_q, w_k, w_v = a.in_proj_weight.chunk(3)
        b_q, b_k, b_v = a.in_proj_bias.chunk(3)

        def split(t: torch.Tensor) -> torch.Tensor:  # (b, T, d) -> (b, heads, T, d/heads)
            return t.view(t.shape[0], t.shape[1], heads, d // heads).transpose(1, 2)

        q = split(nn.functional.linear(z, w_q, b_q))
        k = split(nn.functional.linear(x, w_k, b_k)).expand(batch, -1, -1, -1)
        v = split(nn.functional.linear(x, w_v, b_v)).expand(batch, -1, -1, -1)
        # (b_x, 1, 1 or T_z, T_x): broadcast over heads (and over queries for a key padding mask)
        keep = x_mask[:, None, None, :] if x_mask.dim() == 2 else x_mask[:, None]
        p_drop = a.dropout if self.training else 0.0
        if need_weights:
            scores = (q @ k.transpose(-1, -2)) / (d // heads) ** 0.5
            weights = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)
            out = nn.functional.dropout(weights, p_drop, self.training) @ v
        else:
            weights = None
            out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p_drop)
        return a.out_proj(out.transpose(1, 2).reshape(batch, t_z, d)), weights

    def forward(
        self, z: torch.Tensor, x: torch.Tensor, x_mask: torch.Tensor, need_weights: bool = True
    ) -> tuple[torch.Tensor, LayerGates]:
        m, attention = self.attend(z, x, x_mask, need_weights)
        m = self.dropout(m)
        if self.gated:
            both = torch.cat([z, m], dim=-1)
            retain = self.retain_act(self.retain_gate(both))
            fusion = self.fusion_act(self.fusion_gate(both))
            mixed = self.norm_mix(fusion * m + retain * z)
        else:
            retain = fusion = None
            mixed = self.norm_mix(m + z)
        out = self.norm_out(mixed + self.dropout(self.ffn(mixed)))
        return out, LayerGates(retain=retain, fusion=fusion, attention=attention, query=z, attended=m)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, d) ``x`` over the positions where the (B, T) ``mask`` is True."""
    w = mask.unsqueeze(-1).to(x.dtype)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


class SentimentModel(nn.Module):
    """BERT + BiLSTM encoders, CMD/MI representation learning, gated cross-modal fusion.

    Parameters
    ----------
    config : ModelConfig
    text_backbone : a `transformers` encoder to use instead of loading ``config.text_encoder``
        (tests pass a tiny random one; checkpoints pass one rebuilt from its saved config).
    """

    def __init__(self, config: ModelConfig, text_backbone: nn.Module | None = None):
        super().__init__()
        if text_backbone is None:
            text_backbone = load_text_backbone(config.text_encoder)
        self.config = dataclasses.replace(config, text_dim=int(text_backbone.config.hidden_size))
        c = self.config
        d = c.hidden
        self.text = TextEncoder(text_backbone, c.text_pooling, d, c.freeze_text_encoder, c.text_trainable_layers)
        self.acoustic = SequenceEncoder(c.acoustic_dim, c.lstm_hidden, c.lstm_layers, d, c.dropout)
        self.visual = SequenceEncoder(c.visual_dim, c.lstm_hidden, c.lstm_layers, d, c.dropout)
        # Learned stand-ins for an absent modality, in MODALITIES order: the utterance vector
        # (as a logit, bounded by the same sigmoid) and a one-token sequence for fusion.
        self.absent_utterance = nn.Parameter(torch.zeros(len(MODALITIES), d))
        self.absent_token = nn.Parameter(torch.randn(len(MODALITIES), d) * 0.02)
        self.branches = nn.ModuleDict(
            {
                b: nn.ModuleList(
                    GatedCrossModalLayer(d, c.fusion_heads, c.ffn_mult, c.dropout, c.gates)
                    for _ in range(c.fusion_layers)
                )
                for b in BRANCHES
            }
        )
        self.head = nn.Sequential(
            nn.Linear(3 * d, c.head_hidden), nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(c.head_hidden, 1)
        )
        self.mi = MIBound(d, c.mi_hidden, c.entropy_proj_dim, c.entropy_memory, c.entropy_jitter)

    def encode(self, batch: Batch) -> Encoded:
        """Run the three encoders once."""
        return self._encoded(batch, self.text(batch.input_ids, batch.text_mask))

    def encode_many(self, batches: Sequence[Batch]) -> list[Encoded]:
        """`encode` of each batch, the texts of all of them read in one packed pass of the text
        encoder: a clip and its segments get the same outputs for about half the text's work."""
        if not self.text.packs:
            return [self.encode(b) for b in batches]
        width = max(b.input_ids.shape[1] for b in batches)
        ids = torch.cat([F.pad(b.input_ids, (0, width - b.input_ids.shape[1])) for b in batches])
        mask = torch.cat([F.pad(b.text_mask, (0, width - b.text_mask.shape[1])) for b in batches])
        t_seq, t_utt = self.text(ids, mask, pack=True)
        out, start = [], 0
        for b in batches:
            rows = slice(start, start + len(b))
            out.append(self._encoded(b, (t_seq[rows, : b.input_ids.shape[1]], t_utt[rows])))
            start += len(b)
        return out

    def _encoded(self, batch: Batch, text: tuple[torch.Tensor, torch.Tensor]) -> Encoded:
        """The batch's `Encoded` from its text encoder's (states, utterance) and its streams."""
        t_seq, t_utt = text
        a_seq, a_utt = self.acoustic(batch.acoustic, batch.acoustic_lengths)
        v_seq, v_utt = self.visual(batch.visual, batch.visual_lengths)
        positions = {
            "acoustic": torch.arange(batch.acoustic.shape[1], device=a_seq.device),
            "visual": torch.arange(batch.visual.shape[1], device=v_seq.device),
        }
        return Encoded(
            sequences={"text": t_seq, "acoustic": a_seq, "visual": v_seq},
            masks={
                "text": batch.text_mask,
                "acoustic": positions["acoustic"][None] < batch.acoustic_lengths[:, None],
                "visual": positions["visual"][None] < batch.visual_lengths[:, None],
            },
            utterances={"text": t_utt, "acoustic": a_utt, "visual": v_utt},
        )

    def stand_in_utterance(self, modality: str) -> torch.Tensor:
        """(d,) learned utterance vector of an absent modality, bounded like the real ones."""
        return torch.sigmoid(self.absent_utterance[MODALITIES.index(modality)])

    def stand_in_token(self, modality: str) -> torch.Tensor:
        """(d,) learned one-token sequence of an absent modality."""
        return self.absent_token[MODALITIES.index(modality)]

    def _with_presence(
        self, enc: Encoded, present: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Swap each absent modality for its stand-in: a lone learned token and utterance vector."""
        seqs, masks, utts = {}, {}, {}
        for i, m in enumerate(MODALITIES):
            p = present[:, i]
            seq, mask = enc.sequences[m], enc.masks[m]
            stand_in_seq = torch.zeros_like(seq)
            stand_in_seq[:, 0] = self.stand_in_token(m)
            stand_in_mask = torch.zeros_like(mask)
            stand_in_mask[:, 0] = True
            seqs[m] = torch.where(p[:, None, None], seq, stand_in_seq)
            masks[m] = torch.where(p[:, None], mask, stand_in_mask)
            utts[m] = torch.where(
                p[:, None], enc.utterances[m], self.stand_in_utterance(m).expand_as(enc.utterances[m])
            )
        return seqs, masks, utts

    def branch_states(
        self, branch: str, z: torch.Tensor, x: torch.Tensor, x_mask: torch.Tensor, need_weights: bool = True
    ) -> tuple[torch.Tensor, list[LayerGates]]:
        """The text stream after every layer of the text->``branch`` stack [11]-[15], and each
        layer's gates. Every layer works per text position (queries never attend to each other),
        which `fuse_with_coalitions` uses to score several cases as one sequence."""
        gates = []
        for layer in self.branches[branch]:
            z, g = layer(z, x, x_mask, need_weights)
            gates.append(g)
        return z, gates

    def run_branch(
        self,
        branch: str,
        z: torch.Tensor,
        z_mask: torch.Tensor,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        need_weights: bool = True,
    ) -> tuple[torch.Tensor, list[LayerGates]]:
        """One text->``branch`` stack: the text stream pooled over valid positions, and each
        layer's gates."""
        z, gates = self.branch_states(branch, z, x, x_mask, need_weights)
        return masked_mean(z, z_mask), gates

    def head_score(self, pooled: dict[str, torch.Tensor], text_utterance: torch.Tensor) -> torch.Tensor:
        """The score from Z_TA (+) Z_TV (+) h^r_t  [16], [19]."""
        fused = torch.cat([pooled[b] for b in BRANCHES] + [text_utterance], dim=-1)
        return self.head(fused).squeeze(-1)

    def fuse(self, enc: Encoded, present: torch.Tensor) -> ModelOutput:
        """Fusion and head for the given (B, 3) presence mask [11]-[16], [19]."""
        seqs, masks, utts = self._with_presence(enc, present)
        pooled, gates = {}, {}
        for b in BRANCHES:
            pooled[b], gates[b] = self.run_branch(b, seqs["text"], masks["text"], seqs[b], masks[b])
        score = self.head_score(pooled, utts["text"])
        return ModelOutput(
            score=score, utterances=utts, gates=gates, text_mask=masks["text"], present=present, pooled=pooled
        )

    def forward(self, batch: Batch) -> ModelOutput:
        return self.fuse(self.encode(batch), batch.present)

    def estimator_parameters(self) -> list[nn.Parameter]:
        """The q(y|x) networks: updated alone, in the estimator stage, and by nothing else.

        The MI bound's only other weights, the entropy's projection, are fixed buffers
        (`msa.model.losses.FixedLinear`): in neither this list nor `main_parameters`.
        """
        return list(self.mi.predictors.parameters())

    def text_backbone_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.text.backbone.parameters() if p.requires_grad]

    def main_parameters(self) -> list[nn.Parameter]:
        """Everything trained by L_main except the text backbone (own learning rate) and q, which
        the main stage only reads (`msa.model.losses.GaussianPredictor.bound_term`)."""
        skip = {id(p) for p in self.estimator_parameters()} | {id(p) for p in self.text.backbone.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in skip]
