"""The field's regression-as-classification metrics (docs/model-spec.md section 6; MMSA metricsTop.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Seven-class names for the rounded score, from -3 to 3.
LABEL7_NAMES = (
    "strongly negative",
    "negative",
    "weakly negative",
    "neutral",
    "weakly positive",
    "positive",
    "strongly positive",
)


def label7(score: float) -> str:
    """The 7-class name of a score (clip to [-3, 3], round to the nearest integer)."""
    return LABEL7_NAMES[int(np.round(np.clip(score, -3.0, 3.0))) + 3]


def weighted_f1(true: np.ndarray, pred: np.ndarray) -> float:
    """Support-weighted F1 over the classes present in ``true`` (sklearn's average='weighted')."""
    total = 0.0
    for c in np.unique(true):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        denom = 2 * tp + fp + fn
        f1 = 2 * tp / denom if denom else 0.0
        total += f1 * np.sum(true == c)
    return float(total / len(true))


def evaluate(preds: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Metrics on one split.

    Parameters
    ----------
    preds, labels : 1-d sequences of the same length (scores in [-3, 3]).

    Returns
    -------
    dict with keys ``mae, corr, acc7, acc5, acc2_has0, f1_has0, acc2_non0, f1_non0``;
    accuracies and F1 in percent. has0: all samples, class = value >= 0. non0: samples with a
    non-zero label only, class = value > 0. ``corr`` is NaN when either side is constant.
    """
    p = np.asarray(preds, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"preds and labels differ in length: {p.size} vs {y.size}")
    if p.size == 0:
        raise ValueError("evaluate needs at least one prediction")
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise ValueError("preds and labels must be finite")

    with np.errstate(invalid="ignore", divide="ignore"):
        corr = float(np.corrcoef(p, y)[0, 1]) if p.size > 1 else float("nan")

    def acc(a: np.ndarray, b: np.ndarray) -> float:
        return float(100.0 * np.mean(a == b))

    r7p, r7y = np.round(np.clip(p, -3, 3)), np.round(np.clip(y, -3, 3))
    r5p, r5y = np.round(np.clip(p, -2, 2)), np.round(np.clip(y, -2, 2))

    has0_p, has0_y = p >= 0, y >= 0
    non0 = y != 0
    non0_p, non0_y = p[non0] > 0, y[non0] > 0
    nan = float("nan")
    return {
        "mae": float(np.mean(np.abs(p - y))),
        "corr": corr,
        "acc7": acc(r7p, r7y),
        "acc5": acc(r5p, r5y),
        "acc2_has0": acc(has0_p, has0_y),
        "f1_has0": 100.0 * weighted_f1(has0_y, has0_p),
        "acc2_non0": acc(non0_p, non0_y) if non0.any() else nan,
        "f1_non0": 100.0 * weighted_f1(non0_y, non0_p) if non0.any() else nan,
    }


def roc_auc(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray) -> float:
    """The probability that a random positive item scores above a random negative one, ties
    counting half (the area under the ROC curve, as the Mann-Whitney U statistic gives it)."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if not pos.size or not neg.size:
        raise ValueError("the ROC AUC needs at least one positive and one negative item")
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (pos.size * neg.size))
