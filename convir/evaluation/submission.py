"""Server submissions from run files: the files CIRR's and CIRCO's test servers take, and
the atomic JSON writer they are saved with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convir.atomic_file import write_text
from convir.errors import InputError
from convir.evaluation import metrics
from convir.evaluation.circo_format import CIRCOQuery
from convir.evaluation.cirr_format import CIRRTriplet
from convir.evaluation.runfile import QueryRun, circo_ids, match_queries


def cirr_submission(
    run: QueryRun, triplets: Sequence[CIRRTriplet], top: int = 50, subset_top: int = 3
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two files CIRR's test server takes (``Cuberick-Orion/CIRR`` Test-split_server.md):
    ``{"version": "rc2", "metric": "recall", "<pairid>": [top-50 ids]}`` and
    ``{"version": "rc2", "metric": "recall_subset", "<pairid>": [top-3 img_set members]}``.

    The reference image is dropped before taking the top 50 (it can never be the target and
    CIRR's own evaluation removes it). The subset list is the run's order restricted to the
    img_set members minus the reference; a ranking that orders fewer than three of them is an
    error, since the server needs three and inventing an order would be a silent guess.
    """
    rankings = match_queries(run, [str(t.pairid) for t in triplets], "CIRR captions")
    recall: dict[str, Any] = {"version": "rc2", "metric": "recall"}
    subset: dict[str, Any] = {"version": "rc2", "metric": "recall_subset"}
    for ranking, t in zip(rankings, triplets, strict=True):
        clean = metrics.exclude_reference(ranking, t.reference)
        group = set(t.img_set.members) - {t.reference}
        ordered = [x for x in clean if x in group]
        if len(ordered) < min(subset_top, len(group)):
            raise InputError(
                f"pairid {t.pairid}: the ranking orders {len(ordered)} of the {len(group)} "
                f"img_set members (reference excluded); the subset file needs {subset_top}: "
                "rank the whole split, or at least every img_set member"
            )
        recall[str(t.pairid)] = clean[:top]
        subset[str(t.pairid)] = ordered[:subset_top]
    return recall, subset


def circo_submission(
    run: QueryRun, queries: Sequence[CIRCOQuery] | None = None, top: int = 50
) -> dict[str, list[int]]:
    """CIRCO's server file (``miccunifi/CIRCO`` README): ``{"<query id>": [top-50 COCO image
    ids as integers]}`` covering every test query; the server checks the ids are 0..N-1."""
    if queries is not None:
        match_queries(run, [str(q.id) for q in queries], "CIRCO")
    try:
        qids = sorted(int(q) for q in run.rankings)
    except ValueError:
        raise InputError("CIRCO query ids are integers 0..N-1; the run has other ids") from None
    if qids != list(range(len(qids))):
        raise InputError(
            f"CIRCO query ids must be exactly 0..{len(qids) - 1} (the server checks); the run "
            f"has {len(qids)} ids from {qids[0]} to {qids[-1]} with gaps"
        )
    return {str(q): circo_ids(run.rankings[str(q)], str(q))[:top] for q in qids}


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (temp file + rename), creating the parent folder."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder; pass a file name such as {p / 'submission.json'}")
    return write_text(p, json.dumps(obj))
