"""Fine-tune a checkpoint's voice and face on one's own labelled clips.

    tune = Finetune(base, clips, spec)            # clips: `extract_clips`' output
    for progress in tune.train():                 # one item per epoch: draw it, or `tune.stop()`
        print(progress.line())
    result = tune.finish()                        # the model, beside the base on the same clips
    save_finetuned(result, "checkpoints/mine")

What trains: the acoustic and visual encoders (new, at the extractor's widths), the gated layers,
the stand-ins and the head, all starting from the base checkpoint; the words' encoder stays the
base's (its text encoder and projections frozen, their states computed once per sentence), while
the fusion and head that read it train: how much the words count can change.
Modality dropout trains the stand-ins, so the Shapley values and what-ifs stay meaningful.

Selection without a test set of its own: the clips are split into k folds (by speaker when the
labels name speakers), a model is trained on each k-1 and measured on the fold it did not see,
epoch by epoch; the number of epochs with the lowest held-out error over the folds is then
trained on every clip. The held-out error at that epoch is reported beside the base checkpoint's
error on the same clips (slightly optimistic: the epoch count was chosen on it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import MODALITIES, TrainConfig
from ..data import Collator
from ..features.spec import FeatureNormalizer, FeatureSpec, spec_differences
from ..model import SentimentModel
from ..model.checkpoint import Checkpoint, TrainingRecord
from ..model.text_cache import attach, encoder_layers
from ..predict import SPEC_IGNORED
from ..sample import Sample
from ..threads import torch_threads
from ..training.loop import LoopState, cache_text, make_optimisers, predict_scores, run_epochs, set_seed
from .clips import ClipError, ExtractedClip

MIN_CLIPS = 4  # fewer cannot be split into folds that each learn and measure something


def too_few_clips(n: int) -> str | None:
    """The one sentence for too few clips (the command, the run and the Train tab's table say it
    alike), or None when ``n`` is enough to start."""
    return None if n >= MIN_CLIPS else f"{n} clip(s); fine-tuning needs at least {MIN_CLIPS} (20 or more to be trusted)"


# What a corpus tells of a clip, carried into the held-out rows (`msa.finetune.clips.ravdess_clips`).
ABOUT = ("speaker", "emotion", "intensity", "sentence", "actor")
MIN_EPOCHS = 5  # the fewest a time budget plans for
HARD_LIMIT = 1.5  # a run this far past its budget (its plan was wrong) stops with no model
LABELS_GIVEN = "your labels"
LABELS_FROM_TEXT = "the base checkpoint's text score"


# What a fine-tuning trains (`FinetuneSettings.trains`): the voice and face encoders with
# everything the words meet after their own path (the gated layers, the stand-ins, the head); or
# the encoders alone, so that every input without a voice or face is scored exactly as the base does.
TRAINS: tuple[str, str] = ("streams+fusion", "streams")


@dataclass(frozen=True)
class FinetuneSettings:
    """How the voice and face are taught. The defaults learn a voice rule from 16-20 clips."""

    epochs: int = 40  # the most epochs a fold runs; the count kept is chosen on the held-out folds
    lr: float = 1e-3
    batch_size: int = 8
    modality_dropout: float = 0.2  # every stand-in trains: the Shapley subsets and what-ifs use them
    folds: int = 5  # at most; fewer when there are fewer clips or speakers
    use_cmd: bool = True  # the paper's two extra losses, as in train.py
    use_mi: bool = True
    seed: int = 0
    trains: str = "streams+fusion"  # one of TRAINS
    # Torch threads while training: one leaves the other core to a page's requests; a corpus
    # run on a machine of its own takes more.
    threads: int = 1
    # A time budget (a Space): the epochs are planned from the first one's cost to fit in it.
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "lr": self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "modality_dropout": 0 <= self.modality_dropout < 1,
            "folds": self.folds >= 2,
            "trains": self.trains in TRAINS,
            "threads": self.threads >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ClipError(
                "fine-tuning settings out of range: "
                + ", ".join(f"{n}={getattr(self, n)}" for n in bad)
                + " (epochs >= 1, lr > 0, batch_size >= 1, 0 <= modality_dropout < 1, folds >= 2, "
                + f"trains one of {', '.join(TRAINS)}, threads >= 1)"
            )

    def train_config(self, epochs: int | None = None) -> TrainConfig:
        return TrainConfig(
            lr=self.lr,
            batch_size=self.batch_size,
            epochs=self.epochs if epochs is None else epochs,
            patience=10**6,  # every fold runs every epoch: the folds' curves are averaged
            modality_dropout=self.modality_dropout,
            use_cmd=self.use_cmd,
            use_mi=self.use_mi,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Progress:
    """One finished epoch of one fold (``fold`` 1..k) or of the final model (``fold`` 0)."""

    fold: int
    folds: int
    epoch: int
    epochs: int
    train: float  # training task loss (MAE)
    valid: float | None  # held-out MAE of this fold; None for the final model
    elapsed: float

    @property
    def stage(self) -> str:
        return f"fold {self.fold} of {self.folds}" if self.fold else "the final model, on every clip"

    def line(self) -> str:
        held = f"  held-out MAE {self.valid:.3f}" if self.valid is not None else ""
        return f"{self.stage}: epoch {self.epoch}/{self.epochs}  train MAE {self.train:.3f}{held}"


@dataclass
class FinetuneResult:
    """The fine-tuned model and what was measured on the way."""

    checkpoint: Checkpoint
    clips: int
    streams: dict[str, int]  # clips with a voice / a face
    speakers: int | None  # distinct speakers named in the labels; None when not given
    label_source: str
    folds: int
    epochs: int  # chosen on the held-out folds, then trained on every clip
    fold_epochs: int  # each fold ran this many (the settings' epochs, or fewer to fit the time budget)
    heldout_mae: float  # over the folds at that epoch
    base_mae: float  # the base checkpoint on the same clips, as it reads them
    constant_mae: float  # always answering `constant_label` (`best_constant`): the floor to beat
    constant_label: float  # the median label: the one answer that errs least on these clips
    curve: list[float]  # held-out MAE per epoch over the folds
    heldout: list[dict[str, Any]]  # per clip: file, label, held-out prediction, base prediction
    train_seconds: float
    settings: FinetuneSettings
    base_name: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("checkpoint", "settings")}
        out["settings"] = self.settings.to_dict()
        out["trained_on"] = self.checkpoint.training.to_meta()["trained_on"]
        return out


def best_constant(labels: Sequence[float]) -> tuple[float, float]:
    """The one answer with the lowest mean absolute error on ``labels`` (their median; where most
    labels are equal, that label) and that error: no model that gives every clip the same number
    does better on these clips, so a fine-tuned model's held-out error must beat it."""
    y = np.asarray(labels, dtype=np.float64)
    answer = float(np.median(y))
    return answer, float(np.abs(y - answer).mean())


def fold_of(samples: Sequence[Sample], folds: int, seed: int) -> tuple[list[int], int]:
    """Each sample's fold (0..k-1) and k: speakers kept whole when two or more are named
    (each speaker's clips in one fold), else clips dealt at random in equal shares."""
    speakers = [s.meta.get("speaker") for s in samples]
    named = sorted({p for p in speakers if p})
    rng = random.Random(seed)
    if len(named) >= 2 and all(speakers):
        rng.shuffle(named)
        k = min(folds, len(named))
        person_fold = {p: i % k for i, p in enumerate(named)}
        return [person_fold[p] for p in speakers], k
    order = list(range(len(samples)))
    rng.shuffle(order)
    k = min(folds, len(samples))
    out = [0] * len(samples)
    for rank, i in enumerate(order):
        out[i] = rank % k
    return out, k


@contextlib.contextmanager
def only_streams_train(model: SentimentModel) -> Iterator[None]:
    """Everything but the voice and face encoders left as the base has it (flags restored after):
    a clip without a voice or face, and every transcript, is then scored exactly as by the base."""
    keep = {id(p) for enc in (model.acoustic, model.visual) for p in enc.parameters()}
    flags = [(p, p.requires_grad) for p in model.parameters() if id(p) not in keep]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def words_frozen(model: SentimentModel) -> Iterator[None]:
    """The words' path left as the base has it while the rest trains: no gradient into the text
    encoder or its projections (flags restored after, so a saved checkpoint still stores the
    base's fine-tuned text layers)."""
    text = model.text
    flags = [(p, p.requires_grad) for p in text.parameters()]
    freeze = text.freeze
    for p, _ in flags:
        p.requires_grad_(False)
    text.freeze = True
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        text.freeze = freeze


# A voice branch started afresh (a words-only base) reads the 21 librosa values by default: on 16
# espeak clips of two voices they learn the voice rule (held-out MAE 0.39, the base's 2.00) where
# Whisper's 533 values learn nothing (2.06); the states need a corpus (docs/voice_study.md: 900 clips).
FRESH_VOICE_STREAM = "librosa"


def voice_stream_for(base: Checkpoint, fresh: str | None = None) -> str:
    """The voice stream a fine-tuning of ``base`` uses: the one it was trained on, so that its
    trained voice branch is refined rather than started again; for a base that reads no stream
    (words only) ``fresh``, else `FRESH_VOICE_STREAM`."""
    if base.feature_spec is not None:
        return base.feature_spec.voice_stream
    return fresh or FRESH_VOICE_STREAM


def reads_features(base: Checkpoint, spec: FeatureSpec) -> bool:
    """Whether ``base`` was trained on the features ``spec`` makes (as the app checks it)."""
    trained = base.feature_spec
    return trained is not None and not spec_differences(trained.to_dict(), spec.to_dict(), ignore=SPEC_IGNORED)


def model_from_base(base: Checkpoint, spec: FeatureSpec) -> SentimentModel:
    """A model with the base's weights and text encoder (the same object, shared) whose voice and
    face encoders take the extractor's widths: new when the base read other features, the base's
    own when it was already trained on this extractor's."""
    cfg = dataclasses.replace(base.model.config, acoustic_dim=spec.acoustic_dim, visual_dim=spec.visual_dim)
    model = SentimentModel(cfg, base.model.text.backbone)
    own = model.state_dict()
    same_features = reads_features(base, spec)
    keep = {
        k: v
        for k, v in base.model.state_dict().items()
        if k in own and own[k].shape == v.shape and (same_features or not k.startswith(("acoustic.", "visual.")))
    }
    model.load_state_dict(keep, strict=False)
    return model


def base_scores(base: Checkpoint, samples: Sequence[Sample], spec: FeatureSpec, text_only: bool = False) -> np.ndarray:
    """The base checkpoint's scores on raw-feature ``samples``, read as the app reads them with
    it: the streams only when it was trained on this extractor's features (through its own
    normaliser); ``text_only``: the words alone (the text path, as a teacher)."""
    if text_only or not reads_features(base, spec):
        fed = [dataclasses.replace(s, acoustic=None, visual=None) for s in samples]
    else:
        fed = [base.normalizer(s) if base.normalizer is not None else s for s in samples]
    collator = Collator.for_model(base.tokenizer, base.model.config)
    return predict_scores(base.model.eval(), fed, collator)


class Finetune:
    """Fine-tune ``base``'s voice and face on ``clips``.

    Parameters
    ----------
    base : the checkpoint to start from (the app's default: the words and a voice learnt from RAVDESS).
    clips : labelled clips with their raw features (`extract_clips`); with ``label_with_text``
        their labels are ignored and the base's text score is the teacher.
    spec : the extractor's feature spec (the fine-tuned checkpoint is served with it).
    """

    def __init__(
        self,
        base: Checkpoint,
        clips: Sequence[ExtractedClip],
        spec: FeatureSpec,
        settings: FinetuneSettings = FinetuneSettings(),
        label_with_text: bool = False,
        folds: Sequence[int] | None = None,
        text_samples: Sequence[Sample] = (),
    ):
        too_few = too_few_clips(len(clips))
        if too_few:
            raise ClipError(too_few)
        self.base, self.spec, self.settings = base, spec, settings
        samples = [c.sample for c in clips]
        self.label_source = LABELS_FROM_TEXT if label_with_text else LABELS_GIVEN
        if label_with_text:
            teacher = base_scores(base, samples, spec, text_only=True)
            samples = [dataclasses.replace(s, label=float(y)) for s, y in zip(samples, teacher)]
        elif any(not np.isfinite(s.label) for s in samples):
            raise ClipError("every clip needs a label in [-3, 3] (or label them with the text path)")
        self.samples = samples
        if folds is not None:  # given (a corpus's own folds, e.g. by actor)
            if len(folds) != len(samples) or sorted(set(folds)) != list(range(max(folds) + 1)) or max(folds) < 1:
                raise ClipError(f"folds must number every clip 0..k-1 with k >= 2; got {sorted(set(folds))}")
            self.fold, self.k = list(folds), max(folds) + 1
        else:
            self.fold, self.k = fold_of(samples, settings.folds, settings.seed)
        # Labelled transcripts without voice or face, in every training epoch of every fold (never
        # held out): they keep the fusion and head reading words as the base did.
        self.text_samples = [dataclasses.replace(s, acoustic=None, visual=None) for s in text_samples]
        self.stopped: str | None = None
        self.fold_predictions: dict[int, list[float]] = {}  # sample index -> its fold's prediction per epoch
        self._final: SentimentModel | None = None
        self._normalizer: FeatureNormalizer | None = None
        self.epochs = settings.epochs  # per fold; the time budget may lower it after the first epoch
        self._chosen = 0  # chosen on the folds, for the final model
        self._seconds = 0.0

    # -- training ---------------------------------------------------------------------------

    def _normalizer_for(self, train: Sequence[Sample]) -> FeatureNormalizer:
        """The base's own normaliser when it already reads this extractor's features (its encoders
        learned in those units), else one fit on the training clips only."""
        if reads_features(self.base, self.spec) and self.base.normalizer is not None:
            return self.base.normalizer
        return FeatureNormalizer.fit(train, self.spec.acoustic_dim, self.spec.visual_dim)

    def _train(
        self, train: list[Sample], valid: list[Sample], fold: int, started: float
    ) -> Iterator[tuple[Progress, SentimentModel, FeatureNormalizer, np.ndarray]]:
        """One model trained epoch by epoch until ``self.epochs`` (which the time budget may
        lower as it goes), each epoch's computation on one torch thread; with each epoch, the
        model, its normaliser and its scores of ``valid`` (of ``train`` when there is none)."""
        norm = self._normalizer_for(train)
        data = {"train": [norm(s) for s in train] + self.text_samples, "valid": [norm(s) for s in (valid or train)]}
        set_seed(self.settings.seed + fold)
        model = model_from_base(self.base, self.spec)
        cfg = self.settings.train_config(self.epochs if fold else self._chosen)
        collator = Collator.for_model(self.base.tokenizer, model.config)
        depth = len(encoder_layers(model.text.backbone))
        threads = self.settings.threads
        only_streams = only_streams_train(model) if self.settings.trains == "streams" else contextlib.nullcontext()
        with words_frozen(model), only_streams:
            with torch_threads(threads):
                cache = cache_text(model, data, collator, frozen_layers=depth)
            epochs = run_epochs(model, data, collator, make_optimisers(model, cfg), cfg, LoopState())
            try:
                while True:
                    with torch_threads(threads):
                        report = next(epochs, None)
                    if report is None:
                        return
                    elapsed = time.perf_counter() - started
                    if fold == 1 and report.epoch == 1:
                        self._plan(report.seconds, len(train))
                    last = self.epochs if fold else self._chosen
                    held = report.valid["mae"] if valid else None
                    progress = Progress(fold, self.k, report.epoch, last, report.losses["task"], held, elapsed)
                    yield progress, model, norm, report.valid_predictions
                    budget = self.settings.max_seconds
                    if self.stopped is None and budget and elapsed > HARD_LIMIT * budget:
                        self.stopped = f"stopped at the time limit ({budget:.0f} s)"
                    if self.stopped or report.epoch >= last:
                        return
            finally:
                epochs.close()
                del cache
                attach(model.text, None)

    def _plan(self, epoch_seconds: float, train_clips: int) -> None:
        """Fit the run into ``settings.max_seconds``: from the first epoch's cost, fewer epochs
        for every fold and the final model when the planned ones would not fit (at least
        `MIN_EPOCHS`), rather than a run that ends with no model."""
        budget = self.settings.max_seconds
        if not budget:
            return
        per_clip = epoch_seconds / max(1, train_clips)
        # k folds of (k-1)/k of the clips, then the final model on all of them: per planned epoch
        per_epoch = per_clip * (self.k * train_clips + len(self.samples))
        fits = int(budget / per_epoch) if per_epoch > 0 else self.epochs
        self.epochs = max(MIN_EPOCHS, min(self.epochs, fits))

    def train(self) -> Iterator[Progress]:
        """Train the folds, then the final model; one `Progress` per epoch. `stop` (or running
        far past the time budget) ends the run with no model."""
        started = time.perf_counter()
        try:
            for f in range(self.k):
                train = [s for s, k in zip(self.samples, self.fold) if k != f]
                held_idx = [i for i, k in enumerate(self.fold) if k == f]
                valid = [self.samples[i] for i in held_idx]
                for p, _, _, preds in self._train(train, valid, f + 1, started):
                    for i, y in zip(held_idx, preds):
                        self.fold_predictions.setdefault(i, []).append(float(y))
                    yield p
                if self.stopped:
                    return
            self._chosen = int(np.argmin(self.curve())) + 1
            for p, model, norm, _ in self._train(self.samples, [], 0, started):
                yield p
                if p.epoch == self._chosen:
                    self._final, self._normalizer = model.eval(), norm
        finally:
            self._seconds = time.perf_counter() - started

    def curve(self) -> list[float]:
        """Held-out MAE per epoch over every clip (each measured by the fold that left it out)."""
        labels = np.array([s.label for s in self.samples])
        per_epoch = np.array([self.fold_predictions[i] for i in range(len(self.samples))])  # (clips, epochs)
        return [float(v) for v in np.abs(per_epoch - labels[:, None]).mean(axis=0)]

    def stop(self, reason: str = "stopped by you") -> None:
        """End the run after the current epoch; no model comes out of it."""
        self.stopped = self.stopped or reason

    # -- result -----------------------------------------------------------------------------

    def finish(self, title: str = "fine-tuned") -> FinetuneResult:
        """The final model as an in-memory checkpoint, and the numbers for its model card."""
        if self.stopped or self._final is None or self._normalizer is None:  # a stop means no model
            raise ClipError(f"{self.stopped or 'the training has not run'}: no model was made, nothing is saved")
        labels = np.array([s.label for s in self.samples])
        base = base_scores(self.base, self.samples, self.spec)
        curve = self.curve()
        heldout = [self.fold_predictions[i][self._chosen - 1] for i in range(len(self.samples))]
        constant_label, constant_mae = best_constant(labels)
        training = trained_on(self.base, self.spec, self.samples + self.text_samples, self.settings.modality_dropout)
        streams = {m: sum(s.present()[MODALITIES.index(m)] for s in self.samples) for m in ("acoustic", "visual")}
        named = {s.meta.get("speaker") for s in self.samples}
        speakers = None if None in named else len(named)
        meta = {
            "finetuned_from": self.base.name,
            "label_source": self.label_source,
            "finetune": self.settings.to_dict(),
            "epoch": self._chosen,
            "heldout": {
                "mae": curve[self._chosen - 1],
                "folds": self.k,
                "base_mae": float(np.abs(base - labels).mean()),
                "constant_mae": constant_mae,
            },
        }
        checkpoint = Checkpoint(
            self._final,
            self.base.tokenizer,
            feature_spec=self.spec,
            normalizer=self._normalizer,
            training=training,
            meta=meta,
            title=title,
        )
        result = FinetuneResult(
            checkpoint=checkpoint,
            clips=len(self.samples),
            streams=streams,
            speakers=speakers,
            label_source=self.label_source,
            folds=self.k,
            epochs=self._chosen,
            fold_epochs=self.epochs,
            heldout_mae=curve[self._chosen - 1],
            base_mae=float(np.abs(base - labels).mean()),
            constant_mae=constant_mae,
            constant_label=constant_label,
            curve=curve,
            heldout=[
                {
                    "file": s.meta.get("file", s.id),
                    "label": float(y),
                    "heldout": h,
                    "base": float(b),
                    **{k: s.meta[k] for k in ABOUT if s.meta.get(k) is not None},
                }
                for s, y, h, b in zip(self.samples, labels, heldout, base)
            ],
            train_seconds=self._seconds,
            settings=self.settings,
            base_name=self.base.name,
        )
        result.warnings = warnings_for(result)
        return result


def trained_on(base: Checkpoint, spec: FeatureSpec, samples: Sequence[Sample], dropout: float) -> TrainingRecord:
    """What the fine-tuned checkpoint learnt from: these samples, plus the base's for every part
    it keeps (the words' path always; the voice and face encoders when the base read this
    extractor's features)."""
    new = TrainingRecord.of(samples, dropout)
    old = base.training
    kept = {"text": True, **dict.fromkeys(("acoustic", "visual"), reads_features(base, spec))}
    modalities = {
        m: (n or 0) + (old.modalities.get(m) or 0) if kept[m] and old.modalities.get(m) is not None else n
        for m, n in new.modalities.items()
    }
    stand_ins = {m: bool(new.stand_ins_trained.get(m)) or bool(old.stand_ins_trained.get(m)) for m in MODALITIES}
    total = (new.samples or 0) + (old.samples or 0) if old.samples is not None else new.samples
    return TrainingRecord(total, modalities, stand_ins)


# A label held by this share of the clips or more is a warning: one answer then scores well.
UNBALANCED = 0.6
# Held-out error above this fraction of the constant answer's: "barely better" (10% or less).
BARELY = 0.9


def warnings_for(result: FinetuneResult) -> list[str]:
    """What a reader of the model card should be warned of, in plain words."""
    out = []
    if result.clips < 20:
        out.append(f"It learned from {result.clips} clips, fewer than 20: its voice and face parts are a sketch.")
    if result.speakers is None:
        out.append("The labels name no speakers: the held-out clips may be of the same people as the training ones.")
    elif result.speakers < 2:
        out.append("Every clip is of one speaker: it may have learned this person's voice or face, not sentiment.")
    for m, n in result.streams.items():
        if n == 0:
            sense = {"acoustic": "voice", "visual": "face"}[m]
            out.append(f"No clip had a {sense}: its {sense} branch never trained on this extractor's features.")
    if result.label_source == LABELS_FROM_TEXT:
        out.append(
            "Its labels are the base checkpoint's text score: it learned to agree with the words, "
            "not what the voice or face add."
        )
    labels = np.round([row["label"] for row in result.heldout], 1)
    values, counts = np.unique(labels, return_counts=True)
    common, n = float(values[counts.argmax()]), int(counts.max())
    if n >= UNBALANCED * len(labels) and len(labels) > 1:
        out.append(
            f"{n} of {len(labels)} labels are {common:+.1f}: a model that always answers {result.constant_label:+.1f} "
            f"scores an error of {result.constant_mae:.2f} on these clips. Add clips with other labels."
        )
    if result.heldout_mae >= result.base_mae:
        out.append(
            f"On held-out clips it is no better than the base ({result.heldout_mae:.2f} vs {result.base_mae:.2f} MAE)."
        )
    if result.heldout_mae > BARELY * result.constant_mae:
        how = "no better than" if result.heldout_mae >= result.constant_mae else "barely better than"
        out.append(
            f"On held-out clips it is {how} always answering {result.constant_label:+.1f} "
            f"({result.heldout_mae:.2f} vs {result.constant_mae:.2f} MAE): it has learnt little from the clips."
        )
    return out


__all__ = [
    "FinetuneResult",
    "FinetuneSettings",
    "Finetune",
    "MIN_CLIPS",
    "too_few_clips",
    "Progress",
    "base_scores",
    "best_constant",
    "model_from_base",
]
