"""Fine-tune a checkpoint's voice and face branches on one's own labelled clips (issue 26):
the Train tab and ``python -m msa finetune`` both go through `Finetune`."""

from .clips import ClipError, ClipLimits, ExtractedClip, LabelledClip, extract_clips, read_labels
from .run import Finetune, FinetuneResult, FinetuneSettings, Progress

__all__ = [
    "ClipError",
    "ClipLimits",
    "ExtractedClip",
    "Finetune",
    "FinetuneResult",
    "FinetuneSettings",
    "LabelledClip",
    "Progress",
    "extract_clips",
    "read_labels",
]
