"""STiTch step (b): target descriptions -> description vectors and the first-stage query.

Transitions (``AgentConfig.stitch_transition``):

- ``edit`` (STiTch's code): each description embedding ``t_k`` becomes
  ``unit((1 - a) t_k + a t_edit)`` with ``t_edit`` the embedding of the edit instruction and
  ``a = stitch_edit_weight`` (0.5 in the code; the paper says 0.45). The edit text pulls
  every description toward what must change. The first-stage query is the unit mean of the
  moved descriptions (the code's "base" query: the mean of the descriptions' mean and the
  instruction, up to normalisation).
- ``image`` (ours): each description plus ``lambda (v_ref - t_ref)``, the reference image's
  embedding minus its caption's: what the caption leaves out of the reference's look (and
  the modality gap), carried over to the target. With one description this is our earlier
  ``unit(t) + lambda (v_ref - t_ref)``.
- ``none``: the descriptions as written.

The first-stage query is the unit mean of the moved descriptions, and the set score of
step (c) compares the same moved descriptions with each candidate's views
(``convir.tools.set_scores``). When step (a) never saw the reference (no caption, no VLM:
an upload), ``edit`` also gets the image transition, or the reference would not count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from convir.gallery.resources import Resources
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


def image_transition(
    descriptions: np.ndarray,
    reference_image: np.ndarray,
    reference_text: np.ndarray | None,
    scale: float,
) -> np.ndarray:
    """Unit rows ``t_k + scale (v_ref - t_ref)`` (``t_ref = 0`` without a caption)."""
    shift = reference_image.astype(np.float64) - (
        0.0 if reference_text is None else reference_text.astype(np.float64)
    )
    return _unit_rows(descriptions.astype(np.float64) + scale * shift).astype(np.float32)


def stitch_query(descriptions: np.ndarray) -> np.ndarray:
    """The unit first-stage query [D]: the mean of the (moved) descriptions [K, D]."""
    return _unit_rows(descriptions.astype(np.float64).mean(axis=0)).astype(np.float32)


def reference_unseen(resources: Resources, state: ConvState, config: AgentConfig) -> bool:
    """Whether step (a) wrote the descriptions without seeing the reference: no caption of
    it (an upload, or a gallery without texts) and no VLM shown the image."""
    ref = state.get("reference_id")
    caption = resources.caption_for(ref) if ref else None
    return not caption and not (resources.llm is not None and config.stitch_llm_sees_reference)


def uses_image_transition(resources: Resources, state: ConvState, config: AgentConfig) -> bool:
    """``image`` transition configured, or ``edit`` with a reference step (a) never saw (so
    the reference image still shapes the query: the image transition is added)."""
    if config.stitch_transition == "image":
        return True
    return config.stitch_transition == "edit" and reference_unseen(resources, state, config)


def description_vectors(resources: Resources, state: ConvState, config: AgentConfig) -> np.ndarray:
    """The turn's description vectors [K, D] after the transitions; the same cached text
    features serve ``retrieve`` and ``ot_rerank``."""
    texts = state.get("descriptions") or [state.get("query", "")]
    vectors = resources.pooled_texts(texts)
    edit = None
    if config.stitch_transition == "edit" and state.get("dialogue"):
        edit = resources.pooled_texts([state["dialogue"][0]])
    vectors = moved_descriptions(vectors, edit, config.stitch_edit_weight)
    if not uses_image_transition(resources, state, config):
        return vectors
    ref = state.get("reference_id")
    if ref:
        ref_image = resources.vectors[resources.index.position_of(ref)]
        caption = resources.caption_for(ref)
        ref_text = resources.pooled_texts([caption])[0] if caption else None
    elif state.get("reference_vector"):
        ref_image, ref_text = np.asarray(state["reference_vector"], dtype=np.float32), None
    else:
        return vectors
    return image_transition(vectors, ref_image, ref_text, config.stitch_transition_scale)
