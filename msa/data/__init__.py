"""Data: the Sample/Batch types, the collator, and loaders for the field's formats."""

from .batch import Batch, Collator
from .loaders import DataError, load_dataset, load_label_csv, load_mmsa_pickle, load_mult_pickle
from .pickles import write_mmsa_pickle, write_mult_pickle
from .synthetic import make_synthetic

__all__ = [
    "Batch",
    "Collator",
    "DataError",
    "load_dataset",
    "load_label_csv",
    "load_mmsa_pickle",
    "load_mult_pickle",
    "make_synthetic",
    "write_mmsa_pickle",
    "write_mult_pickle",
]
