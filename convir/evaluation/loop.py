"""Run simulated dialogues against a conversational system and record every round's ranking.

A dialogue is: round 0, ``system.start(id, opening)``; then for each round 1..R the user
answers the question the system asked last and ``system.reply(id, answer)``. When the system
asks no question, a user that has something to say unasked (a
:class:`~convir.evaluation.users.VolunteeringUser`, e.g. a replayed ChatIR dialogue) sends
it; any other user has nothing to answer. The dialogue ends when the user has nothing to
send, and the remaining rounds repeat the last ranking (the run-file format needs every
round, and a system that stops asking keeps showing its last result). Such rounds are
recorded with ``message=None``.

Dialogues run concurrently on a thread pool, but each dialogue's rounds are sequential and
the records come back in ``dialogue_ids`` order, so a deterministic system and user give the
same records for any ``workers``. A :class:`~convir.turn.BatchedSystem` (the ChatIR text
baseline) instead runs round by round, each round's turns in one batched call per
``batch_size`` dialogues (one encoder forward and one index search for all of them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convir.atomic_file import write_text
from convir.errors import InputError

if TYPE_CHECKING:
    from convir.evaluation.runfile import ChatIRRun
    from convir.evaluation.scoring import ChatIRScores
    from convir.evaluation.user_protocol import SimulatedUser
    from convir.turn import BatchedSystem, ConversationalSystem, TurnResult


BATCH_SIZE = 256  # turns per batched system call: one encoder batch, one index search


@dataclass(frozen=True)
class RunRecord:
    """One round of one dialogue: what the user said and what the system ranked and asked."""

    dialogue_id: str
    round: int
    target: str
    ranking: list[str]
    message: str | None  # the user's message this round; None after the dialogue ended
    question: str | None  # what the system asked back
    strategy: str = "text"
    options: tuple[str, ...] = ()  # the question's answer options (not in the run file)

    def as_line(self) -> dict[str, object]:
        """The run-file line; ``message``, ``question``, ``strategy`` are extras the scorer
        ignores (the options go to ``dialogues.jsonl`` instead: :func:`dialogue_lines`)."""
        line = asdict(self)
        del line["options"]
        return line


def _check(dialogue_ids: Sequence[str], rounds: int, workers: int) -> None:
    if rounds < 0:
        raise InputError(f"rounds must be >= 0 (0 = the opening only), got {rounds}")
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    if not dialogue_ids:
        raise InputError("no dialogues to run; pass at least one dialogue id")
    seen: set[str] = set()
    for d in dialogue_ids:
        if d in seen:
            raise InputError(f"dialogue id {d!r} appears twice; thread ids must be unique")
        seen.add(d)


def _next_message(user: SimulatedUser, dialogue_id: str, turn: TurnResult) -> str | None:
    """The user's answer to the turn's question (its options shown); with no question, what
    the user says unasked (only a volunteering user says anything), None when it is over."""
    from convir.evaluation.user_protocol import VolunteeringUser

    if turn.question is not None:
        return user.answer(dialogue_id, turn.question, tuple(turn.options))
    if isinstance(user, VolunteeringUser):
        return user.volunteer(dialogue_id)
    return None


def run_dialogue(
    system: ConversationalSystem,
    user: SimulatedUser,
    dialogue_id: str,
    rounds: int,
    tick: Callable[[int], None] = lambda n: None,
) -> list[RunRecord]:
    """Rounds 0..``rounds`` of one dialogue; ``tick(n)`` reports n rounds done."""
    message, reference = user.opening(dialogue_id)
    target = user.target(dialogue_id)
    turn = system.start(dialogue_id, message, reference)
    records = [_record(dialogue_id, 0, target, turn, message)]
    tick(1)
    for r in range(1, rounds + 1):
        next_message = _next_message(user, dialogue_id, turn)
        if next_message is None:
            records += _repeat_last(records[-1], rounds)
            tick(rounds + 1 - r)
            break
        message = next_message
        turn = system.reply(dialogue_id, message)
        records.append(_record(dialogue_id, r, target, turn, message))
        tick(1)
    return records


def run_dialogues(
    system: ConversationalSystem,
    user: SimulatedUser,
    dialogue_ids: Sequence[str],
    rounds: int,
    workers: int = 8,
    progress: bool = True,
    desc: str = "dialogue rounds",
    batched: bool | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[RunRecord]:
    """Every dialogue's rounds 0..``rounds``, dialogues in order, rounds in order.

    ``batched`` (default: whenever the system is a :class:`~convir.turn.BatchedSystem`) runs
    the dialogues round by round, each round's turns ``batch_size`` at a time in one system
    call, instead of one dialogue per thread (``workers`` is then unused).
    The first exception raised by the system or the user stops the run (dialogues not yet
    started are cancelled, running ones finish) and propagates: a partial run would score
    as a different number.
    """
    from tqdm import tqdm

    from convir.turn import BatchedSystem

    ids = [str(d) for d in dialogue_ids]
    _check(ids, rounds, workers)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if batched is None:
        batched = isinstance(system, BatchedSystem)
    elif batched and not isinstance(system, BatchedSystem):
        raise InputError(
            f"{type(system).__name__} takes one turn at a time (no start_batch/reply_batch); "
            "run it unbatched"
        )
    bar = tqdm(total=len(ids) * (rounds + 1), desc=desc, disable=not progress, unit="round")
    lock = threading.Lock()

    def tick(n: int) -> None:
        with lock:
            bar.update(n)

    if batched:
        try:
            return run_rounds_batched(system, user, ids, rounds, batch_size, tick)  # type: ignore[arg-type]
        finally:
            bar.close()

    def one(did: str) -> list[RunRecord]:
        return run_dialogue(system, user, did, rounds, tick)

    try:
        if workers == 1:
            results = [one(d) for d in ids]
        else:
            pool = ThreadPoolExecutor(max_workers=min(workers, len(ids)))
            try:
                futures = [pool.submit(one, d) for d in ids]
                for done in as_completed(futures):
                    done.result()  # raise the first failure now, not after earlier dialogues
                results = [f.result() for f in futures]
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return [rec for dialogue in results for rec in dialogue]


def run_rounds_batched(
    system: BatchedSystem,
    user: SimulatedUser,
    dialogue_ids: Sequence[str],
    rounds: int,
    batch_size: int = BATCH_SIZE,
    tick: Callable[[int], None] = lambda n: None,
) -> list[RunRecord]:
    """Rounds 0..``rounds`` of every dialogue, a round at a time: the same records as
    :func:`run_dialogue` per dialogue (up to float rounding in the system's batched calls)."""
    ids = list(dialogue_ids)
    targets = {d: user.target(d) for d in ids}
    records: dict[str, list[RunRecord]] = {d: [] for d in ids}
    last: dict[str, TurnResult] = {}
    openings = {d: user.opening(d) for d in ids}
    for part in _parts(ids, batch_size):
        turns = system.start_batch([(d, *openings[d]) for d in part])
        for d, turn in zip(part, turns, strict=True):
            last[d] = turn
            records[d].append(_record(d, 0, targets[d], turn, openings[d][0]))
        tick(len(part))
    for r in range(1, rounds + 1):
        sending = []
        for d in ids:
            if d not in last:
                continue  # ended earlier
            message = _next_message(user, d, last[d])
            if message is None:  # the user has nothing to say: repeat the last ranking
                records[d] += _repeat_last(records[d][-1], rounds)
                del last[d]
                tick(rounds + 1 - r)
            else:
                sending.append((d, message))
        for part in _parts(sending, batch_size):
            for (d, message), turn in zip(part, system.reply_batch(part), strict=True):
                last[d] = turn
                records[d].append(_record(d, r, targets[d], turn, message))
            tick(len(part))
    return [rec for d in ids for rec in records[d]]


def _parts(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _record(did: str, r: int, target: str, turn: TurnResult, message: str) -> RunRecord:
    return RunRecord(
        did, r, target, turn.ranking, message, turn.question, turn.strategy, tuple(turn.options)
    )


def _repeat_last(last: RunRecord, rounds: int) -> list[RunRecord]:
    """The rounds after ``last`` up to ``rounds``, once the user has nothing more to say:
    the last ranking again, with no message and no question."""
    return [
        RunRecord(last.dialogue_id, t, last.target, last.ranking, None, None, last.strategy)
        for t in range(last.round + 1, rounds + 1)
    ]


def write_run_file(records: Sequence[RunRecord], path: str | Path) -> Path:
    """Write the records as a ``--protocol chatir`` run file, one JSON line per round."""
    return write_text(path, "".join(json.dumps(rec.as_line()) + "\n" for rec in records))


def dialogue_lines(system: str, records: Sequence[RunRecord]) -> list[dict[str, object]]:
    """One line per dialogue of a system's run, for ``dialogues.jsonl``: ``{"system",
    "dialogue_id", "target", "opening", "turns": [{"question", "options", "answer"}]}``;
    the n-th turn is the system's question of round n-1 and the user's message of round n
    (rounds after the dialogue ended have no message and are left out)."""
    by_dialogue: dict[str, list[RunRecord]] = {}
    for rec in records:
        by_dialogue.setdefault(rec.dialogue_id, []).append(rec)
    lines = []
    for did, rs in by_dialogue.items():
        rs = sorted(rs, key=lambda r: r.round)
        turns = [
            {"question": before.question, "options": list(before.options), "answer": now.message}
            for before, now in zip(rs, rs[1:], strict=False)
            if now.message is not None
        ]
        lines.append(
            {
                "system": system,
                "dialogue_id": did,
                "target": rs[0].target,
                "opening": rs[0].message,
                "turns": turns,
            }
        )
    return lines


def as_run(records: Sequence[RunRecord]) -> ChatIRRun:
    """The records as the scorer's checked run (same rules as reading the run file)."""
    from convir.evaluation.runfile import ChatIRRun

    by_dialogue: dict[str, list[RunRecord]] = {}
    for rec in records:
        by_dialogue.setdefault(rec.dialogue_id, []).append(rec)
    if not by_dialogue:
        raise InputError("no records to score; run at least one dialogue")
    lengths = {len(rs) for rs in by_dialogue.values()}
    if len(lengths) != 1:
        raise InputError(f"dialogues have different numbers of rounds {sorted(lengths)}")
    ids, targets, rankings = [], [], []
    for did, rs in by_dialogue.items():
        rs = sorted(rs, key=lambda r: r.round)
        if [r.round for r in rs] != list(range(len(rs))):
            raise InputError(f"dialogue {did!r} does not have rounds 0..{len(rs) - 1} once each")
        ids.append(did)
        targets.append(rs[0].target)
        rankings.append([r.ranking for r in rs])
    return ChatIRRun(ids, targets, rankings)


def summarize(
    records: Sequence[RunRecord], k: int = 10, search_space_size: int | None = None
) -> ChatIRScores:
    """Hits@K and Recall@K per round and BRI, by the same scorer as ``convir eval score``."""
    from convir.evaluation.scoring import score_chatir

    return score_chatir(as_run(records), k, search_space_size)


__all__ = [
    "RunRecord",
    "run_dialogue",
    "run_dialogues",
    "run_rounds_batched",
    "write_text",
    "write_run_file",
    "dialogue_lines",
    "as_run",
    "summarize",
]
