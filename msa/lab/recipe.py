"""What a learner chooses about the model in the Fusion Lab: the paper's model at a tiny size,
its gates, its two extra losses, and how long it trains.

The fusion, the encoders of the voice and the face, the head, the CMD loss and the MI bound
are the paper's, 32 wide. The words are read by the packaged MiniLM, frozen: its sentence
states are computed once per distinct sentence and cached in memory, so an epoch costs only
what the lab is about (the BiLSTMs over the streams, the gated layers and the head). A random
text encoder would first have to learn what "great" means from a few hundred clips; measured,
it learned the face-flips world on one seed in three and took 30 epochs when it did.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal

from ..config import DEFAULT_TEXT_ENCODER, GATES, ModelConfig, TrainConfig
from .worlds import ACOUSTIC_DIM, VISUAL_DIM, WorldError

MAX_EPOCHS = 60
BATCH_SIZE = 32


@dataclass(frozen=True)
class Recipe:
    """The model and its training.

    Attributes
    ----------
    gates : "ln" (the paper's retain and fusion gates), "sigmoid" (gates in [0, 1]) or "none"
        (a plain cross-modal Transformer: "w/o mf").
    cmd : the central-moment-discrepancy loss between the modalities' vectors (the paper's L_DI).
    mi : the mutual-information lower bound (the paper's L_SI).
    seed : the model's initial weights and the order of the batches.
    epochs : at most this many passes over the training clips; the epoch with the lowest
        validation error is kept.
    lr : the learning rate (Adam).
    modality_dropout : each training clip's modalities are hidden with this probability, so the
        learned stand-ins (the base of the Shapley values) train too.
    text_encoder : the frozen text encoder (a name the text-encoder loader knows).
    """

    gates: Literal["ln", "sigmoid", "none"] = "ln"
    cmd: bool = True
    mi: bool = True
    seed: int = 0
    epochs: int = 20
    lr: float = 2e-3
    modality_dropout: float = 0.1
    text_encoder: str = DEFAULT_TEXT_ENCODER

    def __post_init__(self) -> None:
        if self.gates not in GATES:
            raise WorldError(f"gates = {self.gates!r}: choose one of {', '.join(GATES)}")
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise WorldError(f"epochs = {self.epochs}: a lab run trains 1 to {MAX_EPOCHS} epochs")
        if not 1e-5 <= self.lr <= 1e-2:
            raise WorldError(f"lr = {self.lr:g}: the learning rate is in [1e-5, 1e-2]")
        if not 0.0 <= self.modality_dropout <= 0.5:
            raise WorldError(f"modality_dropout = {self.modality_dropout}: it is in [0, 0.5]")
        if not 0 <= self.seed < 2**31:
            raise WorldError(f"seed = {self.seed}: a seed is in [0, 2^31)")

    @property
    def name(self) -> str:
        """A short name for legends: the gates and the losses that are off."""
        off = [n for n, on in (("CMD", self.cmd), ("MI", self.mi)) if not on]
        gates = {"ln": "LN gates", "sigmoid": "sigmoid gates", "none": "no gates"}[self.gates]
        return gates + "".join(f", no {n}" for n in off)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_config(self) -> ModelConfig:
        """The paper's model, 32 wide, on the extractor's stream widths, its text encoder frozen."""
        return ModelConfig(
            text_encoder=self.text_encoder,
            freeze_text_encoder=True,
            acoustic_dim=ACOUSTIC_DIM,
            visual_dim=VISUAL_DIM,
            hidden=32,
            lstm_hidden=16,
            fusion_layers=2,
            fusion_heads=2,
            head_hidden=32,
            dropout=0.0,
            gates=self.gates,
            mi_hidden=16,
            entropy_proj_dim=8,
            entropy_memory=64,
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            use_cmd=self.cmd,
            use_mi=self.mi,
            batch_size=BATCH_SIZE,
            lr=self.lr,
            epochs=self.epochs,
            patience=self.epochs,  # the learner sees every epoch; the best one is kept anyway
            modality_dropout=self.modality_dropout,
            seed=self.seed,
        )


@functools.lru_cache(maxsize=2)
def text_reader(name: str) -> tuple[Any, Any]:
    """The frozen text encoder and its tokenizer, loaded once per process and shared by every
    lab run (nothing trains it; each run caches its sentences' states on its own)."""
    from ..model.text_encoder import load_text_backbone, load_tokenizer

    backbone = load_text_backbone(name).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone, load_tokenizer(name)


__all__ = ["MAX_EPOCHS", "Recipe", "text_reader"]
