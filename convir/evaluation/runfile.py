"""Run files: what a system retrieved, one JSON object per line; read, checked, scored.

Two line shapes (extra keys such as scores or timings are ignored):

* ``chatir`` protocol, one line per dialogue round::

    {"dialogue_id": "17", "round": 0, "target": "unlabeled2017/000000185565.jpg",
     "ranking": ["unlabeled2017/000000000008.jpg", ...]}

* ``circo`` / ``cirr`` / ``fashioniq``, one line per query::

    {"query_id": 12060, "ranking": ["dev-1028-1-img1", ...]}

  ``query_id`` is CIRR's ``pairid``, CIRCO's ``id``, and for FashionIQ (whose triplets have no
  id) the 0-based position of the triplet in the captions file.

Ids may be JSON strings or integers; they are compared as strings (CIRCO's COCO ids as
integers, so ``"000000355099"`` and ``355099`` are the same image).

How bad input is handled — always an :class:`~convir.errors.InputError` naming the line,
never a silently different number, except where documented as accepted:

* invalid JSON on a line -> error naming the line; on the *last* line the message says the
  file looks truncated (an interrupted run);
* a line of the wrong shape (missing/mistyped field, negative round) -> error naming the
  line and field;
* the same (dialogue, round) or query id twice -> error naming both lines;
* rounds of a dialogue out of order in the file -> **accepted**, sorted by ``round``;
* a round missing (rounds must be 0, 1, ..., R-1) -> error; dialogues with different
  numbers of rounds -> error (write every round; repeat the last ranking if a dialogue
  stopped early);
* one dialogue with two different targets -> error;
* an id repeated inside one ranking -> error (a repeat would double-count in mAP and shift
  every later rank);
* an id outside the search space, when one is given -> error (target included);
* an empty ranking -> accepted: the target counts as not found;
* a target absent from its ranking -> not found: rank ``inf``, a miss at every K. For BRI
  it gets ``missing_rank`` = the search-space size when one is given, else the length of
  the longest ranking in the run (one past the end of the candidate list either way);
* run queries and annotation queries that differ (missing or unknown ids) -> error.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
)

from convir.atomic_file import write_text
from convir.errors import InputError
from convir.evaluation import metrics
from convir.evaluation.loaders import CIRCOQuery, CIRRTriplet, FashionIQTriplet

Id = Annotated[str, StringConstraints(strict=True, min_length=1)] | StrictInt


def _to_str(value: str | int) -> str:
    return value if type(value) is str else str(value)


class _Line(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    ranking: list[Id]

    @field_validator("ranking", mode="after")
    @classmethod
    def _ids_as_str(cls, ranking: list[str | int]) -> list[str]:
        return [_to_str(x) for x in ranking]


class ChatIRRunLine(_Line):
    """One round of one dialogue: the full or truncated ranking after that round."""

    dialogue_id: Id
    round: StrictInt = Field(ge=0)
    target: Id

    @field_validator("dialogue_id", "target", mode="after")
    @classmethod
    def _id_as_str(cls, value: str | int) -> str:
        return _to_str(value)


class QueryRunLine(_Line):
    """One composed-retrieval query (CIRCO/CIRR/FashionIQ) and its ranking."""

    query_id: Id

    @field_validator("query_id", mode="after")
    @classmethod
    def _id_as_str(cls, value: str | int) -> str:
        return _to_str(value)


CHATIR_LINE = '{"dialogue_id": str, "round": int >= 0, "target": id, "ranking": [id, ...]}'
QUERY_LINE = '{"query_id": str|int, "ranking": [id, ...]}'


# --------------------------------------------------------------------------- reading


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise InputError(f"{path}: no such run file; pass the .jsonl your run wrote")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; a run file is JSON lines") from None
    lines = [(i, s) for i, s in enumerate(text.splitlines(), start=1) if s.strip()]
    if not lines:
        raise InputError(f"{path}: the run file is empty; expected one JSON object per line")
    return lines


def _parse(path: Path, lineno: int, text: str, last: bool, model: type[_Line], shape: str) -> Any:
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        if err["type"] == "json_invalid":
            if last:
                raise InputError(
                    f"{path}: line {lineno} (the last line) is not valid JSON: the file looks "
                    "truncated (interrupted run?); finish the run or delete that line"
                ) from None
            raise InputError(
                f"{path}: line {lineno} is not valid JSON ({err['msg']}); one object per line"
            ) from None
        where = ".".join(str(x) for x in err["loc"]) or "(line)"
        raise InputError(
            f"{path}: line {lineno} is not a run line {shape}: field {where}: {err['msg']}"
            + _other_protocol_hint(text, model)
        ) from None


def _other_protocol_hint(text: str, model: type[_Line]) -> str:
    try:
        keys = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(keys, dict):
        return ""
    if model is QueryRunLine and "dialogue_id" in keys:
        return " (this is a chatir run line: use --protocol chatir)"
    if model is ChatIRRunLine and "query_id" in keys:
        return " (this is a query run line: use --protocol circo, cirr or fashioniq)"
    return ""


def _check_ranking(path: Path, lineno: int, ranking: list[str], space: set[str] | None) -> None:
    if len(set(ranking)) != len(ranking):
        seen: dict[str, int] = {}
        for pos, x in enumerate(ranking):
            if x in seen:
                raise InputError(
                    f"{path}: line {lineno}: id {x!r} appears twice in the ranking (positions "
                    f"{seen[x]} and {pos}); each candidate may be ranked once"
                )
            seen[x] = pos
    if space is not None and not space.issuperset(ranking):
        for x in ranking:
            if x not in space:
                raise InputError(
                    f"{path}: line {lineno}: ranked id {x!r} is not in the search space "
                    f"({len(space)} ids); rank ids exactly as the search-space file names them"
                )


@dataclass(frozen=True)
class ChatIRRun:
    """A checked ChatIR-protocol run: ``rankings[d][t]`` is dialogue d's ranking at round t."""

    dialogue_ids: list[str]
    targets: list[str]
    rankings: list[list[list[str]]]

    @property
    def rounds(self) -> int:
        return len(self.rankings[0])

    def ranks(self) -> np.ndarray:
        """``[dialogues, rounds]`` 0-based target ranks, ``inf`` where not found."""
        return np.array(
            [
                [metrics.rank_in(r, t) for r in rounds]
                for rounds, t in zip(self.rankings, self.targets, strict=True)
            ],
            dtype=float,
        ).reshape(len(self.rankings), self.rounds)

    def longest_ranking(self) -> int:
        return max(len(r) for rounds in self.rankings for r in rounds)


def read_chatir_run(path: str | Path, search_space: Collection[str] | None = None) -> ChatIRRun:
    """Read and check a ChatIR-protocol run file (see the module docstring for the rules)."""
    p = Path(path)
    space = set(search_space) if search_space is not None else None
    lines = _lines(p)
    by_dialogue: dict[str, dict[int, tuple[int, ChatIRRunLine]]] = {}
    for n, (lineno, text) in enumerate(lines):
        line = _parse(p, lineno, text, n == len(lines) - 1, ChatIRRunLine, CHATIR_LINE)
        _check_ranking(p, lineno, line.ranking, space)
        if space is not None and line.target not in space:
            raise InputError(
                f"{p}: line {lineno}: target {line.target!r} is not in the search space; "
                "the run and the search-space file disagree"
            )
        rounds = by_dialogue.setdefault(line.dialogue_id, {})
        if line.round in rounds:
            raise InputError(
                f"{p}: line {lineno} repeats dialogue {line.dialogue_id!r} round {line.round} "
                f"of line {rounds[line.round][0]}; write each round once"
            )
        rounds[line.round] = (lineno, line)
    ids, targets, rankings = [], [], []
    n_rounds, first_id = None, None
    for did, rounds in by_dialogue.items():
        missing = next((r for r in range(max(rounds) + 1) if r not in rounds), None)
        if missing is not None:
            raise InputError(
                f"{p}: dialogue {did!r} has rounds up to {max(rounds)} but no round {missing}; "
                "rounds are 0-based and every round needs a line"
            )
        ordered = [rounds[r] for r in range(len(rounds))]
        first_line, first = ordered[0]
        for lineno, line in ordered[1:]:
            if line.target != first.target:
                raise InputError(
                    f"{p}: line {lineno}: dialogue {did!r} has target {line.target!r}, but "
                    f"line {first_line} says {first.target!r}; one dialogue, one target"
                )
        if n_rounds is None:
            n_rounds, first_id = len(ordered), did
        elif len(ordered) != n_rounds:
            raise InputError(
                f"{p}: dialogue {did!r} has {len(ordered)} rounds but dialogue {first_id!r} "
                f"has {n_rounds}; write every round (repeat the last ranking if a dialogue "
                "stopped early)"
            )
        ids.append(did)
        targets.append(first.target)
        rankings.append([line.ranking for _, line in ordered])
    return ChatIRRun(ids, targets, rankings)


@dataclass(frozen=True)
class QueryRun:
    """A checked composed-retrieval run: query id -> ranking, in file order."""

    rankings: dict[str, list[str]]
    lines: dict[str, int] = field(default_factory=dict)


def read_query_run(path: str | Path, search_space: Collection[str] | None = None) -> QueryRun:
    """Read and check a CIRCO/CIRR/FashionIQ run file (one line per query)."""
    p = Path(path)
    space = set(search_space) if search_space is not None else None
    lines = _lines(p)
    rankings: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    for n, (lineno, text) in enumerate(lines):
        line = _parse(p, lineno, text, n == len(lines) - 1, QueryRunLine, QUERY_LINE)
        if line.query_id in rankings:
            raise InputError(
                f"{p}: line {lineno} repeats query_id {line.query_id!r} of line "
                f"{where[line.query_id]}; write each query once"
            )
        _check_ranking(p, lineno, line.ranking, space)
        rankings[line.query_id] = line.ranking
        where[line.query_id] = lineno
    return QueryRun(rankings, where)


def _match_queries(run: QueryRun, ids: Sequence[str], what: str) -> list[list[str]]:
    """Rankings in annotation order; the run must cover exactly the annotated queries."""
    known = set(ids)
    extra = [q for q in run.rankings if q not in known]
    if extra:
        raise InputError(
            f"run line {run.lines.get(extra[0], '?')}: query_id {extra[0]!r} is not in the "
            f"{what} file ({len(extra)} such); score the run against the split it was made for"
        )
    missing = [q for q in ids if q not in run.rankings]
    if missing:
        raise InputError(
            f"the run has no line for {len(missing)} of the {len(ids)} {what} queries "
            f"(first: query_id {missing[0]!r}); a partial run would give a different number"
        )
    return [run.rankings[q] for q in ids]


def _need_targets(has: bool, what: str, protocol: str) -> None:
    if not has:
        raise InputError(
            f"the {what} file has no targets (a test split?); it cannot be scored here: write "
            f"a server submission with `convir eval submission --protocol {protocol}`"
        )


# --------------------------------------------------------------------------- scoring


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


def _circo_ids(ranking: list[str], qid: str) -> list[int]:
    try:
        ids = [int(x) for x in ranking]
    except ValueError:
        bad = next(x for x in ranking if not x.lstrip("-").isdigit())
        raise InputError(
            f"query_id {qid!r}: ranked id {bad!r} is not a COCO image id; CIRCO ranks integer "
            "image ids (e.g. 355099)"
        ) from None
    if len(set(ids)) != len(ids):
        raise InputError(f"query_id {qid!r}: the ranking names one COCO id twice (e.g. 7 and 007)")
    return ids


def score_circo(run: QueryRun, queries: Sequence[CIRCOQuery]) -> QueryScores:
    """CIRCO mAP@{5,10,25,50} over ``gt_img_ids`` and Recall@{5,10,25,50} of ``target_img_id``
    (``miccunifi/CIRCO`` ``src/evaluation.py``; the reference image is not removed)."""
    _need_targets(queries[0].gt_img_ids is not None, "CIRCO", "circo")
    rankings = _match_queries(run, [str(q.id) for q in queries], "CIRCO")
    int_rankings = [_circo_ids(r, str(q.id)) for r, q in zip(rankings, queries, strict=True)]
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
    rankings = _match_queries(run, [str(t.pairid) for t in triplets], "CIRR captions")
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
    rankings = _match_queries(run, [str(i) for i in range(len(triplets))], "FashionIQ captions")
    ranks = metrics.target_ranks(rankings, [t.target for t in triplets])
    return QueryScores(
        {"recall_at": metrics.recall_at_ks(ranks, metrics.FASHIONIQ_KS)},
        short_misses=_short_misses(rankings, ranks, max(metrics.FASHIONIQ_KS)),
    )


# --------------------------------------------------------------------------- submissions


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
    rankings = _match_queries(run, [str(t.pairid) for t in triplets], "CIRR captions")
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
        _match_queries(run, [str(q.id) for q in queries], "CIRCO")
    try:
        qids = sorted(int(q) for q in run.rankings)
    except ValueError:
        raise InputError("CIRCO query ids are integers 0..N-1; the run has other ids") from None
    if qids != list(range(len(qids))):
        raise InputError(
            f"CIRCO query ids must be exactly 0..{len(qids) - 1} (the server checks); the run "
            f"has {len(qids)} ids from {qids[0]} to {qids[-1]} with gaps"
        )
    return {str(q): _circo_ids(run.rankings[str(q)], str(q))[:top] for q in qids}


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (temp file + rename), creating the parent folder."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"--out {p} is a folder; pass a file name such as {p / 'submission.json'}")
    return write_text(p, json.dumps(obj))


__all__ = [
    "ChatIRRunLine",
    "QueryRunLine",
    "ChatIRRun",
    "QueryRun",
    "ChatIRScores",
    "QueryScores",
    "read_chatir_run",
    "read_query_run",
    "score_chatir",
    "score_circo",
    "score_cirr",
    "score_fashioniq",
    "cirr_submission",
    "circo_submission",
    "write_json",
]
