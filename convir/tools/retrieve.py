"""``retrieve``: one query vector per strategy, a FAISS search, and rescoring of the pool.

Query vectors (all unit-normalised):

- ``text``: the refined query's text embedding ``t``.
- ``dar``: ``(1 - w_v) t + w_v mean(g)`` over the generated images' embeddings ``g``. With
  an inner-product index this ranks exactly by DAR's fused score ``w_t cos(t, x) + w_v
  mean cos(g, x)`` (before the final normalisation, which does not change the order), so the
  fusion costs one search. ``w_v`` is 0.2 in turns 0-1 and 0.5 after, as in DAR's code.
- ``stitch``: the mean of the target descriptions after their transitions
  (``convir.tools.stitch_query``: the published edit-text mix, or our reference image minus
  its caption), see docs/stitch.md.

On an index with caption vectors (``convir index FOLDER --captions F --text-model NAME``),
a text or DAR turn's pool cosines become ``(1 - w) cos(q, x) + w cos(t', c_x)`` with ``w =
caption_weight``, ``t'`` the query text by the text model and ``c_x`` the item's caption vector
(0 for an item without a caption): the caption channel reorders the image channel's pool.
The default ``w`` is 0.5 (measured, docs/agent.md); an index without caption vectors is
searched exactly as before (:func:`fuse_captions` returns the cosines untouched).

The first ``pool`` hits are rescored in logit units: ``cos(q, x) / T + beta * sum_j log
p(answer_j | x)`` over the answers given so far (zero-shot answer model, ``answers.py``), so
an answered question also filters the candidates directly, not only through the wording of
the refined query. The reference image of a composed query is never returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convir.state import AgentConfig, ConvState, Strategy

if TYPE_CHECKING:
    from convir.gallery.answers import AnswerModel
    from convir.gallery.resources import Resources


class RetrieveArgs(BaseModel):
    """Arguments of ``retrieve`` as a standalone tool; k is capped, never trusted."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(10, ge=1, le=1000)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def dar_weight(turn: int, config: AgentConfig) -> float:
    """DAR's image weight w_v for a turn (0-based)."""
    return config.dar_image_weight_early if turn <= 1 else config.dar_image_weight_late


def query_vector(
    text: np.ndarray,
    strategy: Strategy,
    *,
    generated: np.ndarray | None = None,
    image_weight: float = 0.0,
) -> np.ndarray:
    """The unit query vector [D] of ``text`` or ``dar`` (module docstring has the formulas;
    STiTch's comes from ``convir.tools.stitch_query``)."""
    q = text.astype(np.float64)
    if strategy == "dar" and generated is not None and len(generated):
        q = (1.0 - image_weight) * q + image_weight * np.mean(generated, axis=0)
    return _unit(q).astype(np.float32)


def rescore(
    cos: np.ndarray, answer_loglik: np.ndarray, temperature: float, answer_weight: float
) -> np.ndarray:
    """Logit-unit scores of a pool: cosine / T + beta * log-likelihood of the answers."""
    return cos.astype(np.float64) / temperature + answer_weight * answer_loglik


def answers_loglik(
    resources: Resources,
    positions: np.ndarray | list[int],
    turns: list[str],
    answers: AnswerModel | None,
    config: AgentConfig,
    asked: dict[str, dict] | None = None,
) -> np.ndarray:
    """``sum_j log p(answer_j | x)`` per gallery position (zeros without answers)."""
    pool = [int(p) for p in positions]
    if answers is None or config.answer_weight <= 0 or not turns or not pool:
        return np.zeros(len(pool))
    texts = resources.texts_at(pool) if config.read_captions else None
    return answers.answer_loglik(turns, resources.vectors[pool], asked, texts)


def first_stage_pool(
    resources: Resources, q: np.ndarray, config: AgentConfig, exclude: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, gallery positions) of the FAISS top ``pool`` for ``q``, best first, without
    the excluded id (a composed query's reference)."""
    cos, positions = resources.index.search(q[None, :], config.pool + (1 if exclude else 0))
    return _trim(resources, cos[0], positions[0], exclude)


def _trim(
    resources: Resources, cos: np.ndarray, positions: np.ndarray, exclude: str | None
) -> tuple[np.ndarray, np.ndarray]:
    keep = positions >= 0
    cos, positions = cos[keep], positions[keep]
    if exclude is not None:
        mask = positions != resources.index.position_of(exclude)
        cos, positions = cos[mask], positions[mask]
    return cos, positions


def retrieve(
    resources: Resources,
    q: np.ndarray,
    turns: list[str],
    answers: AnswerModel | None,
    config: AgentConfig,
    exclude: str | None = None,
    asked: dict[str, dict] | None = None,
) -> tuple[list[str], list[float]]:
    """(ids, scores) best first: FAISS top ``pool``, rescored, cut to ``top_k``.

    ``asked``: the options and facts of the questions the agent asked (state), so every
    answer is scored as its question's bank meant it.
    """
    cos, positions = first_stage_pool(resources, q, config, exclude)
    return rank_pool(resources, cos, positions, turns, answers, config, asked)


def rank_pool(
    resources: Resources,
    cos: np.ndarray,
    positions: np.ndarray,
    turns: list[str],
    answers: AnswerModel | None,
    config: AgentConfig,
    asked: dict[str, dict] | None = None,
) -> tuple[list[str], list[float]]:
    """(ids, scores) of a first-stage pool rescored with the answers, cut to ``top_k``."""
    loglik = answers_loglik(resources, positions, turns, answers, config, asked)
    scores = rescore(cos, loglik, config.score_temperature, config.answer_weight)
    order = np.argsort(-scores, kind="stable")[: config.top_k]
    return resources.index.ids_of(positions[order]), scores[order].tolist()


def make_retrieve_node(
    resources: Resources, config: AgentConfig, answers: AnswerModel
) -> Callable[[ConvState], dict]:
    """Graph node: search with the state's query and strategy, update the candidates."""

    def retrieve_node(state: ConvState) -> dict:
        q, how = first_stage_query(resources, config, state)
        cos, positions = first_stage_pool(resources, q, config, excluded_id(state))
        return _update(resources, config, answers, state, how, cos, positions)

    return retrieve_node


def retrieve_many(
    resources: Resources, config: AgentConfig, answers: AnswerModel, states: list[ConvState]
) -> list[dict]:
    """The retrieve node's updates for many conversations at once: their query texts in one
    encoder call and their first stages in one FAISS search (two when some exclude a
    reference), then each pool rescored as the node does. Equal to the node's updates up to
    the float rounding of a batched forward pass."""
    texts = [t for s in states if (t := _query_text(config, s)) is not None]
    if texts:
        resources.warm_texts(texts)
    built = [first_stage_query(resources, config, s) for s in states]
    pools: list[tuple[np.ndarray, np.ndarray]] = [None] * len(states)  # type: ignore[list-item]
    for excluding in (False, True):
        rows = [i for i, s in enumerate(states) if (excluded_id(s) is not None) == excluding]
        if not rows:
            continue
        k = config.pool + (1 if excluding else 0)
        cos, positions = resources.index.search(np.stack([built[i][0] for i in rows]), k)
        for j, i in enumerate(rows):
            pools[i] = _trim(resources, cos[j], positions[j], excluded_id(states[i]))
    return [
        _update(resources, config, answers, s, how, *pool)
        for s, (_, how), pool in zip(states, built, pools, strict=True)
    ]


def excluded_id(state: ConvState) -> str | None:
    """The gallery id a turn must not return: a STiTch turn's reference image."""
    return state.get("reference_id") if state.get("strategy", "dar") == "stitch" else None


def _update(
    resources: Resources,
    config: AgentConfig,
    answers: AnswerModel,
    state: ConvState,
    how: str,
    cos: np.ndarray,
    positions: np.ndarray,
) -> dict:
    turns = state.get("dialogue", [])[1:]
    cos, fused = fuse_captions(resources, config, state, cos, positions)
    if fused:
        how += f" + captions w={config.caption_weight}"
    ids, scores = rank_pool(
        resources, cos, positions, turns, answers, config, state.get("asked_options")
    )
    return {
        "candidates": ids,
        "scores": scores,
        "transcript": [
            f"retrieve ({how}): top 3 "
            + ", ".join(f"{i} ({s:.2f})" for i, s in zip(ids[:3], scores[:3], strict=False))
        ],
    }


def fuse_captions(
    resources: Resources,
    config: AgentConfig,
    state: ConvState,
    cos: np.ndarray,
    positions: np.ndarray,
) -> tuple[np.ndarray, bool]:
    """The pool's cosines with the caption channel mixed in (module docstring), and whether
    it was: only with ``caption_weight`` > 0, caption vectors, and a text or DAR turn."""
    w = config.caption_weight
    if w <= 0 or not len(positions) or not resources.has_caption_channel:
        return cos, False
    text = _query_text(config, state)
    if text is None:  # STiTch searches with its descriptions' image-space vectors
        return cos, False
    captions = resources.caption_cosines(text, positions)
    return ((1.0 - w) * cos + w * captions).astype(np.float32), True


def _turn_query(state: ConvState) -> str:
    """The turn's refined query (the opening message before any refinement)."""
    return state.get("query") or " ".join(state.get("dialogue", [])[:1])


def _query_text(config: AgentConfig, state: ConvState) -> str | None:
    """The text a text or DAR turn encodes for its first stage (None for STiTch)."""
    if state.get("strategy", "dar") == "stitch":
        return None
    query = _turn_query(state)
    if state.get("strategy", "dar") == "dar" and config.dar_query == "joined":
        return ", ".join(state["refined"]) if state.get("refined") else query
    return query


def first_stage_query(
    resources: Resources, config: AgentConfig, state: ConvState
) -> tuple[np.ndarray, str]:
    """The unit query vector [D] the state's turn searches with, and a note of how it was
    built (text, DAR's fusion with the generated images, or STiTch's descriptions)."""
    text = _query_text(config, state)
    if text is None:
        return _stitch_vector(resources, config, state)
    strategy = state.get("strategy", "dar")
    query = _turn_query(state)
    generated = None
    if strategy == "dar" and state.get("generated") and state.get("generated_for") == query:
        generated = np.asarray(state["generated"], dtype=np.float32)
    w_v = dar_weight(state.get("turn", 0), config)
    q = query_vector(
        resources.text(text).pooled.numpy()[0], strategy, generated=generated, image_weight=w_v
    )
    return q, (f"w_v={w_v}" if generated is not None else strategy)


def _stitch_vector(
    resources: Resources, config: AgentConfig, state: ConvState
) -> tuple[np.ndarray, str]:
    """STiTch's first-stage query and a note: the descriptions' mean after the transitions."""
    from convir.tools.stitch_query import description_vectors, stitch_query, uses_image_transition

    q = stitch_query(description_vectors(resources, state, config))
    how = config.stitch_transition
    if how == "edit" and uses_image_transition(resources, state, config):
        how += " + image"
    k = len(state.get("descriptions") or [1])
    return q, f"stitch, {k} descriptions, {how} transition"
