"""The explanation of one clip, as the page, the API and ``python -m msa predict --explain``
give it: the Shapley values, and per branch and layer each word's share and attention."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import MODALITIES
from ..model import BRANCHES, ModelOutput, SentimentModel
from . import wording
from .shapley import Contributions
from .shares import per_word, update_share, word_averages
from .words import DisplayWord

BRANCH_NAMES = {b: f"text->{b}" for b in BRANCHES}  # the JSON's names of the two branches

# At most this many time columns of attention per word, in the JSON and on the page: a 30 s voice
# has 1,500 frames of 20 ms, more than a screen draws apart, and sending each one made the answer
# 1.5 MB and a third of a second slower (bench/bench_voice.py).
MAX_TIME_COLUMNS = 300


def pool_over_time(
    times: np.ndarray, values: np.ndarray, max_columns: int = MAX_TIME_COLUMNS
) -> tuple[np.ndarray, np.ndarray, int]:
    """Frames summed into bins of equal time when there are more than ``max_columns``.

    ``times`` (frames,) increasing seconds, ``values`` (..., frames). A bin is ``k`` frame steps
    wide (the fewest that leave at most ``max_columns`` bins on a gapless stream); frames
    falling in one bin are summed, so a word's attention row stays a distribution; bins with no
    frame (a gap in the stream) are left out. Returns the bins' centre times, the pooled
    values and ``k`` (1: nothing pooled, the frames returned as they are).
    """
    times = np.asarray(times, dtype=np.float64)
    if times.size <= max_columns:
        return times, values, 1
    step = float(np.median(np.diff(times)))
    k = int(np.ceil(times.size / max_columns))
    width = k * step
    # Half a step of slack: a frame's time is rounded, and frame k*j must open bin j.
    index = np.floor((times - times[0] + 0.5 * step) / width).astype(np.int64)
    bins, inverse = np.unique(index, return_inverse=True)
    values = np.asarray(values, dtype=np.float64)
    pooled = np.zeros((*values.shape[:-1], bins.size))
    np.add.at(pooled.T, inverse, values.T)  # each frame added to its bin, no frames x bins matrix
    centres = times[0] + bins * width + 0.5 * (k - 1) * step
    return centres, pooled, k


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
    read : whether the model is fed this stream at all (False: the model is why it is absent).
    clip_reason : why the clip lacked the stream, when the model reads it and it was absent.
    """

    branch: str
    stream_present: bool
    trained_samples: int | None
    note: str
    read: bool = True
    clip_reason: str | None = None

    @property
    def name(self) -> str:
        return BRANCH_NAMES[self.branch]

    @property
    def stand_in_reason(self) -> str | None:
        """Why this branch's numbers are no evidence from its stream (drawn grey), or None."""
        return wording.stand_in_reason(self.branch, self.stream_present, self.trained_samples, self.read)

    @property
    def stand_in_line(self) -> str | None:
        """The sentence for words that saw only the stand-in (None when the stream fed them)."""
        return None if self.stream_present else wording.stand_in_line(self.branch, self.read, self.clip_reason)


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

    `to_dict` is the documented ``explanation`` object (docs/app.md, "The explanation").
    """

    contributions: Contributions
    words: list[DisplayWord]
    gates: list[GateView]
    branches: dict[str, BranchInfo]
    gate_activation: str | None  # "ln" or "sigmoid"; None for a model without gates
    # modality -> did its learned stand-in ever train (None: the checkpoint does not say)
    stand_ins_trained: dict[str, bool | None] = field(default_factory=lambda: dict.fromkeys(MODALITIES))
    present: tuple[bool, bool, bool] = (True, True, True)  # the clip's modalities as the model saw them

    def stand_in_reason(self, branch: str) -> str | None:
        """Why ``branch``'s numbers are no evidence from its stream (drawn grey), or None."""
        info = self.branches.get(branch)
        return None if info is None else info.stand_in_reason

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
        missing = [m for m in never if not self.present[MODALITIES.index(m)]]
        return wording.shapley_caveat(never, missing)

    def to_dict(self) -> dict[str, Any]:
        def rounded(x: np.ndarray) -> list:
            return np.round(np.asarray(x, dtype=np.float64), 6).tolist()

        def attention(g: GateView) -> dict[str, Any] | None:
            if g.weights is None or g.times is None:
                return None
            times, weights, k = pool_over_time(g.times, g.weights)
            return {"times": rounded(times), "weights": rounded(weights), "frames_per_column": k}

        return {
            "contributions": self.contributions.to_dict(),
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
                    "attention": attention(g),
                }
                for g in self.gates
            ],
        }


def branch_infos(
    present: Sequence[bool],
    trained_samples: Mapping[str, int | None],
    reads: Sequence[str] | None = None,
    absent: Mapping[str, str] | None = None,
) -> dict[str, BranchInfo]:
    """One `BranchInfo` per branch: what fed it now and what it was trained on, in words.

    ``present`` is the clip's presence of (text, acoustic, visual) as the model saw it;
    ``trained_samples`` maps a modality to its training samples (missing or None: unknown);
    ``reads`` the modalities the model is fed (None: all); ``absent`` why the clip lacked a stream.
    """
    out = {}
    for b in BRANCHES:
        here = bool(present[MODALITIES.index(b)])
        n = trained_samples.get(b)
        read = reads is None or b in reads
        why = None if here or not read else (absent or {}).get(b)
        out[b] = BranchInfo(b, here, n, wording.branch_note(b, here, n, read, why), read, why)
    return out


def explain_output(
    model: SentimentModel,
    output: ModelOutput,
    contributions: Contributions,
    words: list[DisplayWord],
    times: Mapping[str, np.ndarray | None],
    trained_samples: Mapping[str, int | None] | None = None,
    stand_ins_trained: Mapping[str, bool | None] | None = None,
    reads: Sequence[str] | None = None,
    absent: Mapping[str, str] | None = None,
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
    trained_samples : modality -> training samples that carried it (`TrainingRecord.modalities`).
    stand_ins_trained : modality -> whether its stand-in trained (`TrainingRecord.stand_ins_trained`).
    reads : the modalities the model is fed (`Predictor.reads`; None: every one).
    absent : modality -> why the clip lacked it (said only where the model reads that stream).
    """
    present = [bool(p) for p in output.present[0].tolist()]
    average = word_averages(words, int(output.text_mask[0].sum()))
    gates = []
    for b, layers in output.gates.items():
        stream_here = present[MODALITIES.index(b)]
        for i, (layer, g) in enumerate(zip(model.branches[b], layers)):
            share = per_word(update_share(layer, g)[0], average, axis=0)
            attention = t = None
            if stream_here and g.attention is not None:
                t = times.get(b)
                attention = per_word(g.attention[0], average, axis=1)  # (heads, words, frames)
                if t is None or len(t) != attention.shape[-1]:
                    raise ValueError(
                        f"{b}: {attention.shape[-1]} frames attended but "
                        f"{'no' if t is None else len(t)} frame times given"
                    )
                t = np.asarray(t, dtype=np.float64)
            retain = None if g.retain is None else per_word(g.retain[0], average, axis=0)
            fusion = None if g.fusion is None else per_word(g.fusion[0], average, axis=0)
            gates.append(GateView(b, i + 1, share, t, attention, retain, fusion))
    c = model.config
    return Explanation(
        contributions=contributions,
        words=words,
        gates=gates,
        branches=branch_infos(present, trained_samples or {}, reads, absent),
        gate_activation=None if c.gates == "none" else c.gates,
        stand_ins_trained={m: (stand_ins_trained or {}).get(m) for m in MODALITIES},
        present=(present[0], present[1], present[2]),
    )
