"""Composed retrieval on the testbed: STiTch's published pipeline, our variant, and ablations.

Every stage is one :class:`~convir.state.AgentConfig` and is measured through the agent a
user runs (``ConvirAgent`` with the rule policy, one turn, no question): the query is the
edit text and the reference image's gallery id, the agent writes the target descriptions,
builds the first-stage query, searches and reranks exactly as in ``convir chat``. Recall@K
counts the target among the first K; the agent never returns the reference (as CIRR).

Stages (``STAGES``): ``caption`` (one description, no transition, no rerank) -> each
transition -> k descriptions -> each set score; ``stitch`` is the published pipeline
(5 descriptions, edit transition, conditional transport over 11 views) and
``stitch-token-ot`` our earlier one (1 caption, image transition, token x patch OT).

Two writers of the descriptions: ``rules`` (no LLM: ``target_descriptions``' rules over the
reference caption) and ``ideal`` (an oracle in place of the LLM that returns the target's
own captions in varied wordings: what a perfect vision-language model would write, the
ceiling of step (a) on this testbed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from convir.state import STITCH_VARIANTS

if TYPE_CHECKING:
    from convir.gallery.resources import Resources
    from convir.testbed.edits import Triplet

KS = (1, 10, 50)
_ONE = {"stitch_descriptions": 1}
_NO_RERANK = {"stitch_set_score": "none"}
STAGES: dict[str, dict[str, Any]] = {
    "caption": {**_ONE, "stitch_transition": "none", **_NO_RERANK},
    "+edit-transition": {**_ONE, "stitch_transition": "edit", **_NO_RERANK},
    "+image-transition": {**_ONE, "stitch_transition": "image", **_NO_RERANK},
    "descriptions": {"stitch_descriptions": 5, "stitch_transition": "none", **_NO_RERANK},
    "descriptions+edit": {"stitch_descriptions": 5, "stitch_transition": "edit", **_NO_RERANK},
    "stitch": dict(STITCH_VARIANTS["published"]),
    "stitch-sinkhorn": {**STITCH_VARIANTS["published"], "stitch_set_score": "sinkhorn"},
    "stitch-gentle-views": {**STITCH_VARIANTS["published"], "stitch_view_augment": "gentle"},
    "stitch-token-ot": dict(STITCH_VARIANTS["token-ot"]),
}


def recall_at(ranks: Sequence[int]) -> dict[str, float]:
    """{"r1", "r10", "r50"} from 0-based ranks (a miss is any rank >= 50)."""
    arr = np.asarray(ranks)
    return {f"r{k}": round(float(np.mean(arr < k)), 4) for k in KS}


def stage_recall(
    resources: Resources,
    triplets: Sequence[Triplet],
    overrides: Mapping[str, Any],
    knobs: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Recall@1/10/50 of one stage: a one-turn STiTch conversation per triplet."""
    from convir.agents.conversation import ConvirAgent
    from convir.agents.policy import RulePolicy
    from convir.state import AgentConfig

    config = AgentConfig(strategy="stitch", top_k=max(KS), **{**(knobs or {}), **overrides})
    # (a stage's own settings win over the run's knobs: stitch-gentle-views stays gentle)
    agent = ConvirAgent(resources, RulePolicy(ask=False), config)
    ranks = []
    for i, t in enumerate(triplets):
        ranking = agent.start(f"composed-{i}", t.text, reference_id=t.reference).ranking
        ranks.append(ranking.index(t.target) if t.target in ranking else max(KS))
    return recall_at(ranks)


def composed_stages(
    resources: Resources,
    triplets: Sequence[Triplet],
    stages: Sequence[str] = tuple(STAGES),
    knobs: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """{stage: recalls} for the named stages, in order."""
    out = {}
    for name in stages:
        out[name] = stage_recall(resources, triplets, STAGES[name], knobs)
        if progress is not None:
            progress(f"{name}: {out[name]}")
    return out
