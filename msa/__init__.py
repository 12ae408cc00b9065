"""Gated multimodal sentiment analysis with modality representation learning."""

__version__ = "0.1.0"
