"""The Fusion Lab's lesson: short steps, each a world and a model to train and one question.
What a learner sees at each step, measured over seeds, is in docs/lab.md
(`python -m bench.bench_lab --lesson` measures it again)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One step: a preset (with changes), the model's settings, an optional second model to
    train beside it, and the question to answer by looking."""

    title: str
    preset: str
    question: str
    world: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    compare: dict[str, Any] | None = None  # the second model's changes to `recipe`


LESSON: tuple[Step, ...] = (
    Step(
        "1. Only the words matter",
        "words-only",
        "Train it. The voice and the face are noise here: how big are their Shapley values, and how "
        "much does each word take in from them?",
    ),
    Step(
        "2. A louder voice adds",
        "voice-adds",
        "Train it, then pick a clip with a voice cue. Which word's attention in the voice lands on the "
        "dotted window where the cue is, and how does the voice's Shapley value compare with the rule's?",
    ),
    Step(
        "3. The face reverses the words",
        "face-flips",
        "Train the gated model beside one without gates. Does either beat the best additive model? "
        "Pick a flipped clip: which modality's Shapley value carries the reversal?",
        compare={"gates": "none"},
    ),
    Step(
        "4. What the words alone can know",
        "face-flips",
        "Look at the baseline \u201csame model, words alone\u201d: why can no model that reads only the "
        "words get the flipped clips right, however long it trains?",
        world={"flip": 0.45},
    ),
    Step(
        "5. A missing face",
        "missing-face",
        "Pick a clip marked \u201cno face\u201d: what is the face's Shapley value there, and what does "
        "each word attend to in the face?",
    ),
    Step(
        "6. The two extra losses",
        "voice-and-face-agree",
        "Train the paper's model beside one without its CMD and MI losses. On a world this simple, "
        "do they change the error or the Shapley values?",
        compare={"cmd": False, "mi": False},
    ),
)


__all__ = ["LESSON", "Step"]
