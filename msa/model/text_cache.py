"""Fine-tuning the top layers of a large text encoder on a CPU: the frozen lower layers run once.

With only the top ``k`` Transformer layers trainable, the output of the frozen layers below them
depends on the token ids alone. `FrozenLayerCache` computes it once per distinct token sequence
(in eval mode: the frozen layers' dropout stays off) and keeps it in memory and, optionally, in
a folder of safetensors shards, so that every epoch, every seed and the plain regressor pay only
for the top layers. The forward pass it offers gives the same last hidden states as the whole
encoder run on the same ids (tested), so a model trained through it runs unchanged without it.

How the top layers run on cached input without knowing the encoder's internals: the encoder's
layer stack is swapped for its top ``k`` layers for the call, and the embeddings' output is
replaced by the cached states (a forward hook). Everything else (attention masks, MPNet's
relative position bias, which the encoder computes from the sequence length) is the encoder's own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..io import atomic_save_tensors

META_FILE = "meta.json"
SHARD_SIZE = 2048  # new entries written per shard: an interrupted fill loses at most this many


def encoder_layers(backbone: nn.Module) -> nn.ModuleList:
    """The stack of Transformer layers of a BERT-family encoder (``encoder.layer``)."""
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(backbone).__name__} has no encoder.layer stack; use text_trainable_layers=-1")
    return layers


def freeze_lower_layers(backbone: nn.Module, trainable_layers: int) -> None:
    """Train only the top ``trainable_layers`` Transformer layers of ``backbone`` (-1: all of it,
    0: none); the embeddings and every encoder-level table are frozen whenever any layer is."""
    if trainable_layers < 0:
        return
    backbone.requires_grad_(False)
    if trainable_layers == 0:
        return
    layers = encoder_layers(backbone)
    if trainable_layers > len(layers):
        raise ValueError(f"text_trainable_layers={trainable_layers} but the encoder has {len(layers)} layers")
    for layer in layers[len(layers) - trainable_layers :]:
        layer.requires_grad_(True)


@contextmanager
def _layers_only(backbone: nn.Module, keep: slice, embedding_output: torch.Tensor | None = None) -> Iterator[None]:
    """Within the block, ``backbone`` runs only ``encoder.layer[keep]``, and, when given,
    ``embedding_output`` replaces what its embeddings produce."""
    encoder = backbone.encoder
    full = encoder.layer
    if embedding_output is None and range(len(full))[keep] == range(len(full)):
        yield  # every layer: nothing to change (a backbone shared by threads stays untouched)
        return
    encoder.layer = nn.ModuleList(list(full)[keep])
    hook = None
    if embedding_output is not None:
        hook = backbone.embeddings.register_forward_hook(lambda _m, _i, _o: embedding_output)
    try:
        yield
    finally:
        encoder.layer = full
        if hook is not None:
            hook.remove()


def _fingerprint(backbone: nn.Module, frozen_layers: int) -> str:
    """A hash of every weight the cached states depend on (embeddings, the frozen layers and any
    encoder-level table such as MPNet's relative position bias), so a cache is never read back for
    other weights."""
    h = hashlib.sha256(f"{type(backbone).__name__}:{frozen_layers}".encode())
    top = {id(p) for layer in list(encoder_layers(backbone))[frozen_layers:] for p in layer.parameters()}
    for name, p in backbone.named_parameters():
        if id(p) not in top and not name.startswith("pooler."):
            h.update(name.encode())
            h.update(p.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def _key(ids: torch.Tensor) -> str:
    return hashlib.sha1(ids.to(torch.int64).numpy().tobytes()).hexdigest()


class FrozenLayerCache:
    """Outputs of a text encoder's frozen lower ``frozen_layers`` layers, one per token sequence.

    Parameters
    ----------
    backbone : the encoder; its layers from ``frozen_layers`` up are the trainable ones and must
        be this very object's (the cache calls them).
    frozen_layers : how many layers from the bottom are frozen (0 = only the embeddings;
        the encoder's depth = everything frozen).
    folder : where the states persist between runs (None: memory only). A folder written for
        other weights or another split of layers is refused, not overwritten.
    read_only : read ``folder`` but never write to it (states computed now stay in memory): the
        training processes other than rank 0, which fills the folder before they open it.
    """

    def __init__(
        self, backbone: nn.Module, frozen_layers: int, folder: str | Path | None = None, read_only: bool = False
    ):
        depth = len(encoder_layers(backbone))
        if not 0 <= frozen_layers <= depth:
            raise ValueError(f"frozen_layers={frozen_layers} but the encoder has {depth} layers")
        self.backbone = backbone
        self.frozen_layers = frozen_layers
        self.folder = Path(folder) if folder is not None else None
        self.read_only = read_only
        self.states: dict[str, torch.Tensor] = {}
        self._pending: list[str] = []
        self.computed = 0  # sequences run through the frozen layers by this object (tests, logs)
        self.fingerprint = _fingerprint(backbone, frozen_layers)
        if self.folder is not None:
            self._open()

    def _open(self) -> None:
        from safetensors.torch import load_file

        assert self.folder is not None
        meta_path = self.folder / META_FILE
        meta = {
            "fingerprint": self.fingerprint,
            "frozen_layers": self.frozen_layers,
            "encoder": type(self.backbone).__name__,
        }
        if meta_path.is_file():
            found = json.loads(meta_path.read_text())
            if found.get("fingerprint") != self.fingerprint:
                raise ValueError(
                    f"text cache {self.folder} holds states of other weights or another number of frozen layers "
                    f"({found.get('encoder')}, {found.get('frozen_layers')} frozen); give a new --text-cache-dir "
                    "or delete that folder"
                )
        elif not self.read_only:
            self.folder.mkdir(parents=True, exist_ok=True)
            meta_path.write_text(json.dumps(meta, indent=2))
        for shard in sorted(self.folder.glob("part-*.safetensors")):
            self.states.update(load_file(shard))

    def rebind(self, backbone: nn.Module) -> FrozenLayerCache:
        """The same states for another backbone object with the same frozen weights (the selected
        checkpoint reloaded for its final evaluation); ValueError if its frozen weights differ."""
        other = FrozenLayerCache(backbone, self.frozen_layers)
        if other.fingerprint != self.fingerprint:
            raise ValueError("the frozen layers of this backbone differ from the cached ones")
        other.states, other.folder, other.read_only = self.states, self.folder, self.read_only
        return other

    def __len__(self) -> int:
        return len(self.states)

    @torch.no_grad()
    def _compute(self, rows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Run the frozen layers (eval mode) on token sequences; one tensor (len, width) each."""
        width = max(len(r) for r in rows)
        pad = getattr(self.backbone.config, "pad_token_id", None) or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with _layers_only(self.backbone, slice(0, self.frozen_layers)):
                out = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        finally:
            self.backbone.train(was_training)
        self.computed += len(rows)
        return [out[i, : len(r)].clone() for i, r in enumerate(rows)]

    def lower_states(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, width) frozen-layer outputs for a right-padded batch; zeros at padding."""
        lengths = mask.sum(dim=1).tolist()
        rows = [input_ids[i, :n].cpu() for i, n in enumerate(lengths)]
        keys = [_key(r) for r in rows]
        missing = {k: r for k, r in zip(keys, rows) if k not in self.states}
        if missing:
            for k, state in zip(missing, self._compute(list(missing.values()))):
                self.states[k] = state
                self._pending.append(k)
            if len(self._pending) >= SHARD_SIZE:
                self.flush()
        width = self.backbone.config.hidden_size
        out = torch.zeros(input_ids.shape[0], input_ids.shape[1], width)
        for i, (k, n) in enumerate(zip(keys, lengths)):
            out[i, :n] = self.states[k]
        return out.to(input_ids.device)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden states (B, T, width): cached lower layers, then the top
        layers as they are now (gradients flow into them)."""
        lower = self.lower_states(input_ids, mask)
        depth = len(encoder_layers(self.backbone))
        if self.frozen_layers == depth:
            return lower  # a frozen encoder: the cached states are its output
        with _layers_only(self.backbone, slice(self.frozen_layers, depth), lower):
            return self.backbone(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state

    def fill(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Compute the states of every (input_ids, mask) batch not cached yet, then persist."""
        for input_ids, mask in batches:
            self.lower_states(input_ids, mask)
        self.flush()

    def flush(self) -> None:
        """Write the entries computed since the last flush as one new shard (atomically)."""
        if self.folder is None or self.read_only or not self._pending:
            self._pending.clear()
            return
        index = len(list(self.folder.glob("part-*.safetensors")))
        atomic_save_tensors(self.folder / f"part-{index:05d}.safetensors", {k: self.states[k] for k in self._pending})
        self._pending.clear()


def attach(text_encoder: Any, cache: FrozenLayerCache | None) -> None:
    """Route ``text_encoder``'s backbone through ``cache`` (None: back to the plain forward)."""
    if cache is not None and cache.backbone is not text_encoder.backbone:
        raise ValueError("the cache was built for another backbone object")
    text_encoder.frozen_cache = cache
