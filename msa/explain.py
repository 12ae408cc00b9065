"""Explanations: exact Shapley contributions of the three modalities, and what each word takes
in from the voice and the face (its share of each gated update, and where its attention goes).

Shapley values treat each modality as a player and the model's score with a subset S of
modalities present (the rest replaced by their learned stand-ins) as the value v(S). With
three players there are 8 subsets: the encoders run once, so the values are exact, and they add
up to v(all present) - v(none).

The 8 subsets ride along in the prediction's own fusion (`fuse_with_coalitions`) instead of
re-running it. A branch (text -> acoustic, text -> visual) sees only whether the text and its
own modality are present, so it has 4 cases, not 8. Every layer of a branch works per text
position (text queries attend to the modality's frames, never to each other; gates, norms and
the feed-forward act per position), so the 4 cases run as one longer query sequence in the
prediction's own call: the case's text (or the one-token text stand-in) repeated once per case,
each query masked to see only its case's keys (the real stream, or the modality's one-token
stand-in appended to it). The stream's keys and values are projected once, and a case's pooled
output is the mean over its own query positions. The head then scores the subsets as one batch.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .config import MODALITIES
from .model.network import BRANCHES, Encoded, GatedCrossModalLayer, LayerGates, ModelOutput, SentimentModel

Subset = tuple[bool, bool, bool]  # presence of (text, acoustic, visual)


@dataclass
class Contributions:
    """Shapley values of one sample, in score units.

    ``values[m]`` is 0 for a modality the clip does not carry (it is never "added").
    ``base`` is v(none): the score with every modality replaced by its stand-in.
    ``subset_scores`` maps a subset (tuple of modality names) to its score v(S).
    """

    values: dict[str, float]
    base: float
    score: float
    subset_scores: dict[tuple[str, ...], float]

    def to_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "base": self.base,
            "score": self.score,
            "subset_scores": {"+".join(k) or "none": v for k, v in self.subset_scores.items()},
        }


def shapley_values(have: Subset, value: dict[Subset, float]) -> Contributions:
    """Exact Shapley values from v(S) over the 8 subsets; ``have`` is what the clip carries
    (a modality it lacks contributes 0: adding it changes nothing)."""
    n = len(MODALITIES)
    contributions = {}
    for i, m in enumerate(MODALITIES):
        phi = 0.0
        if have[i]:
            for s in value:
                if s[i]:
                    continue
                with_i = tuple(True if j == i else b for j, b in enumerate(s))
                k = sum(s)
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                phi += weight * (value[with_i] - value[s])  # type: ignore[index]
        contributions[m] = phi
    return Contributions(
        values=contributions,
        base=value[(False, False, False)],
        score=value[have],
        subset_scores={tuple(m for m, b in zip(MODALITIES, s) if b): v for s, v in value.items()},
    )


@torch.no_grad()
def fuse_with_coalitions(
    model: SentimentModel, enc: Encoded, present: torch.Tensor
) -> tuple[ModelOutput, Contributions]:
    """`SentimentModel.fuse` for one sample, with its exact Shapley contributions.

    Parameters
    ----------
    model : the model, in eval mode (dropout would make v(S) random).
    enc : `SentimentModel.encode` output for a batch of one sample.
    present : (1, 3) bool; what the clip actually carries.

    Returns
    -------
    The same `ModelOutput` as ``model.fuse(enc, present)`` (gates, attention maps and all), and
    the `Contributions`.
    """
    if present.shape[0] != 1:
        raise ValueError(f"fuse_with_coalitions explains one sample at a time, got a batch of {present.shape[0]}")
    have: Subset = tuple(bool(h) for h in present[0].tolist())  # type: ignore[assignment]
    subsets: list[Subset] = list(itertools.product((False, True), repeat=3))  # type: ignore[arg-type]
    effective = {s: tuple(a and h for a, h in zip(s, have)) for s in subsets}  # absent stays absent
    t = MODALITIES.index("text")

    def stream(m: str, on: bool) -> torch.Tensor:
        """(n, d): the real sequence, or the modality's one-token stand-in."""
        if not on:
            return model.stand_in_token(m).view(1, -1)
        return enc.sequences[m][0, : int(enc.masks[m][0].sum())]

    text_cases = [have[t]] + ([False] if have[t] else [])  # the clip's own case first
    texts = {on: stream("text", on) for on in text_cases}
    pooled: dict[tuple[str, bool, bool], torch.Tensor] = {}
    gates: dict[str, list[LayerGates]] = {}
    for b in BRANCHES:
        i = MODALITIES.index(b)
        x_cases = [have[i]] + ([False] if have[i] else [])
        keys = {on: stream(b, on) for on in x_cases}
        cases = [(tc, xc) for xc in x_cases for tc in text_cases]  # the prediction's own case first
        z = torch.cat([texts[tc] for tc, _ in cases])[None]
        x = torch.cat([keys[xc] for xc in x_cases])[None]
        mask = torch.zeros(1, z.shape[1], x.shape[1], dtype=torch.bool, device=z.device)
        q_start, spans = 0, {}
        for tc, xc in cases:
            k_start = sum(len(keys[o]) for o in x_cases[: x_cases.index(xc)])
            q_end = q_start + len(texts[tc])
            mask[0, q_start:q_end, k_start : k_start + len(keys[xc])] = True
            spans[(tc, xc)], q_start = (q_start, q_end), q_end
        states, layer_gates = model.branch_states(b, z, x, mask)
        for (tc, xc), (q0, q1) in spans.items():
            pooled[(b, tc, xc)] = states[:, q0:q1].mean(1)
        n, k = len(texts[have[t]]), len(keys[have[i]])
        gates[b] = [_own_case(g, n, k) for g in layer_gates]

    order = [have] + sorted({s for s in effective.values() if s != have})
    utt = {
        m: enc.utterances[m][:1] if have[j] else model.stand_in_utterance(m).view(1, -1)
        for j, m in enumerate(MODALITIES)
    }
    stand_in_text = model.stand_in_utterance("text").view(1, -1)
    scores = model.head_score(
        {b: torch.cat([pooled[(b, s[t], s[MODALITIES.index(b)])] for s in order]) for b in BRANCHES},
        torch.cat([utt["text"] if s[t] else stand_in_text for s in order]),
    )
    value_of = dict(zip(order, scores.double().cpu().tolist()))
    contributions = shapley_values(have, {s: value_of[effective[s]] for s in subsets})
    n_text = len(texts[have[t]])
    output = ModelOutput(
        score=scores[:1],
        utterances=utt,
        gates=gates,
        text_mask=torch.ones(1, n_text, dtype=torch.bool, device=scores.device),
        present=present,
        pooled={b: pooled[(b, have[t], have[MODALITIES.index(b)])] for b in BRANCHES},
    )
    return output, contributions


def _own_case(g: LayerGates, n: int, k: int) -> LayerGates:
    """A layer's gates (and attention over its own keys) at the prediction's own case: the
    first ``n`` query positions and ``k`` keys."""

    def cut(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x[:, :n]

    attention = None if g.attention is None else g.attention[:, :, :n, :k]
    return LayerGates(
        retain=cut(g.retain), fusion=cut(g.fusion), attention=attention, query=cut(g.query), attended=cut(g.attended)
    )


def shapley(model: SentimentModel, enc: Encoded, present: torch.Tensor, index: int = 0) -> Contributions:
    """Exact Shapley contributions of text, acoustic and visual for sample ``index`` of a batch."""
    one = Encoded(
        sequences={m: s[index : index + 1, : int(enc.masks[m][index].sum()) or 1] for m, s in enc.sequences.items()},
        masks={m: k[index : index + 1, : int(k[index].sum()) or 1] for m, k in enc.masks.items()},
        utterances={m: u[index : index + 1] for m, u in enc.utterances.items()},
    )
    return fuse_with_coalitions(model, one, present[index : index + 1])[1]


# ----------------------------------------------------------------------------------------------
# What each word takes in: display words, per-word shares, attention over time
# ----------------------------------------------------------------------------------------------

BRANCH_NAMES = {b: f"text->{b}" for b in BRANCHES}  # the JSON's names of the two branches

# Shown for the one text position a model sees when the clip has no words (the text stand-in).
NO_TEXT_WORD = "(no text)"


@dataclass
class DisplayWord:
    """A word as a person reads it, and the text positions (tokens) the model split it into.

    ``start``/``end`` are its spoken interval in seconds (from the ASR word timings), None when
    unknown (a typed transcript, or a word the recogniser did not produce).
    """

    text: str
    tokens: list[int]
    start: float | None = None
    end: float | None = None


def _normal(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def display_words(
    tokenizer: Any,
    text: str | None,
    input_ids: list[int],
    timed_words: Sequence[tuple[str, float, float]] = (),
) -> list[DisplayWord]:
    """Group the model's text positions into the transcript's words, with their spoken times.

    A word is a whitespace-separated piece of ``text`` ("favorite," is one word even when the
    tokenizer makes three tokens of it); special tokens ([CLS], [SEP], <s>...) belong to no
    word. Any fast tokenizer works (its character offsets place each token); a slow one falls
    back to merging WordPiece ``##`` continuations. Words cut off by the model's length limit
    are left out: the list is what the model saw.

    Parameters
    ----------
    tokenizer : the checkpoint's tokenizer (the one that made ``input_ids``).
    text : the transcript the ids were made from; None when the text is absent (the model then
        sees a single stand-in position, returned as one word, `NO_TEXT_WORD`).
    input_ids : the sample's valid token ids, in order.
    timed_words : the ASR's (word, start, end) in order; matched to the transcript's words
        by their letters and digits, so punctuation and case do not matter.
    """
    if text is None or not text.strip():
        return [DisplayWord(NO_TEXT_WORD, [0])]
    special = set(getattr(tokenizer, "all_special_ids", []))
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    starts = [a for a, _, _ in spans]
    groups: dict[int, list[int]] = {}
    offsets = None
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        # The collator truncates, writing [SEP] over the last id kept: compare the ones before it.
        n = len(input_ids)
        if list(ids[: n - 1]) != list(input_ids[: n - 1]):
            offsets = None  # not the tokenization the model saw: fall back to the pieces
    if offsets is not None:
        for pos, tok in enumerate(input_ids):
            if tok in special or pos >= len(offsets) or offsets[pos][1] <= offsets[pos][0]:
                continue
            w = bisect.bisect_right(starts, offsets[pos][0]) - 1
            if w >= 0:
                groups.setdefault(w, []).append(pos)
        words = [DisplayWord(spans[w][2], pos) for w, pos in sorted(groups.items())]
    else:
        words = _merged_pieces(tokenizer.convert_ids_to_tokens(list(input_ids)), special, input_ids)
    _attach_times(words, timed_words)
    return words


def _merged_pieces(tokens: list[str], special: set[int], ids: Sequence[int]) -> list[DisplayWord]:
    """WordPiece tokens merged into words (``##`` pieces join the previous word); no specials."""
    words: list[DisplayWord] = []
    for pos, (tok, i) in enumerate(zip(tokens, ids)):
        if i in special:
            continue
        if tok.startswith("##") and words and words[-1].tokens[-1] == pos - 1:
            words[-1].text += tok[2:]
            words[-1].tokens.append(pos)
        else:
            words.append(DisplayWord(tok, [pos]))
    return words


def _attach_times(words: list[DisplayWord], timed: Sequence[tuple[str, float, float]]) -> None:
    """Give each word the interval of the ASR word it matches (longest common subsequence)."""
    if not timed:
        return
    a = [_normal(w.text) for w in words]
    b = [_normal(str(w)) for w, _, _ in timed]
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            _, start, end = timed[block.b + k]
            words[block.a + k].start, words[block.a + k].end = float(start), float(end)


def update_share(layer: GatedCrossModalLayer, g: LayerGates) -> torch.Tensor:
    """(B, T_text): the share of each text position's update that comes from the other modality.

    The layer mixes Z~ = LN(a + b), a = g_f * m (what the word found in the voice or face) and
    b = g_r * Z (the word itself) [13]-[14]. LayerNorm centres across channels (a linear map,
    so the centred sum is the sum of the centred terms), divides by one standard deviation
    shared by both, then scales by gamma and adds beta. So Z~ - beta = (gamma c(a) + gamma c(b)) / s
    exactly, and the share is ||gamma c(a)|| / (||gamma c(a)|| + ||gamma c(b)||) in [0, 1]: the
    norm-based attribution of Kobayashi et al. (2020, 2021), applied to the gated sum. It needs no
    reading of the gate values themselves, so it means the same for LayerNorm gates (centred and
    unbounded, whose channel means are ~0 by construction), sigmoid gates, and the gateless
    "w/o mf" ablation (g_r = g_f = 1).
    """
    if g.query is None or g.attended is None:
        raise ValueError("these gates were recorded without the layer's inputs (query, attended)")
    a = g.attended if g.fusion is None else g.fusion * g.attended
    b = g.query if g.retain is None else g.retain * g.query
    gamma = layer.norm_mix.weight

    def size(x: torch.Tensor) -> torch.Tensor:
        return ((x - x.mean(-1, keepdim=True)) * gamma).norm(dim=-1)

    from_other, own = size(a), size(b)
    return from_other / (from_other + own).clamp_min(1e-12)


@dataclass
class BranchInfo:
    """What one branch (text -> acoustic or text -> visual) had to work with.

    Attributes
    ----------
    branch : "acoustic" or "visual".
    stream_present : whether this clip's stream fed the branch; False: the words attended only
        to the modality's learned stand-in token, so nothing in it is evidence from the clip.
    trained_samples : training samples that carried this modality (from the checkpoint's
        metadata); 0: the branch's gates only ever saw the stand-in; None: not recorded.
    note : one sentence saying so, for people.
    """

    branch: str
    stream_present: bool
    trained_samples: int | None
    note: str

    @property
    def name(self) -> str:
        return BRANCH_NAMES[self.branch]


@dataclass
class GateView:
    """One layer of one branch, per display word.

    Attributes
    ----------
    branch, layer : "acoustic" / "visual" and the layer number from 1.
    share : (words,) the share of each word's update taken from the other modality (`update_share`,
        the mean over the word's tokens).
    times : (frames,) seconds of the stream's frames the words attend to; None when the stream
        was absent (the keys were the stand-in token).
    attention : (heads, words, frames) each word's attention over ``times`` per head (a word's
        row is the mean of its tokens' rows, still a distribution); None with ``times``.
    retain, fusion : (words, channels) gate values (mean of the word's tokens), None without gates.
    """

    branch: str
    layer: int
    share: np.ndarray
    times: np.ndarray | None
    attention: np.ndarray | None
    retain: np.ndarray | None
    fusion: np.ndarray | None

    @property
    def weights(self) -> np.ndarray | None:
        """(words, frames): the attention averaged over heads."""
        return None if self.attention is None else self.attention.mean(0)


@dataclass
class Explanation:
    """Why the model gave its score for one clip: the page, the CLI's ``--explain`` and the API.

    `to_json` is the documented ``explanation`` object (README, "The explanation").
    """

    contributions: Contributions
    words: list[DisplayWord]
    gates: list[GateView]
    branches: dict[str, BranchInfo]
    gate_activation: str | None  # "ln" or "sigmoid"; None for a model without gates
    # modality -> did its learned stand-in ever train (None: the checkpoint does not say)
    stand_ins_trained: dict[str, bool | None] = field(default_factory=lambda: dict.fromkeys(MODALITIES))
    present: tuple[bool, bool, bool] = (True, True, True)  # the clip's modalities as the model saw them

    def untrained_stand_ins(self) -> list[str]:
        """Modalities whose stand-in never trained, in `MODALITIES` order."""
        return [m for m in MODALITIES if self.stand_ins_trained.get(m) is False]

    @property
    def caveat(self) -> str | None:
        """A sentence for the reader of the Shapley values when a stand-in they rely on never
        trained (the modality was in every training sample and modality dropout was 0), else None.

        The subsets without a modality replace it by its stand-in; an untrained one is a random
        vector the model never saw, so those subset scores, the base and the split of the score
        between modalities are off the model's distribution. Where the clip itself lacks such a
        modality even the score uses the untrained vector.
        """
        never = self.untrained_stand_ins()
        if not never:
            return None
        names = ", ".join(never)
        text = (
            f"This checkpoint's stand-in for {names} never trained ({names} was in every training sample "
            "and modality dropout was 0): the Shapley subsets without it, and so the base and the split "
            "between modalities, use an untrained vector. Read them with care."
        )
        missing = [m for m in never if not self.present[MODALITIES.index(m)]]
        if missing:
            text += f" This clip has no {', '.join(missing)}, so its score uses that untrained vector too."
        return text

    def to_json(self) -> dict[str, Any]:
        def rounded(x: np.ndarray) -> list:
            return np.round(np.asarray(x, dtype=np.float64), 6).tolist()

        return {
            "contributions": {
                "base": self.contributions.base,
                "values": dict(self.contributions.values),
                "score": self.contributions.score,
                "subset_scores": self.contributions.to_json()["subset_scores"],
            },
            "words": [w.text for w in self.words],
            "word_times": [None if w.start is None else [w.start, w.end] for w in self.words],
            "gate_activation": self.gate_activation,
            "stand_ins_trained": dict(self.stand_ins_trained),
            "caveat": self.caveat,
            "branches": {
                info.name: {
                    "stream_present": info.stream_present,
                    "trained_samples": info.trained_samples,
                    "note": info.note,
                }
                for info in self.branches.values()
            },
            "gates": [
                {
                    "branch": BRANCH_NAMES[g.branch],
                    "layer": g.layer,
                    "share": rounded(g.share),
                    "attention": None
                    if g.weights is None or g.times is None
                    else {"times": rounded(g.times), "weights": rounded(g.weights)},
                }
                for g in self.gates
            ],
        }


def _word_averages(words: list[DisplayWord], n_tokens: int) -> np.ndarray:
    """(words x tokens): row i averages the token positions of word i."""
    average = np.zeros((len(words), n_tokens), dtype=np.float32)
    for i, w in enumerate(words):
        average[i, w.tokens] = 1.0 / len(w.tokens)
    return average


def _per_word(values: torch.Tensor, average: np.ndarray, axis: int) -> np.ndarray:
    """Mean over each word's token positions (`_word_averages`) along ``axis`` of ``values``:
    one matrix product (numpy: torch's per-call overhead dominated these small products)."""
    x = np.moveaxis(values.detach().float().cpu().numpy(), axis, -1)  # (..., tokens)
    return np.moveaxis(x @ average.T, -1, axis)


def branch_infos(present: Sequence[bool], trained_samples: Mapping[str, int | None]) -> dict[str, BranchInfo]:
    """One `BranchInfo` per branch: what fed it now and what it was trained on, in words.

    ``present`` is the clip's presence of (text, acoustic, visual) as the model saw it;
    ``trained_samples`` maps a modality to its training samples (missing or None: unknown).
    """
    words = {"acoustic": "voice", "visual": "face"}
    out = {}
    for b in BRANCHES:
        here = bool(present[MODALITIES.index(b)])
        n = trained_samples.get(b)
        if n == 0:
            trained = (
                f"This checkpoint never saw {words[b]} data in training: the branch's gates only ever "
                f"saw the learned stand-in, so they are no {words[b]} evidence."
            )
        elif n is None:
            trained = "The checkpoint does not record how many training samples carried this modality."
        else:
            trained = f"Trained on {n:,} samples with {words[b]} features."
        now = (
            f"Here the words looked at the clip's {words[b]} ({b} stream)."
            if here
            else f"Here there was no usable {words[b]}: each word attended only to the learned stand-in token."
        )
        out[b] = BranchInfo(b, here, n, f"{now} {trained}")
    return out


def explain_output(
    model: SentimentModel,
    output: ModelOutput,
    contributions: Contributions,
    words: list[DisplayWord],
    times: Mapping[str, np.ndarray | None],
    trained_samples: Mapping[str, int | None] | None = None,
    stand_ins_trained: Mapping[str, bool | None] | None = None,
) -> Explanation:
    """The `Explanation` of one sample from its `fuse_with_coalitions` output.

    Parameters
    ----------
    model : the model that made ``output``.
    output, contributions : `fuse_with_coalitions`'s results for a batch of one.
    words : `display_words` for the sample's text positions.
    times : modality -> (frames,) seconds of each frame of that stream as the model saw it
        (acoustic: frame k at k / rate; visual: the times of the frames with a face). Needed
        for a present stream; the number of times must equal the attention's keys.
    trained_samples : modality -> training samples that carried it (`trained_samples`).
    stand_ins_trained : modality -> whether its stand-in trained (`Checkpoint.stand_ins_trained`).
    """
    present = [bool(p) for p in output.present[0].tolist()]
    average = _word_averages(words, int(output.text_mask[0].sum()))
    gates = []
    for b, layers in output.gates.items():
        stream_here = present[MODALITIES.index(b)]
        for i, (layer, g) in enumerate(zip(model.branches[b], layers)):
            share = _per_word(update_share(layer, g)[0], average, axis=0)
            attention = t = None
            if stream_here and g.attention is not None:
                t = times.get(b)
                attention = _per_word(g.attention[0], average, axis=1)  # (heads, words, frames)
                if t is None or len(t) != attention.shape[-1]:
                    raise ValueError(
                        f"{b}: {attention.shape[-1]} frames attended but "
                        f"{'no' if t is None else len(t)} frame times given"
                    )
                t = np.asarray(t, dtype=np.float64)
            retain = None if g.retain is None else _per_word(g.retain[0], average, axis=0)
            fusion = None if g.fusion is None else _per_word(g.fusion[0], average, axis=0)
            gates.append(GateView(b, i + 1, share, t, attention, retain, fusion))
    c = model.config
    return Explanation(
        contributions=contributions,
        words=words,
        gates=gates,
        branches=branch_infos(present, trained_samples or {}),
        gate_activation=None if c.gates == "none" else c.gates,
        stand_ins_trained={m: (stand_ins_trained or {}).get(m) for m in MODALITIES},
        present=(present[0], present[1], present[2]),
    )
