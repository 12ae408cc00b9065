"""A trimodal model whose answer is known: the explanation must find a planted signal.

`make_planted` hides the label in a short window of one stream (at a different time in every
clip); the text and the other stream are label-independent noise. A tiny model trained on it
can only score well by reading that window, so a correct explanation must (1) give the planted
modality most of the Shapley credit and (2) show the words' attention in the planted branch
landing inside each clip's own window. An untrained model of the same seed, explained the same
way, must fail these checks: a view that draws the same picture whatever the model does fails here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from msa.config import MODALITIES, TrainConfig
from msa.data import Collator
from msa.data.synthetic import NEUTRAL_WORDS, make_planted
from msa.explain import Explanation, GateView, display_words, explain_output, fuse_with_coalitions
from msa.model import SentimentModel
from msa.model.checkpoint import load_checkpoint
from msa.sample import Sample
from msa.testing import tiny_model
from msa.training.loop import fit

DATA_SEED, MODEL_SEED = 1, 0
FRAMES, WINDOW_FRAMES = 20, 4  # the window is 20% of each clip's frames
WINDOW_SHARE = WINDOW_FRAMES / FRAMES
N_EXPLAINED = 16  # held-out clips explained per stream
# Attention mass inside the window that only a model reading it reaches: 3x the window's
# share of the frames (a uniform or position-blind view gets ~0.2).
MASS_THRESHOLD = 0.6


@dataclass
class Planted:
    """A model trained on one planted stream, its data, and its explanations of test clips."""

    stream: str
    model: SentimentModel
    data: dict[str, list[Sample]]
    test_mae: float
    trained_samples: dict[str, int | None]
    explanations: list[Explanation]


def _explain(
    model: SentimentModel, tokenizer: Any, samples: list[Sample], trained_samples: dict[str, int | None]
) -> list[Explanation]:
    """Each sample explained on its own, the way the app does it."""
    c = model.config
    collator = Collator.for_model(tokenizer, c)
    out = []
    for s in samples:
        batch = collator([s])
        enc = model.encode(batch)
        output, contributions = fuse_with_coalitions(model, enc, batch.present)
        n = int(batch.text_mask[0].sum())
        words = display_words(tokenizer, s.text, batch.input_ids[0, :n].tolist())
        out.append(
            explain_output(model, output, contributions, words, times=s.meta["times"], trained_samples=trained_samples)
        )
    return out


@pytest.fixture(scope="module", params=["visual", "acoustic"])
def planted(request, tokenizer, tmp_path_factory) -> Planted:
    stream = request.param
    data = make_planted(
        stream, n_train=256, n_valid=64, n_test=64, seed=DATA_SEED, frames=FRAMES, window_frames=WINDOW_FRAMES
    )
    # The MI and CMD terms only shape the utterance vectors, which the score does not read:
    # off, the task loss alone trains the path under test, in ~6 s on two cores.
    cfg = TrainConfig(
        epochs=20, batch_size=32, lr=5e-3, text_lr=5e-3, patience=20, seed=MODEL_SEED, use_mi=False, use_cmd=False
    )
    run = tmp_path_factory.mktemp(f"planted-{stream}")
    result = fit(tiny_model(seed=MODEL_SEED), tokenizer, data, cfg, run, progress=False)
    best = load_checkpoint(Path(run) / "best")  # the model fit selected on validation
    model = best.model.eval()
    trained = best.training.modalities
    assert result.test is not None
    return Planted(
        stream,
        model,
        data,
        result.test["mae"],
        trained,
        _explain(model, tokenizer, data["test"][:N_EXPLAINED], trained),
    )


def _other(stream: str) -> str:
    return "visual" if stream == "acoustic" else "acoustic"


def _last_layer(expl: Explanation, branch: str) -> GateView:
    return max((g for g in expl.gates if g.branch == branch), key=lambda g: g.layer)


def _in_window(times: np.ndarray, window: tuple[float, float], rate_step: float) -> np.ndarray:
    """Frames whose time lies in the half-open window; half a frame of slack against rounding."""
    start, end = window
    return (times >= start - rate_step / 2) & (times < end - rate_step / 2)


def _window_mass(expl: Explanation, sample: Sample, branch: str, shift: int = 0) -> float:
    """Mean over words of the last layer's attention (mean over heads) on frames in the window.

    ``shift`` moves the window by that many frames (wrapping around the clip): a window the
    planted signal is not in, for the control that the mass follows each clip's own window.
    """
    g = _last_layer(expl, branch)
    assert g.weights is not None and g.times is not None
    step = float(g.times[1] - g.times[0])
    start, end = sample.meta["window"]
    times = g.times if not shift else (g.times - shift * step) % (len(g.times) * step)
    return float(g.weights[:, _in_window(times, (start, end), step)].sum(1).mean())


def _clip_over_word_spread(explanations: list[Explanation], branch: str) -> float:
    """In the branch's last layer: the spread of the share between clips (std of each clip's mean
    over words) over its spread between the words of a clip (mean std over words).

    What a word takes in from a stream that carries the label should depend on the clip (the
    window's content), not on which neutral word it is: the ratio is large for a model that
    reads the planted window and small for a random one, whose shares follow the words.
    """
    shares = [_last_layer(e, branch).share for e in explanations]
    return float(np.std([s.mean() for s in shares]) / np.mean([s.std() for s in shares]))


def _mean_window_mass(explanations: list[Explanation], samples: list[Sample], branch: str, shift: int = 0) -> float:
    return float(np.mean([_window_mass(e, s, branch, shift) for e, s in zip(explanations, samples)]))


def test_planted_data_is_shaped_as_documented():
    data = make_planted(
        "acoustic", n_train=4, n_valid=0, n_test=2, seed=0, frames=FRAMES, window_frames=WINDOW_FRAMES, rate=10.0
    )
    assert {k: len(v) for k, v in data.items()} == {"train": 4, "valid": 0, "test": 2}
    starts = set()
    for s in data["train"]:
        assert s.acoustic.shape == (FRAMES, 5) and s.visual.shape == (FRAMES, 20)
        np.testing.assert_allclose(s.meta["times"]["acoustic"], np.arange(FRAMES) / 10.0)
        start, end = s.meta["window_frames"]
        assert end - start == WINDOW_FRAMES
        assert s.meta["window"] == pytest.approx((start / 10.0, end / 10.0))
        assert set(s.text.split()) <= set(NEUTRAL_WORDS)
        starts.add(start)
    assert len(starts) > 1  # the window moves from clip to clip
    again = make_planted("acoustic", n_train=4, n_valid=0, n_test=2, seed=0, frames=FRAMES, window_frames=WINDOW_FRAMES)
    assert all(
        np.array_equal(a.acoustic, b.acoustic) and a.label == b.label for a, b in zip(data["train"], again["train"])
    )
    fixed = make_planted("visual", 3, 0, 0, seed=0, frames=FRAMES, window=(5, 9))
    assert {s.meta["window_frames"] for s in fixed["train"]} == {(5, 9)}
    with pytest.raises(ValueError, match="window"):
        make_planted("visual", 1, 0, 0, frames=10, window=(8, 12))
    with pytest.raises(ValueError, match="planted stream"):
        make_planted("text", 1, 0, 0)  # type: ignore[arg-type]


def test_the_model_learned_the_planted_signal(planted):
    labels = np.array([s.label for s in planted.data["test"]])
    constant = float(np.mean([s.label for s in planted.data["train"]]))
    baseline = float(np.mean(np.abs(labels - constant)))
    assert planted.test_mae < 0.5 * baseline, (planted.test_mae, baseline)
    assert planted.test_mae < 0.5 * float(labels.std())


def test_shapley_credits_the_planted_modality(planted):
    phi = {m: float(np.mean([abs(e.contributions.values[m]) for e in planted.explanations])) for m in MODALITIES}
    for m in MODALITIES:
        if m != planted.stream:
            assert phi[planted.stream] > 2 * phi[m], phi
    for e in planted.explanations:  # and they still add up, clip by clip
        c = e.contributions
        assert sum(c.values.values()) == pytest.approx(c.score - c.base, abs=1e-6)


def test_attention_lands_in_each_clips_own_window(planted):
    samples = planted.data["test"][:N_EXPLAINED]
    per_clip = np.array([_window_mass(e, s, planted.stream) for e, s in zip(planted.explanations, samples)])
    mass = float(per_clip.mean())
    assert mass > MASS_THRESHOLD, per_clip
    assert np.mean(per_clip > 0.5) >= 0.75, per_clip  # clip by clip, not a few clips carrying the mean
    # Specific to each clip's window, not a fixed place: the same frames a window further on
    # (never overlapping: the shift is the window's length) get little.
    shifted = _mean_window_mass(planted.explanations, samples, planted.stream, shift=WINDOW_FRAMES)
    assert shifted < 0.1, shifted
    # On the right frames, not one off: a time axis shifted by a single frame (an off-by-one in
    # the frame times) catches clearly less (measured 0.90 -> 0.71 for visual; for acoustic 0.91
    # -> 0.81 a frame early, the BiLSTM's backward direction carrying the cue a frame ahead).
    for one_off in (-1, 1):
        off = _mean_window_mass(planted.explanations, samples, planted.stream, shift=one_off)
        assert off < mass - 0.05, (one_off, off, mass)
    # The other branch looks at noise: its attention has no reason to favour those times.
    other = _mean_window_mass(planted.explanations, samples, _other(planted.stream))
    assert other < 0.4 < mass, (other, mass)
    for e in planted.explanations:
        for g in e.gates:
            if g.weights is not None:
                np.testing.assert_allclose(g.weights.sum(1), 1.0, atol=1e-5)  # a word's row: a distribution


def test_an_untrained_model_fails_the_same_checks(planted, tokenizer):
    """The control: the same explanation of a fresh model of the same seed finds no window, and
    gives the planted modality no special credit. The assertions above have teeth."""
    fresh = tiny_model(seed=MODEL_SEED).eval()
    samples = planted.data["test"][:N_EXPLAINED]
    explanations = _explain(fresh, tokenizer, samples, {m: 0 for m in MODALITIES})
    mass = _mean_window_mass(explanations, samples, planted.stream)
    assert mass < MASS_THRESHOLD and abs(mass - WINDOW_SHARE) < 0.1, mass
    phi = {m: float(np.mean([abs(e.contributions.values[m]) for e in explanations])) for m in MODALITIES}
    assert not all(phi[planted.stream] > 2 * phi[m] for m in MODALITIES if m != planted.stream), phi
    assert _clip_over_word_spread(explanations, planted.stream) < 2


def test_word_shares_are_bounded_and_differ_between_words(planted):
    for e in planted.explanations:
        assert len(e.words) >= 5
        for g in e.gates:
            assert g.share.shape == (len(e.words),)
            assert np.all((g.share >= 0) & (g.share <= 1))
        # Not one number painted on every word. The margin is small on purpose: the words are
        # interchangeable neutral noise, so a trained model treats them almost alike (a std of
        # ~1e-3 to 1e-2 over words, where an untrained one gives ~2e-2).
        assert max(float(g.share.std()) for g in e.gates) > 1e-4, [g.share for g in e.gates]
    assert _clip_over_word_spread(planted.explanations, planted.stream) > 10
    assert all(e.branches[planted.stream].stream_present for e in planted.explanations)
    assert planted.explanations[0].branches[planted.stream].trained_samples == len(planted.data["train"])
