"""Plotly figures for the app.

- The result (`scores`): the score on its scale (`score_figure`), each modality's exact Shapley
  value (`shapley_figure`) and, for a long input, the score of each utterance over time
  (`timeline_figure`).
- How gated fusion works, from an `msa.explain.Explanation`: how much of each word's update comes
  from the voice and from the face (`shares`: `share_rows_figure`, one row per branch and layer,
  and its small-multiples overview `share_grid_figure`), where one word looks along the clip, over
  its video frames and its voice's loudness and pitch (`attention`: `attention_figure`, with an
  `msa.features.context.ClipContext`), what a what-if run changed (`what_if`: `what_if_figure`),
  and the raw gate values per channel for the advanced view (`gates`: `gate_heatmaps`).
- What they share: colours, fonts and axes (`style`), and how gate views are ordered, coloured and
  titled (`views`).

Figures take plain values and the dataclasses of `msa.explain` and return
`plotly.graph_objects.Figure`s; they compute nothing about the model.
Words go on numbered axes with the word as the tick label, because a categorical axis would
merge two occurrences of the same word into one row.
A branch whose stream was absent from the clip, or that never saw its modality in training, is
drawn grey and titled why (`wording.grey_line`): its words looked at the learned stand-in token, so its
numbers are no evidence from the voice or the face.
"""

from __future__ import annotations

from .attention import attention_figure
from .gates import gate_heatmaps
from .scores import score_figure, shapley_figure, timeline_figure
from .shares import share_grid_figure, share_rows_figure
from .style import CLASS_COLOURS, MODALITY_COLOURS, STAND_IN_COLOUR
from .what_if import what_if_figure

__all__ = [
    "CLASS_COLOURS",
    "MODALITY_COLOURS",
    "STAND_IN_COLOUR",
    "attention_figure",
    "gate_heatmaps",
    "score_figure",
    "share_grid_figure",
    "share_rows_figure",
    "shapley_figure",
    "timeline_figure",
    "what_if_figure",
]
