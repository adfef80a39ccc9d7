"""The server's session logic, apart from its routes: opening and continuing turns (with
idempotency keys, one turn per session at a time), and shaping their results. Routes get
the one :class:`Service` of their app through the :data:`ServiceDep` dependency."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request

from convir.agent import check_reference, last_result
from convir.errors import InputError
from convir.server.busy import BusySessions
from convir.server.leases import leases_for
from convir.server.models import MessageIn, Result, SessionIn, TurnOut
from convir.server.session_ids import keyed_session_id, session_secret
from convir.server.store import tune
from convir.server.uploads import UploadStore

if TYPE_CHECKING:
    from convir.agent import ConvirAgent
    from convir.gallery.resources import Resources
    from convir.turn import TurnResult


NO_IMAGES = (
    "this gallery is captions only: it has no images to edit or show; describe what you "
    "look for in words (results carry their text in 'caption')"
)


def image_url(image_id: str) -> str:
    return "/images/" + quote(image_id, safe="/")


@dataclass
class Service:
    """One agent, its gallery, and what the server keeps beside them."""

    agent: ConvirAgent
    resources: Resources
    api_key: str | None = None
    busy: BusySessions = field(init=False)
    uploads: UploadStore = field(init=False)
    secret: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        tune(self.agent.checkpointer)  # SQLite: WAL, synchronous=NORMAL (convir.server.store)
        # one turn per session in this process, and across processes over a shared store
        self.busy = BusySessions(leases_for(self.agent.checkpointer))
        self.uploads = UploadStore(self.resources.embedder)
        self.secret = session_secret(self.agent.checkpointer)

    def keyed_session_id(self, key: str) -> str:
        """The session an idempotency key opens (``convir.server.session_ids``)."""
        return keyed_session_id(key, self.secret)

    # -- shaping ------------------------------------------------------------------------
    def results(self, ids: list[str], scores: list[float], top: int) -> list[Result]:
        pairs = list(zip(ids[:top], scores[:top], strict=False))
        if self.resources.has_images:
            return [Result(id=i, score=float(s), image_url=image_url(i)) for i, s in pairs]
        index = self.resources.index  # a captions-only gallery: its texts stand for images
        return [
            Result(
                id=i, score=float(s), image_url=None, caption=index.caption_of(index.position_of(i))
            )
            for i, s in pairs
        ]

    def turn_out(self, session_id: str, result: TurnResult, top: int) -> TurnOut:
        return TurnOut(
            session_id=session_id,
            turn=result.turn,
            results=self.results(result.ranking, result.scores, top),
            question=result.question,
            options=result.options,
            strategy=result.strategy,
            query=result.query,
            descriptions=result.descriptions,
            imagined=[f"/sessions/{session_id}/imagined/{k}" for k in range(result.imagined)],
            reference_id=result.reference_id,
            transcript=result.transcript,
        )

    # -- sessions -----------------------------------------------------------------------
    def existing(self, session_id: str) -> dict:
        state = self.agent.state(session_id)
        if not state:
            raise self.unknown(session_id)
        return state

    def exists(self, session_id: str) -> bool:
        """Whether the session has a checkpoint: one row read, without rebuilding its state
        (a message's turn reads the state itself)."""
        config = {"configurable": {"thread_id": session_id, "checkpoint_ns": ""}}
        return self.agent.checkpointer.get_tuple(config) is not None

    @staticmethod
    def unknown(session_id: str) -> HTTPException:
        return HTTPException(404, f"no session {session_id}; create one with POST /sessions")

    def begin(
        self, body: SessionIn, key: str | None, durability: str | None = None
    ) -> tuple[str, Any]:
        """A new session id and its first turn's events (checked, not yet run). With an
        idempotency key the id is derived from it, so a retry finds the session: its turn is
        finished from the last checkpoint if it stopped midway, else replayed."""
        if not self.resources.has_images and (body.reference_id or body.upload_id):
            raise InputError(NO_IMAGES)
        check_reference(self.resources, body.reference_id)
        vector = None
        if body.upload_id is not None:
            if body.reference_id is not None:
                raise InputError("give reference_id or upload_id, not both")
            item = self.uploads.get(body.upload_id)
            if item is None:
                raise HTTPException(
                    404, f"no upload {body.upload_id}; upload it with POST /uploads"
                )
            vector = item.vector.tolist()
        session_id = self.keyed_session_id(key) if key else uuid.uuid4().hex
        self.busy.claim(session_id)
        try:
            if key and self.agent.state(session_id):
                return session_id, self.replay(session_id)
            return session_id, self.agent.start_stream(
                session_id,
                body.message,
                body.reference_id,
                reference_vector=vector,
                key=key,
                durability=durability,
            )
        except BaseException:
            self.busy.release(session_id)
            raise

    def follow(self, session_id: str, body: MessageIn, key: str | None) -> Any:
        """The next turn's events; a retry with the turn's key finishes or replays it."""
        self.busy.claim(session_id)
        try:
            if not key and not self.exists(session_id):
                raise self.unknown(session_id)
            if key and self.existing(session_id).get("message_key") == key:
                return self.replay(session_id)
            return self.agent.reply_stream(session_id, body.message, key=key)
        except BaseException:
            self.busy.release(session_id)
            raise

    def replay(self, session_id: str) -> Any:
        """A retried request: finish the turn it started if that stopped midway, else hand
        back the turn's result as it stands (no new turn)."""
        if self.agent.unfinished(session_id):
            return self.agent.resume_stream(session_id)
        return iter([self.agent.current(session_id)])

    def finish(self, session_id: str, events: Any, top: int) -> TurnOut:
        try:
            return self.turn_out(session_id, last_result(events), top)
        finally:
            self.busy.release(session_id)


def service(request: Request) -> Service:
    """The app's :class:`Service` (a FastAPI dependency)."""
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(service)]
