"""Why an image ranks where it does: the terms of its score in the current turn.

The agent scores a candidate ``x`` in logit units (``convir.tools.retrieve``):
``cos(q, x) / T + beta * sum_j log p(answer_j | x)``, and ``ot_rerank`` may then replace or
mix in a set / transport score for the top candidates. This recomputes the first two parts
from the checkpointed state (the same first-stage query and pool, the same answer model:
the answer model may read candidates' captions depending on the pool) and reports
whatever is left of the stored score as the rerank's share, so the terms always add up to
the score the user saw. Nothing here is stored in the state: a result's explanation costs one
text encoding (cached), one search and one answer-model call per answer, only when someone
asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from convir.state import AgentConfig, ConvState

if TYPE_CHECKING:
    from convir.gallery.resources import Resources


@dataclass(frozen=True)
class ScoreTerm:
    """One additive part of a score: what it is, and its value in logit units."""

    label: str
    value: float


@dataclass(frozen=True)
class RankExplanation:
    """An image's place in the current ranking and the terms its score adds up from."""

    image_id: str
    rank: int | None  # 1-based place in the current ranking; None if not in the list kept
    score: float | None  # the score shown with the result (None when not ranked)
    similarity: float  # cosine of the first-stage query and the image
    how: str  # how the first-stage query was built (text, DAR fusion, STiTch)
    terms: list[ScoreTerm] = field(default_factory=list)


def explain_rank(
    resources: Resources, config: AgentConfig, state: ConvState, image_id: str
) -> RankExplanation:
    """The terms of ``image_id``'s score in ``state``'s current turn (see module docstring).

    Raises ``KeyError`` when the image is not in the gallery.
    """
    from convir.gallery.answers import AnswerModel
    from convir.tools.retrieve import (
        answers_loglik,
        excluded_id,
        first_stage_pool,
        first_stage_query,
    )

    position = resources.index.position_of(image_id)
    q, how = first_stage_query(resources, config, state)
    _, pool = first_stage_pool(resources, q, config, excluded_id(state))
    pool = [int(p) for p in pool]
    if position not in pool:  # never scored this turn: scored here beside the same pool
        pool.append(position)
    row = pool.index(position)
    x = np.asarray(resources.vectors[position], dtype=np.float64)
    similarity = float(np.dot(q.astype(np.float64), x))
    label = f"similarity {similarity:.3f} / temperature {config.score_temperature}"
    terms = [ScoreTerm(label, similarity / config.score_temperature)]
    answers = AnswerModel(resources.embedder, config.answer_temperature)
    asked = state.get("asked_options")
    for turn in state.get("dialogue", [])[1:]:
        loglik = answers_loglik(resources, pool, [turn], answers, config, asked)
        value = float(config.answer_weight * loglik[row])
        if value != 0.0:
            terms.append(ScoreTerm(f"answer: {turn}", value))
    ids, scores = state.get("candidates", []), state.get("scores", [])
    rank = ids.index(image_id) + 1 if image_id in ids else None
    score = float(scores[rank - 1]) if rank is not None and rank <= len(scores) else None
    if score is not None and "ot_rerank" in state.get("steps", []):
        rest = score - sum(t.value for t in terms)
        if abs(rest) > 1e-4:
            terms.append(ScoreTerm(_rerank_label(state, config), rest))
    return RankExplanation(image_id, rank, score, similarity, how, terms)


def _rerank_label(state: ConvState, config: AgentConfig) -> str:
    if state.get("strategy") == "stitch" and config.stitch_set_score != "token-ot":
        return f"rerank: {config.stitch_set_score} set score in place of the similarity"
    return "rerank: token x patch transport"
