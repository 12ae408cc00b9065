"""The app's request pipeline, without any UI: validate -> run -> explain -> JSON.

`Service` wraps a loaded `Predictor` and is what `app.py`'s handlers call. It owns the things
a public endpoint needs and the CLI does not: input limits (size, duration) checked before any
expensive work, errors turned into one plain sentence for the user (`InputError`), per-stage
progress callbacks, the explanation (exact Shapley values and gate summaries) and the JSON
file offered for download, kept in a private temporary folder that is swept.

Nothing here imports gradio, so the pipeline is tested and benchmarked on its own.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import MODALITIES
from .explain import Contributions, GateSummary, gate_summaries
from .features import ACCEPTED, FeatureError, probe
from .predict import Prediction, Predictor, Run

log = logging.getLogger(__name__)

# What a person sees for each stage, in order; the fractions place it on a progress bar
# (roughly the share of time each takes on a short clip with base ASR on 2 cores).
STAGES: dict[str, tuple[float, str]] = {
    "validate": (0.00, "Checking the file"),
    "decode": (0.05, "Decoding audio and video"),
    "asr": (0.12, "Transcribing speech"),
    "acoustic": (0.45, "Measuring the voice (acoustic features)"),
    "visual": (0.52, "Reading the face (visual features)"),
    "model": (0.85, "Running the model, with the Shapley subsets alongside"),
    "explain": (0.92, "Summarising the gates"),
}

MODALITY_WORDS = {"text": "the words", "acoustic": "the voice", "visual": "the face"}

# Stand-in label for the single text position a model sees when the text is absent.
NO_TEXT_TOKEN = "(no text)"

_SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>"}


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
    def from_env(cls) -> "Limits":
        return cls(_env_float("MSA_MAX_SECONDS", cls.max_seconds), _env_float("MSA_MAX_MB", cls.max_megabytes))

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * 1024 * 1024)


@dataclass
class Word:
    """A display word: one or more WordPiece tokens merged (``##`` pieces join the previous)."""

    text: str
    tokens: list[int]  # positions in the token sequence


def merge_wordpieces(tokens: list[str]) -> list[Word]:
    """Group WordPiece tokens into words; special tokens ([CLS], [SEP]) stay on their own.

    Parameters
    ----------
    tokens : the tokenizer's tokens, e.g. ``["[CLS]", "fav", "##orite", "[SEP]"]``.

    Returns
    -------
    list of Word
        e.g. ``[Word("[CLS]", [0]), Word("favorite", [1, 2]), Word("[SEP]", [3])]``.
    """
    words: list[Word] = []
    for i, tok in enumerate(tokens):
        if tok.startswith("##") and words and words[-1].text not in _SPECIAL:
            words[-1].text += tok[2:]
            words[-1].tokens.append(i)
        else:
            words.append(Word(tok, [i]))
    return words


def words_matrix(values: list[list[float]] | np.ndarray, words: list[Word]) -> np.ndarray:
    """(tokens x channels) -> (words x channels): a word's row is the mean of its pieces' rows."""
    a = np.asarray(values, dtype=np.float64)
    return np.stack([a[w.tokens].mean(0) for w in words]) if words else a[:0]


@dataclass
class Analysis:
    """Everything the app shows for one request.

    Attributes
    ----------
    prediction : the same object ``python -m msa predict`` prints.
    contributions : exact Shapley values over the three modalities.
    gates : per branch and layer, the retain and fusion gates over the text tokens.
    tokens : the text tokens the gates are defined on (special tokens included).
    words : ``tokens`` merged into display words.
    gate_activation : "ln" or "sigmoid" (the checkpoint's); use_gates False for "w/o mf".
    timings : seconds for "gates" (the summaries) beside the prediction's stages; the Shapley
        subsets run inside the prediction's "model" stage.
    """

    prediction: Prediction
    contributions: Contributions
    gates: list[GateSummary]
    tokens: list[str]
    words: list[Word]
    gate_activation: str
    use_gates: bool
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The prediction's JSON plus the explanation: what the page shows, as plain JSON."""
        d = self.prediction.to_dict()
        d["explanation"] = {
            "contributions": self.contributions.to_json(),
            "gate_activation": self.gate_activation if self.use_gates else None,
            "gate_scale": gate_scale_sentence(self.gate_activation, self.use_gates),
            "tokens": self.tokens,
            "words": [{"word": w.text, "tokens": w.tokens} for w in self.words],
            "gates": [
                {"branch": g.branch, "layer": g.layer, "retain_mean": g.retain, "fusion_mean": g.fusion,
                 "retain": g.retain_map, "fusion": g.fusion_map}  # fmt: skip
                for g in self.gates
            ],
            "timings": self.timings,
        }
        return json.loads(json.dumps(d, allow_nan=False))  # plain types, and proof it serialises


# ----------------------------------------------------------------------------------------------
# Words for people
# ----------------------------------------------------------------------------------------------


def gate_scale_sentence(activation: str, use_gates: bool) -> str:
    """One sentence on how to read gate values for this checkpoint."""
    if not use_gates:
        return "This checkpoint has no gates (the 'w/o mf' ablation): text and the other modality are simply added."
    if activation == "sigmoid":
        return ("Sigmoid gates: each value is a fraction in [0, 1]; 0 shuts that channel, "
                "1 lets all of it through.")  # fmt: skip
    return ("LayerNorm gates (as in the paper): each word's values are normalised across channels, so they "
            "are centred near 0 and unbounded; read them as relative weights: large positive values "
            "amplify a channel, values near 0 suppress it, negative values flip its sign.")  # fmt: skip


def describe_modalities(pred: Prediction) -> str:
    """Which streams the model used and why the others were not, in plain words (Markdown)."""
    present = pred.modalities_present
    lines = []
    if present:
        used = [f"{MODALITY_WORDS[m]} ({m})" for m in present]
        lines.append("**Used:** " + _join(used) + ".")
    for m, why in pred.absent.items():
        lines.append(f"**Not used:** {MODALITY_WORDS[m]} ({m}): {why}.")
    if "text" in pred.absent and pred.transcript_source == "asr":
        lines.append("No words were recognised: type what is said in the transcript box and run again.")
    lines += pred.notes
    return "\n\n".join(lines)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


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
        # The folder goes with the process; files in it go after keep_seconds (see _sweep).
        atexit.register(shutil.rmtree, self.tmp_dir, ignore_errors=True)

    @property
    def config(self) -> Any:
        return self.predictor.model.config

    # -- checks ---------------------------------------------------------------------------

    def validate(self, path: str | os.PathLike[str] | None) -> Path:
        """Refuse, with a sentence a person can act on, what the app cannot or will not process.

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
            raise InputError(f"{p.name} is {_mb(size)}; files up to {_mb(self.limits.max_bytes)} are accepted. "
                             "Trim or compress the clip and try again.")  # fmt: skip
        try:
            info = probe(p)
        except FeatureError as e:
            raise InputError(_user_message(e, p)) from e
        if info.duration is not None and info.duration > self.limits.max_seconds:
            raise InputError(self._too_long(p, info.duration))
        return p

    def _too_long(self, p: Path, seconds: float) -> str:
        return (f"{p.name} lasts {seconds:.1f} s; clips up to {self.limits.max_seconds:g} s are accepted. "
                "Cut the part you want to analyse and try again.")  # fmt: skip

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
        on_stage : called with each stage name in `STAGES` as it starts.
        explain : also compute the Shapley contributions (`Predictor.run`).
        """
        stage = on_stage or (lambda s: None)
        stage("validate")
        p = self.validate(path)
        text = transcript if transcript is not None and transcript.strip() else None
        try:
            run = self.predictor.run(p, transcript=text, on_stage=stage, explain=explain)
        except FeatureError as e:
            raise InputError(_user_message(e, p)) from e
        pred = run.prediction
        if pred.duration > self.limits.max_seconds:  # containers that do not state a duration
            raise InputError(self._too_long(p, pred.duration))
        if not pred.modalities_present:
            reasons = "; ".join(f"{m}: {why}" for m, why in pred.absent.items())
            raise InputError(f"{p.name}: nothing to analyse ({reasons}). Upload a clip in which someone speaks "
                             "or their face is visible, or type the transcript.")  # fmt: skip
        return run

    def predict(self, path: str | os.PathLike[str] | None, transcript: str | None = None) -> dict[str, Any]:
        """The API's answer: the same JSON object as ``python -m msa predict --json`` gives per file."""
        return self.run(path, transcript).prediction.to_dict()

    def analyse(
        self,
        path: str | os.PathLike[str] | None,
        transcript: str | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> Analysis:
        """`run`, then the explanation: exact Shapley values and the gates over the words.

        Returns
        -------
        Analysis
        """
        run = self.run(path, transcript, on_stage, explain=True)
        assert run.contributions is not None
        if on_stage is not None:
            on_stage("explain")
        t0 = time.perf_counter()
        tokens = self.tokens(run)
        gates = gate_summaries(run.output, tokens)
        t_gates = time.perf_counter() - t0
        c = self.predictor.model.config
        return Analysis(
            prediction=run.prediction,
            contributions=run.contributions,
            gates=gates,
            tokens=tokens,
            words=merge_wordpieces(tokens),
            gate_activation=c.gate_activation,
            use_gates=bool(c.use_gates),
            timings={"gates": t_gates},
        )

    def tokens(self, run: Run) -> list[str]:
        """The text tokens the gates are defined on (one stand-in position when text is absent)."""
        n = int(run.output.text_mask[0].sum())
        if not bool(run.batch.present[0, MODALITIES.index("text")]):
            return [NO_TEXT_TOKEN] * n
        ids = run.batch.input_ids[0, :n].tolist()
        return list(self.predictor.checkpoint.tokenizer.convert_ids_to_tokens(ids))

    def write_json(self, analysis: Analysis) -> Path:
        """Write the analysis for download; files older than ``keep_seconds`` are removed first."""
        self._sweep()
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(analysis.prediction.file).stem)[:60]
        folder = Path(tempfile.mkdtemp(dir=self.tmp_dir))  # one folder per request: no name clashes
        out = folder / f"{stem or 'clip'}-sentiment.json"
        out.write_text(json.dumps(analysis.to_dict(), indent=1))
        return out

    def _sweep(self) -> None:
        cutoff = time.time() - self.keep_seconds
        for d in self.tmp_dir.iterdir():
            try:
                if d.stat().st_mtime < cutoff:
                    shutil.rmtree(d, ignore_errors=True)
            except FileNotFoundError:
                pass  # a concurrent request swept it first


class UploadLedger:
    """Which page sessions hold which uploaded files, so that a file is deleted as soon as the
    last page that used it is closed.

    A page keeps its upload while it is open: the user may correct the transcript and run the
    same clip again, and the page still shows it. Uploads are stored by content hash, so two
    pages that send the same file share one path: it goes when the last of them closes. Only
    files under ``root`` (the web framework's upload folder) are ever deleted, and never one
    for which ``protected(path)`` is true (the app's examples, whatever path they were given).
    A file sent by an API call is deleted when that call ends (`drop`) unless something else
    still uses it. What remains (pages that never close cleanly) is left to the periodic sweep
    of the upload folder.
    """

    def __init__(self, root: str | os.PathLike[str], protected: Callable[[Path], bool] = lambda p: False):
        self.root = Path(root).resolve()
        self.protected = protected
        self._held: dict[str, set[Path]] = {}
        self._lock = threading.Lock()

    def hold(self, session: str | None, path: str | os.PathLike[str] | None) -> None:
        """Record that ``session`` uses ``path`` (ignored without a session or outside ``root``)."""
        if not session or not path:
            return
        p = Path(path).resolve()
        if self.root in p.parents:
            with self._lock:
                self._held.setdefault(session, set()).add(p)

    def release(self, session: str | None) -> list[Path]:
        """Forget ``session``; delete its files that no other session holds. Returns them."""
        with self._lock:
            mine = self._held.pop(session or "", set())
            still = set().union(*self._held.values()) if self._held else set()
        return [p for p in sorted(mine - still) if self._delete(p)]

    def drop(self, path: str | os.PathLike[str] | None, started: float, other_requests: int | None) -> bool:
        """After a request that was not made from a page (an API call) that started at
        ``started`` (``time.time()``): delete its file unless a page holds it, it is protected,
        it was written again after ``started`` (another client uploaded the same content), or
        ``other_requests`` (queued or running requests naming it besides this one; None:
        unknown) is not 0. Returns whether it was deleted."""
        if not path or other_requests != 0:
            return False
        p = Path(path).resolve()
        with self._lock:
            if any(p in held for held in self._held.values()):
                return False
        try:
            if p.stat().st_ctime >= started:
                return False
        except FileNotFoundError:
            return False
        return self._delete(p)

    def _delete(self, p: Path) -> bool:
        if self.root not in p.parents:
            return False
        try:
            if self.protected(p):
                return False
            p.unlink()
        except FileNotFoundError:
            return False  # swept already
        if p.parent != self.root:
            try:
                p.parent.rmdir()  # the per-upload folder, when empty
            except OSError:
                pass
        return True


def _user_message(e: Exception, p: Path) -> str:
    """A `FeatureError` as one sentence that names the file and says what is accepted."""
    msg = " ".join(str(e).split())
    # The extractor names the server-side path; the user knows the file by its name only.
    msg = msg.replace(str(p), p.name)
    if "expected" not in msg:
        msg += f"; expected {ACCEPTED}"
    return msg


__all__ = [
    "STAGES",
    "Analysis",
    "InputError",
    "Limits",
    "Service",
    "UploadLedger",
    "Word",
    "describe_modalities",
    "gate_scale_sentence",
    "merge_wordpieces",
    "words_matrix",
]
