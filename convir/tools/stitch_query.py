"""STiTch step (b): target descriptions -> description vectors and the first-stage query.

Transitions (``AgentConfig.stitch_transition``):

- ``edit`` (STiTch's code): each description embedding ``t_k`` becomes
  ``unit((1 - a) t_k + a t_edit)`` with ``t_edit`` the embedding of the edit instruction and
  ``a = stitch_edit_weight`` (0.5 in the code; the paper says 0.45). The edit text pulls
  every description toward what must change. The first-stage query is the unit mean of the
  moved descriptions (the code's "base" query: the mean of the descriptions' mean and the
  instruction, up to normalisation).
- ``image`` (ours): the unit mean of the descriptions plus ``lambda (v_ref - t_ref)``, the
  reference image's embedding minus its caption's: what the caption leaves out of the
  reference's look (and the modality gap), carried over to the target.
- ``none``: the unit mean of the descriptions.

The set score of step (c) compares the *moved* descriptions with each candidate's views
(``convir.tools.set_scores``); with ``image`` or ``none`` the descriptions are not moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from convir.agents.resources import Resources
    from convir.state import AgentConfig, ConvState


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def moved_descriptions(
    descriptions: np.ndarray, edit: np.ndarray | None, edit_weight: float
) -> np.ndarray:
    """Unit description vectors [K, D], each mixed with the edit's embedding when given."""
    d = _unit_rows(descriptions.astype(np.float64))
    if edit is not None and edit_weight > 0:
        d = (1.0 - edit_weight) * d + edit_weight * _unit_rows(edit.astype(np.float64))
    return _unit_rows(d).astype(np.float32)


def stitch_query(
    descriptions: np.ndarray,
    *,
    reference_image: np.ndarray | None = None,
    reference_text: np.ndarray | None = None,
    transition_scale: float = 0.0,
) -> np.ndarray:
    """The unit first-stage query [D] from (moved) descriptions [K, D]; with a reference
    image and ``transition_scale > 0``, plus the image transition."""
    q = _unit_rows(descriptions.astype(np.float64).mean(axis=0))
    if reference_image is not None and transition_scale > 0:
        ref_text = reference_text if reference_text is not None else 0.0
        q = q + transition_scale * (reference_image.astype(np.float64) - ref_text)
    return _unit_rows(q).astype(np.float32)


def description_vectors(resources: Resources, state: ConvState, config: AgentConfig) -> np.ndarray:
    """The turn's description vectors [K, D] (moved by the edit when configured); the same
    cached text features serve ``retrieve`` and ``ot_rerank``."""
    texts = state.get("descriptions") or [state.get("query", "")]
    pooled = resources.pooled_texts(texts)
    edit = None
    if config.stitch_transition == "edit" and state.get("dialogue"):
        edit = resources.pooled_texts([state["dialogue"][0]])
    return moved_descriptions(pooled, edit, config.stitch_edit_weight)
