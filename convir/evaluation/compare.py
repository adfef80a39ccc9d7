"""``convir eval compare``'s work: two ChatIR-protocol runs over the same dialogues, round by
round, as a paired comparison (``stats.paired``). Runs may come from any tool that writes
the run-file format; they are matched by dialogue id, not by line order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convir.errors import InputError
from convir.evaluation import stats
from convir.evaluation.runfile import ChatIRRun


def _aligned(a: ChatIRRun, b: ChatIRRun, name_a: str, name_b: str) -> list[int]:
    """B's row of each of A's dialogues; an error names the first dialogue one run lacks,
    a dialogue whose targets differ, or rounds that differ."""
    rows_b = {d: i for i, d in enumerate(b.dialogue_ids)}
    missing = next((d for d in a.dialogue_ids if d not in rows_b), None)
    if missing is not None:
        raise InputError(
            f"dialogue {missing!r} of {name_a} is not in {name_b}; a paired comparison needs "
            "the same dialogues in both runs"
        )
    known = set(a.dialogue_ids)
    extra = next((d for d in b.dialogue_ids if d not in known), None)
    if extra is not None:
        raise InputError(
            f"dialogue {extra!r} of {name_b} is not in {name_a}; a paired comparison needs "
            "the same dialogues in both runs"
        )
    order = [rows_b[d] for d in a.dialogue_ids]
    for i, j in enumerate(order):
        if a.targets[i] != b.targets[j]:
            raise InputError(
                f"dialogue {a.dialogue_ids[i]!r} looks for {a.targets[i]!r} in {name_a} but "
                f"{b.targets[j]!r} in {name_b}; these are not the same dialogues"
            )
    if a.rounds != b.rounds:
        raise InputError(
            f"{name_a} has {a.rounds} rounds per dialogue and {name_b} has {b.rounds}; "
            "compare runs of the same length"
        )
    return order


def compare_runs(
    a: ChatIRRun,
    b: ChatIRRun,
    *,
    name_a: str = "A",
    name_b: str = "B",
    k: int = 10,
    search_space_size: int | None = None,
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
    missing_rank: float | None = None,
) -> dict[str, Any]:
    """The comparison as ``convir eval compare --json`` prints it: ``{"a", "b",
    "dialogues", "k", "method", "rounds": [{"round", "hits_at_K": {"a", "b", "diff", "ci",
    "p"}, "recall_at_1": {...}}], "bri": {...}}``; diff is B - A. A target absent from its
    ranking gets BRI rank ``missing_rank``, else the search-space size, else the longest
    ranking of either run (``convir eval run`` uses the gallery size)."""
    if resamples < stats.MIN_RESAMPLES:
        raise InputError(f"--resamples must be at least {stats.MIN_RESAMPLES} to compare")
    order = _aligned(a, b, name_a, name_b)
    # one rank for targets neither ranking holds, the same for both (else BRI is unpaired)
    if missing_rank is None:
        missing_rank = float(search_space_size or max(a.longest_ranking(), b.longest_ranking()))
    ranks_a, ranks_b = a.ranks(), b.ranks()[np.asarray(order, dtype=np.int64)]
    if missing_rank == 0 and (np.isinf(ranks_a).any() or np.isinf(ranks_b).any()):
        raise InputError("every ranking is empty: pass --search-space so misses get a rank")
    result = stats.paired(
        stats.DialogueValues.of(ranks_a, k, missing_rank),
        stats.DialogueValues.of(ranks_b, k, missing_rank),
        resamples,
        seed,
    )
    hits_key = f"hits_at_{k}"
    return {
        "a": name_a,
        "b": name_b,
        "dialogues": len(a.dialogue_ids),
        "k": k,
        "method": {
            "diff": "B - A",
            "ci": f"paired percentile bootstrap over dialogues, {stats.LEVEL:.0%}",
            "resamples": resamples,
            "seed": seed,
            "p_hits": "exact McNemar (two-sided)",
            "p_bri": "paired sign-flip randomisation test (two-sided)",
            "missing_rank": missing_rank,
        },
        "not_found": {"a": int(np.isinf(ranks_a).sum()), "b": int(np.isinf(ranks_b).sum())},
        "rounds": [
            {"round": t, hits_key: h, "recall_at_1": r}
            for t, (h, r) in enumerate(zip(result["hits"], result["recall_at_1"], strict=True))
        ],
        "bri": result["bri"],
    }


def compare_files(
    path_a: Path,
    path_b: Path,
    *,
    k: int = 10,
    search_space: Path | None = None,
    resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
    missing_rank: float | None = None,
) -> dict[str, Any]:
    """:func:`compare_runs` on two run files (checked as ``convir eval score`` checks them)."""
    from convir.evaluation.loaders import load_search_space
    from convir.evaluation.runfile import read_chatir_run

    space = load_search_space(search_space) if search_space is not None else None
    return compare_runs(
        read_chatir_run(path_a, space),
        read_chatir_run(path_b, space),
        name_a=str(path_a),
        name_b=str(path_b),
        k=k,
        search_space_size=len(space) if space else None,
        resamples=resamples,
        seed=seed,
        missing_rank=missing_rank,
    )


def excludes_zero(ci: list[float]) -> bool:
    """Whether a difference's interval lies wholly on one side of zero."""
    return ci[0] > 0 or ci[1] < 0


__all__ = ["compare_runs", "compare_files", "excludes_zero"]
