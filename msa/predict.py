"""Prediction for a media file: checkpoint + feature extractor -> a typed, JSON-ready result.

`Predictor` loads a checkpoint once and checks that the running feature extractor makes the
features the checkpoint was trained on (train/serve parity, docs/design.md). ``python -m msa
predict`` and the app both go through it, so their numbers and their JSON are the same.

Two kinds of checkpoint are served:

- trained on this extractor's features (``feature_spec`` in its config): the acoustic and
  visual streams are standardised with the checkpoint's normaliser and fed to the model;
- trained without it (transcripts only, or the paper's COVAREP/Facet pickles): those streams
  cannot be made from a video, so only the text is used and acoustic/visual are reported absent
  with the reason. Wrong-dimension or wrong-kind features are never fed to a model.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import MODALITIES
from .data import Batch, Collator
from .explain import Contributions, Explanation, display_words, explain_output, fuse_with_coalitions, wording
from .features import Extraction, FeatureExtractor, FeatureNormalizer, MediaInfo, MediaLimits, spec_differences
from .features.extractor import STREAMS, acoustic_times
from .metrics import label7
from .model.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .model.network import Encoded, ModelOutput
from .sample import Sample, TimedWord
from .threads import process_torch_threads

# Spec keys that may differ between a checkpoint and the running extractor: package versions
# differ across machines without changing the features' meaning, and the speech recognition only
# makes the transcript (training from labelled videos uses gold transcripts), so any ASR setting
# may serve any checkpoint.
SPEC_IGNORED = ("package_versions", "asr_extractor", "asr_model", "asr_compute_type", "asr_beam_size", "asr_decoding")

# |score| below this is "neutral": the same band as the 7-class name (rounding to 0).
NEUTRAL_BAND = 0.5

# The stages every result reports (seconds); an extraction served from the cache reports 0.
STAGES = ("decode", "asr", "acoustic", "visual", "model")


# Why the model did not see a modality when nothing more specific is known.
_NO_USABLE_INPUT = dict.fromkeys(MODALITIES, "no usable input")
# Why a modality present in the clip can be missing from one of its segments.
_SEGMENT_GAP = {
    "text": "no words in this segment",
    "acoustic": "no acoustic frames in this segment",
    "visual": "no face in this segment",
}


def presence(
    seen: Sequence[bool], reasons: Mapping[str, str], otherwise: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """What the model saw of one sample, as every result reports it.

    ``seen`` is the sample's row of the batch's present-mask (the model's own view); every
    modality it did not see gets a reason: the one in ``reasons`` (no audio track, removed...),
    else ``otherwise[m]``. Returns the names seen and the reasons, both in `MODALITIES` order.
    """
    names = [m for m, here in zip(MODALITIES, seen) if here]
    absent = {m: reasons.get(m) or otherwise[m] for m in MODALITIES if m not in names}
    return names, absent


def polarity(score: float) -> str:
    """ "positive", "negative" or "neutral" (|score| < 0.5, as the 7-class name rounds)."""
    if score >= NEUTRAL_BAND:
        return "positive"
    if score <= -NEUTRAL_BAND:
        return "negative"
    return "neutral"


@dataclass
class SegmentResult:
    """One utterance of a long input (an ASR segment), scored on its own."""

    start: float
    end: float
    transcript: str | None
    score: float
    label7: str
    polarity: str
    modalities_present: list[str]
    absent: dict[str, str]


@dataclass
class Prediction:
    """The answer for one file; `to_dict` gives its JSON form.

    Attributes
    ----------
    score : the model's raw output (training targets lie in [-3, 3], outputs may not).
    score_clipped : ``score`` clipped to [-3, 3], what a scale shows.
    label7, polarity : names of the score (`msa.metrics.label7`; polarity with a neutral band).
    transcript, transcript_source : the text used and where it came from ("asr", "user").
    words : ASR word timings (empty for a user transcript).
    modalities_present : names among text, acoustic, visual that the model saw.
    absent : modality -> why it is absent (no face, no speech, checkpoint cannot use it...).
    segments : per-utterance results when the ASR found two or more segments.
    timings : seconds per stage (decode, asr, acoustic, visual, model; cache when cached) and
        ``total``, the wall clock: the ASR runs beside acoustic and visual, so total < their sum.
    notes : sentences a reader should see (e.g. that the checkpoint is text-only).
    """

    file: str
    score: float
    score_clipped: float
    label7: str
    polarity: str
    transcript: str | None
    transcript_source: str
    words: list[TimedWord]
    modalities_present: list[str]
    absent: dict[str, str]
    segments: list[SegmentResult]
    timings: dict[str, float]
    duration: float
    checkpoint: str
    asr_model: str
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A dict of plain JSON types (str, float, int, bool, None, lists, dicts)."""
        return _jsonable(dataclasses.asdict(self))


@dataclass
class Run:
    """A prediction together with the tensors behind it, for explanations (the app).

    ``batch``, ``encoded`` and ``output`` are for the whole clip (a batch of one): gates are in
    ``output.gates``, and ``predictor.model.fuse(encoded, present)`` re-runs fusion for any
    (1, 3) presence mask without re-running the encoders. Presence must stay within
    ``batch.present``: a modality that was absent has no features to switch back on.
    ``contributions`` and ``explanation`` are set when the run was asked to explain.
    """

    prediction: Prediction
    extraction: Extraction
    sample: Sample  # the whole clip as fed to the model (normalised; unusable streams removed)
    batch: Batch
    encoded: Encoded
    output: ModelOutput
    segment_samples: list[Sample] = field(default_factory=list)
    contributions: Contributions | None = None
    explanation: Explanation | None = None

    def to_dict(self) -> dict[str, Any]:
        """The prediction's JSON, with an ``explanation`` object when the run explained itself."""
        d = self.prediction.to_dict()
        if self.explanation is not None:
            d["explanation"] = _jsonable(self.explanation.to_dict())
        return d


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        if all(type(v) is float and math.isfinite(v) for v in x):
            return list(x)  # the explanation's long rows of numbers: nothing to convert
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None  # JSON has no NaN
    if isinstance(x, Path):
        return str(x)
    return x


def load_predictor(
    checkpoint: str | os.PathLike[str],
    *,
    asr_model: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    warm_up: bool = True,
    asr: bool = True,
) -> Predictor:
    """A `Predictor` whose checkpoint and feature models load side by side.

    The Whisper model (and, with ``warm_up``, the extractor's first-call costs) loads in a
    thread while this one loads the checkpoint: CTranslate2 and MediaPipe load in native code
    that releases the GIL, so the two overlap on two cores (bench/bench_speed.py reports the
    cold start). ``asr=False`` (every input comes with its transcript) skips loading Whisper.
    Errors of either side are raised here, the checkpoint's first.
    """
    extractor = FeatureExtractor({} if asr_model is None else {"asr_model": asr_model}, cache_dir)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load") as pool:
        job = None
        if warm_up:
            job = pool.submit(extractor.warm_up)
        elif asr:
            job = pool.submit(lambda: extractor.asr)
        predictor = Predictor(checkpoint, extractor=extractor)
        if warm_up:
            predictor.warm_up_model()
        if job is not None:
            job.result()
    return predictor


class Predictor:
    """A checkpoint and a feature extractor, loaded once; `predict` / `run` per file.

    Parameters
    ----------
    checkpoint : a checkpoint folder (or an already loaded `Checkpoint`).
    asr_model : "base" or "tiny.en" (None: the extractor's default, base). Ignored when
        ``extractor`` is given.
    extractor : a `FeatureExtractor` to share (e.g. one the app has warmed up).
    cache_dir : feature cache folder for the extractor built here (None: no cache).
    device : torch device for the model.

    Raises
    ------
    CheckpointError
        When the checkpoint is missing or malformed, or was trained on features whose spec
        differs from the running extractor's (the message lists each difference).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | Checkpoint,
        *,
        asr_model: str | None = None,
        extractor: FeatureExtractor | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str = "cpu",
    ):
        if isinstance(checkpoint, Checkpoint):
            self.checkpoint = checkpoint
        else:
            path = Path(checkpoint)
            if not path.exists():
                raise CheckpointError(f"checkpoint {path} not found; train one with train.py or pass --checkpoint DIR")
            self.checkpoint = load_checkpoint(path, device)
        self.device = device
        self.model = self.checkpoint.model.eval()
        self.collator = Collator.for_model(self.checkpoint.tokenizer, self.model.config)
        self._settings: dict[str, Any] = {} if asr_model is None else {"asr_model": asr_model}
        self._cache_dir = cache_dir
        self._extractor = extractor
        self.uses_streams = self.checkpoint.feature_spec is not None
        self.normalizer: FeatureNormalizer | None = self.checkpoint.normalizer
        if self.uses_streams:
            # The voice stream it was trained on, from the same Whisper models (a shared extractor's sibling).
            voice_stream = self.checkpoint.feature_spec.voice_stream  # type: ignore[union-attr]
            self._settings["voice_stream"] = voice_stream
            if self._extractor is not None:
                self._extractor = self._extractor.with_voice_stream(voice_stream)
            # Checked now, not on the first request: an app fails at start-up, not per user.
            self._check_spec()

    @property
    def reads(self) -> tuple[str, ...]:
        """The modalities this checkpoint reads from a clip: the words, and each stream it is fed
        (trained on this extractor's features) and saw in training."""
        trained = self.checkpoint.training.modalities
        streams = [m for m in STREAMS if self.uses_streams and trained.get(m) != 0]
        return ("text", *(m for m in MODALITIES if m in streams))

    # -- set-up ---------------------------------------------------------------------------

    @property
    def extractor(self) -> FeatureExtractor:
        """The feature extractor, built on first use (Whisper itself loads on first ASR)."""
        if self._extractor is None:
            self._extractor = FeatureExtractor(self._settings, self._cache_dir)
        return self._extractor

    @property
    def name(self) -> str:
        """The checkpoint's path, for messages to whoever started this process (the JSON names
        only its folder: `Checkpoint.name`)."""
        return str(self.checkpoint.path) if self.checkpoint.path is not None else "<in memory>"

    def _check_spec(self) -> None:
        trained = self.checkpoint.feature_spec
        assert trained is not None
        diffs = spec_differences(trained.to_dict(), self.extractor.spec.to_dict(), ignore=SPEC_IGNORED)
        if diffs:
            raise CheckpointError(
                f"{self.name}: trained on features that this extractor does not make "
                f"(checkpoint != running): {'; '.join(diffs)}"
            )
        c = self.model.config
        spec = self.extractor.spec
        if (c.acoustic_dim, c.visual_dim) != (spec.acoustic_dim, spec.visual_dim):
            raise CheckpointError(
                f"{self.name}: model takes acoustic/visual widths {c.acoustic_dim}/{c.visual_dim} but its "
                f"feature spec gives {spec.acoustic_dim}/{spec.visual_dim}"
            )

    def warm_up(self) -> None:
        """Pay the one-off costs (Whisper load, librosa's lazy imports, the face landmarker, the
        first model pass) now, so that an app's first request is as fast as the rest."""
        self.extractor.warm_up()
        self.warm_up_model()

    def warm_up_model(self) -> None:
        """The model's first pass (lazy kernels and allocations) on a one-word text."""
        with torch.inference_mode():
            self.model(self.collator([Sample(id="warm-up", text="warm up")]).to(self.device))

    # -- prediction -----------------------------------------------------------------------

    def _model_sample(self, s: Sample, absent: dict[str, str]) -> tuple[Sample, dict[str, str]]:
        """The sample as the model may see it, and the absent reasons that go with it."""
        absent = dict(absent)
        unread = [m for m in STREAMS if m not in self.reads]
        for m in unread:
            # The model is the reason, whatever the clip holds: one reason, never both.
            absent[m] = wording.does_not_read(m)
        s = dataclasses.replace(s, **{m: None for m in unread})
        if self.uses_streams and self.normalizer is not None:
            s = self.normalizer(s)
        return s, absent

    def run(
        self,
        path: str | os.PathLike[str],
        transcript: str | None = None,
        on_stage: Callable[[str], None] | None = None,
        explain: bool = False,
        limits: MediaLimits | None = None,
        info: MediaInfo | None = None,
    ) -> Run:
        """Extract, then score the whole clip and (for long inputs) each segment.

        Parameters
        ----------
        path : a video or audio file.
        transcript : the spoken text; replaces the ASR when given (an empty string marks the
            text absent).
        on_stage : called with each stage's name as it starts ("decode", "asr", "acoustic",
            "visual", then "model"), e.g. for a progress bar.
        explain : also explain the score: the exact Shapley contributions (`Run.contributions`,
            extra rows of the model's own fusion; the "model" timing includes them) and the
            `Explanation` (`Run.explanation`, timed as "explain").
        limits : what the file may cost to decode (default: the extractor's `MediaLimits`).
        info : the file's `probe` under ``limits`` when the caller has it (not probed again).

        Returns
        -------
        Run
            The `Prediction` plus the whole clip's batch, encoder outputs and model output.

        Raises
        ------
        FeatureError
            For a missing, empty, corrupt or non-media file.
        """
        # Only the streams the checkpoint reads are made: the others would be dropped anyway (a
        # text-only checkpoint's both; the face of one never trained on faces, which saves the landmarker).
        streams = tuple(m for m in STREAMS if m in self.reads)
        ex = self.extractor.extract(
            path, transcript=transcript, on_stage=on_stage, streams=streams, limits=limits, info=info
        )
        clip, absent = self._model_sample(ex.sample, ex.absent)
        if on_stage is not None:
            on_stage("model")
        run = self._score(ex, clip, absent, explain, with_segments=True)
        notes = []
        if self.uses_streams and self.normalizer is None:
            notes.append("This checkpoint stores no feature normaliser: raw acoustic/visual features were used.")
        if not self.uses_streams:
            notes.append(
                "This model learned from transcripts only (or from a research corpus's own voice and face "
                "measurements, which cannot be made from a new video): only the words were used."
            )
        p = run.prediction
        p.transcript_source = "user" if transcript is not None else "asr"
        p.notes = notes
        timings = {k: float(ex.timings.get(k, 0.0)) for k in STAGES}
        timings.update({k: float(v) for k, v in ex.timings.items() if k not in STAGES and k != "total"})
        timings.update(p.timings)
        # Wall clock, not the stages' sum: the ASR runs beside the acoustic and visual stages.
        extraction = ex.timings.get("total", sum(v for k, v in ex.timings.items() if k != "total"))
        timings["total"] = float(extraction) + float(sum(p.timings.values()))
        p.timings = timings
        return run

    def run_features(
        self, clip: Sample, words: Sequence[TimedWord], duration: float, absent: Mapping[str, str] | None = None
    ) -> Run:
        """Score and explain a clip whose streams are already made, as the model sees them (no
        media, no normaliser): a Fusion Lab world's clip. Its what-ifs work as for a file.

        Parameters
        ----------
        clip : the sample (absent streams None; ``meta["visual_times"]`` when the face's frame
            times are not ``k / visual_rate``).
        words : the transcript's words with their spoken times.
        duration : seconds of the clip.
        absent : why each absent modality is absent, in words.
        """
        absent = dict(absent or {})
        ex = Extraction(
            sample=clip,
            segments=[],
            words=list(words),
            absent=absent,
            timings={},
            duration=float(duration),
            spec=self.extractor.spec,
        )
        run = self._score(ex, clip, absent, explain=True, with_segments=False)
        run.prediction.transcript_source = "user"
        return run

    def what_if(self, run: Run, drop: Sequence[str] = (), transcript: str | None = None) -> Run:
        """The same clip again with modalities removed and/or other words, without re-extracting.

        Parameters
        ----------
        run : an earlier `run` of this predictor.
        drop : modalities to remove ("acoustic", "visual", "text"): each is replaced by its learned
            stand-in, exactly as in the Shapley subsets (the score equals that subset's score).
        transcript : new words (None: keep the clip's). The voice and face stay as they were;
            words that match the recognised ones keep their spoken times.

        Returns
        -------
        Run
            With ``contributions`` and ``explanation``; ``prediction.transcript_source`` is "what-if".
        """
        unknown = set(drop) - set(MODALITIES)
        if unknown:
            raise ValueError(f"cannot remove {sorted(unknown)}: modalities are {', '.join(MODALITIES)}")
        clip = run.sample
        absent = dict(run.prediction.absent)
        if transcript is not None:
            text = transcript.strip() or None
            clip = dataclasses.replace(clip, text=text, token_ids=None)
            absent.pop("text", None)
            if text is None:
                absent["text"] = "empty transcript given"
        for m in drop:
            if m not in absent:
                absent[m] = "removed (what-if)"
        clip = dataclasses.replace(
            clip,
            text=None if "text" in drop else clip.text,
            acoustic=None if "acoustic" in drop else clip.acoustic,
            visual=None if "visual" in drop else clip.visual,
        )
        new = self._score(run.extraction, clip, absent, explain=True, with_segments=False)
        new.prediction.transcript_source = "what-if"
        new.prediction.notes = list(run.prediction.notes)
        return new

    def _score(self, ex: Extraction, clip: Sample, absent: dict[str, str], explain: bool, with_segments: bool) -> Run:
        """The model on one prepared sample (and, with ``with_segments``, the clip's segments)."""
        t0 = time.perf_counter()
        contributions = explanation = None
        pairs = [self._model_sample(s, {}) for s in ex.segments] if with_segments else []
        seg_samples = [p[0] for p in pairs]
        with torch.inference_mode(), process_torch_threads():
            batch = self.collator([clip]).to(self.device)
            batches = [batch] + ([self.collator(seg_samples).to(self.device)] if pairs else [])
            # The clip's words and its segments' in one packed pass of the text encoder.
            encoded, *seg_encoded = self.model.encode_many(batches)
            if explain:
                output, contributions = fuse_with_coalitions(self.model, encoded, batch.present)
            else:
                output = self.model.fuse(encoded, batch.present)
            segments = self._segments(ex, pairs, batches[1], seg_encoded[0]) if pairs else []
        t_model = time.perf_counter() - t0
        timings = {"model": t_model}
        if explain:
            assert contributions is not None
            t0 = time.perf_counter()
            explanation = self.explain(clip, batch, output, contributions, ex.words, absent)
            timings["explain"] = time.perf_counter() - t0

        score = float(output.score[0])
        # A modality the model did not see always has a reason (e.g. a transcript of spaces).
        present, absent = presence(batch.present[0].tolist(), absent, _NO_USABLE_INPUT)
        pred = Prediction(
            file=str(clip.meta.get("file", ex.sample.meta.get("file", ""))),
            score=score,
            score_clipped=float(np.clip(score, -3.0, 3.0)),
            label7=label7(score),
            polarity=polarity(score),
            transcript=clip.text,
            transcript_source="asr",
            words=list(ex.words),
            modalities_present=present,
            absent=absent,
            segments=segments,
            timings=timings,
            duration=float(ex.duration),
            checkpoint=self.checkpoint.name,  # the folder's name: JSON that travels names no server path
            asr_model=self.extractor.spec.asr_model,
            from_cache=ex.from_cache,
        )
        return Run(pred, ex, clip, batch, encoded, output, seg_samples, contributions, explanation)

    def explain(
        self,
        clip: Sample,
        batch: Batch,
        output: ModelOutput,
        contributions: Contributions,
        timed_words: Sequence[TimedWord] = (),
        absent: Mapping[str, str] | None = None,
    ) -> Explanation:
        """The `Explanation` of a scored clip: its words (with spoken times), each word's share
        and attention per branch and layer over the streams' own time axes, and what each branch
        was trained on; ``absent`` says why the clip lacked a stream the model reads."""
        n = int(batch.text_mask[0].sum())
        words = display_words(self.checkpoint.tokenizer, clip.text, batch.input_ids[0, :n].tolist(), timed_words)
        times: dict[str, np.ndarray | None] = {"acoustic": None, "visual": None}
        if clip.acoustic is not None:
            times["acoustic"] = acoustic_times(clip, self.extractor.spec)
        if clip.visual is not None:
            vt = clip.meta.get("visual_times")
            times["visual"] = (
                np.asarray(vt, dtype=np.float64)
                if vt is not None
                else np.arange(len(clip.visual)) / self.extractor.spec.visual_rate
            )
        ck = self.checkpoint
        return explain_output(
            self.model,
            output,
            contributions,
            words,
            times,
            ck.training.modalities,
            ck.training.stand_ins_trained,
            reads=self.reads,
            absent=absent,
        )

    def _segments(
        self, ex: Extraction, pairs: list[tuple[Sample, dict[str, str]]], batch: Batch, encoded: Encoded
    ) -> list[SegmentResult]:
        """Each segment's result from its (sample, absent reasons), batched and encoded."""
        scores = self.model.fuse(encoded, batch.present).score.double().cpu().numpy()
        out = []
        for (s, segment_absent), score, seen in zip(pairs, scores, batch.present.tolist()):
            # What the clip lacks, else a stream of the clip with no frames (or no face) in this span.
            names, absent = presence(seen, {**ex.absent, **segment_absent}, _SEGMENT_GAP)
            out.append(
                SegmentResult(
                    start=float(s.meta["start"]),
                    end=float(s.meta["end"]),
                    transcript=s.text,
                    score=float(score),
                    label7=label7(float(score)),
                    polarity=polarity(float(score)),
                    modalities_present=names,
                    absent=absent,
                )
            )
        return out


__all__ = ["SPEC_IGNORED", "Prediction", "Predictor", "Run", "SegmentResult", "polarity"]
