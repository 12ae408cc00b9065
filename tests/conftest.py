"""Shared fixtures: tiny random models (transformers' test practice) and the packaged tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from msa.sample import Sample
from msa.testing import ROOT, tiny_model

# The data every test needs lives in the repository: the label CSVs (data/README.md) and the
# three real CMU-MOSI clips that are also the app's examples.
DATA = ROOT / "data"
CLIPS = ROOT / "assets" / "examples"
CLIP = CLIPS / "mosi_Sqr0AcuoNnk_12.mp4"  # 2.5 s, a face: "and he is one of my favorite actors ever"
WAV = CLIPS / "mosi_03bSnISJMiM_1.wav"  # 3.3 s, audio only: "anyhow it was really good"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tokenizer():
    from msa.model.text_encoder import load_tokenizer

    return load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")


def random_samples(n: int, seed: int = 0, acoustic_dim: int = 5, visual_dim: int = 20) -> list[Sample]:
    rng = np.random.default_rng(seed)
    words = "the movie was good bad great boring fine awful nice plot actors".split()
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=int(rng.integers(2, 12))))
        a = rng.normal(size=(int(rng.integers(1, 30)), acoustic_dim)).astype(np.float32)
        v = rng.normal(size=(int(rng.integers(1, 15)), visual_dim)).astype(np.float32)
        out.append(Sample(f"s{i}", text, a, v, float(rng.uniform(-3, 3))))
    return out


@pytest.fixture(scope="session")
def fx():
    """One feature extractor for the whole run (tiny.en ASR: tests that need accuracy use base)."""
    from msa.features import FeatureExtractor

    return FeatureExtractor({"asr_model": "tiny.en"})


def feature_checkpoint(path: Path, fx, tokenizer, **model_overrides) -> Path:
    """A tiny checkpoint trained (nominally) on ``fx``'s features, with a random normaliser."""
    from msa.features import FeatureNormalizer
    from msa.model.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    a, v = fx.spec.acoustic_dim, fx.spec.visual_dim
    f32 = np.float32
    normalizer = FeatureNormalizer(
        rng.normal(size=a).astype(f32),
        rng.uniform(0.5, 2, a).astype(f32),
        rng.normal(size=v).astype(f32),
        rng.uniform(0.5, 2, v).astype(f32),
    )
    model = tiny_model(acoustic_dim=a, visual_dim=v, **model_overrides)
    save_checkpoint(path, model, tokenizer, feature_spec=fx.spec.to_dict(), normalizer=normalizer.to_dict())
    return path
