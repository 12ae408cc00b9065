"""Checkpoints: safetensors weights + a JSON config, written atomically. Never pickle.

A checkpoint folder holds:

    config.json          format tag, ModelConfig, the text backbone's transformers config,
                         the feature spec and normaliser (if trained on extracted features),
                         and free-form metadata (training settings, metrics)
    model.safetensors    trained weights; a frozen pretrained backbone is left out and loaded
                         by name from its package instead
    tokenizer/           the tokenizer's JSON/text files, so the folder is self-contained
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import MODALITIES, ModelConfig
from ..features.spec import FeatureNormalizer, FeatureSpec
from ..io import recover_folder, replace_folder
from ..sample import Sample
from .network import SentimentModel
from .text_encoder import backbone_from_config, load_text_backbone, load_tokenizer

FORMAT = "msa-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
BACKBONE_PREFIX = "text.backbone."

# File suffixes of pickle-based formats; offered as a checkpoint they are refused outright.
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed, unsafe or incompatible."""


@dataclass(frozen=True)
class TrainingRecord:
    """What a checkpoint was trained on, as the app needs it: how many training samples carried
    each modality, and whether each modality's learned stand-in ever trained.

    A stand-in (`SentimentModel.stand_in_utterance` / ``stand_in_token``) gets gradient only where
    its modality is absent: when some training sample lacks it, or modality dropout (which drops
    each modality, text included) can remove it. None anywhere: the checkpoint does not say.
    Stored in the checkpoint's ``meta`` as ``trained_on`` and ``stand_ins_trained``.
    """

    samples: int | None = None
    modalities: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(MODALITIES))
    stand_ins_trained: dict[str, bool | None] = field(default_factory=lambda: dict.fromkeys(MODALITIES))

    @classmethod
    def of(cls, samples: Sequence[Sample], modality_dropout: float) -> TrainingRecord:
        """The record of a training split (samples per epoch) under ``modality_dropout``."""
        counts = dict.fromkeys(MODALITIES, 0)
        for s in samples:
            for m, here in zip(MODALITIES, s.present()):
                counts[m] += int(here)
        return cls(len(samples), dict(counts), _stand_ins_trained(counts, len(samples), modality_dropout))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> TrainingRecord:
        """Read from a checkpoint's ``meta``; a checkpoint written before ``stand_ins_trained`` was
        recorded gets it worked out from ``trained_on`` and the run's modality dropout."""
        trained = meta.get("trained_on") if isinstance(meta.get("trained_on"), Mapping) else {}
        counts = trained.get("modalities") if isinstance(trained.get("modalities"), Mapping) else {}
        modalities: dict[str, int | None] = {}
        for m in MODALITIES:
            n = counts.get(m)
            ok = isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 0
            modalities[m] = int(n) if ok else None
        samples = trained.get("samples") if isinstance(trained.get("samples"), int) else None
        recorded = meta.get("stand_ins_trained")
        if isinstance(recorded, Mapping):
            stand_ins = {m: recorded[m] if isinstance(recorded.get(m), bool) else None for m in MODALITIES}
        else:
            train = meta.get("train") if isinstance(meta.get("train"), Mapping) else {}
            dropout = train.get("modality_dropout")
            known = samples is not None and all(isinstance(counts.get(m), int) for m in MODALITIES)
            if known and isinstance(dropout, (int, float)):
                stand_ins = _stand_ins_trained(counts, samples, float(dropout))
            else:
                stand_ins = dict.fromkeys(MODALITIES)
        return cls(samples, modalities, stand_ins)

    def to_meta(self) -> dict[str, Any]:
        """The ``meta`` keys that hold this record."""
        return {
            "trained_on": {"samples": self.samples, "modalities": dict(self.modalities)},
            "stand_ins_trained": dict(self.stand_ins_trained),
        }

    def untrained_stand_ins(self) -> list[str]:
        """Modalities whose stand-in never trained, in `MODALITIES` order."""
        return [m for m in MODALITIES if self.stand_ins_trained.get(m) is False]


def _stand_ins_trained(counts: Mapping[str, int], samples: int, modality_dropout: float) -> dict[str, bool | None]:
    """The rule: a stand-in trains when some training sample lacks its modality or dropout can
    remove it."""
    return {m: counts[m] < samples or modality_dropout > 0 for m in MODALITIES}


# The meta keys `TrainingRecord` owns; `Checkpoint.meta` holds the rest.
_RECORD_KEYS = ("trained_on", "stand_ins_trained")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode), its tokenizer and what it was trained with.

    Attributes
    ----------
    feature_spec, normalizer : the extractor's spec and the frame normaliser of a checkpoint
        trained on extracted features; None for one trained on transcripts or the paper's
        pickled features (its acoustic and visual branches cannot be fed from a media file).
    training : what it was trained on (`TrainingRecord`).
    meta : the rest of the training record, free-form (command, settings, validation metrics).
    """

    model: SentimentModel
    tokenizer: Any
    feature_spec: FeatureSpec | None = None
    normalizer: FeatureNormalizer | None = None
    training: TrainingRecord = field(default_factory=TrainingRecord)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    title: str | None = None  # the name of a checkpoint that lives in memory (a Fusion Lab model)

    @property
    def name(self) -> str:
        """The folder's name: how pages and JSON name a checkpoint (never a server path)."""
        if self.path is not None:
            return self.path.name
        return self.title or "<in memory>"


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, refusing anything else with a message that says so."""
    path = Path(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: pickle-based files are never loaded; checkpoints are safetensors + JSON")
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({e}); it may be truncated or corrupt") from e


def trained_state(model: SentimentModel) -> tuple[dict[str, torch.Tensor], str]:
    """The weights worth storing, and which part of the text backbone they include.

    A fine-tuned backbone is stored whole ("all"); of a partly fine-tuned one only its trained
    layers ("trained"); a frozen pretrained one not at all ("none"): those parts are loaded by
    name from their package instead.
    """
    state = model.state_dict()
    params = dict(model.text.backbone.named_parameters())
    trained = {BACKBONE_PREFIX + n for n, p in params.items() if p.requires_grad}
    if len(trained) == len(params):
        return state, "all"
    kept = {k: v for k, v in state.items() if not k.startswith(BACKBONE_PREFIX) or k in trained}
    return kept, "trained" if trained else "none"


def load_state(model: SentimentModel, weights: Path, backbone_weights: str) -> None:
    """Load a weights file into ``model``; backbone keys may be missing unless stored in full."""
    state = load_tensors(weights)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{weights}: weights do not match the config: {str(e)[:500]}") from e
    if backbone_weights != "all":
        missing = [k for k in missing if not k.startswith(BACKBONE_PREFIX)]
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match the config "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]})"
        )


def save_checkpoint(
    path: str | Path,
    model: SentimentModel,
    tokenizer: Any,
    feature_spec: FeatureSpec | None = None,
    normalizer: FeatureNormalizer | None = None,
    meta: dict[str, Any] | None = None,
    training: TrainingRecord | None = None,
    weights_dtype: str = "float32",
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``model`` (and what it needs to be rebuilt) to the folder ``path``.

    The whole folder is written aside and swapped in (`replace_folder`): a kill at any moment
    leaves either the previous checkpoint or the new one, never a mix. ``extra(folder)`` writes
    more files into it before the swap (the training loop's resume state).

    ``weights_dtype="float16"`` halves the file (floating-point weights only); loading casts them
    back to the model's float32, so the saved model's predictions, not the in-memory one's, are
    what a caller should report.
    """
    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be float32 or float16, got {weights_dtype!r}")
    path = Path(path)
    state, backbone_weights = trained_state(model)
    if weights_dtype == "float16":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    config = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "text_backbone": model.text.backbone.config.to_dict(),
        "backbone_weights": backbone_weights,
        "weights_dtype": weights_dtype,
        "feature_spec": None if feature_spec is None else feature_spec.to_dict(),
        "normalizer": None if normalizer is None else normalizer.to_dict(),
        "meta": {**(meta or {}), **(training.to_meta() if training is not None else {})},
    }

    def write(folder: Path) -> None:
        tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        if extra is not None:
            extra(folder)

    replace_folder(path, write)
    return path


def save_loaded(
    path: str | Path,
    ck: Checkpoint,
    meta: dict[str, Any] | None = None,
    weights_dtype: str = "float32",
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """`save_checkpoint` of a `Checkpoint` held in memory: its model, tokenizer, feature spec,
    normaliser and training record, with ``meta`` in place of its own when given."""
    return save_checkpoint(
        path,
        ck.model,
        ck.tokenizer,
        feature_spec=ck.feature_spec,
        normalizer=ck.normalizer,
        meta=ck.meta if meta is None else meta,
        training=ck.training,
        weights_dtype=weights_dtype,
        extra=extra,
    )


CARD_FILE = "README.md"  # a checkpoint folder's model card


def card_starts_with(folder: str | Path, title: str) -> bool:
    """Whether ``folder`` holds a model card that starts with ``title``: a folder written by the
    same writer, which that writer may replace (and no other folder)."""
    card = Path(folder) / CARD_FILE
    return card.is_file() and card.read_text(errors="replace").startswith(title)


def save_with_card(
    path: str | Path, ck: Checkpoint, card: str, files: dict[str, str] | None = None, meta: dict[str, Any] | None = None
) -> Path:
    """`save_loaded` with its model card (and any other text ``files``, name -> text) written into
    the new folder before it is swapped in whole: a kill leaves the old folder or the new one."""

    def extra(tmp: Path) -> None:
        for name, text in {CARD_FILE: card, **(files or {})}.items():
            (tmp / name).write_text(text)

    return save_loaded(path, ck, meta=meta, extra=extra)


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    recover_folder(path)
    if path.is_file():
        raise CheckpointError(
            f"{path}: a checkpoint is a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}, not a single file"
        )
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{path}: no {CONFIG_FILE}; not a checkpoint folder")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: not an {FORMAT} config (missing or wrong 'format')")
    if config.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: format version {config.get('version')} is not {FORMAT_VERSION}")
    for key in ("model", "text_backbone", "backbone_weights"):
        if key not in config:
            raise CheckpointError(f"{cfg_path}: missing key {key!r}")
    return config


def list_checkpoints(root: str | os.PathLike[str]) -> dict[str, Path]:
    """Folder name -> folder, for every folder directly under ``root`` that holds a checkpoint
    (its ``config.json`` says so); empty when ``root`` does not exist."""
    root = Path(root)
    out = {}
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            try:
                ok = folder.is_dir() and json.loads((folder / CONFIG_FILE).read_text()).get("format") == FORMAT
            except (OSError, ValueError, AttributeError):
                ok = False
            if ok:
                out[folder.name] = folder
    return out


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild a model from a checkpoint folder, in eval mode."""
    path = Path(path)
    config = read_checkpoint_config(path)
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: bad model config ({e})") from e
    if config["backbone_weights"] not in ("all", "trained", "none"):
        raise CheckpointError(f"{path / CONFIG_FILE}: backbone_weights must be all, trained or none")
    if config["backbone_weights"] == "all":
        backbone = backbone_from_config(config["text_backbone"])
    else:
        backbone = load_text_backbone(model_config.text_encoder)
    model = SentimentModel(model_config, backbone)
    load_state(model, path / WEIGHTS_FILE, config["backbone_weights"])
    tok_dir = path / TOKENIZER_DIR
    tokenizer = load_tokenizer(str(tok_dir) if tok_dir.is_dir() else model_config.text_encoder)
    model.to(device).eval()
    meta = config.get("meta") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path / CONFIG_FILE}: meta must be an object")
    return Checkpoint(
        model=model,
        tokenizer=tokenizer,
        feature_spec=_feature_spec(config.get("feature_spec"), path),
        normalizer=_normalizer(config.get("normalizer"), model_config, path),
        training=TrainingRecord.from_meta(meta),
        meta={k: v for k, v in meta.items() if k not in _RECORD_KEYS},
        path=path,
    )


def _feature_spec(d: Any, path: Path) -> FeatureSpec | None:
    if d is None:
        return None
    try:
        return FeatureSpec.from_dict(d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: bad feature spec ({e})") from e


def _normalizer(d: Any, c: ModelConfig, path: Path) -> FeatureNormalizer | None:
    if d is None:
        return None
    try:
        norm = FeatureNormalizer.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: bad normalizer ({e})") from e
    shapes = (norm.acoustic_mean.shape, norm.acoustic_std.shape, norm.visual_mean.shape, norm.visual_std.shape)
    if shapes != ((c.acoustic_dim,),) * 2 + ((c.visual_dim,),) * 2:
        raise CheckpointError(f"{path}: normalizer shapes {shapes} do not match the model's feature widths")
    return norm
