"""Retrieval metrics of the benchmarks convir speaks, each matched to its reference code.

Conventions, shared by every function here:

* A *rank* is 0-based: the best position is 0. A target that does not appear in a ranking
  has rank ``inf`` (``MISSING``): it misses at every K.
* Metrics are fractions in [0, 1]; the papers print them x100.
* Rankings are lists of ids, so ties cannot occur in them. Ties exist only in score
  matrices; :func:`ranks_from_scores` breaks them *against* the target (see there).

References (the public evaluation code each function reproduces):

* ChatIR (Levy et al., NeurIPS 2023), ``levymsn/ChatIR`` ``eval.py``:
  ``cumulative_hits_per_round`` -> :func:`hits_at_k_per_round`.
* PlugIR (Lee et al., ACL 2024), ``Saehyung-Lee/PlugIR`` ``eval.py``: non-cumulative
  Recall@K -> :func:`recall_at_k_per_round`; BRI -> :func:`best_log_rank_integral`.
* CIRR (Liu et al., ICCV 2021), validation code of CIRPLANT / CLIP4Cir:
  :func:`exclude_reference`, :func:`subset_ranks`, :func:`recall_at_k`.
* CIRCO (Baldrati et al., ICCV 2023), ``miccunifi/CIRCO`` ``src/evaluation.py``:
  :func:`map_at_k`, :func:`recall_at_k`.
* FashionIQ (Wu et al., CVPR 2021), R@10/R@50 as in CLIP4Cir's FashionIQ validation:
  :func:`recall_at_k` over the category's gallery, reference image kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import numpy as np

from convir.errors import InputError

MISSING = float("inf")
"""Rank of a target absent from its ranking: it misses at every K."""

CIRR_KS: tuple[int, ...] = (1, 5, 10, 50)
CIRR_SUBSET_KS: tuple[int, ...] = (1, 2, 3)
CIRCO_KS: tuple[int, ...] = (5, 10, 25, 50)
FASHIONIQ_KS: tuple[int, ...] = (10, 50)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"K must be a positive integer, got {k!r}")
    return int(k)


def _as_ranks(ranks: object, ndim: int) -> np.ndarray:
    arr = np.asarray(ranks, dtype=np.float64)
    if arr.ndim != ndim:
        raise InputError(f"expected a {ndim}-d array of ranks, got shape {arr.shape}")
    if np.isnan(arr).any() or (arr < 0).any():
        raise InputError("ranks must be 0-based and not NaN (use inf for a target not found)")
    return arr


# --------------------------------------------------------------------------- ranks


def rank_in(ranking: Sequence[str], target: str) -> float:
    """0-based position of ``target`` in ``ranking``; ``MISSING`` (inf) when it is absent.

    An empty ranking therefore ranks every target as not found.
    """
    seq = ranking if isinstance(ranking, list | tuple) else list(ranking)
    try:
        return float(seq.index(target))
    except ValueError:
        return MISSING


def target_ranks(rankings: Iterable[Sequence[str]], targets: Iterable[str]) -> np.ndarray:
    """Rank of each query's target in its own ranking (``inf`` where absent)."""
    return np.array([rank_in(r, t) for r, t in zip(rankings, targets, strict=True)], dtype=float)


def ranks_from_scores(scores: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """0-based rank of each row's target in a ``[Q, N]`` score matrix (higher = better).

    Ties are broken against the target: rank = #items scored strictly higher + #other items
    scored equal. ChatIR's and PlugIR's reference code take the target's position in
    ``argsort``, which orders ties arbitrarily; the two agree whenever scores are distinct.
    Breaking ties pessimistically means a degenerate scorer (all scores equal) ranks every
    target last instead of first, so ties can never inflate a metric.
    """
    s = np.asarray(scores, dtype=np.float64)
    idx = np.asarray(target_index, dtype=np.int64)
    if s.ndim != 2 or idx.shape != (s.shape[0],):
        raise InputError(f"expected scores [Q, N] and target_index [Q], got {s.shape}, {idx.shape}")
    if s.size and np.isnan(s).any():
        raise InputError("scores contain NaN: check the embeddings (zero vectors?) first")
    if ((idx < 0) | (idx >= s.shape[1])).any():
        raise InputError(f"target_index out of range for {s.shape[1]} candidates")
    t = s[np.arange(s.shape[0]), idx][:, None]
    return ((s > t).sum(axis=1) + (s == t).sum(axis=1) - 1).astype(np.int64)


def exclude_reference(ranking: Sequence[str], reference: str) -> list[str]:
    """The ranking without the query's reference image, as CIRR's evaluation does.

    CIRR (CIRPLANT / CLIP4Cir ``compute_cirr_val_metrics``) deletes the reference image from
    the sorted gallery before computing Recall@K, since it can never be the target.
    """
    return [x for x in ranking if x != reference]


def subset_ranks(
    rankings: Iterable[Sequence[str]],
    targets: Iterable[str],
    references: Iterable[str],
    members: Iterable[Collection[str]],
) -> np.ndarray:
    """Rank of the target among its img_set members minus the reference (CIRR Recall_subset).

    The order is the one the ranking gives: the reference code masks the (reference-free)
    gallery ranking down to the query's ``img_set.members``. The rank is the number of
    other members ranked before the target; ``inf`` if the target is not in the ranking,
    or is not one of the members (it then can never be retrieved in the subset).
    """
    out = []
    for ranking, target, ref, group in zip(rankings, targets, references, members, strict=True):
        group = set(group) - {ref}
        if target not in group:
            out.append(MISSING)
            continue
        sub = [x for x in ranking if x in group]
        out.append(rank_in(sub, target))
    return np.array(out, dtype=float)


# --------------------------------------------------------------------------- single round


def recall_at_k(ranks: Sequence[float] | np.ndarray, k: int) -> float:
    """Fraction of queries whose target ranks in the top ``k`` (rank < k, 0-based).

    CIRR Recall@K, CIRCO Recall@K (``target_img_id`` in the top K) and FashionIQ R@K are all
    this number on their respective rankings. An empty set of queries is an error, not 0.
    """
    k = _check_k(k)
    r = _as_ranks(ranks, 1)
    if r.size == 0:
        raise InputError("no queries to score")
    return float((r < k).mean())


def recall_at_ks(ranks: Sequence[float] | np.ndarray, ks: Iterable[int]) -> dict[int, float]:
    """:func:`recall_at_k` for several K at once, keyed by K."""
    return {int(k): recall_at_k(ranks, k) for k in ks}


def relevance_matrix(
    rankings: Sequence[Sequence[str]], positives: Sequence[Collection[str]], depth: int
) -> np.ndarray:
    """Boolean ``[Q, depth]``: is the item at each of the first ``depth`` positions relevant.

    Rankings shorter than ``depth`` are padded with non-relevant positions, so a K larger
    than a ranking simply finds nothing more (as CIRCO's code does with ``precisions[:K]``).
    """
    depth = _check_k(depth)
    if len(rankings) != len(positives):
        raise InputError(f"{len(rankings)} rankings but {len(positives)} positive sets")
    rel = np.zeros((len(rankings), depth), dtype=bool)
    for i, (ranking, pos) in enumerate(zip(rankings, positives, strict=True)):
        pos = set(pos)
        row = [x in pos for x in ranking[:depth]]
        rel[i, : len(row)] = row
    return rel


def map_at_k(relevance: np.ndarray, n_positives: Sequence[int] | np.ndarray, k: int) -> float:
    """CIRCO mAP@K: mean over queries of AP@K = sum_{i<K} P@i * rel_i / min(#gt, K).

    Matches ``miccunifi/CIRCO`` ``src/evaluation.py``: precision at each relevant position
    (cumulative hits / position, 1-based), summed over the first K positions and divided by
    ``min(len(gt_img_ids), K)``. Positions past the end of a ranking count as non-relevant.
    """
    k = _check_k(k)
    rel = np.asarray(relevance, dtype=bool)
    npos = np.asarray(n_positives, dtype=np.float64)
    if rel.ndim != 2 or npos.shape != (rel.shape[0],):
        raise InputError(f"expected relevance [Q, D] and n_positives [Q], got {rel.shape}")
    if rel.shape[0] == 0:
        raise InputError("no queries to score")
    if (npos < 1).any():
        raise InputError("every query needs at least one ground-truth image for mAP")
    if rel.shape[1] < k:
        rel = np.pad(rel, ((0, 0), (0, k - rel.shape[1])))
    top = rel[:, :k]
    precision = np.cumsum(top, axis=1) / np.arange(1, k + 1)
    ap = (precision * top).sum(axis=1) / np.minimum(npos, k)
    return float(ap.mean())


# --------------------------------------------------------------------------- dialogues


def hits_at_k_per_round(ranks: np.ndarray, k: int) -> np.ndarray:
    """ChatIR Hits@K per round, cumulative: a dialogue hits at round t if its target ranked
    < K at any round <= t. ``ranks`` is ``[dialogues, rounds]`` (0-based, inf = not found).

    Matches ``levymsn/ChatIR`` ``eval.py`` ``cumulative_hits_per_round`` (/100).
    """
    k = _check_k(k)
    r = _as_ranks(ranks, 2)
    if r.shape[0] == 0:
        raise InputError("no dialogues to score")
    return np.logical_or.accumulate(r < k, axis=1).mean(axis=0)


def recall_at_k_per_round(ranks: np.ndarray, k: int) -> np.ndarray:
    """PlugIR's non-cumulative Recall@K per round: fraction of dialogues whose target ranks
    < K *at* round t. Matches ``Saehyung-Lee/PlugIR`` ``eval.py`` (``temp_hits``, /100)."""
    k = _check_k(k)
    r = _as_ranks(ranks, 2)
    if r.shape[0] == 0:
        raise InputError("no dialogues to score")
    return (r < k).mean(axis=0)


def best_log_rank_per_dialogue(ranks: np.ndarray, missing_rank: float | None = None) -> np.ndarray:
    """Each dialogue's term of PlugIR's BRI (Best log Rank Integral; lower is better), so
    that intervals and paired tests can resample dialogues.

    With 0-based ranks ``r[n, t]`` over R rounds, the best rank so far is
    ``b[n, t] = min_{s<=t} r[n, s]`` and

        BRI = mean_n  1/(R-1) * sum_{t=0}^{R-2} ( ln(b[n,t] + 1) + ln(b[n,t+1] + 1) ) / 2

    i.e. the trapezoid area under the natural-log best-rank curve, normalised by the number
    of round intervals, averaged over dialogues. This is ``Saehyung-Lee/PlugIR`` ``eval.py``
    (the ``min_ranks`` loop, 0-based argsort positions, ``torch.log``). With a single round
    the integral degenerates and BRI is defined as ``mean_n ln(b[n, 0] + 1)``.

    A target never found (rank inf) has no finite log rank: pass ``missing_rank`` (the
    scorers use the search-space size, i.e. one past the last possible 0-based position).
    """
    r = _as_ranks(ranks, 2)
    if r.shape[0] == 0 or r.shape[1] == 0:
        raise InputError("no dialogues or no rounds to score")
    if np.isinf(r).any():
        if missing_rank is None:
            raise InputError(
                "some targets were never ranked: BRI needs a finite rank for them "
                "(pass missing_rank, e.g. the search-space size)"
            )
        if not np.isfinite(missing_rank) or missing_rank < 0:
            raise InputError(f"missing_rank must be finite and >= 0, got {missing_rank}")
        r = np.where(np.isinf(r), float(missing_rank), r)
    log_best = np.log(np.minimum.accumulate(r, axis=1) + 1.0)
    if r.shape[1] == 1:
        return log_best[:, 0]
    return ((log_best[:, :-1] + log_best[:, 1:]) / 2.0).mean(axis=1)


def best_log_rank_integral(ranks: np.ndarray, missing_rank: float | None = None) -> float:
    """PlugIR's BRI: the mean over dialogues of :func:`best_log_rank_per_dialogue`."""
    return float(best_log_rank_per_dialogue(ranks, missing_rank).mean())


__all__ = [
    "MISSING",
    "CIRR_KS",
    "CIRR_SUBSET_KS",
    "CIRCO_KS",
    "FASHIONIQ_KS",
    "rank_in",
    "target_ranks",
    "ranks_from_scores",
    "exclude_reference",
    "subset_ranks",
    "recall_at_k",
    "recall_at_ks",
    "relevance_matrix",
    "map_at_k",
    "hits_at_k_per_round",
    "recall_at_k_per_round",
    "best_log_rank_per_dialogue",
    "best_log_rank_integral",
]
