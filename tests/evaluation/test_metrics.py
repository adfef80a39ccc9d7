"""Every metric pinned against cases computed by hand from the reference definitions."""

import math

import numpy as np
import pytest

from convir.errors import InputError
from convir.evaluation import metrics as m

INF = math.inf


def test_rank_in_is_zero_based_and_inf_when_absent():
    assert m.rank_in(["a", "b", "c"], "a") == 0
    assert m.rank_in(("a", "b", "c"), "c") == 2
    assert m.rank_in(["a", "b"], "z") == INF
    assert m.rank_in([], "a") == INF  # empty ranking: not found


def test_target_ranks_per_query():
    ranks = m.target_ranks([["a", "b"], ["c"], []], ["b", "x", "a"])
    assert ranks.tolist() == [1, INF, INF]


# ---- ChatIR / PlugIR per-round metrics

RANKS = np.array([[12, 3, 20], [INF, INF, 9], [0, 50, 50]])


def test_hits_at_k_is_cumulative_over_rounds():
    # d0 hits at round 1 (3 < 10) and stays hit; d1 first hits at round 2; d2 at round 0.
    assert m.hits_at_k_per_round(RANKS, 10).tolist() == pytest.approx([1 / 3, 2 / 3, 1])


def test_recall_at_k_per_round_is_not_cumulative():
    # round 0: only d2; round 1: only d0; round 2: only d1.
    assert m.recall_at_k_per_round(RANKS, 10).tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_rank_equal_to_k_misses_and_k_larger_than_every_rank_hits_all_found():
    ranks = np.array([[10.0], [9.0]])
    assert m.hits_at_k_per_round(ranks, 10).tolist() == [0.5]
    assert m.recall_at_k_per_round(RANKS, 1000).tolist() == pytest.approx([2 / 3, 2 / 3, 1])


def test_bri_trapezoid_of_log_best_rank():
    # best ranks [3, 0] -> (ln 4 + ln 1) / 2 over one interval
    assert m.best_log_rank_integral(np.array([[3, 0]])) == pytest.approx(math.log(2))
    # best ranks [9, 9, 0] -> ((ln10 + ln10)/2 + (ln10 + 0)/2) / 2 = 0.75 ln 10
    assert m.best_log_rank_integral(np.array([[9, 99, 0]])) == pytest.approx(0.75 * math.log(10))
    # averaged over dialogues; the second is always at rank 0 (log 1 = 0)
    two = np.array([[9, 99, 0], [0, 5, 7]])
    assert m.best_log_rank_integral(two) == pytest.approx(0.375 * math.log(10))


def test_bri_uses_missing_rank_for_targets_never_found():
    ranks = np.array([[INF, 4]])
    expected = (math.log(100) + math.log(5)) / 2
    assert m.best_log_rank_integral(ranks, missing_rank=99) == pytest.approx(expected)
    with pytest.raises(InputError, match="missing_rank"):
        m.best_log_rank_integral(ranks)


def test_bri_single_round_is_mean_log_rank():
    assert m.best_log_rank_integral(np.array([[3], [0]])) == pytest.approx(math.log(4) / 2)


@pytest.mark.parametrize(
    "fn", [m.hits_at_k_per_round, m.recall_at_k_per_round, lambda r, k: m.recall_at_k(r[0], k)]
)
def test_bad_k_is_an_error(fn):
    with pytest.raises(InputError, match="K must be"):
        fn(RANKS, 0)


def test_no_dialogues_is_an_error_not_zero():
    with pytest.raises(InputError):
        m.hits_at_k_per_round(np.zeros((0, 3)), 10)
    with pytest.raises(InputError):
        m.recall_at_k([], 10)


def test_negative_or_nan_ranks_rejected():
    with pytest.raises(InputError):
        m.recall_at_k([0, -1], 5)
    with pytest.raises(InputError):
        m.recall_at_k([0, float("nan")], 5)


# ---- ranks from score matrices: ties go against the target


def test_ranks_from_scores_breaks_ties_against_the_target():
    scores = np.array([[0.9, 0.5, 0.5, 0.1]] * 3)
    ranks = m.ranks_from_scores(scores, np.array([0, 1, 3]))
    assert ranks.tolist() == [0, 2, 3]  # index 1 ties with index 2 -> counted as behind it
    flat = m.ranks_from_scores(np.ones((1, 5)), np.array([0]))
    assert flat.tolist() == [4]  # a constant scorer ranks the target last, never first


def test_ranks_from_scores_matches_argsort_without_ties():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(6, 40))
    targets = rng.integers(0, 40, size=6)
    order = np.argsort(-scores, axis=1)
    expected = [int(np.nonzero(order[i] == targets[i])[0][0]) for i in range(6)]
    assert m.ranks_from_scores(scores, targets).tolist() == expected


def test_ranks_from_scores_rejects_nan_and_bad_indices():
    with pytest.raises(InputError, match="NaN"):
        m.ranks_from_scores(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(InputError, match="out of range"):
        m.ranks_from_scores(np.ones((1, 2)), np.array([2]))


# ---- Recall@K (CIRR / CIRCO / FashionIQ)


def test_recall_at_k_fraction_of_targets_in_top_k():
    ranks = [0, 4, INF, 10]
    assert m.recall_at_k(ranks, 1) == 0.25
    assert m.recall_at_k(ranks, 5) == 0.5
    assert m.recall_at_k(ranks, 11) == 0.75
    assert m.recall_at_k(ranks, 1000) == 0.75  # K beyond every ranking: misses stay misses
    assert m.recall_at_ks(ranks, (1, 5)) == {1: 0.25, 5: 0.5}


# ---- CIRR: reference removed, subset ranking

MEMBERS = ["ref", "m1", "t", "m2", "m3", "m4"]


def test_cirr_reference_is_removed_before_ranking():
    clean = m.exclude_reference(["ref", "m1", "t", "x", "m2"], "ref")
    assert clean == ["m1", "t", "x", "m2"]
    assert m.target_ranks([clean], ["t"]).tolist() == [1]


def test_cirr_subset_rank_counts_only_other_members():
    ranking = ["x", "m1", "y", "t", "m2"]
    assert m.subset_ranks([ranking], ["t"], ["ref"], [MEMBERS]).tolist() == [1]
    # reference ranked first does not count in the subset either
    assert m.subset_ranks([["ref", "t"]], ["t"], ["ref"], [MEMBERS]).tolist() == [0]
    # target not ranked, or not a member: not found
    assert m.subset_ranks([["m1"]], ["t"], ["ref"], [MEMBERS]).tolist() == [INF]
    assert m.subset_ranks([["zz"]], ["zz"], ["ref"], [MEMBERS]).tolist() == [INF]


# ---- CIRCO mAP@K


def test_map_at_k_matches_circo_definition():
    # ranking [g, x, g, x, g] with 4 ground truths: precisions 1, 2/3, 3/5 at the hits
    rel = m.relevance_matrix([["a", "x", "b", "y", "c"]], [{"a", "b", "c", "d"}], 50)
    assert m.map_at_k(rel, [4], 5) == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    assert m.map_at_k(rel, [4], 3) == pytest.approx((1 + 2 / 3) / 3)  # min(#gt, K) = 3
    assert m.map_at_k(rel, [4], 1) == 1.0
    # K larger than the ranking: nothing more found, denominator min(4, 50) = 4
    assert m.map_at_k(rel, [4], 50) == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)


def test_map_at_k_averages_queries_and_scores_empty_rankings_zero():
    rel = m.relevance_matrix([["x", "y", "g"], []], [{"g"}, {"z"}], 10)
    assert rel.shape == (2, 10)
    assert m.map_at_k(rel, [1, 1], 5) == pytest.approx((1 / 3 + 0) / 2)
    assert m.map_at_k(rel, [1, 1], 2) == 0.0


def test_map_at_k_needs_ground_truth():
    with pytest.raises(InputError, match="ground-truth"):
        m.map_at_k(np.zeros((1, 5), bool), [0], 5)
