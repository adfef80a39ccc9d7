"""Session routes: open a conversation, post messages (plain or streamed), read it back,
and ask why a result ranks where it does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query
from fastapi.responses import StreamingResponse

from convir.errors import shown
from convir.server.models import (
    ID_PATTERN,
    MessageIn,
    SessionIn,
    SessionOut,
    TermOut,
    TurnOut,
    WhyOut,
)
from convir.server.service import ServiceDep
from convir.server.streaming import run_turn

router = APIRouter(tags=["sessions"])
SessionId = Annotated[str, Path(pattern=ID_PATTERN, description="from POST /sessions")]
Top = Annotated[int, Query(ge=1, le=100, description="results returned")]
Key = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="a retry with the same key returns the first request's turn instead of "
        "running a new one (and finishes it if the server stopped midway)",
    ),
]
NO_CACHE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/sessions", status_code=201)
def create_session(srv: ServiceDep, body: SessionIn, key: Key = None, top: Top = 12) -> TurnOut:
    """Open a conversation with its first message; answers with the first results."""
    session_id, events = srv.begin(body, key)
    return srv.finish(session_id, events, top)


@router.post("/sessions/{session_id}/messages")
def post_message(
    srv: ServiceDep, session_id: SessionId, body: MessageIn, key: Key = None, top: Top = 12
) -> TurnOut:
    """The next message: the answer to the pending question, or a new detail."""
    return srv.finish(session_id, srv.follow(session_id, body, key), top)


sse_doc = {200: {"content": {"text/event-stream": {}}, "description": "SSE: node..., result"}}


@router.post("/sessions/stream", responses=sse_doc)
def create_session_stream(
    srv: ServiceDep, body: SessionIn, key: Key = None, top: Top = 12
) -> StreamingResponse:
    """Like POST /sessions, as Server-Sent Events: ``session``, ``node`` per finished
    step, then ``result`` (a TurnOut) or ``error``. The ``session`` event is sent once
    the session is checkpointed (its first step saved), so the id a client holds exists
    even if the server dies mid-turn."""
    session_id, events = srv.begin(body, key, durability="sync")
    stream = run_turn(
        events,
        lambda r: srv.turn_out(session_id, r, top).model_dump(),
        lambda: srv.busy.release(session_id),
        top,
        first={"session_id": session_id},
        first_after=2,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=NO_CACHE)


@router.post("/sessions/{session_id}/messages/stream", responses=sse_doc)
def post_message_stream(
    srv: ServiceDep, session_id: SessionId, body: MessageIn, key: Key = None, top: Top = 12
) -> StreamingResponse:
    """Like POST /sessions/{id}/messages, as Server-Sent Events (``node``..., ``result``)."""
    events = srv.follow(session_id, body, key)
    stream = run_turn(
        events,
        lambda r: srv.turn_out(session_id, r, top).model_dump(),
        lambda: srv.busy.release(session_id),
        top,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=NO_CACHE)


@router.get("/sessions/{session_id}")
def get_session(srv: ServiceDep, session_id: SessionId, top: Top = 12) -> SessionOut:
    """The conversation so far: dialogue, every step, current results, pending question."""
    state = srv.existing(session_id)
    return SessionOut(
        session_id=session_id,
        turn=int(state.get("turn", 0)),
        dialogue=list(state.get("dialogue", [])),
        transcript=list(state.get("transcript", [])),
        results=srv.results(list(state.get("candidates", [])), list(state.get("scores", [])), top),
        question=(pending := srv.agent.pending_question(session_id)),
        options=list(state.get("question_options", []) or []) if pending else [],
        strategy=state.get("strategy", "dar"),
        query=state.get("query", ""),
        reference_id=state.get("reference_id"),
    )


@router.get("/sessions/{session_id}/why/{image_id:path}")
def get_why(srv: ServiceDep, session_id: SessionId, image_id: str) -> WhyOut:
    """Why a gallery image ranks where it does in the session's current turn: its
    first-stage similarity, each answer's term and the rerank's share (they add up to
    the score the result carries)."""
    srv.existing(session_id)
    try:
        why = srv.agent.explain(session_id, image_id)
    except KeyError:
        raise HTTPException(
            404, f"no gallery image {shown(image_id)}; use an id from results"
        ) from None
    return WhyOut(
        image_id=why.image_id,
        rank=why.rank,
        score=why.score,
        similarity=why.similarity,
        how=why.how,
        terms=[TermOut(label=t.label, value=t.value) for t in why.terms],
    )
