"""What a model could reach without the interaction between the modalities, read from the world's
own parts rather than trained: the yardstick a Fusion Lab run is measured against.

The best additive model gives each modality's state its own number and adds them up:
score = f(words) + g(voice) + h(face), where a state is what the rule can see of that modality
in a clip (the words' sum; the voice's cue; the face's cue and whether it raises its brows; or
"absent"). Nothing a network learns from these streams without combining them can do better on
the world's clips, so a model that beats it has learned the interaction. The lookup tables are
fitted on the training clips by least absolute error (the task's own loss) and scored on the
test clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..sample import LABEL_MAX, LABEL_MIN, Sample

_IRLS_STEPS = 50

# The baselines as a person reads them (the page's table, the CLI's report) and, shorter, on a plot's line.
BASELINE_NAMES = {"text_only": "same model, words alone", "additive_oracle": "best additive model"}
BASELINE_SHORT_NAMES = {"text_only": "words alone", "additive_oracle": "best additive"}


def modality_states(clip: Sample) -> dict[str, str]:
    """What the rule can see of each modality in a world's clip, as a category name."""
    parts, (text, voice, face) = clip.meta["parts"], clip.meta["present"]
    return {
        "text": f"words {parts['words']:g}" if text else "absent",
        "acoustic": f"voice {parts['voice']:g}" if voice else "absent",
        "visual": f"face {parts['face']:g} flip {parts['flip']:g}" if face else "absent",
    }


def lookup_mae(train: Sequence[Sample], test: Sequence[Sample], modalities: Sequence[str]) -> float:
    """Test MAE of the best model that adds one number per state of each of ``modalities``
    (fitted on ``train`` by least absolute error; a state never seen in training adds 0)."""
    columns = sorted({(m, modality_states(c)[m]) for c in train for m in modalities})
    index = {col: j for j, col in enumerate(columns)}

    def design(clips: Sequence[Sample]) -> np.ndarray:
        x = np.zeros((len(clips), len(columns) + 1))
        x[:, -1] = 1.0  # intercept
        for i, c in enumerate(clips):
            for m, state in modality_states(c).items():
                j = index.get((m, state))
                if j is not None and m in modalities:
                    x[i, j] = 1.0
        return x

    x, y = design(train), np.array([c.label for c in train])
    w = _least_absolute(x, y)
    preds = np.clip(design(test) @ w, LABEL_MIN, LABEL_MAX)
    return float(np.abs(preds - np.array([c.label for c in test])).mean())


def _least_absolute(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights minimising sum |x w - y|: iteratively reweighted least squares from the
    least-squares start (a tiny ridge keeps collinear one-hot columns solvable)."""
    ridge = 1e-6 * np.eye(x.shape[1])
    w = np.linalg.solve(x.T @ x + ridge, x.T @ y)
    for _ in range(_IRLS_STEPS):
        r = np.maximum(np.abs(x @ w - y), 1e-4)
        xw = x / r[:, None]
        w = np.linalg.solve(x.T @ xw + ridge, xw.T @ y)
    return w


def oracles(splits: dict[str, list[Sample]]) -> dict[str, float]:
    """Test MAE of the best additive model over all three modalities and of the best model of the
    words alone (both read from the world's parts, not trained)."""
    train, test = splits["train"] + splits["valid"], splits["test"]
    return {
        "additive_oracle": lookup_mae(train, test, ("text", "acoustic", "visual")),
        "text_only_oracle": lookup_mae(train, test, ("text",)),
    }


__all__ = ["BASELINE_NAMES", "BASELINE_SHORT_NAMES", "lookup_mae", "modality_states", "oracles"]
