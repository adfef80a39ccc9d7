"""Run files: what a system retrieved, one JSON object per line; read and checked here,
scored by ``scoring``, turned into server submissions by ``submission``.

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

from convir.errors import InputError
from convir.evaluation import metrics

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


def match_queries(run: QueryRun, ids: Sequence[str], what: str) -> list[list[str]]:
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


def circo_ids(ranking: list[str], qid: str) -> list[int]:
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


__all__ = [
    "ChatIRRunLine",
    "QueryRunLine",
    "ChatIRRun",
    "QueryRun",
    "read_chatir_run",
    "read_query_run",
    "match_queries",
    "circo_ids",
]
