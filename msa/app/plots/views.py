"""What the fusion figures read from an `msa.explain.Explanation`'s gate views: order, colour, titles, shares."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...explain import DisplayWord, Explanation, GateView, wording
from ...model import BRANCHES
from .style import _DOT, MODALITY_COLOURS, STAND_IN_COLOUR


def _ordered(views: Sequence[GateView]) -> list[GateView]:
    """Gate views by branch (text -> acoustic first, as in the model) and then layer."""
    order = {b: i for i, b in enumerate(BRANCHES)}
    return sorted(views, key=lambda g: (order.get(g.branch, len(order)), g.branch, g.layer))


def _colour(expl: Explanation, branch: str) -> str:
    """The branch's modality colour, or grey when its words saw only the stand-in."""
    return STAND_IN_COLOUR if expl.stand_in_reason(branch) else MODALITY_COLOURS.get(branch, "#777")


def _view_title(expl: Explanation, view: GateView, *extra: str) -> str:
    """ "text -> acoustic · layer 1 · ...", then on a line of its own why it is grey when it is
    (plotly titles do not wrap: short lines read at 400 px)."""
    reason = expl.stand_in_reason(view.branch)
    title = _DOT.join([wording.branch_title(view.branch), f"layer {view.layer}", *extra])
    return title + (f"<br>{wording.grey_line(reason)}" if reason else "")


def _stand_in_lines(expl: Explanation, branch: str, what: str) -> str:
    """For a figure's title: "" or two short lines saying that ``what`` (e.g. "this attention")
    is no evidence from the branch's stream, and why."""
    reason = expl.stand_in_reason(branch)
    if not reason:
        return ""
    verb = "are" if what.split()[-1].endswith("s") else "is"  # "these gates are", "this attention is"
    return f"<br>{wording.grey_line(reason)}:<br>{what} {verb} no evidence from the {wording.sense(branch)}"


def _spoken(word: DisplayWord) -> str:
    """When the word was spoken, for hovers."""
    if word.start is None or word.end is None:
        return "spoken time not known"
    return f"spoken {word.start:.2f}\u2013{word.end:.2f} s"


def _shares(view: GateView, n_words: int) -> np.ndarray:
    """(words,) the view's shares, checked against the number of words they are drawn under."""
    share = np.asarray(view.share, dtype=np.float64).reshape(-1)
    if share.size != n_words:
        raise ValueError(
            f"{wording.branch_title(view.branch)} layer {view.layer}: {share.size} shares for {n_words} words"
        )
    return share
