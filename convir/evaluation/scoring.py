"""Scores of run files: ChatIR's Hits@K / Recall@K per round and BRI, and the composed
benchmarks' metrics (CIRCO mAP@K, CIRR Recall@K and Recall_subset@K, FashionIQ Recall@K),
each against its annotations (``loaders``). Reading and checking the files: ``runfile``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convir.errors import InputError
from convir.evaluation import metrics
from convir.evaluation.circo_format import CIRCOQuery
from convir.evaluation.cirr_format import CIRRTriplet
from convir.evaluation.fashioniq_format import FashionIQTriplet
from convir.evaluation.runfile import ChatIRRun, QueryRun, circo_ids, match_queries


def _need_targets(has: bool, what: str, protocol: str) -> None:
    if not has:
        raise InputError(
            f"the {what} file has no targets (a test split?); it cannot be scored here: write "
            f"a server submission with `convir eval submission --protocol {protocol}`"
        )


@dataclass(frozen=True)
class ChatIRScores:
    """Per-round Hits@K (cumulative), Recall@K (non-cumulative) and BRI of a ChatIR run."""

    hits_at_k: list[float]
    recall_at_k: list[float]
    bri: float
    k: int
    dialogues: int
    not_found: int  # (dialogue, round) pairs whose target was not in the ranking
    missing_rank: float  # the rank BRI gave those targets

    def as_json(self) -> dict[str, Any]:
        return {
            "hits_at_k": self.hits_at_k,
            "recall_at_k": self.recall_at_k,
            "bri": self.bri,
            "k": self.k,
            "dialogues": self.dialogues,
        }


def score_chatir(run: ChatIRRun, k: int = 10, search_space_size: int | None = None) -> ChatIRScores:
    """Score a ChatIR-protocol run: Hits@K per round, Recall@K per round, BRI.

    Targets not found get BRI rank ``search_space_size`` when given, else the length of the
    longest ranking in the run (one past the end of the candidates either way).
    """
    ranks = run.ranks()
    missing_rank = float(search_space_size or run.longest_ranking())
    not_found = int(np.isinf(ranks).sum())
    if not_found and missing_rank == 0:
        raise InputError(
            "every ranking is empty, so BRI has no rank to give the targets not found; "
            "pass the search space (--search-space) so they rank after all of it"
        )
    return ChatIRScores(
        hits_at_k=metrics.hits_at_k_per_round(ranks, k).tolist(),
        recall_at_k=metrics.recall_at_k_per_round(ranks, k).tolist(),
        bri=metrics.best_log_rank_integral(ranks, missing_rank=missing_rank),
        k=k,
        dialogues=len(run.dialogue_ids),
        not_found=not_found,
        missing_rank=missing_rank,
    )


@dataclass(frozen=True)
class QueryScores:
    """Scores of a composed-retrieval run plus two counts worth a warning.

    ``short_misses``: queries whose target was not ranked *and* whose ranking is shorter than
    the largest K, so the miss may only reflect truncation. ``subset_undetermined`` (CIRR):
    queries whose target was not ranked while other img_set members were not ranked either,
    so their subset rank is unknown and counted as a miss.
    """

    results: dict[str, dict[int, float]]
    short_misses: int = 0
    subset_undetermined: int = 0

    def as_json(self) -> dict[str, dict[int, float]]:
        return self.results


def _short_misses(rankings: Sequence[Sequence[Any]], ranks: np.ndarray, depth: int) -> int:
    return int(
        sum(bool(np.isinf(r)) and len(x) < depth for x, r in zip(rankings, ranks, strict=True))
    )


def score_circo(run: QueryRun, queries: Sequence[CIRCOQuery]) -> QueryScores:
    """CIRCO mAP@{5,10,25,50} over ``gt_img_ids`` and Recall@{5,10,25,50} of ``target_img_id``
    (``miccunifi/CIRCO`` ``src/evaluation.py``; the reference image is not removed)."""
    _need_targets(queries[0].gt_img_ids is not None, "CIRCO", "circo")
    rankings = match_queries(run, [str(q.id) for q in queries], "CIRCO")
    int_rankings = [circo_ids(r, str(q.id)) for r, q in zip(rankings, queries, strict=True)]
    depth = max(metrics.CIRCO_KS)
    rel = metrics.relevance_matrix(int_rankings, [q.gt_img_ids or () for q in queries], depth)
    npos = [len(q.gt_img_ids or ()) for q in queries]
    ranks = metrics.target_ranks(int_rankings, [q.target_img_id for q in queries])
    return QueryScores(
        {
            "map_at": {k: metrics.map_at_k(rel, npos, k) for k in metrics.CIRCO_KS},
            "recall_at": metrics.recall_at_ks(ranks, metrics.CIRCO_KS),
        },
        short_misses=_short_misses(int_rankings, ranks, depth),
    )


def _subset_unknown(ranking: list[str], t: CIRRTriplet) -> bool:
    others = set(t.img_set.members) - {t.reference, t.target_hard}
    return t.target_hard not in ranking and not others <= set(ranking)


def score_cirr(run: QueryRun, triplets: Sequence[CIRRTriplet]) -> QueryScores:
    """CIRR Recall@{1,5,10,50} (reference removed from the ranking) and
    Recall_subset@{1,2,3} (ranking restricted to img_set members minus the reference)."""
    _need_targets(triplets[0].target_hard is not None, "CIRR captions", "cirr")
    rankings = match_queries(run, [str(t.pairid) for t in triplets], "CIRR captions")
    clean = [
        metrics.exclude_reference(r, t.reference) for r, t in zip(rankings, triplets, strict=True)
    ]
    targets = [t.target_hard for t in triplets]
    ranks = metrics.target_ranks(clean, targets)
    sub = metrics.subset_ranks(
        clean, targets, [t.reference for t in triplets], [t.img_set.members for t in triplets]
    )
    return QueryScores(
        {
            "recall_at": metrics.recall_at_ks(ranks, metrics.CIRR_KS),
            "recall_subset_at": metrics.recall_at_ks(sub, metrics.CIRR_SUBSET_KS),
        },
        short_misses=_short_misses(clean, ranks, max(metrics.CIRR_KS)),
        subset_undetermined=sum(
            _subset_unknown(r, t) for r, t in zip(clean, triplets, strict=True)
        ),
    )


def score_fashioniq(run: QueryRun, triplets: Sequence[FashionIQTriplet]) -> QueryScores:
    """FashionIQ R@10/R@50 of the target over the category gallery (candidate kept, as in
    CLIP4Cir). ``query_id`` is the triplet's 0-based position in the captions file."""
    _need_targets(triplets[0].target is not None, "FashionIQ captions", "fashioniq")
    rankings = match_queries(run, [str(i) for i in range(len(triplets))], "FashionIQ captions")
    ranks = metrics.target_ranks(rankings, [t.target for t in triplets])
    return QueryScores(
        {"recall_at": metrics.recall_at_ks(ranks, metrics.FASHIONIQ_KS)},
        short_misses=_short_misses(rankings, ranks, max(metrics.FASHIONIQ_KS)),
    )
