"""Scoring as a `msa.parallel` work: one media file in, one results row out, through the same
`Predictor` the app and ``python -m msa predict`` use. Built once per worker: the checkpoint,
Whisper and the face landmarker load once there (on the worker's GPU when it has one)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..predict import STAGES

# The results table's columns, in order (`msa.batch.table.ResultTable`).
SCORE_COLUMNS = [
    "file",
    "score",
    "label7",
    "polarity",
    "transcript",
    "modalities",
    "duration",
    "seconds",
    *(f"{stage}_seconds" for stage in STAGES),
    "error",
]
EXTRACT_COLUMNS = ["file", "id", "status", "duration", "modalities", "absent", "seconds", "error"]


@dataclass(frozen=True)
class ScoreWork:
    """Score files with ``checkpoint``; ``explain`` adds the explanation's JSON as a column."""

    checkpoint: str
    asr_model: str | None = None
    cache_dir: str | None = None
    explain: bool = False

    def build(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        import torch

        from ..features import FeatureExtractor
        from ..predict import Predictor

        device = "cuda" if torch.cuda.is_available() else "cpu"
        settings = {} if self.asr_model is None else {"asr_model": self.asr_model}
        # Whisper gets the worker's share of the cores, as torch does (`msa.parallel`).
        extractor = FeatureExtractor(settings, self.cache_dir, cpu_threads=torch.get_num_threads())
        predictor = Predictor(self.checkpoint, extractor=extractor, device=device)

        def work(item: dict[str, Any]) -> dict[str, Any]:
            t0 = time.perf_counter()
            try:
                run = predictor.run(item["file"], transcript=item.get("transcript"), explain=self.explain)
            except Exception as e:  # a bad file is an error row; the others are still scored
                kind = "" if isinstance(e, (ValueError, OSError, RuntimeError)) else f"unexpected {type(e).__name__}: "
                return {
                    "file": item["file"],
                    "error": kind + " ".join(str(e).split()),
                    "seconds": time.perf_counter() - t0,
                }
            p = run.prediction
            row = {
                "file": item["file"],
                "score": float(p.score),
                "label7": p.label7,
                "polarity": p.polarity,
                "transcript": p.transcript,
                "modalities": ";".join(p.modalities_present),
                "duration": float(p.duration),
                "seconds": float(p.timings.get("total", time.perf_counter() - t0)),
                **{f"{stage}_seconds": float(p.timings.get(stage, 0.0)) for stage in STAGES},
                "error": "",
            }
            if self.explain and run.explanation is not None:
                row["explanation"] = json.dumps(run.explanation.to_dict(), allow_nan=False)
            return row

        return work


__all__ = ["EXTRACT_COLUMNS", "SCORE_COLUMNS", "ScoreWork"]
