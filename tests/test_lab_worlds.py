"""The Fusion Lab's worlds: each rule is exact, the streams carry it where the rule says (the cue
inside its word's window), and the rule's own Shapley values match a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msa.data.synthetic import CUE_SIZE, FROWN, NEGATIVE, POSITIVE, RAISED_BROWS, SMILE, VOICE_CUE, frames_of
from msa.features.spec import ACOUSTIC_FEATURES, VISUAL_FEATURES
from msa.lab.worlds import PRESETS, World, WorldError, preset


def _window_mean(frames: np.ndarray, rate: float, word, columns: list[int]) -> float:
    return float(frames[np.ix_(frames_of(word, rate, len(frames)), columns)].mean())


def _cols(names: tuple[str, ...], wanted: tuple[str, ...]) -> list[int]:
    return [names.index(n) for n in wanted]


def _strongest(frames: np.ndarray, rate: float, spoken, columns: list[int]) -> float:
    """The word window that moves ``columns`` most (signed mean)."""
    return max((_window_mean(frames, rate, w, columns) for w in spoken), key=abs)


def _read_label(clip, world: World) -> float:
    """The label worked out again from what the clip itself shows: its words, and the cues
    found in its streams (not from the generator's bookkeeping)."""
    words = clip.text.split()
    polarity = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    voice = face = 0.0
    flip = 1
    spoken = clip.meta["words"]
    if clip.acoustic is not None:  # the voice's cue is on one word, up or down
        voice = world.voice * np.sign(_strongest(clip.acoustic, 50.0, spoken, _cols(ACOUSTIC_FEATURES, VOICE_CUE)))
    if clip.visual is not None:  # a smile or a frown on one word; raised brows on one word, or none
        smile = _strongest(clip.visual, 5.0, spoken, _cols(VISUAL_FEATURES, SMILE))
        frown = _strongest(clip.visual, 5.0, spoken, _cols(VISUAL_FEATURES, FROWN))
        face = world.face * np.sign(smile - frown)
        if _strongest(clip.visual, 5.0, spoken, _cols(VISUAL_FEATURES, RAISED_BROWS)) > CUE_SIZE / 2:
            flip = -1
    return float(np.clip(flip * world.words * polarity + voice + face, -3, 3))


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_rule_is_exact_and_readable_from_the_streams(name: str) -> None:
    world = preset(name, noise=0.0, clips=200)
    splits = world.splits()
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [120, 40, 40]
    for clip in splits["train"] + splits["test"]:
        assert clip.label == pytest.approx(_read_label(clip, world), abs=1e-9), (clip.id, clip.text, clip.meta["parts"])
        assert clip.acoustic is None or clip.acoustic.shape == (math.ceil(clip.meta["duration"] * 50), 21)
        assert clip.visual is None or clip.visual.shape == (math.ceil(clip.meta["duration"] * 5), 58)
    assert world.rule.endswith(".") and len(world.rule.split(". ")) == 1  # one sentence


def test_each_cue_sits_in_its_words_window_and_nowhere_else() -> None:
    world = preset("voice-and-face-agree", noise=0.0, clips=100)
    for clip in world.splits()["train"]:
        voice = clip.meta["cues"]["voice"]
        word = clip.meta["words"][voice["word"]]
        assert (word.start, word.end) == voice["window"]
        cols = _cols(ACOUSTIC_FEATURES, VOICE_CUE)
        sign = np.sign(clip.meta["parts"]["voice"])
        assert sign * _window_mean(clip.acoustic, 50.0, word, cols) > CUE_SIZE / 2
        inside = np.zeros(len(clip.acoustic), bool)
        inside[frames_of(word, 50.0, len(clip.acoustic))] = True
        times = np.arange(len(clip.acoustic)) / 50.0
        assert ((times[inside] >= word.start) & (times[inside] < word.end)).all()
        assert abs(float(clip.acoustic[~inside][:, cols].mean())) < 0.5  # noise only outside the word


def test_missing_face_clips_have_no_face_and_its_cue_does_not_count() -> None:
    world = preset("missing-face", noise=0.0, clips=400)
    clips = [c for s in world.splits().values() for c in s]
    without = [c for c in clips if c.visual is None]
    assert 0.3 < len(without) / len(clips) < 0.5
    for c in without:
        assert "face" not in c.meta["cues"] and c.meta["present"] == (True, True, False)
        assert c.label == pytest.approx(np.clip(c.meta["parts"]["words"], -3, 3))


def test_the_rules_shapley_values_by_hand() -> None:
    """v(S) knows only S's parts, the rest at their world average. In face-flips (a share p of
    clips flipped) a clip with words w and flip f: v(T) = (1 - 2p) w, v(TV) = f w, v(V) = v() = 0,
    and the voice plays no part; so phi_text = (v(T) + v(TV) - v(V)) / 2 = ((1 - 2p) w + f w) / 2
    and phi_face = (v(V) + v(TV) - v(T)) / 2 = (f w - (1 - 2p) w) / 2."""
    world = preset("face-flips", noise=0.0, flip=0.3, clips=200)
    clips = [c for c in world.splits()["train"] if c.meta["parts"]["words"] != 0]
    flips = {c.meta["parts"]["flip"] for c in clips}
    assert flips == {-1, 1}
    for c in clips:
        w, f = c.meta["parts"]["words"], c.meta["parts"]["flip"]
        assert world.truth(c) == pytest.approx(
            {"text": (0.4 * w + f * w) / 2, "acoustic": 0.0, "visual": (f * w - 0.4 * w) / 2}
        )
    # With no interaction every modality's value is its own part.
    additive = preset("voice-and-face-agree", noise=0.0, clips=40)
    for c in additive.splits()["train"]:
        p = c.meta["parts"]
        assert additive.truth(c) == pytest.approx({"text": p["words"], "acoustic": p["voice"], "visual": p["face"]})
    # A clip without a face: its face gets 0, and its words count at the unseen face's average flip.
    mixed = preset("face-flips", noise=0.0, flip=0.5, missing_face=0.5, clips=200)
    faceless = [c for c in mixed.splits()["train"] if not c.meta["present"][2] and c.meta["parts"]["words"]]
    assert faceless
    for c in faceless:
        # unseen flip = (1 - 0.5) (1 - 2 * 0.5) + 0.5 = 0.5
        assert mixed.truth(c) == pytest.approx({"text": 0.5 * c.meta["parts"]["words"], "acoustic": 0.0, "visual": 0.0})


def test_a_world_is_a_function_of_its_settings() -> None:
    a, b = preset("voice-adds", seed=3).splits(), preset("voice-adds", seed=3).splits()
    assert [c.text for c in a["test"]] == [c.text for c in b["test"]]
    assert all(np.array_equal(x.acoustic, y.acoustic) for x, y in zip(a["test"], b["test"]))
    assert [c.text for c in preset("voice-adds", seed=4).splits()["test"]] != [c.text for c in a["test"]]


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"words": 3.0}, "in [0, 2]"),
        ({"flip": 1.5}, "share of clips is in [0, 1]"),
        ({"missing_face": -0.1}, "share of clips is in [0, 1]"),
        ({"noise": 2.0}, "noise"),
        ({"clips": 10**6}, "20 to 4000 clips"),
    ],
)
def test_bad_settings_say_what_is_accepted(changes: dict, says: str) -> None:
    with pytest.raises(WorldError, match=r".*") as e:
        World(**changes)
    assert says in str(e.value)


def test_an_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(WorldError) as e:
        preset("sarcasm")
    assert all(name in str(e.value) for name in PRESETS)
