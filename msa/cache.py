"""Where files derived from installed packages go (the joined Whisper base model, the assembled
base-size text encoder): one folder per user, shared by every run."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_root() -> Path:
    """$MSA_CACHE_DIR, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache) / msa."""
    env = os.environ.get("MSA_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "msa"
