"""Intervals and paired tests (``convir.evaluation.stats``), checked on synthetic runs whose
true rates are known."""

import math

import numpy as np
import pytest

from convir.errors import InputError
from convir.evaluation import metrics, stats

ROUNDS = 3
K = 10
P_FIRST = 0.05  # per round, the target is first with this probability (geometric ranks)
MISSING = 100.0  # rankings hold 100 ids


def synthetic_ranks(rng, dialogues, p=P_FIRST):
    """Geometric 0-based ranks, independent per round; beyond the top 100 = not found."""
    r = rng.geometric(p, size=(dialogues, ROUNDS)).astype(float) - 1
    r[r >= MISSING] = np.inf
    return r


def true_rates(p=P_FIRST):
    """Hits@10 per round (cumulative), Recall@1 per round and BRI of the generator above;
    BRI by a 400,000-dialogue simulation (its own error ~.001, far below an interval's)."""
    hits = [1 - (1 - p) ** (K * (t + 1)) for t in range(ROUNDS)]
    big = synthetic_ranks(np.random.default_rng(12345), 400_000, p)
    return hits, [p] * ROUNDS, metrics.best_log_rank_integral(big, MISSING)


def coverage(level=stats.LEVEL, runs=200, dialogues=200):
    """Fraction of synthetic runs whose interval holds the true value, per metric."""
    hits, first, bri = true_rates()
    rng = np.random.default_rng(7)
    covered = np.zeros(2 * ROUNDS + 1)
    for i in range(runs):
        ranks = synthetic_ranks(rng, dialogues)
        values = stats.DialogueValues.of(ranks, K, MISSING)
        ci = stats.percentile_interval(stats.bootstrap_means(values.matrix(), 1000, i), level)
        truth = np.array([*hits, *first, bri])
        covered += (ci[:, 0] <= truth) & (truth <= ci[:, 1])
    return covered / runs


def test_intervals_cover_the_true_rate_in_90_to_99_percent_of_200_runs():
    cover = coverage()
    assert cover.min() >= 0.90, cover
    assert cover.max() <= 0.99, cover


def test_a_too_narrow_interval_fails_the_same_check():
    """The coverage check can fail: a 50% interval covers about half the time."""
    cover = coverage(level=0.5, runs=100)
    assert 0.35 <= cover.mean() <= 0.65, cover


def test_intervals_match_the_metrics_and_are_seeded():
    ranks = synthetic_ranks(np.random.default_rng(0), 150)
    ci = stats.intervals(ranks, K, MISSING, resamples=500, seed=3)
    hits = metrics.hits_at_k_per_round(ranks, K)
    first = metrics.recall_at_k_per_round(ranks, 1)
    bri = metrics.best_log_rank_integral(ranks, MISSING)
    for (lo, hi), value in zip(ci["hits_at_k"] + ci["recall_at_1"], [*hits, *first], strict=True):
        assert lo <= value <= hi and hi - lo < 0.25
    assert ci["bri"][0] <= bri <= ci["bri"][1]
    assert ci == stats.intervals(ranks, K, MISSING, resamples=500, seed=3)
    assert ci != stats.intervals(ranks, K, MISSING, resamples=500, seed=4)


def test_interval_width_shrinks_like_one_over_root_n():
    rng = np.random.default_rng(1)
    small = stats.intervals(synthetic_ranks(rng, 100), K, MISSING, 1000, 0)["hits_at_k"][0]
    large = stats.intervals(synthetic_ranks(rng, 1600), K, MISSING, 1000, 0)["hits_at_k"][0]
    ratio = (small[1] - small[0]) / (large[1] - large[0])
    assert 3.0 < ratio < 5.0  # sqrt(16) = 4


def test_per_dialogue_bri_averages_to_bri():
    ranks = np.array([[12, 3, 20], [np.inf, np.inf, 9]])
    per = metrics.best_log_rank_per_dialogue(ranks, 25.0)
    assert per.tolist() == pytest.approx(
        [
            (math.log(13) + 2 * math.log(4) + math.log(4)) / 4,
            (2 * math.log(26) + math.log(26) + math.log(10)) / 4,
        ]
    )
    assert metrics.best_log_rank_integral(ranks, 25.0) == pytest.approx(per.mean())


@pytest.mark.parametrize(
    ("a_only", "b_only", "p"),
    [
        (0, 0, 1.0),
        (6, 0, 2 / 64),  # all six discordant pairs one way: 2 * (1/2)^6
        (1, 1, 1.0),
        (2, 8, 2 * (1 + 10 + 45) / 1024),
        (8, 2, 2 * (1 + 10 + 45) / 1024),
    ],
)
def test_exact_mcnemar_is_the_two_sided_binomial_test_of_discordant_pairs(a_only, b_only, p):
    concordant = 5  # both hit: ignored
    a = np.array([1] * a_only + [0] * b_only + [1] * concordant)
    b = np.array([0] * a_only + [1] * b_only + [1] * concordant)
    assert stats.mcnemar_exact(a, b) == pytest.approx(p)


def test_sign_flip_p_is_small_for_a_shift_and_large_for_noise():
    rng = np.random.default_rng(0)
    assert stats.sign_flip_p(rng.normal(0.5, 1.0, 200), 2000, 0) < 0.001
    assert stats.sign_flip_p(np.zeros(50), 2000, 0) == 1.0
    noise = [stats.sign_flip_p(rng.normal(0.0, 1.0, 100), 500, s) for s in range(60)]
    assert 0.0 < np.mean(np.array(noise) < 0.05) <= 0.15


@pytest.mark.parametrize("bad", [-1, 1, 99, 2_000_000])
def test_resample_counts_are_checked(bad):
    with pytest.raises(InputError, match="--resamples must be 0"):
        stats.check_resamples(bad)
    assert stats.check_resamples(0) == 0 and stats.check_resamples(100) == 100
