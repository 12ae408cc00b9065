"""Deploy the app as a Hugging Face Space: upload a clean snapshot of exactly the files it needs.

    python -m scripts.deploy_space USER/NAME            # or: make space SPACE=USER/NAME
    python -m scripts.deploy_space USER/NAME --dry-run  # list them (PATH SIZE), upload nothing

The snapshot is the running app and nothing else: app.py, the msa package, the default
checkpoint, the example clips, the two requirements files a Space installs (pre-requirements.txt,
then requirements.txt: runtime only, no test tools), and the README (its front matter configures
the Space) with the docs and screenshot it links to. It goes up as one commit through
huggingface_hub's commit API, which sends large and binary files through Git LFS, so this
repository's history (every checkpoint version ever committed) never travels; files the Space
holds that are not in the snapshot are deleted in the same commit.

The token comes from the usual places: $HF_TOKEN, else the login cached by `hf auth login`.
The Space is created (Gradio SDK) if it does not exist.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from msa.testing import ROOT

# What a Space needs, out of the repository's tracked files: these files, and every file under
# these folders whose name ends as given ("" = any).
SPACE_FILES = ("README.md", "app.py", "pre-requirements.txt", "requirements.txt", "assets/screenshot.png")
SPACE_FOLDERS = {"msa/": ".py", "checkpoints/default/": "", "assets/examples/": "", "docs/": ".md"}
# The hub keeps its own .gitattributes (LFS rules) in every repository: never deleted.
KEEP_IN_SPACE = (".gitattributes",)


class DeployError(RuntimeError):
    """Something the person deploying must fix; the message says what."""


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


def dry_run(files: Iterable[Path], root: Path = ROOT) -> str:
    """``PATH SIZE`` per line (path relative to the repository, size in bytes)."""
    return "\n".join(f"{p.as_posix()} {(root / p).stat().st_size}" for p in files)


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


def deploy(repo_id: str, files: list[Path], api: object, root: Path = ROOT, private: bool = False) -> str:
    """Create the Space if needed and replace its files with ``files`` in one commit; returns its URL.

    ``api`` is a `huggingface_hub.HfApi` (tests pass a stand-in with the same three methods).
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise DeployError(f"{repo_id!r}: give the Space as USER/NAME (or ORG/NAME)")
    try:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
        wanted = {p.as_posix() for p in files}
        there = api.list_repo_files(repo_id, repo_type="space")
        ops: list = [CommitOperationAdd(path_in_repo=p.as_posix(), path_or_fileobj=str(root / p)) for p in files]
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
    ap.add_argument("--dry-run", action="store_true", help="print each file as PATH SIZE; upload nothing")
    ap.add_argument(
        "--private", action="store_true", help="create the Space private (an existing one keeps its setting)"
    )
    args = ap.parse_args(argv)
    try:
        files = snapshot_files()
        if args.dry_run:
            print(dry_run(files))
            return 0
        from huggingface_hub import HfApi

        url = deploy(args.space, files, HfApi(token=find_token()), private=args.private)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = sum((ROOT / p).stat().st_size for p in files)
    print(f"uploaded {len(files)} files ({total / 1e6:.1f} MB) to {url}; the Space builds and starts on its own")
    return 0


if __name__ == "__main__":
    sys.exit(main())
