"""A fine-tuned checkpoint on disk: the checkpoint folder, its model card (README.md) and the
run's numbers (finetune.json), written as one folder swapped in whole."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import MODALITIES
from ..data import ravdess
from ..explain import wording
from ..model.checkpoint import CARD_FILE, card_starts_with, save_with_card
from .clips import ClipError
from .report import emotion_report, emotion_table
from .run import FinetuneResult

RESULT_FILE = "finetune.json"
CARD_TITLE = "# Fine-tuned on your own clips"  # how `save_finetuned` recognises a folder it may replace


def model_card(result: FinetuneResult, name: str) -> str:
    """What a fine-tuned checkpoint is, what each branch saw, how well it did, and what to doubt."""
    trained = result.checkpoint.training.modalities
    s = result.settings
    speakers = "not named in the labels" if result.speakers is None else f"{result.speakers}"
    lines = [
        f"{CARD_TITLE}: {name}",
        "",
        f"Fine-tuned from the checkpoint `{result.base_name}` on {result.clips} labelled clips "
        f"(labels: {result.label_source}; speakers: {speakers}).",
        "",
        "## What each branch saw",
        "",
        f"- **{wording.MODALITY_WORDS['text']}**: {words_line(result)}",
    ]
    for m in MODALITIES[1:]:
        n = trained.get(m) or 0
        sense = wording.sense(m)
        if n:
            lines.append(f"- **{wording.MODALITY_WORDS[m]}**: {n} of the {result.clips} clips had a {sense}.")
        else:
            lines.append(f"- **{wording.MODALITY_WORDS[m]}**: no clip had a {sense}; this branch never trained.")
    if s.trains == "streams":
        lines.append(
            "- **The fusion and the head** (the gated layers, the stand-ins): the base's, unchanged: only the voice "
            "and face encoders trained, so anything without a voice or a face is scored exactly as by the base."
        )
    lines += [
        "",
        "## How well it does on clips it did not see",
        "",
        f"Held-out mean absolute error **{result.heldout_mae:.3f}** against **{result.base_mae:.3f}** for the base "
        f"checkpoint and **{result.constant_mae:.3f}** for always answering {result.constant_label:+.1f} (the "
        "median label: no model that gives every clip one answer does better on them), on the same clips "
        f"({result.folds} folds of {result.fold_epochs} epochs: each clip predicted "
        "by a model trained without it"
        f"{', each speaker in one fold' if result.speakers and result.speakers >= 2 else ''}). "
        f"The final model trained on every clip for {result.epochs} epochs, the count with the lowest held-out "
        "error (so that error is slightly optimistic).",
        "",
    ]
    if any("emotion" in row for row in result.heldout):
        lines += corpus_section(result)
    if result.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in result.warnings] + [""]
    lines += [
        "## Settings",
        "",
        "```",
        json.dumps(s.to_dict(), indent=2),
        "```",
        "",
        f"Fine-tuning took {result.train_seconds:.0f} s. Use it: pick `{name}` in the app (when this folder is "
        "in its checkpoints folder), or `python -m msa predict --checkpoint THIS_FOLDER CLIP`.",
        "",
    ]
    return "\n".join(lines)


def scored_by(name: str, meta: Mapping[str, Any]) -> str:
    """Which checkpoint scored a clip, and for one fine-tuned on a user's clips how well it did on
    the clips it did not train on (the ``heldout`` numbers `Finetune.finish` stores in its meta)."""
    line = f"Scored by `{name}`"
    held = meta.get("heldout")
    if meta.get("finetuned_from") and isinstance(held, Mapping) and "mae" in held and "base_mae" in held:
        line += (
            f", fine-tuned from `{meta['finetuned_from']}`: on clips it did not train on its error is "
            f"{held['mae']:.2f}, the base's {held['base_mae']:.2f}"
        )
        if "constant_mae" in held:
            line += f", one answer for every clip {held['constant_mae']:.2f}"
    return line + "."


def words_line(result: FinetuneResult) -> str:
    """What became of the words' path: its encoder is always the base's; whether what reads it trained."""
    if result.settings.trains == "streams":
        return "the base checkpoint's text path, unchanged (frozen): the words count as they did."
    return (
        "the base checkpoint's text encoder, frozen; the fusion and the head that read it trained, so how much "
        "the words count can change (compare their Shapley value with the base's on the same clip)."
    )


def corpus_section(result: FinetuneResult) -> list[str]:
    """The emotion corpus a checkpoint learnt its voice from: the mapping, its licence, and how each
    emotion scored on actors the fold's model never heard."""
    lines = [
        "## The voice, from acted emotions",
        "",
        f"The clips are RAVDESS speech ({ravdess.CITATION}); licence {ravdess.LICENCE}. **A model trained on them "
        "carries the same terms: non-commercial use only, with attribution, shared alike.**",
        "",
        "The corpus labels emotions; each is mapped onto the sentiment scale from the valence norms of "
        'Warriner, Kuperman & Brysbaert (2013): 0.75 x (valence of the emotion word - valence of "neutral"), '
        "3/4 of that at normal intensity (`msa.data.ravdess.emotion_value`):",
        "",
        "| emotion | valence (1-9) | normal | strong |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {e} | {v:.2f} | {n:+.2f} | {st:+.2f} |" for e, v, n, st in ravdess.mapping_table()]
    lines += [
        "",
        f"Each clip scored by the model of the fold that never heard its actor ({result.folds} folds by actor, "
        f"{result.epochs} epochs):",
        "",
        *emotion_table(emotion_report(result.heldout)),
        "",
    ]
    return lines


def save_finetuned(result: FinetuneResult, folder: str | Path) -> Path:
    """Write the fine-tuned checkpoint to ``folder`` with its model card and numbers.

    The folder is written aside and swapped in whole (`save_with_card`): a kill leaves the old
    folder or the new one, never half a checkpoint. An existing folder is replaced only if it is
    itself a fine-tuned checkpoint (its card says so).
    """
    folder = Path(folder)
    if folder.exists() and not card_starts_with(folder, CARD_TITLE):
        raise ClipError(f"{folder} exists and is not a fine-tuned checkpoint: choose another folder")
    numbers = json.dumps(result.to_dict(), indent=2)
    return save_with_card(folder, result.checkpoint, model_card(result, folder.name), {RESULT_FILE: numbers})


__all__ = ["CARD_FILE", "RESULT_FILE", "model_card", "save_finetuned"]
