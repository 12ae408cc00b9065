"""Helpers shared by the tests, the benchmarks and the scripts (as transformers' testing_utils):
the tiny-model recipe (a random 2-layer config and BERT, seconds per run on a CPU), a free local
port, the app started in a subprocess, headless chromium's flags on a closed network, and a
full-size untrained checkpoint whose timings are real.

Nothing here is used by the app; training uses the tiny text encoder only for smoke runs
(``train.py --tiny-text-encoder``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ModelConfig

if TYPE_CHECKING:
    from .model import SentimentModel

ROOT = Path(__file__).resolve().parents[1]  # the repository (app.py, checkpoints/, assets/)

# Debian's chromium (apt-get install chromium), driven by playwright; never `playwright install`.
CHROMIUM = Path("/usr/bin/chromium")
# Without the network flags the closed network refuses chromium's background connections.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def tiny_config(**overrides: object) -> ModelConfig:
    """A 2-layer, 32-wide model config (transformers' test practice): seconds per run on a CPU.
    The tests (tests/conftest.py) and scripts/mi_collapse.py build their tiny models from it."""
    base: dict[str, object] = dict(
        hidden=32,
        lstm_hidden=16,
        fusion_heads=2,
        fusion_layers=2,
        head_hidden=32,
        mi_hidden=16,
        entropy_proj_dim=4,
        entropy_memory=64,
        dropout=0.0,
    )
    base.update(overrides)
    return ModelConfig(**base)  # type: ignore[arg-type]


def tiny_text_backbone(vocab_size: int = 30522, hidden: int = 32, layers: int = 2, seed: int = 0) -> Any:
    """A tiny random BertModel for tests and smoke runs (transformers' test practice)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    return transformers.BertModel(cfg)


def tiny_model(seed: int = 0, **overrides: object) -> SentimentModel:
    """`tiny_config` with `tiny_text_backbone`, both seeded: the same weights for the same seed."""
    import torch

    from .model import SentimentModel

    torch.manual_seed(seed)
    return SentimentModel(tiny_config(**overrides), tiny_text_backbone(seed=seed))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_app(
    app_args: list[str],
    port: int,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    root: Path = ROOT,
) -> tuple[subprocess.Popen, float]:
    """``python app.py --port PORT *app_args`` in a subprocess, from ``root`` (this repository, or
    e.g. a Space's snapshot folder); output to ``log`` or dropped, ``env`` added to the
    environment. Returns the process and the seconds until its page answers."""
    cmd = [sys.executable, str(root / "app.py"), "--port", str(port), *app_args]
    # The Lab's lesson is not prepared in the background unless asked: it would share the cores
    # that a test's or a benchmark's requests are timed on.
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "MSA_LAB_PREPARE": "0", **(env or {})}
    out = log.open("wb") if log else subprocess.DEVNULL
    where = f"; see {log}" if log else ""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode} before it was ready{where}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, time.perf_counter() - t0
        except OSError:
            time.sleep(0.2)
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise RuntimeError(f"app.py not ready after {timeout:g} s{where}")


def stop_app(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop an app started by `launch_app`: SIGTERM, then SIGKILL if it has not exited in
    ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def full_size_checkpoint(out: Path, asr_model: str | None = None) -> Path:
    """An untrained model of the paper's size (MiniLM text encoder), saved with this extractor's
    feature spec and a unit normaliser: its numbers mean nothing, its timings are real, and all
    three streams are used (a text-only checkpoint would skip two of them)."""
    import numpy as np

    from .features import FeatureExtractor, FeatureNormalizer
    from .model import SentimentModel
    from .model.checkpoint import save_checkpoint
    from .model.text_encoder import load_tokenizer

    fx = FeatureExtractor({"asr_model": asr_model} if asr_model else None)
    a, v = fx.spec.acoustic_dim, fx.spec.visual_dim
    config = ModelConfig(acoustic_dim=a, visual_dim=v)
    model = SentimentModel(config).eval()
    zeros, ones = np.zeros, np.ones
    norm = FeatureNormalizer(zeros(a, np.float32), ones(a, np.float32), zeros(v, np.float32), ones(v, np.float32))
    return save_checkpoint(out, model, load_tokenizer(config.text_encoder), feature_spec=fx.spec, normalizer=norm)


__all__ = [
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "ROOT",
    "free_port",
    "full_size_checkpoint",
    "launch_app",
    "stop_app",
    "tiny_config",
    "tiny_model",
    "tiny_text_backbone",
]


@dataclass(frozen=True)
class ToyWork:
    """A work for `msa.parallel`'s tests: doubles ``x``, reports its process, raises on
    ``raise_on`` (a work's own error) and kills its process on ``die_on`` (a native crash)."""

    die_on: int | None = None
    raise_on: int | None = None

    def build(self):
        import os

        pid = os.getpid()

        def work(item: dict) -> dict:
            if item["x"] == self.die_on:
                os._exit(3)
            if item["x"] == self.raise_on:
                return {**item, "error": "a work's own error"}
            return {**item, "double": 2 * item["x"], "pid": pid}

        return work


# The voice corpus of the fine-tuning's tests and benchmark: neutral sentences (the words say
# nothing) spoken by espeak-ng in a low and a high voice, labelled by the voice alone.
NEUTRAL_SENTENCES = (
    "The meeting starts at nine in the morning.",
    "I took the bus to the station today.",
    "The report has twelve pages and two tables.",
    "We moved the chairs into the other room.",
    "The store closes at six on weekdays.",
    "My brother lives in a small town by the river.",
    "The package arrived on Tuesday afternoon.",
    "She wrote the numbers on a piece of paper.",
    "The library is next to the post office.",
    "He parked the car behind the building.",
    "The train was on time this morning.",
    "They painted the fence last summer.",
    "The film was shown in the second hall.",
    "I bought bread and milk at the shop.",
)
TWO_VOICES = {"en-us": 2.0, "en-us+f3": -2.0}  # espeak-ng voice -> label
