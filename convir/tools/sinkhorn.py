"""Batched entropic Sinkhorn on dual potentials: the numerical core behind ``ot_problem.sinkhorn_cost``.

Inputs arrive validated (``convir.tools.ot_rerank`` checks them). A zero mass is a ``-inf``
log-mass and drops out of every sum exactly, so padded batches need no special case.

Each problem's potentials are split into an absorbed part, folded into a cached kernel
``G = exp(-C/reg + phi0 + psi0)``, and small offsets (x, y), so an iteration is two batched
mat-vecs through ``G`` plus an ``exp`` and a ``log`` of the offsets (the scaling form, in log
coordinates so that over-relaxation stays a ``lerp``). ``G`` is first built directly from the
cost, shifted by each row's minimum, when the cost range over ``reg`` is small enough that it
cannot underflow in the dtype; otherwise one exact log-sum-exp half-step each way puts the
potentials on scale first (Schmitzer's stabilisation). Offsets that drift far are absorbed
into a fresh kernel, and a kernel that under- or overflows anyway is redone with exact
log-sum-exps. On the CPU the batch is solved in chunks whose kernels fit in the cache: the
mat-vecs are memory bound, and a 100 x 77 x 256 float64 batch does not fit.

Each problem gets its own over-relaxation factor, tuned from its observed convergence rate
with Young's SOR relation, and leaves the batch once converged, so a batch costs about what
its problems cost one by one, minus the per-call overheads.

References:
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
from typing import Literal

import torch
from torch import Tensor

Method = Literal["absorb", "lse"]

# Largest |offset| kept out of the kernel before it is absorbed: e^x then carries a relative
# error of about |x| * eps, ~1e-6 in float32, ~5e-15 in float64.
_ABSORB_DRIFT = {torch.float32: 10.0, torch.float64: 50.0}
# Largest |log| of a directly built kernel entry: far from under- and overflow in the dtype.
_DIRECT_RANGE = {torch.float32: 30.0, torch.float64: 200.0}
_CPU_CHUNK_BYTES = 4 << 20  # one chunk's kernel stays in the last-level cache
_WARMUP_CHECKS = 1  # plain Sinkhorn until one check has given a first convergence rate
_OMEGA_MAX = 1.85  # well inside (0, 2); early estimates overshoot the optimum
_STRIKES = 3  # checks in a row without a new best error before a problem drops back to omega=1

State = dict[str, Tensor]


def solve(
    C: Tensor,
    a: Tensor,
    b: Tensor,
    reg: float,
    tau_a: Tensor,
    tau_b: Tensor,
    n_iter: int,
    tol: float | None,
    method: Method = "absorb",
    overrelax: bool = True,
    check_every: int = 10,
) -> Tensor:
    """Linear costs <P, C> [B] of validated problems; ``tau`` [B, 1] is 1 for a hard marginal.

    Potentials are scaled by 1/reg: P = a b^T exp(-C/reg + phi + psi).
    """
    B = C.shape[0]
    step = B if C.device.type != "cpu" else _cpu_chunk(C)
    args = (reg, n_iter, tol, method, overrelax, check_every)
    if step >= B:
        return _solve(C, a, b, tau_a, tau_b, *args)
    parts = [
        _solve(C[i : i + step], a[i : i + step], b[i : i + step],
               tau_a[i : i + step], tau_b[i : i + step], *args)
        for i in range(0, B, step)
    ]  # fmt: skip
    return torch.cat(parts)


def _cpu_chunk(C: Tensor) -> int:
    """Problems per chunk whose kernels fit ``_CPU_CHUNK_BYTES`` (at least one)."""
    per_problem = C.shape[1] * C.shape[2] * C.element_size()
    return max(1, _CPU_CHUNK_BYTES // per_problem)


@torch.no_grad()
def _solve(
    C: Tensor,
    a: Tensor,
    b: Tensor,
    tau_a: Tensor,
    tau_b: Tensor,
    reg: float,
    n_iter: int,
    tol: float | None,
    method: Method,
    overrelax: bool,
    check_every: int,
) -> Tensor:
    """One chunk: check every ``check_every`` iterations, drop the converged problems.

    ``C`` itself stays whole (it is read through ``s["idx"]``), so dropping problems copies
    only the kernel and a few vectors.
    """
    B = C.shape[0]
    out = C.new_empty(B)
    if B == 0:
        return out
    absorb = method == "absorb"
    drift_max = _ABSORB_DRIFT[C.dtype]
    s: State = {
        "idx": torch.arange(B, device=C.device),
        "a": a,
        "b": b,
        "la": a.log(),  # log(0) = -inf: padding drops out of every log-sum-exp
        "lb": b.log(),
        "sa": a.sum(1, keepdim=True),
        "sb": b.sum(1, keepdim=True),
        "ta": tau_a,
        "tb": tau_b,
        "omega": torch.ones(B, 1, dtype=C.dtype, device=C.device),
    }
    Kl = C * (-1.0 / reg)
    if absorb:
        s.update(_absorb(Kl, *_init_absorbed(Kl, s, _DIRECT_RANGE[C.dtype]), s))
    else:
        s.update(Kl=Kl, phi=torch.zeros_like(a), psi=torch.zeros_like(b))
        s["phi"], s["psi"] = _lse_init(Kl, s["la"], s["lb"], tau_a, tau_b)
    del Kl
    hist: State = {}  # over-relaxation bookkeeping
    done_iters, n_check = 0, 0

    while done_iters < n_iter and s["idx"].numel() > 0:
        k = min(check_every, n_iter - done_iters)
        relax = overrelax and n_check >= _WARMUP_CHECKS  # omega may differ from 1 from now on
        if absorb:
            snap = _potentials(s, absorb)
            s["x"], s["y"], err, rate = _absorb_block(s, k, relax)
            # amax propagates NaN, so a broken kernel shows up here too
            drift = torch.maximum(s["x"].abs().amax((1, 2)), s["y"].abs().amax((1, 2)))
        else:
            s["phi"], s["psi"], err, rate = _lse_block(s, s["Kl"], s["phi"], s["psi"], k, relax)
            drift = torch.zeros_like(err)
        bad = ~torch.isfinite(drift + err)
        done_iters += k
        n_check += 1
        conv = err < tol if tol is not None else torch.zeros_like(bad)
        # The one host sync of a check: who converged, who broke, whose kernel needs refreshing.
        conv_h, bad_h, drift_h = torch.stack([conv & ~bad, bad, (drift > drift_max) & ~bad]).cpu()

        if absorb and bad_h.any():
            # The cached kernel under/overflowed (extreme cost ranges): redo this block from the
            # last good potentials with exact log-sum-exps and plain steps, then absorb afresh.
            i = bad_h.nonzero().squeeze(1).to(C.device)
            sub = {key: s[key][i] for key in ("a", "b", "la", "lb", "sa", "sb", "ta", "tb")}
            Kl_i = C[s["idx"][i]] * (-1.0 / reg)
            p, q, e, _ = _lse_block(sub, Kl_i, snap[0][i], snap[1][i], k, relax=False)
            for key, v in _absorb(Kl_i, p, q, sub).items():
                s[key][i] = v
            s["omega"][i] = 1.0
            if "gave_up" in hist:
                hist["gave_up"][i] = True
            err = err.index_copy(0, i, e)
            rate = rate.index_fill(0, i, math.nan)
            if tol is not None:
                conv_h[bad_h] = (e < tol).cpu()

        if absorb and drift_h.any():
            i = drift_h.nonzero().squeeze(1).to(C.device)
            sub = {key: s[key][i] for key in ("a", "b", "ta", "tb")}
            p, q = (t[i] for t in _potentials(s, absorb))
            for key, v in _absorb(C[s["idx"][i]] * (-1.0 / reg), p, q, sub).items():
                s[key][i] = v

        if overrelax:
            s["omega"], hist = _update_omega(s["omega"], err, rate, hist)

        if conv_h.any():
            i = conv_h.nonzero().squeeze(1).to(C.device)
            out[s["idx"][i]] = _linear_cost(s, i, C, reg, absorb)
            keep = (~conv_h).nonzero().squeeze(1).to(C.device)
            s = {key: v[keep] for key, v in s.items()}
            hist = {key: v[keep] for key, v in hist.items()}

    if s["idx"].numel() > 0:  # hit n_iter: keep the last iterate
        every = torch.arange(s["idx"].numel(), device=C.device)
        out[s["idx"]] = _linear_cost(s, every, C, reg, absorb)
    return out


def _linear_cost(s: State, i: Tensor, C: Tensor, reg: float, absorb: bool) -> Tensor:
    """<P, C> of problems ``i`` of the state; through the cached kernel, with no [n, m] ``exp``."""
    Ci = C[s["idx"][i]]
    if absorb:
        u = s["a"][i].unsqueeze(1) * s["x"][i].exp()  # [k, 1, n]
        v = s["b"][i].unsqueeze(1) * s["y"][i].exp()  # [k, 1, m]
        return torch.bmm(torch.bmm(u, s["G"][i].mul_(Ci)), v.mT).flatten()
    P = s["Kl"][i] + (s["phi"][i] + s["la"][i])[:, :, None]
    P += (s["psi"][i] + s["lb"][i])[:, None, :]
    return P.exp_().mul_(Ci).sum((1, 2))


def _potentials(s: State, absorb: bool) -> tuple[Tensor, Tensor]:
    """Current (phi, psi) as [B, n], [B, m]."""
    if absorb:
        return (s["phi0"] + s["x"]).squeeze(1), (s["psi0"] + s["y"]).squeeze(1)
    return s["phi"], s["psi"]


def _init_absorbed(Kl: Tensor, s: State, direct_range: float) -> tuple[Tensor, Tensor]:
    """Starting potentials for the first kernel, with exact log-sum-exps only where needed.

    ``phi = -max_j(-C_ij/reg + log b_j)``, then ``psi`` likewise over the rows, give every
    row and column (padding included) a kernel entry of order 1. A problem whose shifted
    log-kernel then stays within +-``direct_range`` keeps that kernel as it is (the scaling
    form, no ``logsumexp``); the others get one exact half-step each way instead.
    """
    phi = -(Kl + s["lb"][:, None, :]).amax(2)
    L = Kl + phi[:, :, None]
    psi = -(L + s["la"][:, :, None]).amax(1)
    L += psi[:, None, :]
    wide = L.abs_().amax((1, 2)) > direct_range
    if bool(wide.any()):
        i = wide.nonzero().squeeze(1)
        phi[i], psi[i] = _lse_init(Kl[i], s["la"][i], s["lb"][i], s["ta"][i], s["tb"][i])
    return phi, psi


def _lse_init(Kl: Tensor, la: Tensor, lb: Tensor, ta: Tensor, tb: Tensor) -> tuple[Tensor, Tensor]:
    """One exact half-step each way from zero: puts the potentials on the cost's scale."""
    phi = -ta * torch.logsumexp(Kl + lb[:, None, :], dim=2)
    psi = -tb * torch.logsumexp(Kl + (phi + la)[:, :, None], dim=1)
    return phi, psi


def _absorb(Kl: Tensor, phi: Tensor, psi: Tensor, s: State) -> State:
    """Fold the potentials into the kernel G [B, n, m] = exp(-C/reg + phi + psi) once.

    Masses stay out of ``G`` (they multiply the [B, 1, n] / [B, 1, m] scalings instead), so
    one kernel serves both the row sums ``G v`` and the column sums ``u^T G``.
    """
    ta, tb = s["ta"].unsqueeze(2), s["tb"].unsqueeze(2)
    phi0, psi0 = phi.unsqueeze(1), psi.unsqueeze(1)
    return {
        "G": (Kl + phi[:, :, None] + psi[:, None, :]).exp_(),
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


def _absorb_block(s: State, k: int, relax: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """k Sinkhorn iterations through the cached kernel: two batched mat-vecs each.

    Returns (x, y, error after the last iteration, per-iteration rate over the last two).
    """
    G, ca, cb, ta, tb = (s[n] for n in ("G", "ca", "cb", "ta3", "tb3"))
    a3, b3 = s["a"].unsqueeze(1), s["b"].unsqueeze(1)
    x, y, omega = s["x"], s["y"], s["omega"].unsqueeze(2)
    err_r = err_c = prev_c = None
    for it in range(k):
        rows = torch.bmm(G, (b3 * y.exp()).mT).mT  # sum_j b_j G_ij e^y_j, [B, 1, n]
        x_new = torch.addcmul(ca, ta, rows.log_(), value=-1.0)
        if it == k - 1:
            err_r = _marginal_error(s["a"], s["sa"], x, x_new)
        x = torch.lerp(x, x_new, omega) if relax else x_new
        cols = torch.bmm(a3 * x.exp(), G)  # sum_i a_i G_ij e^x_i, [B, 1, m]
        y_new = torch.addcmul(cb, tb, cols.log_(), value=-1.0)
        if it >= k - 2:
            prev_c, err_c = err_c, _marginal_error(s["b"], s["sb"], y, y_new)
        y = torch.lerp(y, y_new, omega) if relax else y_new
    return x, y, torch.maximum(err_r, err_c), _rate(prev_c, err_c)


def _lse_block(
    s: State, Kl: Tensor, phi: Tensor, psi: Tensor, k: int, relax: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """k Sinkhorn iterations with exact log-sum-exps: the reference and the fallback."""
    la, lb, ta, tb = s["la"], s["lb"], s["ta"], s["tb"]
    omega = s["omega"] if relax else None
    err_r = err_c = prev_c = None
    for it in range(k):
        phi_new = -ta * torch.logsumexp(Kl + (psi + lb)[:, None, :], dim=2)
        if it == k - 1:
            err_r = _marginal_error(s["a"], s["sa"], phi, phi_new)
        phi = torch.lerp(phi, phi_new, omega) if relax else phi_new
        psi_new = -tb * torch.logsumexp(Kl + (phi + la)[:, :, None], dim=1)
        if it >= k - 2:
            prev_c, err_c = err_c, _marginal_error(s["b"], s["sb"], psi, psi_new)
        psi = torch.lerp(psi, psi_new, omega) if relax else psi_new
    return phi, psi, torch.maximum(err_r, err_c), _rate(prev_c, err_c)


def _rate(prev: Tensor | None, err: Tensor) -> Tensor:
    """Observed contraction per iteration (NaN when a block had a single iteration)."""
    return err / prev if prev is not None else torch.full_like(err, math.nan)


def _update_omega(omega: Tensor, err: Tensor, rate: Tensor, hist: State) -> tuple[Tensor, State]:
    """Per-problem over-relaxation omega, tuned from each problem's observed convergence rate.

    Sinkhorn alternates two block updates, so near the solution it behaves like block
    Gauss-Seidel on a 2-cyclic system, and Young's SOR theory applies (Thibault et al. 2021;
    Lehmann et al. 2022): a rate r per iteration observed under omega gives the Jacobi radius
    mu = (r + omega - 1) / (omega sqrt(r)), and the best factor is 2 / (1 + sqrt(1 - mu^2)).
    The rate is read off the last two iterations of each block, so tuning starts after one
    block. omega only grows towards that estimate (capped at ``_OMEGA_MAX``: early estimates
    overshoot, and past the optimum the rate degrades to omega - 1), and only while the rate
    is still in the real-eigenvalue regime r > omega - 1. A problem whose error has not
    improved for a few checks goes back to omega = 1 for good: plain Sinkhorn converges from
    anywhere.
    """
    if not hist:  # first check: nothing to compare with yet
        zeros = torch.zeros_like(err)
        hist = {"best": err.nan_to_num(math.inf), "strikes": zeros, "gave_up": zeros.bool()}
        improved = torch.ones_like(hist["gave_up"])
    else:
        improved = err < hist["best"]
        hist = {
            "best": torch.where(improved, err, hist["best"]),
            "strikes": torch.where(improved, torch.zeros_like(err), hist["strikes"] + 1),
            "gave_up": hist["gave_up"] | (hist["strikes"] + 1 >= _STRIKES) & ~improved,
        }
    gave_up = hist["gave_up"]
    w = omega.squeeze(1)
    r = rate.nan_to_num(1.0, 1.0, 1.0).clamp(1e-12, 1.0 - 1e-9)
    mu2 = ((r + w - 1.0) / (w * r.sqrt())).square().clamp(max=1.0 - 1e-9)
    w_best = (2.0 / (1.0 + torch.sqrt(1.0 - mu2))).clamp(1.0, _OMEGA_MAX)
    grow = improved & (r > 1.05 * (w - 1.0)) & ~gave_up
    w = torch.where(grow, torch.maximum(w, w_best), w)
    w = torch.where(gave_up, torch.ones_like(w), w)
    return w.unsqueeze(1), hist
