"""Faults (issue 6): a kill during a checkpoint write never leaves a folder that loads as valid
but is not one of the checkpoints that were saved.

Known bug (xfail, strict): weights and config.json are two renames, so a kill between them
leaves one save's weights beside the other's config; the random-kill test records such
outcomes, the deterministic test fails on them.

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
from conftest import ROOT, random_samples, tiny_model

import msa.checkpoint as ckpt
from msa.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_checkpoint, save_checkpoint
from msa.data import Collator
from msa.training import predict

SEEDS = {"A": 11, "B": 22}
KILLS = 6

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    from conftest import tiny_model
    from msa.checkpoint import save_checkpoint
    from msa.text_encoder import load_tokenizer
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
    return predict(model, samples, Collator(tokenizer, c.acoustic_dim, c.visual_dim, c.max_text_len))


@pytest.fixture(scope="module")
def reference(tokenizer) -> dict[str, np.ndarray]:
    samples = random_samples(4, seed=3)
    return {name: _scores(tiny_model(seed=seed), tokenizer, samples) for name, seed in SEEDS.items()}


def _check_folder(folder: Path, reference: dict[str, np.ndarray], same_config: bool = True) -> str:
    """'error', or the name of the model that loaded; fails on weights that were never saved and
    (``same_config``) on one save's weights beside another save's config."""
    try:
        loaded = load_checkpoint(folder)
    except CheckpointError:
        return "error"
    scores = _scores(loaded.model, loaded.tokenizer, random_samples(4, seed=3))
    same = [name for name, ref in reference.items() if np.array_equal(scores, ref)]
    assert same, "the checkpoint loaded as valid, with weights that are neither of the saved models"
    if not same_config and loaded.meta.get("which") != same[0]:
        return f"{same[0]} weights + {loaded.meta.get('which')} config"
    assert loaded.meta.get("which") == same[0], (
        f"weights of model {same[0]} loaded with the config of model {loaded.meta.get('which')}"
    )
    return same[0]


def test_kill_during_save_never_leaves_a_valid_but_wrong_checkpoint(tmp_path: Path, reference) -> None:
    folder = tmp_path / "ck"
    rng = random.Random(0)
    code = CHILD.format(tests=str(ROOT / "tests"), seeds=SEEDS, folder=str(folder))
    outcomes = []
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT)
        try:
            assert proc.stdout is not None
            t0 = time.perf_counter()
            line = proc.stdout.readline()  # blocks until the first save is complete
            assert line.strip() == b"ready", f"child did not start: {line!r}"
            assert time.perf_counter() - t0 < 60
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        # The weights are always one whole save; the config may be the previous save's (the bug
        # pinned down by the xfail test below), so that is recorded here, not failed.
        outcomes.append(_check_folder(folder, reference, same_config=False))
        # Leftovers of the interrupted write are hidden temporaries, never the checkpoint's names.
        for p in folder.iterdir():
            assert p.name in (CONFIG_FILE, WEIGHTS_FILE, "tokenizer") or p.name.startswith("."), p.name
    # Each kill came after at least one complete save: some load must have succeeded.
    assert any(o != "error" for o in outcomes), outcomes
    print("outcomes after each kill:", outcomes)
    # A fresh save over the debris is clean and loads as itself.
    model = tiny_model(seed=SEEDS["A"])
    from msa.text_encoder import load_tokenizer

    save_checkpoint(folder, model, load_tokenizer("sentence-transformers/all-MiniLM-L6-v2"), meta={"which": "A"})
    assert _check_folder(folder, reference) == "A"


@pytest.mark.xfail(strict=True, reason=(
    "msa/checkpoint.py save_checkpoint writes model.safetensors and config.json as two separate "
    "atomic renames: a kill after the weights are replaced and before config.json is (the same "
    "window exists for the tokenizer folder) leaves the new weights beside the old config, which "
    "loads as valid with the wrong meta/normalizer/feature_spec. Fix: write the whole checkpoint "
    "into a fresh hidden sibling folder and swap it in with one rename (as _save_tokenizer does), "
    "or store a digest of the weights in config.json and refuse a mismatch on load."))
def test_save_interrupted_between_weights_and_config_is_not_valid(tmp_path: Path, tokenizer, reference,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The deterministic form of the window the random kills above can hit."""
    folder = tmp_path / "ck"
    save_checkpoint(folder, tiny_model(seed=SEEDS["A"]), tokenizer, meta={"which": "A"})

    class Killed(BaseException):
        pass

    def die(*args, **kwargs):
        raise Killed  # the process dies here: nothing after this line of save_checkpoint runs

    monkeypatch.setattr(ckpt, "atomic_write_json", die)
    with pytest.raises(Killed):
        save_checkpoint(folder, tiny_model(seed=SEEDS["B"]), tokenizer, meta={"which": "B"})
    monkeypatch.undo()
    _check_folder(folder, reference)


@pytest.mark.xfail(strict=True, reason=(
    "msa/checkpoint.py atomic_write_bytes/atomic_save_tensors/_save_tokenizer leave their hidden "
    "'.model.safetensors.*.tmp' / '.tokenizer.*' temporaries behind when the process is killed, and "
    "a later save never removes them: repeated kills (e.g. a preempted training job with --resume) "
    "grow the folder by one model size each. Fix: save_checkpoint removes '.<name>.*' leftovers of "
    "its own files before writing."))
def test_debris_of_a_killed_save_is_removed_by_the_next_save(tmp_path: Path, tokenizer) -> None:
    folder = tmp_path / "ck"
    save_checkpoint(folder, tiny_model(seed=1), tokenizer)
    # What a SIGKILL inside atomic_save_tensors / _save_tokenizer leaves behind.
    (folder / f".{WEIGHTS_FILE}.abc123.tmp").write_bytes(os.urandom(1024))
    (folder / ".tokenizer.xyz789").mkdir()
    save_checkpoint(folder, tiny_model(seed=2), tokenizer)
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE, "tokenizer"]
