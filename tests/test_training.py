"""The training loop: two stages, selection on validation only, resume after a kill."""

import json

import numpy as np
import pytest
import torch

from conftest import random_samples, tiny_model
from msa.config import TrainConfig
from msa.training import batch_indices, fit, lr_factor, make_optimisers, set_learning_rates, summarise


def _data():
    return {
        "train": random_samples(48, seed=1),
        "valid": random_samples(16, seed=2),
        "test": random_samples(16, seed=3),
    }


class Killed(Exception):
    pass


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, tokenizer, schedule):
    cfg = TrainConfig(epochs=3, batch_size=16, patience=10, seed=7, lr_schedule=schedule, warmup_ratio=0.2)
    straight = fit(tiny_model(seed=1), tokenizer, _data(), cfg, tmp_path / "straight", progress=False)

    def kill_after_2(epoch):
        if epoch == 2:
            raise Killed()

    with pytest.raises(Killed):
        fit(
            tiny_model(seed=1), tokenizer, _data(), cfg, tmp_path / "resumed", progress=False, on_epoch_end=kill_after_2
        )
    assert json.loads((tmp_path / "resumed/last/training_state.json").read_text())["loop"]["epoch"] == 2
    # a fresh process would build a fresh model: weights, optimisers, RNG come from the folder
    resumed = fit(tiny_model(seed=99), tokenizer, _data(), cfg, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.best_epoch == straight.best_epoch
    assert resumed.test == straight.test
    log = [json.loads(line) for line in (tmp_path / "resumed/log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    preds = (tmp_path / "resumed/predictions_test.csv").read_text().splitlines()
    assert preds[0] == "id,label,prediction" and len(preds) == 17


def test_linear_schedule_warms_up_then_decays_to_zero():
    cfg = TrainConfig(lr_schedule="linear", warmup_ratio=0.1)
    factors = [lr_factor(step, 100, cfg) for step in range(100)]
    assert factors[0] == pytest.approx(1 / 11) and factors[9] == pytest.approx(10 / 11)
    assert factors[10] == 1.0 and factors[-1] == pytest.approx(1 / 90)
    assert all(a > b for a, b in zip(factors[10:], factors[11:]))  # strictly decreasing after warmup
    assert all(lr_factor(s, 100, TrainConfig()) == 1.0 for s in (0, 50, 99))  # the paper: constant
    with pytest.raises(ValueError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.0)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")


def test_schedule_scales_each_group_from_its_own_base_rate():
    cfg = TrainConfig(lr=1e-3, text_lr=1e-4)
    opts = make_optimisers(tiny_model(), cfg)
    set_learning_rates(opts.main, cfg, 0.5)
    assert [g["lr"] for g in opts.main.param_groups] == pytest.approx([5e-4, 5e-5])
    set_learning_rates(opts.main, cfg, 1.0)  # no drift: always from the base rate
    assert [g["lr"] for g in opts.main.param_groups] == pytest.approx([1e-3, 1e-4])


def test_early_stopping_and_selection_on_validation(tmp_path, tokenizer):
    cfg = TrainConfig(epochs=30, batch_size=16, patience=2, lr=0.05, seed=3)  # lr too high: stalls fast
    result = fit(tiny_model(), tokenizer, _data(), cfg, tmp_path, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    maes = [r["valid_mae"] for r in log]
    assert len(log) < 30 and len(log) - result.best_epoch == 2  # stopped after `patience` bad epochs
    assert result.best_epoch == int(np.argmin(maes)) + 1
    assert result.valid["mae"] == pytest.approx(min(maes))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["best_epoch"] == result.best_epoch and set(saved["test"]) == set(result.test)


def test_ablation_switches_change_the_objective(tmp_path, tokenizer):
    data = _data()
    full = TrainConfig(epochs=1, batch_size=16, seed=1)
    fit(tiny_model(), tokenizer, data, full, tmp_path / "full", progress=False)
    log = json.loads((tmp_path / "full/log.jsonl").read_text().splitlines()[0])
    assert log["cmd"] > 0 and log["mi"] != 0 and "estimator" in log
    bare = TrainConfig(epochs=1, batch_size=16, seed=1, use_cmd=False, use_mi=False)
    fit(tiny_model(), tokenizer, data, bare, tmp_path / "bare", progress=False)
    log = json.loads((tmp_path / "bare/log.jsonl").read_text().splitlines()[0])
    assert log["cmd"] == 0 and log["mi"] == 0 and "estimator" not in log
    assert log["loss"] == pytest.approx(log["task"])


def test_epoch_schedule_runs_an_estimator_pass(tmp_path, tokenizer):
    model = tiny_model()
    q_before = [p.detach().clone() for p in model.estimator_parameters()]
    cfg = TrainConfig(epochs=1, batch_size=16, estimator_schedule="epoch", seed=1)
    fit(model, tokenizer, _data(), cfg, tmp_path, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(q_before, model.estimator_parameters()))


def test_batches_cover_every_sample_once_and_group_by_length():
    samples = random_samples(100)
    idx = batch_indices(samples, 8, shuffle=True, seed=0, group_by_length=True)
    assert sorted(i for b in idx for i in b) == list(range(100))
    assert idx == batch_indices(samples, 8, shuffle=True, seed=0, group_by_length=True)
    assert idx != batch_indices(samples, 8, shuffle=True, seed=1, group_by_length=True)


def test_summary_mean_and_std():
    s = summarise({1: {"mae": 1.0}, 2: {"mae": 2.0}, 3: {"mae": 3.0}})
    assert s["mae"]["mean"] == pytest.approx(2.0) and s["mae"]["std"] == pytest.approx(1.0)
