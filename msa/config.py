"""Configuration dataclasses. Defaults are the paper's settings unless a comment says why not."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import argparse

# Order of the three modalities everywhere a tensor or mask is indexed by modality.
MODALITIES: tuple[str, str, str] = ("text", "acoustic", "visual")

# Values of ModelConfig.gates: the paper's LN gates, sigmoid gates, no gates ("w/o mf").
GATES: tuple[str, str, str] = ("ln", "sigmoid", "none")

# The packaged MiniLM (docs/design.md): a 6-layer, 384-wide BertModel with the bert-base-uncased
# vocabulary. A hub name is kept so that a machine with a hub can swap in `bert-base-uncased`.
# It stays the config's default because it trains in minutes (tests, smoke runs, all layers);
# the shipped checkpoint uses the base-size "all-mpnet-base-v2" with its top 2 layers trained and
# the lower ones cached (--text-trainable-layers 2 --text-cache-dir; its model card).
DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class ModelConfig:
    """Every dimension and switch of the model (docs/model-spec.md sections 1-4)."""

    # Text encoder: a name or local path that `transformers.AutoModel` loads.
    text_encoder: str = DEFAULT_TEXT_ENCODER
    # Utterance vector of the text: "cls" (the paper) or "mean" over valid tokens. MiniLM was
    # trained for mean pooling; its [CLS] vector is 4-7 Acc-2 points worse (docs/design.md).
    text_pooling: Literal["cls", "mean"] = "mean"
    freeze_text_encoder: bool = False
    # Fine-tune only the top N layers of the text encoder (-1: all of them). Frozen layers are
    # referenced by name in checkpoints, not stored: the default checkpoint's top 2 mpnet layers
    # are 31 MB in float16, the 10 frozen ones come from their packages.
    text_trainable_layers: int = -1
    max_text_len: int = 50  # MMSA's text_bert length
    text_dim: int = 384  # width of the encoder's last layer; set from the encoder on load

    # Input feature widths. MOSI in MMSA's unaligned_50.pkl: audio 5-d (COVAREP), vision 20-d.
    acoustic_dim: int = 5
    visual_dim: int = 20

    hidden: int = 128  # the shared size d
    lstm_hidden: int = 64  # per direction; the utterance vector is 2x this before projection
    lstm_layers: int = 1
    fusion_layers: int = 2  # gated Transformer layers per branch
    fusion_heads: int = 4
    ffn_mult: int = 4
    dropout: float = 0.1
    head_hidden: int = 128

    # The fusion variant, one setting: "ln" the paper's gates g = LN(W [Z; m] + b) [12]-[13];
    # "sigmoid" gates in [0, 1]; "none" = "w/o mf": g_r = g_f = 1, a plain cross-modal Transformer.
    gates: Literal["ln", "sigmoid", "none"] = "ln"

    # MI bound (section 3): the q(y|x) MLPs and the entropy's tanh projection (MMIM: d / 4).
    mi_hidden: int = 64
    entropy_proj_dim: int = 32
    entropy_memory: int = 256  # vectors kept per polarity class for the covariance
    entropy_jitter: float = 1e-4

    def __post_init__(self) -> None:
        if self.hidden % self.fusion_heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by fusion_heads ({self.fusion_heads})")
        if self.text_pooling not in ("cls", "mean"):
            raise ValueError(f"text_pooling must be 'cls' or 'mean', got {self.text_pooling!r}")
        if self.gates not in GATES:
            raise ValueError(f"gates must be one of {', '.join(GATES)}, got {self.gates!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, _legacy_gates(d))


@dataclass
class TrainConfig:
    """Optimisation settings (docs/model-spec.md section 5). Defaults are the paper's."""

    alpha: float = 0.1  # weight of the MI bound L_SI
    beta: float = 1.0  # weight of the CMD loss L_DI
    use_cmd: bool = True  # False = "w/o rl"
    use_mi: bool = True  # False = no MI bound (and no estimator stage)
    cmd_moments: int = 5
    estimator_schedule: Literal["iteration", "epoch"] = "iteration"

    batch_size: int = 64
    lr: float = 5e-4
    text_lr: float = 5e-5  # the field's practice for fine-tuning BERT
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # Learning rate over the run: "constant" (the paper) or "linear": a warmup over the first
    # `warmup_ratio` of the planned steps, then a linear decay to zero at the last epoch (the
    # usual BERT fine-tuning schedule; the last epochs then move the weights less, which makes
    # the selected epoch depend less on where a noisy step happened to land). The MI estimator's
    # own optimiser (stage 1) keeps a constant rate: it tracks the encoders, it is not fine-tuned.
    lr_schedule: Literal["constant", "linear"] = "constant"
    warmup_ratio: float = 0.0
    epochs: int = 20
    patience: int = 5  # epochs without validation improvement before stopping
    # Drop each modality of a training sample (text included) with this probability, so that a
    # checkpoint behaves sensibly with any subset of modalities (the app's missing streams) and
    # every learned stand-in trains (the app's Shapley subsets and what-ifs use them).
    modality_dropout: float = 0.0
    group_by_length: bool = True  # batches of similar text length: half the step time on CPU
    # Storage of the selected ("best") checkpoint; float16 halves it (the shipped checkpoint's
    # size limit). The resume checkpoint stays float32 so that resuming is exact.
    best_checkpoint_dtype: Literal["float32", "float16"] = "float32"
    # A folder for the outputs of the text encoder's frozen lower layers (msa.model.text_cache), computed
    # once per distinct text and reused by every epoch, seed and rerun: with a base-size encoder
    # and only its top layers trainable, an epoch then costs only the top layers. "" = off.
    text_cache_dir: str = ""
    seed: int = 1111
    num_threads: int = 0  # 0 = torch's default
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.estimator_schedule not in ("iteration", "epoch"):
            raise ValueError(f"estimator_schedule must be 'iteration' or 'epoch', got {self.estimator_schedule!r}")
        if self.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


def _legacy_gates(d: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints written before `gates` stored the variant as two flags: use_gates (False =
    no gates, whatever the activation) and gate_activation. Read them as the one setting."""
    if "use_gates" not in d and "gate_activation" not in d:
        return d
    d = dict(d)
    use_gates, activation = d.pop("use_gates", True), d.pop("gate_activation", "ln")
    d.setdefault("gates", activation if use_gates else "none")
    return d


# Ablation names of the paper's Table 3, as train.py's flags spell them (--no-rl, --no-mf, --no-mi).
ABLATIONS: tuple[str, str, str] = ("rl", "mf", "mi")


def ablate(model: ModelConfig, train: TrainConfig, without: Iterable[str]) -> tuple[ModelConfig, TrainConfig]:
    """The configs of an ablation: ``without`` names parts of ABLATIONS to remove. "rl" drops the
    CMD loss L_DI, "mf" the retain and fusion gates, "mi" the MI bound (and its estimator stage)."""
    without = set(without)
    unknown = sorted(without - set(ABLATIONS))
    if unknown:
        raise ValueError(f"unknown ablation {', '.join(unknown)}: expected some of {', '.join(ABLATIONS)}")
    if "mf" in without:
        model = dataclasses.replace(model, gates="none")
    if "rl" in without:
        train = dataclasses.replace(train, use_cmd=False)
    if "mi" in without:
        train = dataclasses.replace(train, use_mi=False)
    return model, train


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**d)


__all__ = [
    "ABLATIONS",
    "GATES",
    "MODALITIES",
    "ablate",
    "DEFAULT_TEXT_ENCODER",
    "ModelConfig",
    "TrainConfig",
    "add_config_arguments",
    "config_from_args",
]


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per dataclass field (``--text-lr``, ``--use-gates/--no-use-gates``...).

    The dataclass stays the one place where a setting and its default live; the command line
    only mirrors it. Defaults are left as None so that only the flags a user gives override.
    """
    import argparse
    import typing

    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        default = f.default
        if hint is bool:
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=f"default: {default}"
            )
        elif typing.get_origin(hint) is typing.Literal:
            group.add_argument(
                flag, dest=f.name, choices=typing.get_args(hint), default=None, help=f"default: {default}"
            )
        else:
            group.add_argument(flag, dest=f.name, type=hint, default=None, help=f"default: {default}")


def config_from_args(cls: type, namespace: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from the flags that were given, on top of the defaults and ``overrides``."""
    values = dict(overrides)
    for f in dataclasses.fields(cls):
        given = getattr(namespace, f.name, None)
        if given is not None:
            values[f.name] = given
    return cls(**values)
