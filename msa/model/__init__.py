"""The model of docs/model-spec.md: encoders, gated cross-modal fusion and its objectives
(`network`, `losses`), the text encoder found offline (`text_encoder`, `text_cache`), and its
checkpoints (`checkpoint`)."""

from .network import BRANCHES, Encoded, GatedCrossModalLayer, LayerGates, ModelOutput, SentimentModel

__all__ = ["BRANCHES", "Encoded", "GatedCrossModalLayer", "LayerGates", "ModelOutput", "SentimentModel"]
