"""Set-to-set scores between K target descriptions and V views of each candidate image.

STiTch (step c) scores a candidate by how well two *sets* align: the K sampled descriptions
of the target (after the transition) and the V views of the image (the image and its
augmented crops, ``convir.models.views``). ``s[k, v]`` is the cosine of description k and
view v. Both scores below return values on the cosine scale ([-1, 1]), so they can replace
the first-stage cosine in the agent's rescoring (``cos / T + beta * answers``).

- :func:`conditional_transport` (STiTch's published score, "bidirectional transportation"):
  a forward plan that sends each view to the descriptions by ``softmax_k(s / tau)``, a
  backward plan that sends each description to the views by ``softmax_v(s / tau)``; the
  score is the mean of the forward-weighted similarity (averaged over views) and the
  backward-weighted one (averaged over descriptions). The authors' code applies temperature
  0.1 to similarities scaled by CLIP's logit scale 100, i.e. ``tau = 0.001`` on cosines: at
  that temperature each plan is almost a hard arg-max, and the score is a symmetric
  Chamfer similarity between the two sets. Our score is halved (theirs is the sum), which
  does not change any ranking.
- :func:`sinkhorn_set_score`: the transport-weighted similarity ``<P, s>`` of the balanced
  entropic plan between uniform masses on descriptions and views (the code's "AWT" score).
  Their kernel ``exp(-(1 - 100 s))`` is entropic OT on the cost ``1 - s`` with ``reg = 0.01``;
  the plan comes from this project's Sinkhorn core (``convir.tools.sinkhorn``).

Everything is batched over the N candidates of one query: one einsum, no Python loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.gallery.answers import AnswerModel
    from convir.gallery.resources import Resources
    from convir.state import AgentConfig, ConvState

PUBLISHED_CT_TEMPERATURE = 0.001  # 0.1 on cosines scaled by 100 (STiTch's code)
PUBLISHED_SINKHORN_REG = 0.01  # kernel exp(-(1 - 100 cos)) (STiTch's code)


def _similarities(descriptions: Tensor, views: Tensor) -> Tensor:
    """Cosines [N, K, V] of unit-normalised descriptions [K, D] and views [N, V, D]."""
    if descriptions.ndim != 2 or views.ndim != 3:
        raise InputError(
            "descriptions must be [K, D] and views [N, V, D]; got "
            f"{tuple(descriptions.shape)} and {tuple(views.shape)}"
        )
    if descriptions.shape[1] != views.shape[2]:
        raise InputError(
            f"description dim {descriptions.shape[1]} != view dim {views.shape[2]}: both must be "
            "embeddings of the same model"
        )
    if descriptions.shape[0] == 0 or views.shape[1] == 0:
        raise InputError("at least one description and one view are needed")
    dtype = torch.promote_types(descriptions.dtype, views.dtype)
    dtype = torch.float64 if dtype == torch.float64 else torch.float32
    d = torch.nn.functional.normalize(descriptions.to(dtype), dim=-1)
    v = torch.nn.functional.normalize(views.to(dtype), dim=-1)
    return torch.einsum("kd,nvd->nkv", d, v)


def conditional_transport(
    descriptions: Tensor, views: Tensor, temperature: float = PUBLISHED_CT_TEMPERATURE
) -> Tensor:
    """Bidirectional conditional-transport similarity [N] (module docstring)."""
    if not temperature > 0:
        raise InputError(f"temperature must be > 0; got {temperature!r}")
    s = _similarities(descriptions, views)
    forward = torch.softmax(s / temperature, dim=1)  # each view -> descriptions
    backward = torch.softmax(s / temperature, dim=2)  # each description -> views
    f = (forward * s).sum(dim=1).mean(dim=1)
    b = (backward * s).sum(dim=2).mean(dim=1)
    return (f + b) / 2


def sinkhorn_set_score(
    descriptions: Tensor, views: Tensor, reg: float = PUBLISHED_SINKHORN_REG
) -> Tensor:
    """Similarity ``<P, s>`` [N] under the balanced entropic plan on cost ``1 - s``."""
    from convir.tools.ot_problem import sinkhorn_cost

    s = _similarities(descriptions, views)
    n, k, v = s.shape
    a = torch.full((n, k), 1.0 / k, dtype=s.dtype)
    b = torch.full((n, v), 1.0 / v, dtype=s.dtype)
    cost = sinkhorn_cost((1.0 - s).clamp(0.0, 2.0), a, b, reg=reg, tol=1e-6)
    return 1.0 - cost


def set_rerank_update(
    resources: Resources,
    config: AgentConfig,
    answers: AnswerModel | None,
    state: ConvState,
    n: int,
) -> dict:
    """The state update of a STiTch set-score rerank of the first ``n`` candidates.

    A candidate's new score is the retrieve rescoring with the set score in place of the
    first-stage cosine: ``S / T + beta * sum_j log p(answer_j | x)``, so answers to later
    questions keep filtering; on a first turn the order is the set score's alone, as in
    STiTch's code. ``none`` leaves the first stage's order.
    """
    from convir.tools.retrieve import answers_loglik, rescore
    from convir.tools.stitch_query import description_vectors

    ids, scores = state.get("candidates", []), state.get("scores", [])
    if config.stitch_set_score == "none":
        return {"transcript": ["ot_rerank: set score 'none', first-stage order kept"]}
    positions = resources.positions(ids[:n])
    desc = torch.from_numpy(description_vectors(resources, state, config))
    views = torch.from_numpy(
        resources.views(positions, config.stitch_views, config.stitch_view_augment)
    )
    if config.stitch_set_score == "ct":
        s = conditional_transport(desc, views, config.stitch_ct_temperature)
    else:
        s = sinkhorn_set_score(desc, views)
    turns = state.get("dialogue", [])[1:]
    loglik = answers_loglik(
        resources, positions, turns, answers, config, state.get("asked_options")
    )
    new = rescore(s.numpy(), loglik, config.score_temperature, config.answer_weight)
    order = np.argsort(-new, kind="stable")
    head = [ids[i] for i in order]
    moved = sum(a != b for a, b in zip(head, ids[:n], strict=True))
    return {
        "candidates": head + list(ids[n:]),
        "scores": new[order].tolist() + list(scores[n:]),
        "transcript": [
            f"ot_rerank ({config.stitch_set_score}: {desc.shape[0]} descriptions x "
            f"{views.shape[1]} views): top {n} rescored, {moved} changed place"
        ],
    }
