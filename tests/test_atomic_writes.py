"""Faults (issue 6): a kill during a checkpoint write never leaves a folder that loads as valid
but is not one of the checkpoints that were saved.

A save writes the whole folder aside and swaps it in (msa.io.replace_folder), so a kill
leaves the previous checkpoint or the new one, never one save's weights beside another's config;
the deterministic tests pin down both kill windows.

A child process saves two different tiny models, A and B (same shape, other weights, other
``meta``), over the same folder in a loop and is killed with SIGKILL after a random delay.
After every kill, `load_checkpoint` must either raise `CheckpointError` or give a model whose
predictions are exactly A's or exactly B's, *and* whose config (meta) belongs to the same model;
leftover temporary files must be hidden (dot-prefixed) and never picked up as the checkpoint.

The feature cache's corrupt-entry detection is already covered by
tests/test_features.py::test_cache_hits_detects_corruption_and_spec_change.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import msa.model.checkpoint as ckpt
from conftest import ROOT, random_samples
from msa.data import Collator
from msa.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_checkpoint, save_checkpoint
from msa.testing import tiny_model
from msa.training.loop import predict_scores

# Slow (repeated SIGKILLs of a saving subprocess):
# `pytest -m "not slow"` leaves it out.
pytestmark = pytest.mark.slow

SEEDS = {"A": 11, "B": 22}
KILLS = 6

CHILD = textwrap.dedent(
    """
    import torch
    torch.set_num_threads(1)
    from conftest import tiny_model
    from msa.model.checkpoint import save_checkpoint
    from msa.model.text_encoder import load_tokenizer
    tok = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    models = {{name: tiny_model(seed=seed) for name, seed in {seeds!r}.items()}}
    first = True
    while True:
        for name, model in models.items():
            save_checkpoint({folder!r}, model, tok, meta={{"which": name}})
            if first:
                print("ready", flush=True)
                first = False
    """
)


def _scores(model, tokenizer, samples) -> np.ndarray:
    c = model.config
    return predict_scores(model, samples, Collator.for_model(tokenizer, c))


@pytest.fixture(scope="module")
def reference(tokenizer) -> dict[str, np.ndarray]:
    samples = random_samples(4, seed=3)
    return {name: _scores(tiny_model(seed=seed), tokenizer, samples) for name, seed in SEEDS.items()}


def _check_folder(folder: Path, reference: dict[str, np.ndarray]) -> str:
    """'error', or the name of the model that loaded; fails on weights that were never saved and
    on one save's weights beside another save's config."""
    try:
        loaded = load_checkpoint(folder)
    except CheckpointError:
        return "error"
    scores = _scores(loaded.model, loaded.tokenizer, random_samples(4, seed=3))
    same = [name for name, ref in reference.items() if np.array_equal(scores, ref)]
    assert same, "the checkpoint loaded as valid, with weights that are neither of the saved models"
    assert loaded.meta.get("which") == same[0], (
        f"weights of model {same[0]} loaded with the config of model {loaded.meta.get('which')}"
    )
    return same[0]


def test_kill_during_save_never_leaves_a_valid_but_wrong_checkpoint(tmp_path: Path, reference) -> None:
    folder = tmp_path / "ck"
    rng = random.Random(0)
    code = CHILD.format(seeds=SEEDS, folder=str(folder))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}  # conftest, msa
    outcomes = []
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the first save is complete
            assert line.strip() == b"ready", f"child did not start: {line!r}"
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        # Weights and config always come from the same save (or loading refuses).
        outcomes.append(_check_folder(folder, reference))
        # Loading recovered or removed what the interrupted swap left beside the folder.
        assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE, "tokenizer"]
        assert [p.name for p in folder.parent.iterdir()] == ["ck"]
    # Each kill came after at least one complete save: some load must have succeeded.
    assert any(o != "error" for o in outcomes), outcomes
    print("outcomes after each kill:", outcomes)
    # A fresh save over the debris is clean and loads as itself.
    model = tiny_model(seed=SEEDS["A"])
    from msa.model.text_encoder import load_tokenizer

    save_checkpoint(folder, model, load_tokenizer("sentence-transformers/all-MiniLM-L6-v2"), meta={"which": "A"})
    assert _check_folder(folder, reference) == "A"


class Killed(BaseException):
    """The process dying at that point (a BaseException: no ``except Exception`` in a save catches it)."""


def _save_a_then_b_killed(folder: Path, tokenizer, monkeypatch: pytest.MonkeyPatch, owner, name: str, fake) -> None:
    """Save model A, then model B with ``owner.name`` replaced by ``fake``, which raises `Killed`
    where the process dies: nothing after that point of save_checkpoint runs."""
    save_checkpoint(folder, tiny_model(seed=SEEDS["A"]), tokenizer, meta={"which": "A"})
    monkeypatch.setattr(owner, name, fake)
    with pytest.raises(Killed):
        save_checkpoint(folder, tiny_model(seed=SEEDS["B"]), tokenizer, meta={"which": "B"})
    monkeypatch.undo()


def test_save_killed_while_writing_leaves_the_previous_checkpoint(
    tmp_path: Path, tokenizer, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic form of a kill while the new files are being written."""
    folder = tmp_path / "ck"

    def die(*args, **kwargs):
        raise Killed

    _save_a_then_b_killed(folder, tokenizer, monkeypatch, ckpt, "save_file", die)
    assert _check_folder(folder, reference) == "A"


def test_save_killed_between_the_two_renames_is_recovered(
    tmp_path: Path, tokenizer, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old folder is set aside and the new one not yet in place: loading puts the old one back."""
    folder = tmp_path / "ck"
    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise Killed
        real_replace(src, dst)

    _save_a_then_b_killed(folder, tokenizer, monkeypatch, ckpt.os, "replace", replace_then_die)
    assert not folder.exists()  # the window: the checkpoint is set aside
    assert _check_folder(folder, reference) == "A"
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # nothing left beside it


def test_debris_of_a_killed_save_is_removed_by_the_next_save(tmp_path: Path, tokenizer) -> None:
    folder = tmp_path / "ck"
    save_checkpoint(folder, tiny_model(seed=1), tokenizer)
    # What a SIGKILL inside a save leaves behind: an unfinished hidden copy beside the folder.
    (tmp_path / ".ck.new.abc123").mkdir()
    (tmp_path / ".ck.new.abc123" / WEIGHTS_FILE).write_bytes(os.urandom(1024))
    (folder / f".{WEIGHTS_FILE}.abc123.tmp").write_bytes(os.urandom(1024))  # older per-file temporaries
    save_checkpoint(folder, tiny_model(seed=2), tokenizer)
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE, "tokenizer"]
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
