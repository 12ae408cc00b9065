"""How well a voice was learnt, measured on held-out speakers: per emotion, and as a separation.

Rows are a fine-tuning's held-out predictions (`FinetuneResult.heldout`: each clip scored by the
fold's model that never heard its speaker), with the clip's emotion where the corpus names it
(RAVDESS). The same numbers go into the model card, the README and docs/voice_study.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..data.ravdess import EMOTIONS, NEGATIVE, POSITIVE
from ..metrics import roc_auc


def emotion_report(rows: Sequence[Mapping[str, Any]], score: str = "heldout") -> dict[str, Any]:
    """The separation of pleasant from unpleasant voices by ``score`` (a key of each row).

    Returns
    -------
    dict with ``per_emotion`` (emotion -> clips, mean label, mean score, score's standard
    deviation), ``auc`` (positive-vs-negative ROC AUC: `POSITIVE` against `NEGATIVE` emotions),
    ``r`` (Pearson correlation of score and label over every clip), ``happy_minus_sad`` (mean
    score of happy clips minus that of sad ones) and ``mae``.
    """
    rows = [r for r in rows if r.get("emotion") is not None]
    if not rows:
        raise ValueError("no row names an emotion: an emotion report needs a corpus that labels emotions")
    y = np.array([float(r[score]) for r in rows])
    label = np.array([float(r["label"]) for r in rows])
    emotion = np.array([r["emotion"] for r in rows])
    per = {}
    for e in EMOTIONS.values():
        sel = emotion == e
        if sel.any():
            per[e] = {
                "clips": int(sel.sum()),
                "label": float(label[sel].mean()),
                "score": float(y[sel].mean()),
                "sd": float(y[sel].std()),
            }
    pos, neg = y[np.isin(emotion, POSITIVE)], y[np.isin(emotion, NEGATIVE)]
    out: dict[str, Any] = {
        "clips": len(rows),
        "per_emotion": per,
        "auc": roc_auc(pos, neg) if pos.size and neg.size else None,
        "r": float(np.corrcoef(y, label)[0, 1]) if y.std() > 0 and label.std() > 0 else 0.0,
        "mae": float(np.abs(y - label).mean()),
    }
    out["happy_minus_sad"] = per["happy"]["score"] - per["sad"]["score"] if {"happy", "sad"} <= set(per) else None
    return out


def emotion_table(report: Mapping[str, Any]) -> list[str]:
    """The report as Markdown lines: one row per emotion, then the separation."""
    lines = ["| emotion | clips | mapped value (mean) | held-out score (mean ± sd) |", "| --- | --- | --- | --- |"]
    for e, v in report["per_emotion"].items():
        lines.append(f"| {e} | {v['clips']} | {v['label']:+.2f} | {v['score']:+.2f} ± {v['sd']:.2f} |")
    auc = "n/a" if report["auc"] is None else f"{report['auc']:.3f}"
    gap = "n/a" if report["happy_minus_sad"] is None else f"{report['happy_minus_sad']:+.2f}"
    lines += [
        "",
        f"Positive (calm, happy) against negative (sad, angry, fearful, disgust) voices: ROC AUC **{auc}**; "
        f"correlation with the mapped value r = {report['r']:.3f}; happy minus sad **{gap}**; "
        f"MAE {report['mae']:.3f} over {report['clips']} clips.",
    ]
    return lines


__all__ = ["emotion_report", "emotion_table"]
