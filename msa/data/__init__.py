"""Data: the Sample/Batch types, the collator, and loaders for the field's formats."""

from .batch import Batch, Collator, Sample

__all__ = ["Batch", "Collator", "Sample"]
