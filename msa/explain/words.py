"""The transcript's words as the model saw them: each word with the text positions (tokens) it
was split into and its spoken interval."""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..sample import TimedWord

# Shown for the one text position a model sees when the clip has no words (the text stand-in).
NO_TEXT_WORD = "(no text)"


@dataclass
class DisplayWord:
    """A word as a person reads it, and the text positions (tokens) the model split it into.

    ``start``/``end`` are its spoken interval in seconds (from the ASR word timings), None when
    unknown (a typed transcript, or a word the recogniser did not produce).
    """

    text: str
    tokens: list[int]
    start: float | None = None
    end: float | None = None


def _normal(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def display_words(
    tokenizer: Any,
    text: str | None,
    input_ids: list[int],
    timed_words: Sequence[TimedWord] = (),
) -> list[DisplayWord]:
    """Group the model's text positions into the transcript's words, with their spoken times.

    A word is a whitespace-separated piece of ``text`` ("favorite," is one word even when the
    tokenizer makes three tokens of it); special tokens ([CLS], [SEP], <s>...) belong to no
    word. Any fast tokenizer works (its character offsets place each token); a slow one falls
    back to merging WordPiece ``##`` continuations. Words cut off by the model's length limit
    are left out: the list is what the model saw.

    Parameters
    ----------
    tokenizer : the checkpoint's tokenizer (the one that made ``input_ids``).
    text : the transcript the ids were made from; None when the text is absent (the model then
        sees a single stand-in position, returned as one word, `NO_TEXT_WORD`).
    input_ids : the sample's valid token ids, in order.
    timed_words : the recognised words in order; matched to the transcript's words
        by their letters and digits, so punctuation and case do not matter.
    """
    if text is None or not text.strip():
        return [DisplayWord(NO_TEXT_WORD, [0])]
    special = set(getattr(tokenizer, "all_special_ids", []))
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    starts = [a for a, _, _ in spans]
    groups: dict[int, list[int]] = {}
    offsets = None
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        # The collator truncates, writing [SEP] over the last id kept: compare the ones before it.
        n = len(input_ids)
        if list(ids[: n - 1]) != list(input_ids[: n - 1]):
            offsets = None  # not the tokenization the model saw: fall back to the pieces
    if offsets is not None:
        for pos, tok in enumerate(input_ids):
            if tok in special or pos >= len(offsets) or offsets[pos][1] <= offsets[pos][0]:
                continue
            w = bisect.bisect_right(starts, offsets[pos][0]) - 1
            if w >= 0:
                groups.setdefault(w, []).append(pos)
        words = [DisplayWord(spans[w][2], pos) for w, pos in sorted(groups.items())]
    else:
        words = _merged_pieces(tokenizer.convert_ids_to_tokens(list(input_ids)), special, input_ids)
    _attach_times(words, timed_words)
    return words


def _merged_pieces(tokens: list[str], special: set[int], ids: Sequence[int]) -> list[DisplayWord]:
    """WordPiece tokens merged into words (``##`` pieces join the previous word); no specials."""
    words: list[DisplayWord] = []
    for pos, (tok, i) in enumerate(zip(tokens, ids)):
        if i in special:
            continue
        if tok.startswith("##") and words and words[-1].tokens[-1] == pos - 1:
            words[-1].text += tok[2:]
            words[-1].tokens.append(pos)
        else:
            words.append(DisplayWord(tok, [pos]))
    return words


def _attach_times(words: list[DisplayWord], timed: Sequence[TimedWord]) -> None:
    """Give each word the interval of the ASR word it matches (longest common subsequence)."""
    if not timed:
        return
    a = [_normal(w.text) for w in words]
    b = [_normal(w.word) for w in timed]
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            w = timed[block.b + k]
            words[block.a + k].start, words[block.a + k].end = w.start, w.end
