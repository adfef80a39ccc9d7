"""Optimal-transport reranking: the pure core of the ``ot_rerank`` tool (STiTch, step c).

A caption and an image are compared as two clouds of unit vectors (token features, patch
features) with the cost ``1 - cos``. The first-stage retriever compares two pooled vectors;
the transport cost compares the parts, so "a red circle left of a blue square" can beat an
image whose pooled vector is close but whose parts do not match. Everything here is batched
over the N candidates of one query: one tensor computation, on whatever device the tensors
live on, with no host round-trip except one small convergence check every few iterations.

What "bidirectional" means here (STiTch does not say; full write-up in ``docs/stitch.md``):
with balanced marginals the entropic transport cost is symmetric, so "both directions" would
be one number computed twice. Each direction is therefore a *semi-relaxed* transport: text ->
image must move every token's mass (hard marginal) onto patches whose received mass is only
softly tied to theirs (a KL penalty of weight ``reg_m``), so the caption must be covered by
the image but background patches may stay unused; image -> text is the mirror image. The
distance is the mean of the two linear costs; ``reg_m = inf`` recovers balanced OT (both
directions equal ``ot.sinkhorn2``), ``reg_m -> 0`` tends to a symmetric soft Chamfer distance.

Solver: Sinkhorn on the dual potentials in the log domain, where a zero mass is a ``-inf``
log-mass that simply drops out of every log-sum-exp. By default the log-sum-exps are evaluated
through a cached kernel into which the potentials are absorbed whenever they have moved far
(Schmitzer's stabilisation: one ``exp`` of [n, m] per absorption instead of one per half-step,
batched matrix-vector products in between, exact log-sum-exps again if the kernel ever under-
or overflows). Each problem gets its own over-relaxation factor, tuned from its observed
convergence rate with Young's SOR relation, and leaves the batch as soon as it has converged,
so a batch costs about what its problems cost one by one, minus the per-call overheads.

References:
- M. Cuturi, "Sinkhorn distances", NeurIPS 2013 (entropic OT).
- G. Peyre and M. Cuturi, "Computational Optimal Transport", 2019, section 4.4 (log domain).
- B. Schmitzer, "Stabilized sparse scaling algorithms for entropy regularized transport
  problems", SIAM J. Sci. Comput. 2019 (absorption).
- L. Chizat, G. Peyre, B. Schmitzer, F.-X. Vialard, "Scaling algorithms for unbalanced optimal
  transport problems", Math. Comp. 2018 (KL-relaxed marginals).
- A. Thibault, L. Chizat, C. Dossal, N. Papadakis, "Overrelaxed Sinkhorn-Knopp algorithm for
  regularized optimal transport", Algorithms 2021; T. Lehmann, M.-K. von Renesse, A. Sambale,
  A. Uschmajew, "A note on overrelaxation in the Sinkhorn algorithm", Optim. Lett. 2022.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from convir.errors import InputError
from convir.state import AgentConfig, ConvState

if TYPE_CHECKING:
    from convir.agents.resources import Resources

Method = Literal["absorb", "lse"]

_ABSORB_DRIFT = 10.0  # absorb a problem's scalings into its kernel once they exceed e^10
_WARMUP_CHECKS = 2  # plain Sinkhorn until two checks have given a first convergence rate
_OMEGA_MAX = 1.9  # over-relaxation stays well inside (0, 2), where it is locally convergent
_STRIKES = 3  # checks in a row without a new best error before a problem drops back to omega=1


class OTInputError(InputError, ValueError):
    """Unusable arrays were passed to the OT core (wrong shape, dtype, device or masses)."""


class OTRerankArgs(BaseModel):
    """What the policy may set when it calls ``ot_rerank``; defaults are the documented ones."""

    model_config = ConfigDict(extra="forbid")

    top_n: int = Field(100, ge=1, le=1000, description="how many first-stage candidates to rerank")
    weight: float = Field(0.5, ge=0.0, le=1.0, description="0: first stage only, 1: OT only")
    reg: float = Field(0.05, gt=0.0, description="entropic regularisation epsilon (cost units)")
    reg_m: float = Field(
        0.1, gt=0.0, description="KL weight of each direction's relaxed marginal; inf = balanced"
    )
    n_iter: int = Field(1000, ge=1, le=10000, description="Sinkhorn iteration cap")


# ---------------------------------------------------------------------------------------------
# Sinkhorn


def sinkhorn_cost(
    C: Tensor,
    a: Tensor,
    b: Tensor,
    reg: float,
    n_iter: int = 1000,
    tol: float | None = 1e-6,
    *,
    reg_m: float | tuple[float, float] = math.inf,
    method: Method = "absorb",
    overrelax: bool = True,
    check_every: int = 10,
) -> Tensor:
    """Entropic OT cost <P, C> for a batch of problems, the value ``ot.sinkhorn2`` returns.

    ``C`` is [B, n, m], ``a`` [B, n], ``b`` [B, m] (non-negative masses; zeros mark padding and
    are ignored exactly). ``P`` minimises ``<P, C> + reg * KL(P | a b^T)
    + reg_m[0] * KL(P 1 | a) + reg_m[1] * KL(P^T 1 | b)``; an infinite ``reg_m`` entry makes
    that marginal a hard constraint, so the default is balanced OT and ``(inf, rho)`` is the
    semi-relaxed problem of ``ot.unbalanced.sinkhorn_unbalanced2(a, b, C, reg, (inf, rho))``.
    The returned cost excludes the regularisation terms, as POT's default does.

    Every ``check_every`` iterations each problem's error is compared with ``tol``: for a hard
    marginal, the L1 distance between the plan's marginal and its target over the total mass
    (stricter than POT's L2 ``stopThr``); for a relaxed one, the same weighted residual of the
    fixed point. A converged problem stops there and leaves the batch; ``tol=None`` runs all
    ``n_iter``. float32 resolves errors down to about 1e-7, float64 to about 1e-15.
    ``method="absorb"`` (default) evaluates the log-sum-exps through a cached, periodically
    re-absorbed kernel; ``"lse"`` recomputes them from scratch each half-step (slower, the
    plain reference). ``overrelax`` accelerates both without changing the solution.
    Not differentiable: this is an inference-time scorer.
    """
    _check_solver_args(reg, n_iter, tol, check_every, method)
    reg_a, reg_b = _reg_m_pair(reg_m)
    C, a, b = _check_problem(C, a, b)
    balanced = math.isinf(reg_a) and math.isinf(reg_b)
    if balanced:
        _check_equal_mass(a, b)
    tau_a = torch.full((C.shape[0], 1), _tau(reg_a, reg), dtype=C.dtype, device=C.device)
    tau_b = torch.full((C.shape[0], 1), _tau(reg_b, reg), dtype=C.dtype, device=C.device)
    return _sinkhorn(C, a, b, reg, tau_a, tau_b, n_iter, tol, method, overrelax, check_every)


@torch.no_grad()
def _sinkhorn(
    C: Tensor,
    a: Tensor,
    b: Tensor,
    reg: float,
    tau_a: Tensor,
    tau_b: Tensor,
    n_iter: int,
    tol: float | None,
    method: Method,
    overrelax: bool,
    check_every: int,
) -> Tensor:
    """Validated core; ``tau`` [B, 1] is each marginal's exponent (1 = hard constraint).

    Potentials are scaled by 1/reg: P = a b^T exp(-C/reg + phi + psi). In "absorb" mode
    the state is (phi0, psi0), absorbed in the kernel exp(-C/reg + phi0 + psi0), plus small
    offsets (x, y) kept as [B, 1, n] rows for ``bmm``; small offsets keep the convergence test
    precise even in float32.
    """
    B = C.shape[0]
    if B == 0:
        return C.new_zeros(0)
    la, lb = a.log(), b.log()  # log(0) = -inf: padding drops out of every log-sum-exp
    phi_out, psi_out = torch.empty_like(a), torch.empty_like(b)
    absorb = method == "absorb"

    # Per-problem state, compacted together as problems converge.
    s: dict[str, Tensor] = {
        "idx": torch.arange(B, device=C.device),
        "C": C,
        "a": a,
        "b": b,
        "la": la,
        "lb": lb,
        "sa": a.sum(1, keepdim=True),
        "sb": b.sum(1, keepdim=True),
        "ta": tau_a,
        "tb": tau_b,
        "omega": torch.ones(B, 1, dtype=C.dtype, device=C.device),
    }
    Kl = C * (-1.0 / reg)
    phi, psi = _lse_init(Kl, la, lb, tau_a, tau_b)
    if absorb:
        s.update(_absorb(Kl, phi, psi, s))
    else:
        s.update(Kl=Kl, phi=phi, psi=psi)
    del Kl
    hist: dict[str, Tensor] = {}  # over-relaxation bookkeeping
    done_iters, n_check = 0, 0

    while done_iters < n_iter and s["idx"].numel() > 0:
        k = min(check_every, n_iter - done_iters)
        relax = overrelax and n_check >= _WARMUP_CHECKS  # omega may differ from 1 from now on
        if absorb:
            snap = _potentials(s, absorb)
            s["x"], s["y"], err = _absorb_block(s, k, relax)
            bad = ~(torch.isfinite(s["x"]).all(2) & torch.isfinite(s["y"]).all(2)).squeeze(1)
            drift = torch.maximum(s["x"].abs().amax((1, 2)), s["y"].abs().amax((1, 2)))
        else:
            s["phi"], s["psi"], err = _lse_block(s, s["Kl"], s["phi"], s["psi"], k, relax)
            bad = torch.zeros_like(err, dtype=torch.bool)
            drift = torch.zeros_like(err)
        bad |= ~torch.isfinite(err)
        done_iters += k
        n_check += 1
        conv = err < tol if tol is not None else torch.zeros_like(bad)
        # The one host sync of a check: who converged, who broke, whose kernel needs refreshing.
        conv_h, bad_h, drift_h = torch.stack(
            [conv & ~bad, bad, (drift > _ABSORB_DRIFT) & ~bad]
        ).cpu()

        if absorb and bad_h.any():
            # The cached kernel under/overflowed (extreme cost ranges): redo this block from the
            # last good potentials with exact log-sum-exps and plain steps, then absorb afresh.
            i = bad_h.nonzero().squeeze(1).to(C.device)
            sub = {key: s[key][i] for key in ("C", "a", "b", "la", "lb", "sa", "sb", "ta", "tb")}
            Kl_i = sub["C"] * (-1.0 / reg)
            p, q, e = _lse_block(sub, Kl_i, snap[0][i], snap[1][i], k, relax=False)
            for key, v in _absorb(Kl_i, p, q, sub).items():
                s[key][i] = v
            s["omega"][i] = 1.0
            if "gave_up" in hist:
                hist["gave_up"][i] = True
            err = err.index_copy(0, i, e)
            if tol is not None:
                conv_h[bad_h] = (e < tol).cpu()

        if absorb and drift_h.any():
            i = drift_h.nonzero().squeeze(1).to(C.device)
            sub = {key: s[key][i] for key in ("a", "b", "ta", "tb")}
            p, q = (t[i] for t in _potentials(s, absorb))
            for key, v in _absorb(s["C"][i] * (-1.0 / reg), p, q, sub).items():
                s[key][i] = v

        if overrelax:
            s["omega"], hist = _update_omega(s["omega"], err, hist, k)

        if conv_h.any():
            i = conv_h.nonzero().squeeze(1).to(C.device)
            phi, psi = _potentials(s, absorb)
            phi_out[s["idx"][i]], psi_out[s["idx"][i]] = phi[i], psi[i]
            keep = (~conv_h).nonzero().squeeze(1).to(C.device)
            s = {key: v[keep] for key, v in s.items()}
            hist = {key: v[keep] for key, v in hist.items()}

    if s["idx"].numel() > 0:  # hit n_iter: keep the last iterate
        phi_out[s["idx"]], psi_out[s["idx"]] = _potentials(s, absorb)

    # <P, C> with P = a b^T exp(-C/reg + phi + psi), built in place: one [B, n, m] buffer.
    P = C * (-1.0 / reg)
    P += (phi_out + la)[:, :, None]
    P += (psi_out + lb)[:, None, :]
    return P.exp_().mul_(C).sum((1, 2))


def _potentials(s: dict[str, Tensor], absorb: bool) -> tuple[Tensor, Tensor]:
    """Current (phi, psi) as [B, n], [B, m]."""
    if absorb:
        return (s["phi0"] + s["x"]).squeeze(1), (s["psi0"] + s["y"]).squeeze(1)
    return s["phi"], s["psi"]


def _lse_init(Kl: Tensor, la: Tensor, lb: Tensor, ta: Tensor, tb: Tensor) -> tuple[Tensor, Tensor]:
    """One exact half-step each way from zero: puts the potentials on the cost's scale."""
    phi = -ta * torch.logsumexp(Kl + lb[:, None, :], dim=2)
    psi = -tb * torch.logsumexp(Kl + (phi + la)[:, :, None], dim=1)
    return phi, psi


def _absorb(Kl: Tensor, phi: Tensor, psi: Tensor, s: dict[str, Tensor]) -> dict[str, Tensor]:
    """Fold potentials and masses into two kernels, so iterations need no ``exp`` of [n, m].

    ``Kb_t`` [B, m, n] = (b_j exp(-C_ij/reg + phi_i + psi_j))^T gives the row sums and
    ``Ka`` [B, n, m] = a_i exp(...) the column sums, both as row-vector ``bmm`` (the fast
    layout); a zero mass zeroes its row / column of the kernel.
    """
    G = (Kl + phi[:, :, None] + psi[:, None, :]).exp_()
    Kb_t = (G * s["b"][:, None, :]).transpose(1, 2).contiguous()
    ta, tb = s["ta"].unsqueeze(2), s["tb"].unsqueeze(2)
    phi0, psi0 = phi.unsqueeze(1), psi.unsqueeze(1)
    return {
        "Ka": G.mul_(s["a"][:, :, None]),
        "Kb_t": Kb_t,
        "phi0": phi0.clone(),
        "psi0": psi0.clone(),
        "ca": (ta - 1.0) * phi0,  # a relaxed marginal pulls its potential to 0 by (1 - tau)
        "cb": (tb - 1.0) * psi0,
        "ta3": ta,
        "tb3": tb,
        "x": torch.zeros_like(phi0),
        "y": torch.zeros_like(psi0),
    }


def _marginal_error(m: Tensor, mass: Tensor, cur: Tensor, new: Tensor) -> Tensor:
    """sum_i m_i |exp(cur - new) - 1| / mass: the L1 marginal violation when ``new`` is exact."""
    d = torch.expm1((cur - new).reshape(m.shape).clamp(-50.0, 50.0)).abs_()
    return (m * d).sum(1) / mass[:, 0]


def _absorb_block(s: dict[str, Tensor], k: int, relax: bool) -> tuple[Tensor, Tensor, Tensor]:
    """k Sinkhorn iterations through the cached kernels: two batched mat-vecs each."""
    Ka, Kb_t, ca, cb, ta, tb = (s[n] for n in ("Ka", "Kb_t", "ca", "cb", "ta3", "tb3"))
    x, y, omega = s["x"], s["y"], s["omega"].unsqueeze(2)
    err_r = err_c = None
    for it in range(k):
        rows = torch.bmm(y.exp(), Kb_t)  # sum_j b_j G_ij e^y_j, [B, 1, n]
        x_new = torch.addcmul(ca, ta, rows.log_(), value=-1.0)
        if it == k - 1:
            err_r = _marginal_error(s["a"], s["sa"], x, x_new)
        x = torch.lerp(x, x_new, omega) if relax else x_new
        cols = torch.bmm(x.exp(), Ka)  # sum_i a_i G_ij e^x_i, [B, 1, m]
        y_new = torch.addcmul(cb, tb, cols.log_(), value=-1.0)
        if it == k - 1:
            err_c = _marginal_error(s["b"], s["sb"], y, y_new)
        y = torch.lerp(y, y_new, omega) if relax else y_new
    return x, y, torch.maximum(err_r, err_c)


def _lse_block(
    s: dict[str, Tensor], Kl: Tensor, phi: Tensor, psi: Tensor, k: int, relax: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """k Sinkhorn iterations with exact log-sum-exps: the reference and the fallback."""
    la, lb, ta, tb = s["la"], s["lb"], s["ta"], s["tb"]
    omega = s["omega"] if relax else None
    err_r = err_c = None
    for it in range(k):
        phi_new = -ta * torch.logsumexp(Kl + (psi + lb)[:, None, :], dim=2)
        if it == k - 1:
            err_r = _marginal_error(s["a"], s["sa"], phi, phi_new)
        phi = torch.lerp(phi, phi_new, omega) if relax else phi_new
        psi_new = -tb * torch.logsumexp(Kl + (phi + la)[:, :, None], dim=1)
        if it == k - 1:
            err_c = _marginal_error(s["b"], s["sb"], psi, psi_new)
        psi = torch.lerp(psi, psi_new, omega) if relax else psi_new
    return phi, psi, torch.maximum(err_r, err_c)


def _update_omega(
    omega: Tensor, err: Tensor, hist: dict[str, Tensor], k: int
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-problem over-relaxation omega, tuned from each problem's observed convergence rate.

    Sinkhorn alternates two block updates, so near the solution it behaves like block
    Gauss-Seidel on a 2-cyclic system, and Young's SOR theory applies (Thibault et al. 2021;
    Lehmann et al. 2022): a rate r per iteration observed under omega gives the Jacobi radius
    mu = (r + omega - 1) / (omega sqrt(r)), and the best factor is 2 / (1 + sqrt(1 - mu^2)).
    omega only grows towards that estimate (capped at 1.9), and only while the rate is still
    in the real-eigenvalue regime r > omega - 1. A problem whose error has not improved for a
    few checks goes back to omega = 1 for good: plain Sinkhorn converges from anywhere.
    """
    if not hist:  # first check: nothing to compare with yet
        zeros = torch.zeros_like(err)
        return omega, {"prev": err, "best": err.nan_to_num(math.inf), "strikes": zeros,
                       "gave_up": zeros.bool()}  # fmt: skip
    prev, best, strikes, gave_up = hist["prev"], hist["best"], hist["strikes"], hist["gave_up"]
    improved = err < best
    best = torch.where(improved, err, best)
    strikes = torch.where(improved, torch.zeros_like(strikes), strikes + 1)
    gave_up = gave_up | (strikes >= _STRIKES)
    w = omega.squeeze(1)
    r = (err / prev).nan_to_num(1.0, 1.0, 1.0).clamp(1e-12, 1.0 - 1e-9) ** (1.0 / k)
    mu2 = ((r + w - 1.0) / (w * r.sqrt())).square().clamp(max=1.0 - 1e-9)
    w_best = (2.0 / (1.0 + torch.sqrt(1.0 - mu2))).clamp(1.0, _OMEGA_MAX)
    grow = improved & (r > 1.05 * (w - 1.0)) & ~gave_up
    w = torch.where(grow, torch.maximum(w, w_best), w)
    w = torch.where(gave_up, torch.ones_like(w), w)
    return w.unsqueeze(1), {"prev": err, "best": best, "strikes": strikes, "gave_up": gave_up}


# ---------------------------------------------------------------------------------------------
# Validation


def _check_solver_args(
    reg: float, n_iter: int, tol: float | None, check_every: int, method: str
) -> None:
    if not (isinstance(reg, int | float) and math.isfinite(reg) and reg > 0):
        raise OTInputError(f"reg must be a finite number > 0 (try 0.05); got {reg!r}")
    if not (isinstance(n_iter, int) and n_iter >= 1):
        raise OTInputError(f"n_iter must be an int >= 1 (try 1000); got {n_iter!r}")
    if tol is not None and not (math.isfinite(tol) and tol >= 0):
        raise OTInputError(f"tol must be None or a finite number >= 0 (try 1e-6); got {tol!r}")
    if not (isinstance(check_every, int) and check_every >= 1):
        raise OTInputError(f"check_every must be an int >= 1 (try 10); got {check_every!r}")
    if method not in ("absorb", "lse"):
        raise OTInputError(f"method must be 'absorb' or 'lse'; got {method!r}")


def _reg_m_pair(reg_m: float | tuple[float, float]) -> tuple[float, float]:
    pair = (reg_m, reg_m) if isinstance(reg_m, int | float) else tuple(reg_m)
    if len(pair) != 2 or not all(isinstance(r, int | float) and r > 0 for r in pair):
        raise OTInputError(
            f"reg_m must be a number > 0 or a pair of them (math.inf = hard marginal); got {reg_m!r}"
        )
    return float(pair[0]), float(pair[1])


def _tau(reg_m: float, reg: float) -> float:
    """Exponent of the KL-relaxed Sinkhorn update (Chizat et al. 2018): rho / (rho + eps)."""
    return 1.0 if math.isinf(reg_m) else reg_m / (reg_m + reg)


def _check_problem(C: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    for name, t in (("C", C), ("a", a), ("b", b)):
        if not isinstance(t, Tensor):
            raise OTInputError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if C.ndim != 3:
        raise OTInputError(
            f"C must be a 3-D cost tensor [B, n, m]; got shape {tuple(C.shape)}. "
            "For one problem pass C.unsqueeze(0)."
        )
    B, n, m = C.shape
    if n == 0 or m == 0:
        raise OTInputError(f"C must have n, m >= 1; got shape {tuple(C.shape)}")
    if tuple(a.shape) != (B, n):
        raise OTInputError(f"a must have shape [B, n] = {[B, n]} to match C; got {tuple(a.shape)}")
    if tuple(b.shape) != (B, m):
        raise OTInputError(f"b must have shape [B, m] = {[B, m]} to match C; got {tuple(b.shape)}")
    if C.dtype not in (torch.float32, torch.float64):
        raise OTInputError(
            f"C must be float32 or float64 (Sinkhorn is not reliable in {C.dtype}); "
            "convert with C.float()"
        )
    if not (a.is_floating_point() and b.is_floating_point()):
        raise OTInputError(f"a and b must be floating point; got {a.dtype} and {b.dtype}")
    if a.device != C.device or b.device != C.device:
        raise OTInputError(f"C, a, b must be on one device; got {C.device}, {a.device}, {b.device}")
    a, b = a.to(C.dtype).contiguous(), b.to(C.dtype).contiguous()
    C = C.contiguous()
    if B == 0:
        return C, a, b
    c_ok, a_ok, b_ok, a_pos, b_pos = torch.stack(
        [
            torch.isfinite(C).all(),
            (torch.isfinite(a) & (a >= 0)).all(),
            (torch.isfinite(b) & (b >= 0)).all(),
            (a.sum(1) > 0).all(),
            (b.sum(1) > 0).all(),
        ]
    ).tolist()
    if not c_ok:
        raise OTInputError("C contains NaN or inf; mask invalid entries with zero masses instead")
    if not (a_ok and b_ok):
        raise OTInputError("a and b must be finite and >= 0 (use 0 for padding)")
    if not (a_pos and b_pos):
        empty = ((a.sum(1) <= 0) | (b.sum(1) <= 0)).nonzero().squeeze(1).tolist()
        raise OTInputError(
            f"problems {empty[:10]} have zero total mass in a or b; drop them, or give each "
            "at least one valid token / patch"
        )
    return C, a, b


def _check_equal_mass(a: Tensor, b: Tensor) -> None:
    sa, sb = a.sum(1), b.sum(1)
    rel = ((sa - sb).abs() / torch.maximum(sa, sb)).max().item() if a.shape[0] else 0.0
    if rel > 1e-4:
        raise OTInputError(
            f"balanced OT needs sum(a) == sum(b) per problem; they differ by up to {rel:.2g} "
            "(relative). Normalise both to 1, or relax a marginal with reg_m"
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
    _check_solver_args(reg, n_iter, tol, 10, "absorb")
    if not (isinstance(reg_m, int | float) and reg_m > 0):
        raise OTInputError(f"reg_m must be a number > 0 (math.inf = balanced OT); got {reg_m!r}")
    C, a, b = _token_problem(text_tokens, text_mask, patches, patch_weights, token_weights)
    C, a, b = _check_problem(C, a, b)
    B = C.shape[0]
    if math.isinf(reg_m):
        ones = torch.ones(B, 1, dtype=C.dtype, device=C.device)
        cost = _sinkhorn(C, a, b, reg, ones, ones, n_iter, tol, "absorb", True, 10)
        return cost, cost.clone()
    tau = _tau(float(reg_m), reg)
    hard = torch.ones(B, 1, dtype=C.dtype, device=C.device)
    soft = torch.full((B, 1), tau, dtype=C.dtype, device=C.device)
    both = _sinkhorn(
        torch.cat([C, C]),
        torch.cat([a, a]),
        torch.cat([b, b]),
        reg,
        torch.cat([hard, soft]),  # tokens: hard for text -> image, relaxed for image -> text
        torch.cat([soft, hard]),  # patches: the other way round
        n_iter,
        tol,
        "absorb",
        True,
        10,
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


def node(resources: Resources, config: AgentConfig) -> Callable[[ConvState], dict]:
    """Graph node: OT-rerank the top ``ot_top_n`` candidates against the state's query."""

    def ot_rerank_node(state: ConvState) -> dict:
        steps = [*state.get("steps", []), "ot_rerank"]
        ids, scores = state.get("candidates", []), state.get("scores", [])
        query = state.get("query", "")
        n = min(config.ot_top_n, len(ids))
        if n < 2 or not query:
            return {"steps": steps, "transcript": ["ot_rerank: fewer than 2 candidates, skipped"]}
        text = resources.embedder.encode_text([query], tokens=True)
        patches = resources.patches(resources.positions(ids[:n]))
        new_scores, order = ot_rerank(
            torch.tensor(scores[:n], dtype=torch.float32),
            text.tokens[0],
            text.mask[0],
            patches,
            weight=config.ot_weight,
        )
        head = [ids[i] for i in order.tolist()]
        moved = sum(a != b for a, b in zip(head, ids[:n], strict=True))
        return {
            "candidates": head + ids[n:],
            "scores": new_scores[order].tolist() + list(scores[n:]),
            "steps": steps,
            "transcript": [f"ot_rerank: top {n} rescored, {moved} changed place"],
        }

    return ot_rerank_node
