"""Composed retrieval on the testbed: STiTch's three stages measured one by one.

For every (reference, edit, target) triplet of a testbed world: (1) the target caption alone
as a text query, (2) the caption moved by the transition vector, (3) then the top
``ot_top_n`` reranked by the bidirectional OT distance. Recall@K counts the target among the
first K, the reference image excluded (as CIRR does).

Two target captions: ``rules`` is what the agent writes without an LLM (the edit, then the
reference caption); ``ideal`` is the target's true caption, i.e. what a perfect LLM would
write from the reference caption and the edit: the ceiling of step (a) on this testbed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from convir.agents.resources import Resources
    from convir.testbed.edits import Triplet
    from convir.testbed.world import World

CaptionMode = Literal["rules", "ideal"]
KS = (1, 10, 50)


def target_captions(
    resources: Resources, world: World, triplets: list[Triplet], mode: CaptionMode
) -> list[str]:
    from convir.testbed.captions import full_caption
    from convir.tools.refine_query import target_caption

    assert resources.captions is not None
    if mode == "ideal":
        return [full_caption(world.scene(resources.index.position_of(t.target))) for t in triplets]
    return [
        target_caption(resources.captions[resources.index.position_of(t.reference)], t.text)[0]
        for t in triplets
    ]


def _ranks(found: np.ndarray, targets: np.ndarray, depth: int) -> np.ndarray:
    """0-based rank of each row's target in ``found`` [Q, depth], or ``depth`` if absent."""
    hit = found == targets[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1), depth)


def composed_recall(
    resources: Resources,
    world: World,
    triplets: list[Triplet],
    *,
    caption: CaptionMode = "rules",
    transition_scale: float = 1.0,
    ot_weight: float = 0.0,
    ot_top_n: int = 50,
) -> dict[str, float]:
    """Recall@1/10/50 over the triplets for one configuration of the three stages."""
    import torch

    from convir.tools.ot_rerank import ot_rerank
    from convir.tools.retrieve import query_vector

    index, pos = resources.index, resources.index.position_of
    captions = target_captions(resources, world, triplets, caption)
    refs = np.array([pos(t.reference) for t in triplets])
    targets = np.array([pos(t.target) for t in triplets])
    text = resources.embedder.encode_text(captions, tokens=ot_weight > 0)
    t = text.pooled.numpy()
    t_ref = resources.embedder.encode_text([resources.captions[r] for r in refs]).pooled.numpy()
    q = np.stack(
        [
            query_vector(
                t[i],
                "stitch" if transition_scale > 0 else "text",
                reference_image=resources.vectors[refs[i]],
                reference_text=t_ref[i],
                transition_scale=transition_scale,
            )
            for i in range(len(triplets))
        ]
    )
    depth = max(max(KS), ot_top_n)
    scores, found = index.search(q, depth + 1)
    keep = found != refs[:, None]  # drop the reference, keep ``depth`` per row
    found = np.stack([row[k][:depth] for row, k in zip(found, keep, strict=True)])
    scores = np.stack([row[k][:depth] for row, k in zip(scores, keep, strict=True)])
    if ot_weight > 0:
        for i in range(len(triplets)):
            head = found[i, :ot_top_n]
            _, order = ot_rerank(
                torch.from_numpy(scores[i, :ot_top_n].copy()),
                text.tokens[i],
                text.mask[i],
                resources.patches(head.tolist()),
                weight=ot_weight,
            )
            found[i, :ot_top_n] = head[order.numpy()]
    ranks = _ranks(found, targets, depth)
    return {f"recall_at_{k}": float(np.mean(ranks < k)) for k in KS}


def composed_table(
    resources: Resources,
    world: World,
    triplets: list[Triplet],
    transition_scale: float,
    ot_weight: float,
) -> dict[str, dict[str, dict[str, float]]]:
    """The three stages for both caption modes: {mode: {stage: recalls}}."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for mode in ("rules", "ideal"):
        table[mode] = {
            "caption": composed_recall(
                resources, world, triplets, caption=mode, transition_scale=0.0
            ),
            "+transition": composed_recall(
                resources, world, triplets, caption=mode, transition_scale=transition_scale
            ),
            "+ot_rerank": composed_recall(
                resources,
                world,
                triplets,
                caption=mode,
                transition_scale=transition_scale,
                ot_weight=ot_weight,
            ),
        }
    return table
