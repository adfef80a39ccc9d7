"""The entropic OT problem as callers pose it: checked inputs and its transport cost.

:func:`sinkhorn_cost` validates a batch of problems (shapes, dtypes, devices, masses, solver
arguments: every refusal an :class:`OTInputError` saying what to pass instead) and hands it
to the solver (``convir.tools.sinkhorn.solve``). Used by the token x patch rerank
(``ot_rerank``) and STiTch's Sinkhorn set score (``set_scores``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from convir.errors import InputError
from convir.tools.sinkhorn import Method, solve


class OTInputError(InputError, ValueError):
    """Unusable arrays were passed to the OT core (wrong shape, dtype, device or masses)."""


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
    check_solver_args(reg, n_iter, tol, check_every, method)
    reg_a, reg_b = reg_m_pair(reg_m)
    C, a, b = check_problem(C, a, b)
    balanced = math.isinf(reg_a) and math.isinf(reg_b)
    if balanced:
        check_equal_mass(a, b)
    tau_a = torch.full(
        (C.shape[0], 1), relaxed_exponent(reg_a, reg), dtype=C.dtype, device=C.device
    )
    tau_b = torch.full(
        (C.shape[0], 1), relaxed_exponent(reg_b, reg), dtype=C.dtype, device=C.device
    )
    return solve(C, a, b, reg, tau_a, tau_b, n_iter, tol, method, overrelax, check_every)


def check_solver_args(
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


def reg_m_pair(reg_m: float | tuple[float, float]) -> tuple[float, float]:
    pair = (reg_m, reg_m) if isinstance(reg_m, int | float) else tuple(reg_m)
    if len(pair) != 2 or not all(isinstance(r, int | float) and r > 0 for r in pair):
        raise OTInputError(
            f"reg_m must be a number > 0 or a pair of them (math.inf = hard marginal); got {reg_m!r}"
        )
    return float(pair[0]), float(pair[1])


def relaxed_exponent(reg_m: float, reg: float) -> float:
    """Exponent of the KL-relaxed Sinkhorn update (Chizat et al. 2018): rho / (rho + eps)."""
    return 1.0 if math.isinf(reg_m) else reg_m / (reg_m + reg)


def check_problem(C: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
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


def check_equal_mass(a: Tensor, b: Tensor) -> None:
    sa, sb = a.sum(1), b.sum(1)
    rel = ((sa - sb).abs() / torch.maximum(sa, sb)).max().item() if a.shape[0] else 0.0
    if rel > 1e-4:
        raise OTInputError(
            f"balanced OT needs sum(a) == sum(b) per problem; they differ by up to {rel:.2g} "
            "(relative). Normalise both to 1, or relax a marginal with reg_m"
        )
