"""The words a person reads about an explanation, each written once: what each modality is
called, a branch's title, when a branch is only a stand-in (and so drawn grey), and the
warnings about stand-ins that never trained. The page, the figures, the API's JSON, the CLI and
the training log all take their sentences from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import MODALITIES

# Each modality as a person names it, and a branch's stream in one word.
MODALITY_WORDS = {"text": "the words", "acoustic": "the voice", "visual": "the face"}
SENSES = {"acoustic": "voice", "visual": "face"}
# What a model that does not read a modality ignores, in a newcomer's words.
IGNORED_WORDS = {"text": "what is said", "acoustic": "tone of voice", "visual": "facial expression"}


def sense(branch: str) -> str:
    """ "voice" or "face": what a branch's stream is."""
    return SENSES.get(branch, branch)


def branch_title(branch: str) -> str:
    """ "text \u2192 acoustic": a branch as titles and pickers show it."""
    return f"text \u2192 {branch}"


def does_not_read(modality: str) -> str:
    """Why a checkpoint is never fed a stream: it was not trained on measurements made from a video."""
    s = sense(modality)
    return f"this model does not read the {s}: it never learned from {s} measurements made from a video"


def stand_in_reason(branch: str, stream_present: bool, trained_samples: int | None, read: bool = True) -> str | None:
    """Why a branch's numbers are no evidence from its stream (it is drawn grey), or None.

    About the model when the model is why ("never trained on voice", "not read by this model"),
    else about the clip ("no voice in this clip"): never both, so a clip with speech is never
    said to have no voice because the model does not listen.
    """
    if trained_samples == 0:
        return f"never trained on {sense(branch)}"
    if not read:
        return "not read by this model"
    if not stream_present:
        return f"no {sense(branch)} in this clip"
    return None


def stand_in_line(branch: str, read: bool, clip_reason: str | None = None) -> str:
    """The sentence for a branch whose words saw only the stand-in: the model does not read the
    stream, or (it reads it) the clip had none, with the clip's reason when known."""
    s = sense(branch)
    why = f"This model does not read the {s}" if not read else f"This clip has no usable {s}"
    if read and clip_reason:
        why += f" ({clip_reason})"
    return f"{why}: each word could only look at the placeholder the model learned (its stand-in)."


def grey_line(reason: str) -> str:
    """The line a grey view carries in its title or tag: why it is grey, in plain words (the
    glossary's "stand-in" is one step away)."""
    return f"grey: {reason}"


def no_evidence(branch: str) -> str:
    """ "no voice evidence": a grey view's label where there is no room for the reason."""
    return f"no {sense(branch)} evidence"


def branch_note(
    branch: str, stream_present: bool, trained_samples: int | None, read: bool = True, clip_reason: str | None = None
) -> str:
    """What one branch had to work with, here and in training, in two sentences."""
    s = sense(branch)
    if trained_samples == 0:
        trained = (
            f"This checkpoint never saw {s} data in training: the branch's gates only ever "
            f"saw the learned stand-in, so they are no {s} evidence."
        )
    elif trained_samples is None:
        trained = "The checkpoint does not record how many training samples carried this modality."
    else:
        trained = f"Trained on {trained_samples:,} samples with {s} features."
    if stream_present:
        now = f"Here the words looked at the clip's {s} ({branch} stream)."
    else:
        now = stand_in_line(branch, read, clip_reason)
    return f"{now} {trained}"


def never_trained(modalities: Sequence[str]) -> str:
    """The clause every stand-in warning starts with."""
    names = ", ".join(modalities)
    return (
        f"This checkpoint's stand-in for {names} never trained ({names} was in every training sample "
        "and modality dropout was 0)"
    )


def shapley_caveat(never: Sequence[str], missing: Sequence[str]) -> str | None:
    """For the reader of the Shapley values: ``never`` are the modalities whose stand-in never
    trained, ``missing`` those of them this clip lacks (so even its score uses the stand-in)."""
    if not never:
        return None
    text = (
        f"{never_trained(never)}: the Shapley subsets without it, and so the base and the split "
        "between modalities, use an untrained vector. Read them with care."
    )
    if missing:
        text += f" This clip has no {', '.join(missing)}, so its score uses that untrained vector too."
    return text


def what_if_caveat(removed: Sequence[str]) -> str:
    """For a what-if that removes a stream whose stand-in never trained."""
    return (
        f"{never_trained(removed)}: the removed stream was replaced by a vector the model never saw, "
        "so this is not what it would say about a clip without it."
    )


def training_warning(never: Sequence[str]) -> str:
    """The training log's warning when a run will leave stand-ins untrained."""
    return (
        f"{', '.join(never)} present in every training sample and modality_dropout is 0: its learned stand-in "
        "never trains; the app's Shapley values and what-ifs replace it with an untrained vector; "
        "use --modality-dropout 0.1"
    )


def gate_scale_sentence(activation: str | None) -> str:
    """One sentence on how to read gate values: ``activation`` is the explanation's
    ``gate_activation`` ("ln", "sigmoid", or None for a model without gates)."""
    if activation is None:
        return "This checkpoint has no gates (the 'w/o mf' ablation): text and the other modality are simply added."
    if activation == "sigmoid":
        return "Sigmoid gates: each value is a fraction in [0, 1]; 0 shuts that channel, 1 lets all of it through."
    return (
        "LayerNorm gates (as in the paper): each word's values are normalised across channels, so they "
        "are centred near 0 and unbounded; read them as relative weights: large positive values "
        "amplify a channel, values near 0 suppress it, negative values flip its sign."
    )


def join_words(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_modalities(
    present: Sequence[str], absent: Mapping[str, str], transcript_source: str, notes: Sequence[str] = ()
) -> str:
    """Which streams the model used and why the others were not, in plain words (Markdown):
    a prediction's ``modalities_present``, ``absent``, ``transcript_source`` and ``notes``."""
    lines = []
    if present:
        lines.append("**Used:** " + join_words([f"{MODALITY_WORDS[m]} ({m})" for m in present]) + ".")
    for m, why in absent.items():
        lines.append(f"**Not used:** {MODALITY_WORDS[m]} ({m}): {why}.")
    if "text" in absent and transcript_source == "asr":
        lines.append("No words were recognised: type what is said in the transcript box and run again.")
    lines += notes
    return "\n\n".join(lines)


def reads_sentence(reads: Sequence[str]) -> str:
    """What a checkpoint reads and what it ignores, in one plain sentence (``reads``: the
    modalities whose streams it was trained on and is fed, in `MODALITIES` order)."""
    reads = [m for m in MODALITIES if m in reads]
    ignored = [IGNORED_WORDS[m] for m in MODALITIES if m not in reads]
    if not reads:
        return "This model reads nothing it was trained on."
    read = join_words([MODALITY_WORDS[m] for m in reads])
    if not ignored:
        return f"This model reads {read}."
    verb = "does" if len(ignored) == 1 else "do"
    only = "only " if len(reads) == 1 else ""
    return f"This model reads {only}{read}; {join_words(ignored)} {verb} not change its score."


def nothing_to_analyse(file: str, reasons: str, reads: Sequence[str]) -> str:
    """The refusal of a clip with nothing this checkpoint can read, with advice that fits it."""
    ways = ["someone speaks"] + (["their face is visible"] if "visual" in reads else [])
    return (
        f"{file}: nothing to analyse ({reasons}). {reads_sentence(reads)} Upload a clip in which "
        f"{' or '.join(ways)}, or type the transcript."
    )
