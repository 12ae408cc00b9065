"""train.py and `python -m msa evaluate` end to end on a small MMSA-layout pickle."""

import csv
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from msa.data import make_synthetic, write_mmsa_pickle
from msa.data.batch import stream_widths
from msa.data.sources import merge_datasets
from msa.training.experiment import parse_args


def _evaluate(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m msa evaluate ARGS` run from the repository's root, as a person types it."""
    cmd = [sys.executable, "-m", "msa", "evaluate", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.slow  # train.py, then the evaluate command, each in its own process
def test_train_then_evaluate_reproduces_the_test_metrics(tmp_path, tokenizer):
    pkl = tmp_path / "unaligned_50.pkl"
    write_mmsa_pickle(make_synthetic("mosi", n_train=48, n_valid=16, n_test=16, seed=3), pkl, tokenizer)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "--data",
        str(pkl),
        "--tiny-text-encoder",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--hidden",
        "32",
        "--fusion-heads",
        "2",
        "--seeds",
        "5,6",
        "--run-dir",
        str(run),
        "--quiet",
        "--no-mf",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mean±std" in done.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["per_seed"]) == {"5", "6"}
    assert set(summary["summary"]) == {"mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"}
    with open(run / "summary.csv") as f:
        assert [r[0] for r in csv.reader(f)] == ["seed", "5", "6", "mean", "std"]
    config = json.loads((run / "seed5/best/config.json").read_text())
    assert config["model"]["gates"] == "none" and config["model"]["hidden"] == 32
    assert config["meta"]["command"] == ["train.py", *cmd[2:]]  # the data arguments travel with it
    assert config["meta"]["train"]["seed"] == 5 and config["meta"]["epoch"] == 1

    out = tmp_path / "pred.csv"
    ev = _evaluate(
        "--checkpoint",
        str(run / "seed5/best"),
        "--data",
        str(pkl),
        "--split",
        "test",
        "--predictions",
        str(out),
        "--json",
    )
    assert ev.returncode == 0, ev.stderr[-2000:]
    metrics = json.loads(ev.stdout)["metrics"]
    expected = json.loads((run / "seed5/results.json").read_text())["test"]
    for k, v in expected.items():
        assert metrics[k] == pytest.approx(v, abs=1e-9), k
    assert out.read_text().splitlines()[0] == "id,label,prediction"


def test_evaluate_bad_input_is_one_line_not_a_traceback(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("id,text,label\nx,hello,1.0\n")  # no mode column
    ev = _evaluate("--checkpoint", str(ROOT / "checkpoints/default"), "--labels", str(bad))
    assert ev.returncode != 0
    assert "Traceback" not in ev.stderr and str(bad) in ev.stderr
    missing = _evaluate("--checkpoint", str(tmp_path / "nope"), "--labels", str(bad))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and "nope" in missing.stderr


def test_valid_and_test_splits_can_come_from_one_dataset():
    mosi, mosei = "synthetic:mosi,n_train=8,n_valid=3,n_test=2", "synthetic:mosei,n_train=5,n_valid=4,n_test=6"
    data = merge_datasets([mosi, mosei], limit=0, valid_spec=mosi, test_spec=mosi)
    assert len(data["train"]) == 13  # merged
    assert len(data["valid"]) == 3 and len(data["test"]) == 2  # MOSI's only
    assert len(merge_datasets([mosi, mosei], limit=0)["valid"]) == 7
    pooled = merge_datasets([mosi, mosei], limit=0, valid_spec=[mosi, mosei], test_spec=mosi)
    assert len(pooled["valid"]) == 7 and len(pooled["test"]) == 2


def test_train_repeat_oversamples_one_training_split_only():
    mosi, mosei = "synthetic:mosi,n_train=8,n_valid=3,n_test=2", "synthetic:mosei,n_train=5,n_valid=4,n_test=6"
    data = merge_datasets([mosi, mosei], limit=0, train_repeat=[3, 1])
    assert len(data["train"]) == 3 * 8 + 5
    assert len(data["valid"]) == 7 and len(data["test"]) == 8  # selection and test untouched
    copies = [sum(t is s for t in data["train"]) for s in data["train"]]
    assert copies == [3] * 24 + [1] * 5
    args = parse_args(["--data", mosi, "--data", mosei, "--train-repeat", "3,1"])
    assert args.train_repeat == [3, 1]
    for bad in ("3", "3,0", "three,1"):
        with pytest.raises(SystemExit):
            parse_args(["--data", mosi, "--data", mosei, "--train-repeat", bad])


def test_datasets_with_different_feature_widths_are_refused_before_training(tmp_path):
    mosi, mosei = "synthetic:mosi,n_train=4,n_valid=2,n_test=2", "synthetic:mosei,n_train=4,n_valid=2,n_test=2"
    assert stream_widths(merge_datasets([mosi], limit=0)) == {"acoustic_dim": 5, "visual_dim": 20}
    with pytest.raises(ValueError, match=r"acoustic feature width: 5 .* 74 "):
        stream_widths(merge_datasets([mosi, mosei], limit=0))
    # train.py says so in one line, before any training.
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--data",
            mosi,
            "--data",
            mosei,
            "--tiny-text-encoder",
            "--run-dir",
            str(tmp_path / "run"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: the datasets disagree on the acoustic")


def test_console_entry_points_resolve_to_working_commands(capsys):
    """pyproject.toml's `msa` and `msa-train` name functions that exist and answer --help."""
    import importlib
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"msa", "msa-train"}
    for name, target in scripts.items():
        module, func = target.split(":")
        main = getattr(importlib.import_module(module), func)
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        assert info.value.code == 0, name
        assert "usage:" in capsys.readouterr().out


def test_each_ablation_changes_exactly_its_own_setting():
    from msa.config import ABLATIONS, ModelConfig, TrainConfig, ablate

    model, train = ModelConfig(), TrainConfig()
    changed = {}
    for name in ABLATIONS:
        m, t = ablate(model, train, [name])
        changed[name] = {
            k for k, v in {**m.to_dict(), **t.to_dict()}.items() if v != {**model.to_dict(), **train.to_dict()}[k]
        }
    assert changed == {"rl": {"use_cmd"}, "mf": {"gates"}, "mi": {"use_mi"}}
    m, t = ablate(model, train, ABLATIONS)
    assert (m.gates, t.use_cmd, t.use_mi) == ("none", False, False)
    with pytest.raises(ValueError, match="unknown ablation gates"):
        ablate(model, train, ["gates"])
