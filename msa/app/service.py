"""The app's request pipeline, without any UI: validate -> run -> explain -> JSON.

`Service` wraps a loaded `Predictor` and is what the page's handlers (`msa.app.handlers`) call. It owns the things
a public endpoint needs and the CLI does not: input limits (size, duration) checked before any
expensive work, errors turned into one plain sentence for the user (`InputError`), per-stage
progress callbacks, the clip's context for the explanation views (frames, voice), the recent
runs that a what-if re-uses, and the JSON file offered for download, kept in a private
temporary folder that is swept. `Checkpoints` holds one `Service` per checkpoint folder a page
can pick, sharing one feature extractor.

Nothing here imports gradio, so the pipeline is tested and benchmarked on its own.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..explain import Explanation, wording
from ..features import ACCEPTED, FeatureError, MediaInfo, MediaLimits, probe
from ..features.context import ClipContext, clip_context
from ..features.media import browser_plays, make_preview
from ..finetune.card import scored_by
from ..io import atomic_write_bytes
from ..model.checkpoint import CheckpointError, list_checkpoints
from ..predict import Prediction, Predictor, Run, load_predictor
from .private import PrivateCheckpoints

log = logging.getLogger(__name__)

# What a person sees as each stage starts (the prediction's `msa.predict.STAGES` with the
# service's own "validate" and "context"), in order; the fractions place it on a progress bar
# (roughly the share of time each takes on a short clip with base ASR on 2 cores).
PROGRESS: dict[str, tuple[float, str]] = {
    "validate": (0.00, "Checking the file"),
    "decode": (0.05, "Decoding audio and video"),
    "asr": (0.12, "Transcribing speech"),
    "acoustic": (0.45, "Measuring the voice (acoustic features)"),
    "visual": (0.52, "Reading the face (visual features)"),
    "model": (0.85, "Running the model (and the 8 ways of leaving modalities out, for the Shapley values)"),
    "context": (0.92, "Collecting frames and the voice for the time axis"),
}


# Recent runs kept for what-ifs and redrawing (a 30 s clip's run holds ~5 MB: features, encoder
# outputs and attention; a 5-minute one ~40 MB).
RECENT_RUNS = 8


# The name ending of a preview the page shows in place of a video a browser cannot play.
PREVIEW_SUFFIX = ".preview.mp4"


class InputError(ValueError):
    """A request the app cannot answer, with a message meant for the person who sent it."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"{name}={raw!r} is not a number") from e


@dataclass(frozen=True)
class Limits:
    """Input limits of a public endpoint.

    Attributes
    ----------
    max_seconds : longest media accepted (env ``MSA_MAX_SECONDS``; default 5 minutes, which
        keeps a request under about a minute on 2 cores).
    max_megabytes : largest upload accepted (env ``MSA_MAX_MB``); also given to Gradio as
        ``max_file_size`` so larger uploads are refused before they are stored.
    """

    max_seconds: float = 300.0
    max_megabytes: float = 200.0

    @classmethod
    def from_env(cls) -> Limits:
        return cls(_env_float("MSA_MAX_SECONDS", cls.max_seconds), _env_float("MSA_MAX_MB", cls.max_megabytes))

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * 1024 * 1024)


@dataclass
class Analysis:
    """Everything the app shows for one request (or one what-if of it).

    Attributes
    ----------
    run : the prediction (what ``python -m msa predict`` prints), its explanation and the
        tensors behind them.
    context : the clip's frames and voice on the time axis of the attention views.
    key : names the run kept for `Service.what_if` (None for a what-if itself).
    timings : seconds for "context" (and, on the page, "figures") beside the prediction's stages.
    reads : the modalities the checkpoint reads from any clip (`Predictor.reads`).
    scored_by : which checkpoint scored it, in a sentence (`msa.finetune.card.scored_by`).
    """

    run: Run
    context: ClipContext | None
    key: str | None
    timings: dict[str, float] = field(default_factory=dict)
    reads: tuple[str, ...] = ("text",)
    scored_by: str = ""

    @property
    def prediction(self) -> Prediction:
        return self.run.prediction

    @property
    def checkpoint(self) -> str:
        """The checkpoint's folder name."""
        return self.run.prediction.checkpoint

    @property
    def explanation(self) -> Explanation:
        assert self.run.explanation is not None, "an analysis is always explained"
        return self.run.explanation

    def to_dict(self) -> dict[str, Any]:
        """The API's answer and the page's download: the prediction's JSON and its ``explanation``."""
        return self.run.to_dict()


def _mb(n: float) -> str:
    mb = n / 1024 / 1024
    return f"{mb:.1f} MB" if mb >= 1 else f"{mb:.3g} MB"  # small limits keep their digits


# ----------------------------------------------------------------------------------------------
# The service
# ----------------------------------------------------------------------------------------------


class Service:
    """A loaded model behind input checks, progress, explanations and downloadable JSON.

    Parameters
    ----------
    predictor : a loaded `Predictor` (call ``warm_up()`` before serving).
    limits : input limits (default: `Limits.from_env()`).
    keep_seconds : how long a downloadable JSON file is kept before a later request sweeps it.
    """

    def __init__(self, predictor: Predictor, limits: Limits | None = None, keep_seconds: float = 3600.0):
        self.predictor = predictor
        self.limits = limits or Limits.from_env()
        self.keep_seconds = keep_seconds
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="msa-app-"))
        self._runs: OrderedDict[str, Analysis] = OrderedDict()
        self._lock = threading.Lock()
        # The folder goes with the process; files in it go after keep_seconds (see _sweep).
        atexit.register(shutil.rmtree, self.tmp_dir, ignore_errors=True)

    @property
    def media_limits(self) -> MediaLimits:
        """The extractor's decoding limits, with decoding stopped at this endpoint's length limit
        whatever a file's container states."""
        base = self.predictor.extractor.limits
        return dataclasses.replace(base, max_seconds=min(base.max_seconds, self.limits.max_seconds))

    @property
    def config(self) -> Any:
        return self.predictor.model.config

    # -- checks ---------------------------------------------------------------------------

    def validate(self, path: str | os.PathLike[str] | None) -> tuple[Path, MediaInfo]:
        """Refuse, with a sentence a person can act on, what the app cannot or will not process.
        Returns the file and its probe, which every later stage reuses (one ffprobe per upload).

        Raises
        ------
        InputError
            No file, too large, not media (or corrupt), or longer than the limit.
        """
        if path is None or not str(path).strip():
            raise InputError(f"No file received. Upload or record a {ACCEPTED} file.")
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p.name}: the upload did not arrive (no such file). Try again with a {ACCEPTED} file.")
        size = p.stat().st_size
        if size > self.limits.max_bytes:
            raise InputError(
                f"{p.name} is {_mb(size)}; files up to {_mb(self.limits.max_bytes)} are accepted. "
                "Trim or compress the clip and try again."
            )
        try:
            info = probe(p, self.media_limits)
        except FeatureError as e:
            raise InputError(_user_message(e, p)) from e
        if info.duration is not None and info.duration > self.limits.max_seconds:
            raise InputError(self._too_long(p, info.duration))
        return p, info

    def _too_long(self, p: Path, seconds: float) -> str:
        return (
            f"{p.name} lasts {seconds:.1f} s; clips up to {self.limits.max_seconds:g} s are accepted. "
            "Cut the part you want to analyse and try again."
        )

    # -- requests -------------------------------------------------------------------------

    def run(
        self,
        path: str | os.PathLike[str] | None,
        transcript: str | None = None,
        on_stage: Callable[[str], None] | None = None,
        explain: bool = False,
    ) -> Run:
        """Validate, then predict; every failure the user can cause becomes an `InputError`.

        Parameters
        ----------
        path : the uploaded file.
        transcript : replaces the ASR when it holds any non-space text.
        on_stage : called with each stage name in `PROGRESS` as it starts.
        explain : also explain the score (`Predictor.run`).
        """
        stage = on_stage or (lambda s: None)
        stage("validate")
        p, info = self.validate(path)
        text = transcript if transcript is not None and transcript.strip() else None
        try:
            run = self.predictor.run(
                p, transcript=text, on_stage=stage, explain=explain, limits=self.media_limits, info=info
            )
        except FeatureError as e:
            raise InputError(_user_message(e, p)) from e
        pred = run.prediction
        pred.file = p.name  # the user's own name for it (uploads keep it), never the server's path
        if pred.duration > self.limits.max_seconds:  # containers that do not state (or understate) it
            raise InputError(self._too_long(p, pred.duration))
        if not pred.modalities_present:
            reasons = "; ".join(f"{m}: {why}" for m, why in pred.absent.items())
            raise InputError(wording.nothing_to_analyse(p.name, reasons, self.predictor.reads))
        return run

    def answer(self, path: str | os.PathLike[str] | None, transcript: str | None = None) -> dict[str, Any]:
        """The API's answer: ``python -m msa predict --json --explain``'s object for the file
        (the prediction and its ``explanation``)."""
        return self.run(path, transcript, explain=True).to_dict()

    def analyse(
        self,
        path: str | os.PathLike[str] | None,
        transcript: str | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> Analysis:
        """`run` with the explanation, plus the clip's context (frames, voice) for its views.
        The run is kept (the last `RECENT_RUNS`) so that `what_if` can vary it without
        extracting again."""
        run = self.run(path, transcript, on_stage, explain=True)
        assert run.explanation is not None
        if on_stage is not None:
            on_stage("context")
        t0 = time.perf_counter()
        context = clip_context(
            Path(str(path)),
            run.extraction.sample.acoustic,
            run.extraction.spec,
            run.prediction.duration,
            info=run.extraction.media,
            acoustic_times=run.extraction.sample.meta.get("acoustic_times"),
        )
        t_context = time.perf_counter() - t0
        key = uuid.uuid4().hex
        made_by = scored_by(self.predictor.checkpoint.name, self.predictor.checkpoint.meta)
        analysis = Analysis(run, context, key, {"context": t_context}, self.predictor.reads, made_by)
        with self._lock:
            self._runs[key] = analysis
            while len(self._runs) > RECENT_RUNS:
                self._runs.popitem(last=False)
        return analysis

    def kept_analysis(self, key: str | None) -> Analysis:
        """The `Analysis` of a kept run (for redrawing its views).

        Raises
        ------
        InputError
            When the run is no longer kept.
        """
        with self._lock:
            kept = self._runs.get(key or "")
            if kept is not None:
                self._runs.move_to_end(key or "")
        if kept is None:
            raise InputError("That analysis is no longer kept on the server: click Analyse again.")
        return kept

    def what_if(self, key: str | None, drop: Sequence[str] = (), transcript: str | None = None) -> Analysis:
        """The analysed clip ``key`` again with modalities removed and/or other words
        (`Predictor.what_if`: no extraction, no ASR; a removal scores exactly its Shapley subset).

        Raises
        ------
        InputError
            When the run is no longer kept (analyse the clip again) or nothing would be left.
        """
        original = self.kept_analysis(key)
        variant = self.predictor.what_if(original.run, drop, transcript)
        if not variant.prediction.modalities_present:
            raise InputError("Nothing would be left to analyse: keep at least one of the words, the voice or the face.")
        return Analysis(variant, original.context, None, reads=original.reads, scored_by=original.scored_by)

    def playable(self, path: str | os.PathLike[str] | None) -> Path | None:
        """What the page's player shows for an uploaded video: the file itself when a browser
        plays it, else a playable copy (an flv, avi, mkv or mov: `make_preview`); None when the
        file is refused, has no picture or gets no copy (the analysis then says why, or reads
        its sound). The copy is made under the same checks and limits as an analysis and swept
        with the downloads. The player is never handed a file it cannot play: the browser would
        raise "Video not playable" while the copy is being made."""
        try:
            p, info = self.validate(path)
        except InputError:
            return None
        if info.video_stream is None:
            return None
        if browser_plays(p, info):
            return p
        self._sweep()
        folder = Path(tempfile.mkdtemp(dir=self.tmp_dir))
        try:
            return make_preview(p, info, folder / f"{p.stem[:60]}{PREVIEW_SUFFIX}")
        except (FeatureError, OSError, subprocess.TimeoutExpired) as e:
            log.warning("no preview for %s: %s", p.name, e)
            return None

    def write_json(self, analysis: Analysis) -> Path:
        """Write the analysis for download; files older than ``keep_seconds`` are removed first."""
        self._sweep()
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(analysis.prediction.file).stem)[:60]
        folder = Path(tempfile.mkdtemp(dir=self.tmp_dir))  # one folder per request: no name clashes
        out = folder / f"{stem or 'clip'}-sentiment.json"
        atomic_write_bytes(out, json.dumps(analysis.to_dict(), indent=1).encode())
        return out

    def _sweep(self) -> None:
        cutoff = time.time() - self.keep_seconds
        for d in self.tmp_dir.iterdir():
            try:
                if d.stat().st_mtime < cutoff:
                    shutil.rmtree(d, ignore_errors=True)
            except FileNotFoundError:
                pass  # a concurrent request swept it first


class Checkpoints:
    """The checkpoints a page can pick, each behind its own `Service`, sharing one extractor.

    Every folder under ``root`` that holds a checkpoint is listed by its folder name, beside the
    checkpoint the app was started with (``default``). A checkpoint is loaded when first picked;
    at most ``max_loaded`` stay loaded besides the default (least recently used dropped), which
    bounds memory on a 16 GB Space. A browser session also sees its own fine-tuned checkpoints
    (``private``, by session hash): `names_for` and `get` with its session; no other session does.
    """

    def __init__(
        self,
        default: Service,
        root: str | os.PathLike[str] | None = None,
        max_loaded: int = 2,
        private: PrivateCheckpoints[Service] | None = None,
    ):
        self.default = default
        self.private = private if private is not None else PrivateCheckpoints()
        self.limits = default.limits
        self.max_loaded = max_loaded
        self.root = Path(root) if root is not None else None
        found = list_checkpoints(root) if root is not None else {}
        own = default.predictor.checkpoint.path
        self.default_name = default.predictor.checkpoint.name
        if self.default_name in found and own is not None and found[self.default_name].resolve() != own.resolve():
            self.default_name += " (started with)"  # another folder of the same name under root
        self.paths: dict[str, Path | None] = {
            self.default_name: own,
            **{k: v for k, v in found.items() if own is None or v.resolve() != own.resolve()},
        }
        self._loaded: OrderedDict[str, Service] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """The default first, then the others in name order."""
        return [self.default_name] + sorted(n for n in self.paths if n != self.default_name)

    def names_for(self, session: str | None) -> list[str]:
        """The shared checkpoints, then ``session``'s own (what its picker lists)."""
        return self.names + self.private.names(session)

    def add(self, name: str, path: Path) -> None:
        """List a checkpoint folder written while the app runs (a saved Fusion Lab model); a
        loaded one of the same name is dropped so that the next pick loads the new weights."""
        with self._lock:
            self.paths[name] = path
            self._loaded.pop(name, None)

    def get(self, name: str | None, session: str | None = None) -> Service:
        """The `Service` of checkpoint ``name`` (None or "": the default); ``session``'s own
        checkpoints are found with its session hash only.

        Raises
        ------
        InputError
            For a name that is not listed (for this session), or a checkpoint that does not load
            (with why).
        """
        if not name or name == self.default_name:
            return self.default
        own = self.private.get(session, name)
        if own is not None:
            return own.service
        if name not in self.paths:
            raise InputError(f"No checkpoint named {name!r}; pick one of: {', '.join(self.names_for(session))}.")
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            try:
                predictor = Predictor(self.paths[name], extractor=self.default.predictor.extractor)  # type: ignore[arg-type]
            except (CheckpointError, OSError, ValueError) as e:
                msg = " ".join(str(e).split()).replace(str(self.paths[name]), name)
                raise InputError(f"Checkpoint {name} cannot be used: {msg}") from e
            service = Service(predictor, self.limits, self.default.keep_seconds)
            self._loaded[name] = service
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
            return service


def build_service(
    checkpoint: str | os.PathLike[str], asr_model: str | None = None, limits: Limits | None = None, warm_up: bool = True
) -> Service:
    """Load the checkpoint and the feature models once, side by side, and pay their first-call
    costs now."""
    return Service(load_predictor(checkpoint, asr_model=asr_model, warm_up=warm_up), limits)


def _user_message(e: Exception, p: Path) -> str:
    """A `FeatureError` as one sentence that names the file and says what is accepted."""
    # The extractor names the server-side path; the user knows the file by its name only.
    msg = " ".join(str(e).split())
    for server_path in (str(p.resolve()), str(p)):
        msg = msg.replace(server_path, p.name)
    msg = scrub_paths(msg)
    if "expected" not in msg:
        msg += f"; expected {ACCEPTED}"
    return msg


# An absolute path: a "/" that starts no word, then folders, then the last part (kept).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^/\s'\"()\[\]]+/)+([^/\s'\"()\[\]]*)")


def scrub_paths(message: str) -> str:
    """``message`` with every absolute path cut to its last part ("/tmp/gradio/ab12/clip.mp4"
    -> "clip.mp4", "/srv/app/checkpoints/default" -> "default"): what a public page or API
    says never names the server's folders."""
    return _ABSOLUTE_PATH.sub(r"\1", message.replace("file:/", "/"))


__all__ = [
    "PROGRESS",
    "Analysis",
    "InputError",
    "Limits",
    "Checkpoints",
    "Service",
    "build_service",
    "scrub_paths",
]
