"""The training loop: two-stage optimisation, validation-only model selection, resume.

`train.py` is the command line around `fit`; tests call `fit` directly on tiny models. Under
torchrun `fit` trains through DDP (`distributed`: every rank computes the whole batch's losses,
rank 0 alone writes); one process runs exactly the code it ran before.

Run folder layout (one per seed)::

    best/                 checkpoint with the lowest validation MAE (the one that is tested)
    last/                 checkpoint at the end of the last finished epoch
    last/training_state.* optimiser, RNG and loop state, for --resume
    log.jsonl             one line of metrics per epoch
    results.json          best epoch, its validation metrics, the test metrics (once, at the end)
    predictions_test.csv  id,label,prediction on the test split
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import MODALITIES, TrainConfig
from ..data import Batch, Collator
from ..explain import wording
from ..features.spec import FeatureNormalizer, FeatureSpec
from ..io import atomic_save_tensors, atomic_write_bytes, atomic_write_json, recover_folder
from ..metrics import evaluate
from ..model.checkpoint import (
    WEIGHTS_FILE,
    TrainingRecord,
    load_checkpoint,
    load_state,
    load_tensors,
    save_checkpoint,
    trained_state,
)
from ..model.losses import representation_loss, task_loss
from ..model.network import ModelOutput, SentimentModel
from ..model.text_cache import FrozenLayerCache, attach
from ..sample import Sample
from .distributed import SINGLE, Replicas, World, current

logger = logging.getLogger(__name__)

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"


def set_seed(seed: int) -> None:
    """Seed every RNG the loop touches; CPU kernels used here are deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _text_length(s: Sample) -> int:
    return len(s.token_ids) if s.token_ids else len((s.text or "").split())


def batch_indices(
    samples: Sequence[Sample], batch_size: int, shuffle: bool, seed: int = 0, group_by_length: bool = False
) -> list[list[int]]:
    """Index lists for the batches of one pass.

    With ``group_by_length`` each shuffled chunk of 50 batches is sorted by text length before it
    is cut, and the batches are then shuffled: far less padding, same randomness of order.
    """
    order = list(range(len(samples)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    if group_by_length:
        chunk = batch_size * 50
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda j: _text_length(samples[j]))
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle and group_by_length:
        rng.shuffle(batches)
    return batches


@torch.no_grad()
def predict_scores(
    model: SentimentModel,
    samples: Sequence[Sample],
    collator: Collator,
    batch_size: int = 64,
    device: str = "cpu",
    world: World = SINGLE,
) -> np.ndarray:
    """Scores for ``samples`` in their order. Over several processes each scores every
    ``world.size``-th batch and every rank gets all the scores, each batch scored as in one."""
    model.eval()
    scores = np.zeros(len(samples), dtype=np.float64)
    batches = batch_indices(samples, batch_size, shuffle=False, group_by_length=True)
    for idx in batches[world.rank :: world.size]:
        batch = collator([samples[i] for i in idx]).to(device)
        scores[idx] = model(batch).score.double().cpu().numpy()
    return world.sum(scores)


def evaluate_samples(
    model: SentimentModel,
    samples: Sequence[Sample],
    collator: Collator,
    batch_size: int = 64,
    device: str = "cpu",
    world: World = SINGLE,
) -> tuple[dict[str, float], np.ndarray]:
    preds = predict_scores(model, samples, collator, batch_size, device, world)
    labels = np.array([s.label for s in samples], dtype=np.float64)
    return evaluate(preds, labels), preds


def write_predictions(path: Path, samples: Sequence[Sample], preds: np.ndarray) -> None:
    rows = ["id,label,prediction"] + [f"{_csv_field(s.id)},{s.label:.6g},{p:.6f}" for s, p in zip(samples, preds)]
    atomic_write_bytes(path, ("\n".join(rows) + "\n").encode())


def _csv_field(value: str) -> str:
    if any(ch in value for ch in ',"\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def drop_modalities(present: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Randomly mark present modalities absent with probability ``p`` each (modality dropout)."""
    if p <= 0:
        return present
    keep = torch.rand(present.shape, generator=generator) >= p
    return present & keep.to(present.device)


def warn_untrained_stand_ins(training: TrainingRecord) -> None:
    """One warning naming the modalities whose stand-in will stay at its initial value."""
    never = training.untrained_stand_ins()
    if never:
        logger.warning(wording.training_warning(never))


def _pairs_present(out: ModelOutput) -> dict[str, torch.Tensor]:
    text = out.present[:, 0]
    return {m: text & out.present[:, MODALITIES.index(m)] for m in ("acoustic", "visual")}


@dataclass
class Optimisers:
    main: torch.optim.Optimizer
    estimator: torch.optim.Optimizer | None

    def state_dicts(self) -> dict[str, dict[str, Any]]:
        out = {"main": self.main.state_dict()}
        if self.estimator is not None:
            out["estimator"] = self.estimator.state_dict()
        return out


def lr_factor(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Multiplier of every base learning rate at 0-based optimiser ``step`` of ``total_steps``."""
    if cfg.lr_schedule == "constant":
        return 1.0
    warmup = int(cfg.warmup_ratio * total_steps)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def set_learning_rates(opt: torch.optim.Optimizer, cfg: TrainConfig, factor: float) -> None:
    """Scale each group's configured rate (`make_optimisers`' order: main, then text backbone)."""
    for group, base in zip(opt.param_groups, (cfg.lr, cfg.text_lr)):
        group["lr"] = base * factor


def make_optimisers(model: SentimentModel, cfg: TrainConfig) -> Optimisers:
    groups: list[dict[str, Any]] = [{"params": model.main_parameters(), "lr": cfg.lr}]
    backbone = model.text_backbone_parameters()
    if backbone:
        groups.append({"params": backbone, "lr": cfg.text_lr})
    main = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    estimator = torch.optim.Adam(model.estimator_parameters(), lr=cfg.lr) if cfg.use_mi else None
    return Optimisers(main, estimator)


def estimator_step(
    model: SentimentModel, out: ModelOutput, opt: torch.optim.Optimizer, cfg: TrainConfig, world: World = SINGLE
) -> float:
    """Stage 1: fit q(y|x) alone on detached utterance vectors. Over several processes ``out`` is
    the whole batch (every rank computes the same gradient) and rank 0's gradient is used."""
    loss = model.mi.estimator_loss(out.utterances["text"], out.utterances, _pairs_present(out))
    if not loss.requires_grad:
        return 0.0
    opt.zero_grad(set_to_none=True)
    loss.backward()
    world.broadcast_gradients(model.estimator_parameters())
    torch.nn.utils.clip_grad_norm_(model.estimator_parameters(), cfg.grad_clip)
    opt.step()
    return float(loss.detach())


def main_step(
    model: SentimentModel, out: ModelOutput, batch: Batch, opt: torch.optim.Optimizer, cfg: TrainConfig
) -> dict[str, float]:
    """Stage 2: L_main = L_task + alpha * L_SI + beta * L_DI  [18], one optimiser step.

    Besides the losses it reports the two terms of the bound, E log q (``mi_log_q``) and H
    (``mi_entropy``), summed over the pairs: a bound won by collapse shows as a log q term that
    keeps rising.
    """
    loss, parts = main_objective(model, out, batch.labels, cfg)
    optimiser_step(loss, opt, cfg)
    return parts


def main_objective(
    model: SentimentModel, out: ModelOutput, labels: torch.Tensor, cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_main [18] of ``out`` and its parts as floats (`main_step`'s report)."""
    l_task = task_loss(out.score, labels)
    loss = l_task
    l_cmd = l_si = log_q = entropy = out.score.new_zeros(())
    if cfg.use_cmd and cfg.beta:
        l_cmd = representation_loss(out.utterances, out.present, cfg.cmd_moments)
        loss = loss + cfg.beta * l_cmd
    if cfg.use_mi and cfg.alpha:
        terms = model.mi.terms(out.utterances["text"], out.utterances, _pairs_present(out), labels)
        log_q, entropy = terms.log_q, terms.entropy
        l_si = -terms.total
        loss = loss + cfg.alpha * l_si
    return loss, {
        "loss": float(loss.detach()),
        "task": float(l_task.detach()),
        "cmd": float(l_cmd.detach()),
        "mi": float(l_si.detach()),
        "mi_log_q": float(log_q.detach()),
        "mi_entropy": float(entropy.detach()),
    }


def optimiser_step(loss: torch.Tensor, opt: torch.optim.Optimizer, cfg: TrainConfig) -> None:
    """Backward, clip the gradient of ``opt``'s parameters, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in opt.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()


def _replicated_step(
    model: SentimentModel, replicas: Replicas, batch: Batch, opts: Optimisers, cfg: TrainConfig, fit_q: bool
) -> dict[str, float]:
    """The two stages over several processes (`distributed`): this rank's rows of the global
    ``batch`` through DDP, then, on the whole batch gathered, q's step (``fit_q``) and L_main."""
    report: dict[str, float] = {}

    def objective(local: ModelOutput) -> tuple[torch.Tensor, dict[str, float]]:
        out = replicas.gather(local, batch)
        if fit_q:
            report["estimator"] = estimator_step(model, out, opts.estimator, cfg, replicas.world)
        loss, parts = main_objective(model, out, batch.labels, cfg)
        return loss, parts

    loss, parts = replicas.net(replicas.rows(batch), objective)
    optimiser_step(loss, opts.main, cfg)
    return {**report, **parts}


def train_epoch(
    model: SentimentModel,
    samples: Sequence[Sample],
    collator: Collator,
    opts: Optimisers,
    cfg: TrainConfig,
    epoch: int,
    progress: bool = True,
    replicas: Replicas | None = None,
) -> dict[str, float]:
    """One pass over the training split; returns mean losses. With ``replicas`` (several
    processes) every rank draws the same global batches and trains on its rows of each."""
    model.train()
    model.mi.reset_memory()  # per-epoch memory: a resumed run sees exactly what a straight run saw
    seed = cfg.seed * 1000 + epoch
    gen = torch.Generator().manual_seed(seed)
    batches = batch_indices(samples, cfg.batch_size, True, seed, cfg.group_by_length)
    totals: dict[str, float] = {}
    world = replicas.world if replicas is not None else SINGLE
    if replicas is not None:
        replicas.seed_dropout(cfg.seed, epoch)

    def collate(batch_idx: list[int]) -> Batch:
        batch = collator([samples[i] for i in batch_idx]).to(cfg.device)
        batch.present = drop_modalities(batch.present, cfg.modality_dropout, gen)
        return batch

    def run(batch_idx: list[int]) -> tuple[ModelOutput, Batch]:
        batch = collate(batch_idx)
        if replicas is not None:  # the epoch schedule's pass, without gradients
            return replicas.gather(model(replicas.rows(batch)), batch), batch
        return model.fuse(model.encode(batch), batch.present), batch

    if cfg.use_mi and cfg.estimator_schedule == "epoch":
        # MMIM's schedule: a whole pass fitting q(y|x), then a whole pass of the main step.
        for idx in tqdm(batches, desc=f"epoch {epoch} q", disable=not progress, leave=False):
            with torch.no_grad():
                out, _ = run(idx)
            loss = estimator_step(model, out, opts.estimator, cfg, world)
            totals["estimator"] = totals.get("estimator", 0.0) + loss

    # The schedule is a function of the global step, so a resumed run follows it exactly.
    total_steps = cfg.epochs * len(batches)
    fit_q = cfg.use_mi and cfg.estimator_schedule == "iteration"
    for step, idx in enumerate(tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False)):
        set_learning_rates(opts.main, cfg, lr_factor((epoch - 1) * len(batches) + step, total_steps, cfg))
        if replicas is not None:
            parts = _replicated_step(model, replicas, collate(idx), opts, cfg, fit_q)
        else:
            out, batch = run(idx)
            if fit_q:
                totals["estimator"] = totals.get("estimator", 0.0) + estimator_step(model, out, opts.estimator, cfg)
            parts = main_step(model, out, batch, opts.main, cfg)
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + v
    return {k: v / len(batches) for k, v in totals.items()}


# --- resume state -----------------------------------------------------------------------------


def _flatten_optimiser(name: str, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Split an optimiser state dict into tensors (safetensors) and the rest (JSON)."""
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimiser(name: str, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field_name = key[len(prefix) :].split(".", 1)
            state.setdefault(int(idx), {})[field_name] = value
    for idx, extra in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(extra)
    return {"state": state, "param_groups": meta["param_groups"]}


@dataclass
class LoopState:
    """What the loop needs besides weights and optimisers to continue where it stopped."""

    epoch: int = 0  # epochs finished
    best_mae: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)


def save_training_state(folder: Path, opts: Optimisers, loop: LoopState) -> None:
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    meta: dict[str, Any] = {"loop": vars(loop), "optimisers": {}}
    for name, sd in opts.state_dicts().items():
        meta["optimisers"][name] = _flatten_optimiser(name, sd, tensors)
    atomic_save_tensors(folder / STATE_TENSORS, tensors)
    atomic_write_json(folder / STATE_JSON, meta)


def load_training_state(folder: Path, opts: Optimisers) -> LoopState:
    tensors = load_tensors(folder / STATE_TENSORS)
    meta = json.loads((folder / STATE_JSON).read_text())
    for name, opt in (("main", opts.main), ("estimator", opts.estimator)):
        if opt is not None:
            opt.load_state_dict(_unflatten_optimiser(name, meta["optimisers"][name], tensors))
    torch.set_rng_state(tensors["rng.torch"])
    return LoopState(**meta["loop"])


# --- fit ----------------------------------------------------------------------------------------


@dataclass
class EpochReport:
    """One finished epoch: its mean training losses and validation metrics."""

    epoch: int
    losses: dict[str, float]
    valid: dict[str, float]
    improved: bool  # the best validation MAE so far: the model to keep
    seconds: float
    valid_predictions: np.ndarray | None = None  # the scores behind ``valid``, in the split's order


def run_epochs(
    model: SentimentModel,
    data: dict[str, list[Sample]],
    collator: Collator,
    opts: Optimisers,
    cfg: TrainConfig,
    loop: LoopState,
    progress: bool = False,
    replicas: Replicas | None = None,
) -> Iterator[EpochReport]:
    """Train epoch after epoch from ``loop``'s state until ``cfg.epochs`` or ``cfg.patience``
    runs out, validating after each; ``loop`` is updated before each report is yielded.

    The one loop of `fit` (which writes checkpoints on each report) and of the Fusion Lab (which
    keeps the best weights in memory); a caller that stops iterating stops the training. With
    ``replicas`` every rank validates its share and takes rank 0's metrics, so all ranks keep
    the same loop state and stop together.
    """
    world = replicas.world if replicas is not None else SINGLE
    while loop.epoch < cfg.epochs and loop.bad_epochs < cfg.patience:
        epoch = loop.epoch + 1
        t0 = time.perf_counter()
        losses = train_epoch(model, data["train"], collator, opts, cfg, epoch, progress, replicas)
        valid, preds = evaluate_samples(model, data["valid"], collator, cfg.batch_size, cfg.device, world)
        valid = world.broadcast_floats(valid)
        improved = valid["mae"] < loop.best_mae
        if improved:
            loop.best_mae, loop.best_epoch, loop.bad_epochs = valid["mae"], epoch, 0
        else:
            loop.bad_epochs += 1
        loop.epoch = epoch
        seconds = time.perf_counter() - t0
        loop.log.append({"epoch": epoch, "seconds": seconds, **losses, **{f"valid_{k}": v for k, v in valid.items()}})
        yield EpochReport(epoch, losses, valid, improved, seconds, preds)


@dataclass
class FitResult:
    run_dir: Path
    best_epoch: int
    valid: dict[str, float]
    test: dict[str, float] | None
    seconds: float


def fit(
    model: SentimentModel,
    tokenizer: Any,
    data: dict[str, list[Sample]],
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    feature_spec: FeatureSpec | None = None,
    normalizer: FeatureNormalizer | None = None,
    meta: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``data['train']``, select on ``data['valid']``, test once on ``data['test']``.

    Parameters
    ----------
    feature_spec, normalizer : the extractor's spec and the train split's frame normaliser, for a
        model trained on extracted features (`msa.features.videos.load_videos`); stored in every
        checkpoint so that the app serves it the same features.
    meta : stored in every checkpoint beside the settings, the training record and the epoch's
        validation metrics (e.g. the command that ran).
    on_epoch_end : called with the epoch number after its checkpoint is written (tests use it
        to simulate a kill).

    In a process group (``torchrun``, `distributed.start`) every rank trains its share of each
    global batch through DDP and gets the same result; rank 0 alone fills ``cfg.text_cache_dir``
    (the others then read it), writes checkpoints, logs and results, and prints. With ``resume``
    every rank reads ``run_dir/last``: on several machines it must be on a shared filesystem.
    """
    world = current()
    progress = progress and world.is_main
    for split in ("train", "valid"):
        if not data.get(split):
            raise ValueError(f"training needs a non-empty {split!r} split; got splits {sorted(data)}")
    run_dir = Path(run_dir)
    training = TrainingRecord.of(data["train"], cfg.modality_dropout)
    warn_untrained_stand_ins(training)
    stored = dict(feature_spec=feature_spec, normalizer=normalizer, training=training)
    meta = {**(meta or {}), "train": cfg.to_dict()}
    collator = Collator.for_model(tokenizer, model.config)
    model.to(cfg.device)
    with world.main_first():  # the others then read what rank 0 computed, and write nothing
        cache = text_cache_for(model, data, collator, cfg, progress, read_only=not world.is_main)
    opts = make_optimisers(model, cfg)
    set_seed(cfg.seed)
    loop = LoopState()
    last = run_dir / "last"
    if world.is_main:
        recover_folder(last)  # a kill in the middle of swapping `last` in
    world.barrier()
    found = world.broadcast_floats({"resume": float(resume and (last / STATE_JSON).is_file())})["resume"]
    if found:  # rank 0's decision: every rank resumes, or none
        if not (last / STATE_JSON).is_file():
            raise ValueError(f"rank {world.rank} cannot read {last}: --resume needs --run-dir on a shared filesystem")
        load_state(model, last / WEIGHTS_FILE, trained_state(model)[1])
        loop = load_training_state(last, opts)
    replicas = Replicas(model, world) if world.size > 1 else None
    started = time.perf_counter()

    for report in run_epochs(model, data, collator, opts, cfg, loop, progress, replicas):
        if not world.is_main:
            continue
        if report.improved:
            save_checkpoint(
                run_dir / "best",
                model,
                tokenizer,
                **stored,
                meta={**meta, "epoch": report.epoch, "valid": report.valid},
                weights_dtype=cfg.best_checkpoint_dtype,
            )
        save_checkpoint(
            last,
            model,
            tokenizer,
            **stored,
            meta={**meta, "epoch": report.epoch, "valid": report.valid},
            extra=lambda folder: save_training_state(folder, opts, loop),
        )
        atomic_write_bytes(run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in loop.log).encode())
        if progress:
            print(
                f"epoch {report.epoch}: loss {report.losses['loss']:.4f} valid mae {report.valid['mae']:.4f} "
                f"acc2_non0 {report.valid['acc2_non0']:.2f}{'  *best' if report.improved else ''}",
                flush=True,
            )
        if on_epoch_end is not None:
            on_epoch_end(report.epoch)

    world.barrier()  # rank 0 has written the best checkpoint
    best = load_checkpoint(run_dir / "best", cfg.device)
    if cache is not None:
        attach(best.model.text, cache.rebind(best.model.text.backbone))
    valid, _ = evaluate_samples(best.model, data["valid"], collator, cfg.batch_size, cfg.device, world)
    test = None
    if data.get("test"):
        # The test split is touched once, here, with the model chosen on validation.
        test, preds = evaluate_samples(best.model, data["test"], collator, cfg.batch_size, cfg.device, world)
        if world.is_main:
            write_predictions(run_dir / "predictions_test.csv", data["test"], preds)
    result = FitResult(run_dir, loop.best_epoch, valid, test, time.perf_counter() - started)
    if not world.is_main:
        return result
    atomic_write_json(
        run_dir / "results.json",
        {
            "seed": cfg.seed,
            "best_epoch": result.best_epoch,
            "epochs_run": loop.epoch,
            "valid": valid,
            "test": test,
            "seconds_this_process": result.seconds,
        },
    )
    return result


def text_cache_for(
    model: SentimentModel,
    data: dict[str, list[Sample]],
    collator: Collator,
    cfg: TrainConfig,
    progress: bool,
    read_only: bool = False,
) -> FrozenLayerCache | None:
    """With ``cfg.text_cache_dir``: route the model's text encoder through a cache of its frozen
    lower layers, filled up front with every text of every split (each distinct text once)."""
    if not cfg.text_cache_dir:
        return None
    return cache_text(model, data, collator, cfg.text_cache_dir, progress, read_only=read_only)


def cache_text(
    model: SentimentModel,
    data: dict[str, list[Sample]],
    collator: Collator,
    folder: str | Path | None = None,
    progress: bool = False,
    frozen_layers: int | None = None,
    read_only: bool = False,
) -> FrozenLayerCache:
    """Route the model's text encoder through a cache of its frozen lower layers (in ``folder``,
    or in memory), filled now with every text of every split, each distinct text once.
    ``frozen_layers`` overrides the encoder's own count (fine-tuning caches all of them);
    ``read_only`` reads ``folder`` and keeps what it computes in memory (ranks other than 0)."""
    depth = model.text.frozen_layers() if frozen_layers is None else frozen_layers
    cache = FrozenLayerCache(model.text.backbone, depth, folder, read_only=read_only)
    attach(model.text, cache)
    seen: dict[tuple[str, tuple[int, ...]], Sample] = {}
    for samples in data.values():
        for s in samples:
            seen.setdefault((s.text or "", tuple(s.token_ids or ())), s)  # what the collator tokenises
    unique = list(seen.values())
    batches = batch_indices(unique, 64, shuffle=False, group_by_length=True)
    before = len(cache)
    t0 = time.perf_counter()
    cache.fill(
        (b.input_ids, b.text_mask)
        for b in (
            collator([unique[i] for i in idx])
            for idx in tqdm(batches, desc="text cache", disable=not progress, leave=False)
        )
    )
    logger.info(
        "text cache %s: %d texts, %d computed now in %.0f s (%d frozen layers)",
        folder or "in memory",
        len(unique),
        len(cache) - before,
        time.perf_counter() - t0,
        cache.frozen_layers,
    )
    return cache


def summarise(results: dict[int, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and (sample) standard deviation of each metric over seeds."""
    keys = next(iter(results.values())).keys()
    out = {}
    for k in keys:
        vals = np.array([r[k] for r in results.values()], dtype=np.float64)
        out[k] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
    return out


def write_summary(folder: Path, per_seed: dict[int, dict[str, float]]) -> dict[str, dict[str, float]]:
    summary = summarise(per_seed)
    atomic_write_json(folder / "summary.json", {"per_seed": per_seed, "summary": summary})
    keys = list(next(iter(per_seed.values())).keys())
    lines = ["seed," + ",".join(keys)]
    lines += [f"{seed}," + ",".join(f"{m[k]:.4f}" for k in keys) for seed, m in per_seed.items()]
    lines += ["mean," + ",".join(f"{summary[k]['mean']:.4f}" for k in keys)]
    lines += ["std," + ",".join(f"{summary[k]['std']:.4f}" for k in keys)]
    atomic_write_bytes(folder / "summary.csv", ("\n".join(lines) + "\n").encode())
    return summary


def format_table(summary: dict[str, dict[str, float]]) -> str:
    head = " | ".join(f"{k:>10}" for k in summary)
    row = " | ".join(
        f"{v['mean']:6.3f}±{v['std']:.3f}" if k in ("mae", "corr") else f"{v['mean']:5.2f}±{v['std']:.2f}"
        for k, v in summary.items()
    )
    return f"{head}\n{row}"


__all__ = [
    "fit",
    "predict_scores",
    "evaluate_samples",
    "FitResult",
    "TrainConfig",
    "summarise",
    "write_summary",
    "format_table",
    "batch_indices",
    "write_predictions",
]
