"""Why the model gave its score: exact Shapley values over the modalities (`shapley`), what
each word takes in from the voice and the face (`words`, `shares`), gathered per clip in an
`Explanation` (`explanation`); the sentences a person reads about them live in `wording`."""

from .explanation import (
    BRANCH_NAMES,
    MAX_TIME_COLUMNS,
    BranchInfo,
    Explanation,
    GateView,
    branch_infos,
    explain_output,
    pool_over_time,
)
from .shapley import Contributions, fuse_with_coalitions, shapley, shapley_batch, shapley_values
from .shares import update_share
from .words import NO_TEXT_WORD, DisplayWord, display_words

__all__ = [
    "BRANCH_NAMES",
    "MAX_TIME_COLUMNS",
    "NO_TEXT_WORD",
    "BranchInfo",
    "Contributions",
    "DisplayWord",
    "Explanation",
    "GateView",
    "branch_infos",
    "display_words",
    "explain_output",
    "fuse_with_coalitions",
    "pool_over_time",
    "shapley",
    "shapley_batch",
    "shapley_values",
    "update_share",
]
