"""The OT core against POT, on the cases the reranker meets: padding, batches, both directions."""

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import convir.tools.sinkhorn as sk
from convir.errors import ConvirError
from convir.tools.ot_rerank import (
    OTRerankArgs,
    bidirectional_ot_distance,
    directional_ot_costs,
    ot_rerank,
    sinkhorn_cost,
)

ot = pytest.importorskip("ot")
INF = math.inf


def clustered(shape: tuple[int, ...], dim: int, gen: torch.Generator, k: int = 12) -> torch.Tensor:
    """Unit vectors around k shared prototypes: cosines spread like real token features."""
    protos = torch.nn.functional.normalize(
        torch.randn(k, dim, generator=torch.Generator().manual_seed(99), dtype=torch.float64), dim=1
    )
    idx = torch.randint(0, k, shape, generator=gen)
    noise = 0.7 * torch.randn(*shape, dim, generator=gen, dtype=torch.float64) / dim**0.5
    return torch.nn.functional.normalize(protos[idx] + noise, dim=-1)


def problem(B: int, n: int, m: int, dim: int = 64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x, y = clustered((B, n), dim, gen), clustered((B, m), dim, gen)
    C = 1.0 - x @ y.transpose(1, 2)
    a = torch.rand(B, n, generator=gen, dtype=torch.float64) + 0.5
    b = torch.rand(B, m, generator=gen, dtype=torch.float64) + 0.5
    return C, a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)


def pot_sinkhorn2(C, a, b, reg, method="sinkhorn"):
    """POT per item, iterated well past its defaults (1000 its, 1e-9) so it has converged."""
    out = []
    for Ci, ai, bi in zip(C.numpy(), a.numpy(), b.numpy(), strict=True):
        cost, log = ot.sinkhorn2(
            ai, bi, Ci, reg, method=method, stopThr=1e-10, numItermax=100_000, log=True
        )
        assert log["err"][-1] < 1e-9, "POT reference did not converge"
        out.append(float(cost))
    return np.array(out)


def pot_unbalanced2(C, a, b, reg, reg_m):
    return np.array(
        [
            float(
                ot.unbalanced.sinkhorn_unbalanced2(
                    ai, bi, Ci, reg, reg_m, reg_type="kl", stopThr=1e-13, numItermax=100_000
                )
            )
            for Ci, ai, bi in zip(C.numpy(), a.numpy(), b.numpy(), strict=True)
        ]
    )


def rel_err(x: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.max(np.abs(x.double().cpu().numpy() - ref) / np.abs(ref)))


# --- sinkhorn_cost vs POT -------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 32, 50), (2, 77, 256)])
@pytest.mark.parametrize("reg", [0.05, 0.1])
def test_sinkhorn_cost_matches_pot_sinkhorn2(shape, reg):
    C, a, b = problem(*shape, seed=shape[1])
    ref = pot_sinkhorn2(C, a, b, reg)
    for method in ("absorb", "lse"):
        got = sinkhorn_cost(C, a, b, reg, n_iter=10_000, tol=1e-9, method=method)
        assert got.dtype == torch.float64 and got.shape == (shape[0],)
        assert rel_err(got, ref) < 1e-6, method
    plain = sinkhorn_cost(C, a, b, reg, n_iter=10_000, tol=1e-9, overrelax=False)
    assert rel_err(plain, ref) < 1e-6
    f32 = sinkhorn_cost(C.float(), a.float(), b.float(), reg, n_iter=10_000, tol=1e-6)
    assert f32.dtype == torch.float32 and rel_err(f32, ref) < 1e-4


@pytest.mark.parametrize("reg_m", [(INF, 0.1), (0.1, INF), (0.5, 0.5), (INF, 1.0)])
def test_relaxed_marginals_match_pot_sinkhorn_unbalanced2(reg_m):
    C, a, b = problem(4, 20, 30, seed=3)
    ref = pot_unbalanced2(C, a, b, 0.05, reg_m)
    for method in ("absorb", "lse"):
        got = sinkhorn_cost(C, a, b, 0.05, n_iter=10_000, tol=1e-11, reg_m=reg_m, method=method)
        assert rel_err(got, ref) < 1e-8, method


@pytest.mark.parametrize("reg_m", [INF, (INF, 0.1), (0.1, INF)])
@pytest.mark.parametrize("method", ["absorb", "lse"])
def test_zero_mass_padding_changes_nothing(reg_m, method):
    C, a, b = problem(3, 10, 14, seed=4)
    Cp = torch.full((3, 13, 20), 7.0, dtype=torch.float64)  # padded costs: large, never used
    Cp[:, :10, :14] = C
    ap, bp = torch.zeros(3, 13, dtype=torch.float64), torch.zeros(3, 20, dtype=torch.float64)
    ap[:, :10], bp[:, :14] = a, b
    rows, cols = [12, *range(12)], [*range(5), 19, *range(5, 19)]  # pads first / in the middle
    Cp, ap, bp = Cp[:, rows][:, :, cols], ap[:, rows], bp[:, cols]
    kw = dict(n_iter=5000, tol=1e-11, reg_m=reg_m, method=method)
    padded = sinkhorn_cost(Cp, ap, bp, 0.05, **kw)
    plain = sinkhorn_cost(C, a, b, 0.05, **kw)
    assert torch.isfinite(padded).all()
    torch.testing.assert_close(padded, plain, rtol=1e-9, atol=0)


def test_batch_equals_per_item_results():
    C, a, b = problem(5, 24, 40, seed=5)
    C[1] *= 3.0  # a harder problem, converging later than the rest
    for reg_m in (INF, (INF, 0.1)):
        batch = sinkhorn_cost(C, a, b, 0.03, n_iter=20_000, tol=1e-10, reg_m=reg_m)
        single = torch.cat(
            [
                sinkhorn_cost(
                    C[i : i + 1], a[i : i + 1], b[i : i + 1], 0.03, 20_000, 1e-10, reg_m=reg_m
                )
                for i in range(5)
            ]
        )
        torch.testing.assert_close(batch, single, rtol=1e-10, atol=0)


def test_iteration_cap_and_no_tolerance_still_give_finite_costs():
    C, a, b = problem(3, 8, 9, seed=6)
    for n_iter, tol in ((1, 1e-6), (7, None), (25, None)):
        got = sinkhorn_cost(C, a, b, 0.05, n_iter=n_iter, tol=tol)
        assert torch.isfinite(got).all() and (got > 0).all()
    empty = sinkhorn_cost(C[:0], a[:0], b[:0], 0.05)
    assert empty.shape == (0,)


def test_float32_with_a_wide_cost_range_matches_float64_pot():
    """Costs up to 8 at reg 0.05: exp(-C/reg) underflows float32, the log domain must not care."""
    gen = torch.Generator().manual_seed(7)
    C = 8.0 * torch.rand(3, 12, 16, generator=gen, dtype=torch.float64)
    a = torch.full((3, 12), 1 / 12, dtype=torch.float64)
    b = torch.full((3, 16), 1 / 16, dtype=torch.float64)
    ref = pot_sinkhorn2(C, a, b, 0.05, method="sinkhorn_log")  # plain scaling stalls here
    got = sinkhorn_cost(C.float(), a.float(), b.float(), 0.05, n_iter=20_000, tol=1e-6)
    assert rel_err(got, ref) < 1e-5


def test_a_numerical_failure_in_the_cached_kernel_is_redone_exactly(monkeypatch):
    C, a, b = problem(4, 10, 12, seed=13)
    clean = sinkhorn_cost(C, a, b, 0.05, tol=1e-10)
    real_block, real_lse = sk._absorb_block, sk._lse_block
    calls = {"absorb": 0, "lse": 0}

    def poisoned_block(s, k, relax):
        calls["absorb"] += 1
        x, y, err, rate = real_block(s, k, relax)
        if calls["absorb"] == 3:  # as if problem 0's kernel had overflowed mid-run
            x = x.clone()
            x[0, 0] = math.inf
        return x, y, err, rate

    def counting_lse(*args, **kwargs):
        calls["lse"] += 1
        return real_lse(*args, **kwargs)

    monkeypatch.setattr(sk, "_absorb_block", poisoned_block)
    monkeypatch.setattr(sk, "_lse_block", counting_lse)
    got = sinkhorn_cost(C, a, b, 0.05, tol=1e-10)
    assert calls["lse"] == 1
    torch.testing.assert_close(got, clean, rtol=1e-8, atol=0)


def test_kernel_is_built_directly_unless_the_cost_range_would_underflow(monkeypatch):
    """Narrow cost ranges skip the exact log-sum-exp start; wide ones (float64 here) take it."""
    real_init = sk._lse_init
    calls = []

    def counting_init(Kl, *args):
        calls.append(Kl.shape[0])
        return real_init(Kl, *args)

    monkeypatch.setattr(sk, "_lse_init", counting_init)
    C, a, b = problem(3, 16, 20, seed=21)  # 1 - cos: range / reg <= 40
    got = sinkhorn_cost(C, a, b, 0.05, n_iter=10_000, tol=1e-10)
    assert calls == [] and rel_err(got, pot_sinkhorn2(C, a, b, 0.05)) < 1e-8
    wide = C.clone()
    wide[1] *= 15.0  # range / reg ~ 600: exp(-C/reg) would span more than float64 holds
    got = sinkhorn_cost(wide, a, b, 0.05, n_iter=20_000, tol=1e-10)
    assert calls == [1]  # only the wide problem pays for the stabilised start
    ref = pot_sinkhorn2(wide, a, b, 0.05, method="sinkhorn_log")
    assert rel_err(got, ref) < 1e-8


def test_cpu_chunks_change_nothing(monkeypatch):
    C, a, b = problem(7, 12, 18, seed=22)
    whole = sinkhorn_cost(C, a, b, 0.05, tol=1e-11, reg_m=(INF, 0.1))
    monkeypatch.setattr(sk, "_CPU_CHUNK_BYTES", 3 * 12 * 18 * 8)  # chunks of 3, 3, 1
    chunked = sinkhorn_cost(C, a, b, 0.05, tol=1e-11, reg_m=(INF, 0.1))
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=0)


# --- caption <-> image distances ------------------------------------------------------------


def test_identical_token_sets_are_at_distance_near_zero():
    gen = torch.Generator().manual_seed(8)
    tokens = torch.nn.functional.normalize(torch.randn(12, 64, generator=gen), dim=1)
    others = torch.nn.functional.normalize(torch.randn(12, 64, generator=gen), dim=1)
    patches = torch.stack([tokens[torch.randperm(12, generator=gen)], others])
    mask = torch.ones(12, dtype=torch.bool)
    for reg_m in (INF, 0.1):
        d = bidirectional_ot_distance(tokens, mask, 3.0 * patches, reg_m=reg_m)  # scale: ignored
        assert d.dtype == torch.float32
        assert d[0] < 1e-3 and d[1] > 0.8, (reg_m, d)


def test_balanced_limit_is_pot_sinkhorn2_in_both_directions():
    gen = torch.Generator().manual_seed(9)
    tok = clustered((1, 9), 32, gen)
    pat = clustered((3, 20), 32, gen)
    mask = torch.tensor([[1] * 7 + [0] * 2])
    t2i, i2t = directional_ot_costs(tok, mask, pat, reg=0.05, reg_m=INF, tol=1e-10)
    torch.testing.assert_close(t2i, i2t)
    C = (1.0 - tok[:, :7] @ pat.transpose(1, 2)).numpy()
    ref = np.array(
        [
            ot.sinkhorn2(np.full(7, 1 / 7), np.full(20, 1 / 20), C[i], 0.05, stopThr=1e-11)
            for i in range(3)
        ]
    )
    assert rel_err(t2i, ref) < 1e-6
    near = bidirectional_ot_distance(tok, mask, pat, reg_m=1e5, tol=1e-10)
    assert rel_err(near, ref) < 1e-3


def test_each_direction_is_a_semi_relaxed_pot_problem():
    gen = torch.Generator().manual_seed(10)
    tok, pat = clustered((1, 8), 32, gen), clustered((2, 15), 32, gen)
    w = torch.rand(2, 15, generator=gen, dtype=torch.float64) + 0.1
    t2i, i2t = directional_ot_costs(tok, torch.ones(1, 8), pat, w, reg_m=0.1, tol=1e-11)
    C = 1.0 - tok @ pat.transpose(1, 2)
    a = torch.full((2, 8), 1 / 8, dtype=torch.float64)
    b = w / w.sum(1, keepdim=True)
    assert rel_err(t2i, pot_unbalanced2(C, a, b, 0.05, (INF, 0.1))) < 1e-8
    assert rel_err(i2t, pot_unbalanced2(C, a, b, 0.05, (0.1, INF))) < 1e-8
    assert not torch.allclose(t2i, i2t, rtol=1e-3)


def two_object_scene():
    """Caption about objects A and B; images made of object patches plus background."""
    gen = torch.Generator().manual_seed(11)
    protos = torch.nn.functional.normalize(
        torch.randn(6, 64, generator=gen, dtype=torch.float64), dim=1
    )

    def draw(c, n):
        noise = 0.075 * torch.randn(n, 64, generator=gen, dtype=torch.float64)
        return torch.nn.functional.normalize(protos[c] + noise, dim=1)

    A, B, C, D, WORD, BG = range(6)
    caption = torch.cat([draw(A, 4), draw(B, 4), draw(WORD, 2)])
    images = {
        "target": [(A, 6), (B, 6), (BG, 36)],
        "missing B": [(A, 12), (BG, 36)],
        "unrelated": [(C, 6), (D, 6), (BG, 36)],
    }
    patches = torch.stack([torch.cat([draw(c, n) for c, n in parts]) for parts in images.values()])
    return caption, torch.ones(10, dtype=torch.bool), patches


def test_relaxed_transport_sees_a_missing_object_that_balanced_transport_misses():
    caption, mask, patches = two_object_scene()
    balanced = bidirectional_ot_distance(caption, mask, patches, reg_m=INF)
    relaxed = bidirectional_ot_distance(caption, mask, patches)  # default reg_m = 0.1
    t2i, _ = directional_ot_costs(caption, mask, patches)
    # Background dominates balanced OT: the image missing B looks (slightly) closer.
    assert balanced[1] < balanced[0] < balanced[2]
    # Text -> image must place B's tokens somewhere: only the target has B patches.
    assert relaxed[0] < relaxed[1] - 0.05 and relaxed[0] < relaxed[2]
    assert t2i[0] < t2i[1] - 0.15


# --- reranking --------------------------------------------------------------------------------


def test_ot_rerank_fuses_scores_on_a_common_scale():
    caption, mask, patches = two_object_scene()
    first = torch.tensor([0.300, 0.302, 0.310], dtype=torch.float64)  # target ranked last
    same, order0 = ot_rerank(first, caption, mask, patches, weight=0.0)
    assert torch.equal(same, first) and order0.tolist() == [2, 1, 0]
    scores, order = ot_rerank(first, caption, mask, patches, weight=0.5)
    assert order[0] == 0 and scores.shape == (3,) and scores.dtype == torch.float64
    # The OT part is rescaled to the first stage's mean and spread.
    only_ot, order1 = ot_rerank(first, caption, mask, patches, weight=1.0)
    torch.testing.assert_close(only_ot.mean(), first.mean())
    torch.testing.assert_close(only_ot.std(correction=0), first.std(correction=0))
    d = bidirectional_ot_distance(caption, mask, patches)
    assert order1.tolist() == torch.argsort(d).tolist()
    tied, order_t = ot_rerank(
        torch.zeros(3), caption[None], mask[None], patches.float(), weight=0.5
    )
    assert order_t[0] == 0 and torch.isfinite(tied).all()


def test_rerank_args_bounds():
    args = OTRerankArgs()
    # the tool's defaults are the agent's (AgentConfig.ot_top_n / ot_weight)
    assert (args.top_n, args.weight, args.reg_m) == (50, 0.2, 0.1)
    assert OTRerankArgs(reg_m=INF).reg_m == INF
    for bad in (
        {"top_n": 0},
        {"top_n": 1001},
        {"reg": 0.0},
        {"n_iter": 0},
        {"n_iter": 10_001},
        {"weight": 1.5},
        {"weight": -0.1},
        {"reg_m": 0.0},
        {"topn": 5},
    ):
        with pytest.raises(ValidationError):
            OTRerankArgs(**bad)


# --- invalid inputs ---------------------------------------------------------------------------

C0, A0, B0 = problem(2, 3, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sinkhorn_cost(C0[0], A0[0], B0[0], 0.1), "3-D cost"),
        (lambda: sinkhorn_cost(C0, A0[:, :2], B0, 0.1), "a must have shape"),
        (lambda: sinkhorn_cost(C0, A0, B0[:1], 0.1), "b must have shape"),
        (lambda: sinkhorn_cost(C0.half(), A0, B0, 0.1), "float32 or float64"),
        (lambda: sinkhorn_cost(C0, -A0, B0, 0.1), ">= 0"),
        (lambda: sinkhorn_cost(C0, A0 * torch.tensor([[1.0], [0.0]]).double(), B0, 0.1), "zero total"),
        (lambda: sinkhorn_cost(C0 * math.nan, A0, B0, 0.1), "NaN"),
        (lambda: sinkhorn_cost(C0, A0, 2 * B0, 0.1), "sum\\(a\\) == sum\\(b\\)"),
        (lambda: sinkhorn_cost(C0, A0, B0, 0.0), "reg must be"),
        (lambda: sinkhorn_cost(C0, A0, B0, 0.1, n_iter=0), "n_iter"),
        (lambda: sinkhorn_cost(C0, A0, B0, 0.1, reg_m=(1.0, -1.0)), "reg_m"),
        (lambda: sinkhorn_cost(C0, A0, B0, 0.1, method="exact"), "method"),
        (lambda: bidirectional_ot_distance(torch.ones(1, 3, 8), torch.ones(1, 3), torch.ones(2, 5, 6)), "dim"),
        (lambda: bidirectional_ot_distance(torch.ones(1, 3, 8), torch.ones(1, 4), torch.ones(2, 5, 8)), "text_mask"),
        (lambda: bidirectional_ot_distance(torch.ones(3, 3, 8), torch.ones(3, 3), torch.ones(2, 5, 8)), "batch"),
        (lambda: bidirectional_ot_distance(torch.ones(1, 3, 8), torch.zeros(1, 3), torch.ones(2, 5, 8)), "no valid token"),
        (lambda: bidirectional_ot_distance(torch.ones(3, 8), torch.ones(3), torch.ones(2, 5, 8), torch.ones(2, 4)), "patch_weights"),
        (lambda: bidirectional_ot_distance(torch.ones(3, 8), torch.ones(3), torch.ones(2, 5, 8), reg_m=0.0), "reg_m"),
        (lambda: ot_rerank(torch.zeros(3), torch.ones(3, 8), torch.ones(3), torch.ones(2, 5, 8)), "3 first-stage"),
        (lambda: ot_rerank(torch.zeros(2), torch.ones(3, 8), torch.ones(3), torch.ones(2, 5, 8), weight=2.0), "weight"),
    ],
)  # fmt: skip
def test_invalid_inputs_raise_value_errors_that_say_what_to_do(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert isinstance(info.value, ConvirError)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    C, a, b = problem(8, 77, 256, seed=12)
    for dtype in (torch.float64, torch.float32):
        cpu = sinkhorn_cost(C.to(dtype), a.to(dtype), b.to(dtype), 0.05, tol=1e-6)
        gpu = sinkhorn_cost(
            C.to(dtype).cuda(), a.to(dtype).cuda(), b.to(dtype).cuda(), 0.05, tol=1e-6
        )
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=0)
    caption, mask, patches = two_object_scene()
    d = bidirectional_ot_distance(caption.cuda(), mask.cuda(), patches.cuda())
    torch.testing.assert_close(d.cpu(), bidirectional_ot_distance(caption, mask, patches))
