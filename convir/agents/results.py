"""A turn's result from a conversation's state, the same for both engines."""

from __future__ import annotations

from collections.abc import Iterator

from convir.state import ConvState
from convir.turn import TurnResult


def last_result(events: Iterator[tuple[str, dict] | TurnResult]) -> TurnResult:
    """Run a turn's event stream to its end: its last event is the turn's result."""
    result = None
    for event in events:
        result = event
    if not isinstance(result, TurnResult):
        raise RuntimeError("the turn's event stream ended without a result")
    return result


def turn_result(state: ConvState | dict, question: str | None, seen: int = 0) -> TurnResult:
    """A conversation's latest turn as a :class:`TurnResult` (transcript lines from ``seen``)."""
    strategy = state.get("strategy", "dar")
    generated = state.get("generated") or []
    current = state.get("generated_for") == state.get("query")
    return TurnResult(
        ranking=list(state.get("candidates", [])),
        scores=list(state.get("scores", [])),
        question=question,
        options=list(state.get("question_options", []) or []) if question else [],
        strategy=strategy,
        query=state.get("query", ""),
        transcript=list(state.get("transcript", []))[seen:],
        turn=int(state.get("turn", 0)),
        reference_id=state.get("reference_id"),
        descriptions=list(state.get("descriptions") or []) if strategy == "stitch" else [],
        imagined=len(generated) if strategy == "dar" and current else 0,
    )
