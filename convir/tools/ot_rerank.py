"""Optimal-transport reranking: the pure core of the ``ot_rerank`` tool (STiTch, step c).

A caption and an image are compared as two clouds of unit vectors (token features, patch
features) with the cost ``1 - cos``. The first-stage retriever compares two pooled vectors;
the transport cost compares the parts, so "a red circle left of a blue square" can beat an
image whose pooled vector is close but whose parts do not match. Everything here is batched
over the N candidates of one query: one tensor computation, on whatever device the tensors
live on, with no host round-trip except one small convergence check every few iterations.

What "bidirectional" means here (our variant, written before STiTch's code was read; the
published score, a conditional transport over descriptions x views, is in
``convir.tools.set_scores``; full write-up in ``docs/stitch.md``):
with balanced marginals the entropic transport cost is symmetric, so "both directions" would
be one number computed twice. Each direction is therefore a *semi-relaxed* transport: text ->
image must move every token's mass (hard marginal) onto patches whose received mass is only
softly tied to theirs (a KL penalty of weight ``reg_m``), so the caption must be covered by
the image but background patches may stay unused; image -> text is the mirror image. The
distance is the mean of the two linear costs; ``reg_m = inf`` recovers balanced OT (both
directions equal ``ot.sinkhorn2``), ``reg_m -> 0`` tends to a symmetric soft Chamfer distance.

Solver: batched Sinkhorn on the dual potentials (``convir.tools.sinkhorn``): scaling-form
iterations through a cached kernel, stabilised in the log domain where the cost range needs
it, per-problem over-relaxation, converged problems leaving the batch.

References: M. Cuturi, "Sinkhorn distances", NeurIPS 2013 (entropic OT); the solver's own
(stabilisation, unbalanced scaling, over-relaxation) are listed in ``convir.tools.sinkhorn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from convir.state import AgentConfig, ConvState
from convir.tools.ot_problem import (
    OTInputError,
    check_problem,
    check_solver_args,
    relaxed_exponent,
    sinkhorn_cost,
)
from convir.tools.sinkhorn import solve

if TYPE_CHECKING:
    from convir.gallery.answers import AnswerModel
    from convir.gallery.resources import Resources


class OTRerankArgs(BaseModel):
    """What the policy may set when it calls ``ot_rerank``; defaults are the documented ones."""

    model_config = ConfigDict(extra="forbid")

    top_n: int = Field(
        AgentConfig.model_fields["ot_top_n"].default,
        ge=1,
        le=1000,
        description="how many first-stage candidates to rerank (the agent's ot_top_n)",
    )
    weight: float = Field(
        AgentConfig.model_fields["ot_weight"].default,
        ge=0.0,
        le=1.0,
        description="0: first stage only, 1: OT only (the agent's ot_weight)",
    )
    reg: float = Field(
        AgentConfig.model_fields["ot_reg"].default,
        gt=0.0,
        le=10.0,
        description="entropic regularisation epsilon (cost units; the agent's ot_reg)",
    )
    reg_m: float = Field(
        AgentConfig.model_fields["ot_reg_m"].default,
        gt=0.0,
        description="KL weight of each direction's relaxed marginal (the agent's ot_reg_m)",
    )
    n_iter: int = Field(
        AgentConfig.model_fields["ot_iterations"].default,
        ge=1,
        le=10000,
        description="Sinkhorn iteration cap (the agent's ot_iterations)",
    )


# ---------------------------------------------------------------------------------------------
# Caption <-> image transport


def directional_ot_costs(
    text_tokens: Tensor,
    text_mask: Tensor,
    patches: Tensor,
    patch_weights: Tensor | None = None,
    *,
    token_weights: Tensor | None = None,
    reg: float = 0.05,
    reg_m: float = 0.1,
    n_iter: int = 1000,
    tol: float | None = 1e-6,
) -> tuple[Tensor, Tensor]:
    """(text -> image, image -> text) semi-relaxed transport costs, each [B], in [0, 2].

    text -> image: every valid token's mass must leave (hard marginal on tokens); what each
    patch receives is tied to its own mass only by ``reg_m * KL``, so an image is not punished
    for background the caption does not mention, but is punished when some word finds no
    matching patch. image -> text is the mirror image: every patch must be explained by the
    caption, words may be used unevenly. Both are the linear cost <P, 1 - cos> of a plan of total
    mass 1 (the hard side's), so they read as mean cosine distances. ``reg_m = inf`` gives the
    balanced cost twice. Both directions run as one batch of 2B problems.
    """
    check_solver_args(reg, n_iter, tol, 10, "absorb")
    if not (isinstance(reg_m, int | float) and reg_m > 0):
        raise OTInputError(f"reg_m must be a number > 0 (math.inf = balanced OT); got {reg_m!r}")
    C, a, b = _token_problem(text_tokens, text_mask, patches, patch_weights, token_weights)
    C, a, b = check_problem(C, a, b)
    B = C.shape[0]
    if math.isinf(reg_m):
        ones = torch.ones(B, 1, dtype=C.dtype, device=C.device)
        cost = solve(C, a, b, reg, ones, ones, n_iter, tol)
        return cost, cost.clone()
    tau = relaxed_exponent(float(reg_m), reg)
    hard = torch.ones(B, 1, dtype=C.dtype, device=C.device)
    soft = torch.full((B, 1), tau, dtype=C.dtype, device=C.device)
    both = solve(
        torch.cat([C, C]),
        torch.cat([a, a]),
        torch.cat([b, b]),
        reg,
        torch.cat([hard, soft]),  # tokens: hard for text -> image, relaxed for image -> text
        torch.cat([soft, hard]),  # patches: the other way round
        n_iter,
        tol,
    )
    return both[:B], both[B:]


def bidirectional_ot_distance(
    text_tokens: Tensor,
    text_mask: Tensor,
    patches: Tensor,
    patch_weights: Tensor | None = None,
    *,
    token_weights: Tensor | None = None,
    reg: float = 0.05,
    reg_m: float = 0.1,
    n_iter: int = 1000,
    tol: float | None = 1e-6,
) -> Tensor:
    """STiTch's bidirectional OT distance between a caption and each of B images, [B] in [0, 2].

    ``text_tokens`` [B or 1, T, D] with ``text_mask`` [B or 1, T] (True / nonzero = real token;
    a [T, D] / [T] caption is taken as one shared by all images); ``patches`` [B, P, D];
    optional non-negative ``patch_weights`` / ``token_weights`` (e.g. attention) replace the
    uniform masses. Features are L2-normalised here, the cost is 1 - cos, and the distance is
    the mean of the two directions of ``directional_ot_costs``. Half-precision inputs are
    computed in float32.
    """
    t2i, i2t = directional_ot_costs(
        text_tokens,
        text_mask,
        patches,
        patch_weights,
        token_weights=token_weights,
        reg=reg,
        reg_m=reg_m,
        n_iter=n_iter,
        tol=tol,
    )
    return 0.5 * (t2i + i2t)


def ot_rerank(
    first_stage_scores: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor,
    candidate_patches: Tensor,
    weight: float = 0.5,
    reg: float = 0.05,
    n_iter: int = 1000,
    *,
    reg_m: float = 0.1,
    patch_weights: Tensor | None = None,
    token_weights: Tensor | None = None,
    tol: float | None = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Rescore N first-stage candidates with the OT distance; returns (scores [N], order [N]).

    ``score = (1 - w) * s + w * s_ot`` where ``s`` is the first-stage score and ``s_ot`` is the
    OT similarity ``1 - d`` mapped affinely onto the mean and spread of ``s`` over the N
    candidates, so ``weight`` means the same thing whatever the two scales (CLIP cosines sit
    in a narrow band, transport costs in another): w = 0 returns ``s`` unchanged, w = 1 ranks
    by OT alone. ``order`` sorts the new scores best first; ties keep the input order.
    """
    s = first_stage_scores
    if not isinstance(s, Tensor) or s.ndim != 1:
        raise OTInputError(
            f"first_stage_scores must be a 1-D tensor [N]; got {getattr(s, 'shape', type(s))}"
        )
    if not isinstance(candidate_patches, Tensor) or candidate_patches.ndim != 3:
        raise OTInputError(
            "candidate_patches must be a 3-D tensor [N, P, D]; "
            f"got {getattr(candidate_patches, 'shape', type(candidate_patches))}"
        )
    if candidate_patches.shape[0] != s.shape[0]:
        raise OTInputError(
            f"{s.shape[0]} first-stage scores but {candidate_patches.shape[0]} candidates' "
            "patches; pass the patches of exactly the scored candidates, in the same order"
        )
    if s.device != candidate_patches.device:
        raise OTInputError(
            f"scores on {s.device} but patches on {candidate_patches.device}; move one of them"
        )
    if not (isinstance(weight, int | float) and 0.0 <= weight <= 1.0):
        raise OTInputError(f"weight must be in [0, 1]; got {weight!r}")
    dtype = torch.promote_types(s.dtype, torch.float32) if s.is_floating_point() else torch.float32
    s = s.to(dtype)
    if s.numel() == 0 or weight == 0.0:
        return s.clone(), torch.argsort(s, descending=True, stable=True)
    d = bidirectional_ot_distance(
        text_tokens,
        text_mask,
        candidate_patches,
        patch_weights,
        token_weights=token_weights,
        reg=reg,
        reg_m=reg_m,
        n_iter=n_iter,
        tol=tol,
    )
    s_ot = _match_scale(1.0 - d.to(dtype), s)
    scores = (1.0 - weight) * s + weight * s_ot
    return scores, torch.argsort(scores, descending=True, stable=True)


def _match_scale(o: Tensor, s: Tensor) -> Tensor:
    """Map ``o`` affinely onto the mean and standard deviation of ``s`` (no host sync).

    Spreads of ``o`` below 1e-6 are solver noise and count as none (every candidate gets the
    mean of ``s``); if ``s`` has no spread, ``o`` keeps its own.
    """
    mu_o, sd_o = o.mean(), o.std(correction=0)
    mu_s, sd_s = s.mean(), s.std(correction=0)
    z = torch.where(sd_o > 1e-6, (o - mu_o) / sd_o.clamp_min(1e-6), torch.zeros_like(o))
    return mu_s + torch.where(sd_s > 0, sd_s, sd_o) * z


def _token_problem(
    text_tokens: Tensor,
    text_mask: Tensor,
    patches: Tensor,
    patch_weights: Tensor | None,
    token_weights: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Cost 1 - cos [B, T, P] and normalised masses [B, T], [B, P] of caption vs images."""
    for name, t in (("text_tokens", text_tokens), ("text_mask", text_mask), ("patches", patches)):
        if not isinstance(t, Tensor):
            raise OTInputError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if text_tokens.ndim == 2:  # one caption, shared by every image
        text_tokens = text_tokens.unsqueeze(0)
        text_mask = text_mask.unsqueeze(0)
        token_weights = token_weights.unsqueeze(0) if token_weights is not None else None
    if text_tokens.ndim != 3 or patches.ndim != 3:
        raise OTInputError(
            "text_tokens must be [B or 1, T, D] and patches [B, P, D]; got "
            f"{tuple(text_tokens.shape)} and {tuple(patches.shape)}"
        )
    Bt, T, D = text_tokens.shape
    B, P, Dp = patches.shape
    if D != Dp:
        raise OTInputError(
            f"token dim {D} != patch dim {Dp}: both must live in the joint embedding space "
            "(project patch tokens with the visual projection first)"
        )
    if Bt not in (1, B):
        raise OTInputError(f"text_tokens batch must be 1 or {B} (the number of images); got {Bt}")
    if tuple(text_mask.shape) != (Bt, T):
        raise OTInputError(f"text_mask must have shape {[Bt, T]}; got {tuple(text_mask.shape)}")
    if text_tokens.device != patches.device or text_mask.device != patches.device:
        raise OTInputError("text_tokens, text_mask and patches must be on one device")
    dtype = torch.promote_types(text_tokens.dtype, patches.dtype)
    dtype = torch.float64 if dtype == torch.float64 else torch.float32
    tok = torch.nn.functional.normalize(text_tokens.to(dtype), dim=-1)
    pat = torch.nn.functional.normalize(patches.to(dtype), dim=-1)
    C = (1.0 - torch.matmul(tok, pat.transpose(1, 2))).clamp_(0.0, 2.0)  # [B, T, P]

    a = (text_mask != 0).to(dtype)
    if token_weights is not None:
        a = a * _weights(token_weights, (Bt, T), "token_weights", dtype, patches.device)
    a = a.expand(B, T)
    b = (
        _weights(patch_weights, (B, P), "patch_weights", dtype, patches.device)
        if patch_weights is not None
        else torch.ones(B, P, dtype=dtype, device=patches.device)
    ).expand(B, P)
    sa, sb = a.sum(1, keepdim=True), b.sum(1, keepdim=True)
    if B and not bool(((sa > 0).all() & (sb > 0).all()).item()):
        raise OTInputError(
            "a caption has no valid token, or an image has all patch weights 0; drop it first "
            "(check text_mask / patch_weights)"
        )
    return C, a / sa, b / sb


def _weights(
    w: Tensor, shape: tuple[int, int], name: str, dtype: torch.dtype, device: torch.device
) -> Tensor:
    if not isinstance(w, Tensor):
        raise OTInputError(f"{name} must be a torch.Tensor; got {type(w).__name__}")
    if w.ndim == 1:
        w = w.unsqueeze(0)
    if w.ndim != 2 or w.shape[1] != shape[1] or w.shape[0] not in (1, shape[0]):
        raise OTInputError(
            f"{name} must have shape {list(shape)} (or [1, {shape[1]}]); got {tuple(w.shape)}"
        )
    if w.device != device:
        raise OTInputError(f"{name} is on {w.device}, the features on {device}; move it")
    w = w.to(dtype)
    if not bool((torch.isfinite(w) & (w >= 0)).all().item()):
        raise OTInputError(f"{name} must be finite and >= 0")
    return w


# ---------------------------------------------------------------------------------------------
# Graph node


def make_ot_rerank_node(
    resources: Resources, config: AgentConfig, answers: AnswerModel | None = None
) -> Callable[[ConvState], dict]:
    """Graph node: rerank the top ``ot_top_n`` candidates.

    STiTch turns use ``config.stitch_set_score``: a set score of the target descriptions
    against each candidate's views (``ct``, ``sinkhorn``: ``convir.tools.set_scores``), our
    token x patch OT (``token-ot``), or nothing; other turns use token x patch OT."""

    def ot_rerank_node(state: ConvState) -> dict:
        ids, scores = state.get("candidates", []), state.get("scores", [])
        query = state.get("query", "")
        n = min(config.ot_top_n, len(ids))
        if n < 2 or not query:
            return {"transcript": ["ot_rerank: fewer than 2 candidates, skipped"]}
        if state.get("strategy") == "stitch" and config.stitch_set_score != "token-ot":
            from convir.tools.set_scores import set_rerank_update

            return set_rerank_update(resources, config, answers, state, n)
        text = resources.text(query)  # retrieve encoded it this turn: a cache hit
        patches = resources.patches(resources.positions(ids[:n]))
        new_scores, order = ot_rerank(
            torch.tensor(scores[:n], dtype=torch.float32),
            text.tokens[0],
            text.mask[0],
            patches,
            weight=config.ot_weight,
            reg=config.ot_reg,
            n_iter=config.ot_iterations,
            reg_m=config.ot_reg_m,
        )
        head = [ids[i] for i in order.tolist()]
        moved = sum(a != b for a, b in zip(head, ids[:n], strict=True))
        return {
            "candidates": head + ids[n:],
            "scores": new_scores[order].tolist() + list(scores[n:]),
            "transcript": [f"ot_rerank: top {n} rescored, {moved} changed place"],
        }

    return ot_rerank_node


__all__ = [
    "OTInputError",
    "OTRerankArgs",
    "ot_rerank",
    "sinkhorn_cost",
    "bidirectional_ot_distance",
]
