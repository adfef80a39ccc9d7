"""The FastAPI app: sessions, messages (plain or streamed), transcripts, images, uploads.

Importing this module imports FastAPI; only ``convir serve`` and the tests do.

One :class:`~convir.agent.ConvirAgent` serves every session; a session id is the agent's
thread id, so whatever checkpointer the agent has (SQLite for ``convir serve``) is where
sessions live, and a restarted server picks them up where they were. Every error is JSON
``{"detail": "..."}`` saying what to do next; nothing a client sends is ever used as a
file path (images are looked up by gallery id, uploads by a server-made id).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, File, Header, HTTPException, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from convir.agent import checkpoint_alive, last_result
from convir.errors import ConvirError, InputError
from convir.server.auth import COOKIE, key_matches, presented_keys
from convir.server.busy import BusySessions, SessionBusyError
from convir.server.models import (
    ID_PATTERN,
    Health,
    MessageIn,
    Problem,
    Result,
    SessionIn,
    SessionOut,
    TermOut,
    TurnOut,
    UploadOut,
    WhyOut,
)
from convir.server.streaming import run_turn
from convir.server.uploads import (
    MAX_UPLOAD_BYTES,
    UnsupportedUploadError,
    UploadStore,
    UploadTooLargeError,
)
from convir.state import MAX_MESSAGE_CHARS

if TYPE_CHECKING:
    from convir.agent import ConvirAgent
    from convir.agents.resources import Resources
    from convir.turn import TurnResult

STATIC = ("index.html", "app.js", "style.css")  # the only files the server ever reads
MEDIA = {"html": "text/html; charset=utf-8", "js": "text/javascript", "css": "text/css"}
SessionId = Annotated[str, Path(pattern=ID_PATTERN, description="from POST /sessions")]
UploadId = Annotated[str, Path(pattern=ID_PATTERN, description="from POST /uploads")]
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


def database_errors() -> list[type[Exception]]:
    """The connection-level errors of the Postgres checkpointer, where it is installed."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        return []
    return [psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout]


def is_database_down(exc: BaseException) -> bool:
    """A connection-level failure of the checkpoint database (psycopg / psycopg_pool)."""
    names = {"OperationalError", "PoolTimeout", "InterfaceError", "PoolClosed"}
    for _ in range(10):  # the exception, then what caused it
        if exc is None:
            return False
        if type(exc).__module__.startswith("psycopg") and type(exc).__name__ in names:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def keyed_session_id(key: str) -> str:
    """The session id of an idempotency key (a retried creation finds its session)."""
    import hashlib

    return "k" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 404, 409, 411, 413, 415, 422)
}


MAX_JSON_BYTES = 64 * 1024  # a message is <= 2,000 characters: 64 kB is ample
MAX_REPORTED_ERRORS = 3


def create_app(agent: ConvirAgent, resources: Resources, api_key: str | None = None) -> FastAPI:
    """The app around one agent; with ``api_key`` every endpoint demands it (else 401)."""
    busy = BusySessions()
    uploads = UploadStore(resources.embedder)
    index = resources.index

    app = FastAPI(
        title="convir",
        version="0.1.0",
        summary="Conversational image retrieval: describe an image, answer questions, get results.",
        responses=ERRORS,
    )

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        """Before any parsing: the API key on every path (API, page, images, /docs,
        /openapi.json) when one is set, and an upload's declared size."""
        if api_key is not None:
            offered = presented_keys(
                dict(request.headers),
                dict(request.cookies),
                dict(request.query_params),
                request.url.path,
            )
            if not key_matches(api_key, offered):
                return JSONResponse(
                    {
                        "detail": "missing or wrong API key: send the header X-API-Key "
                        "(in a browser, open /?api_key=KEY once)"
                    },
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        if request.method in ("POST", "PUT", "PATCH") and request.url.path != "/uploads":
            length = request.headers.get("content-length", "")
            if not length.isdigit() and request.headers.get("transfer-encoding"):
                return JSONResponse({"detail": "JSON bodies need a Content-Length header"}, 411)
            if length.isdigit() and int(length) > MAX_JSON_BYTES:
                return JSONResponse(
                    {
                        "detail": f"request body is {int(length):,} bytes, limit "
                        f"{MAX_JSON_BYTES:,}; messages are at most {MAX_MESSAGE_CHARS:,} "
                        "characters"
                    },
                    413,
                )
        if request.url.path == "/uploads" and request.method == "POST":
            length = request.headers.get("content-length", "")
            if not length.isdigit():  # a chunked body of unknown size would be parsed first
                return JSONResponse({"detail": "uploads need a Content-Length header"}, 411)
            if int(length) > MAX_UPLOAD_BYTES + 64 * 1024:  # multipart framing on top
                return JSONResponse(
                    {
                        "detail": f"upload is {int(length):,} bytes, limit "
                        f"{MAX_UPLOAD_BYTES:,}; send a smaller image"
                    },
                    413,
                )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        parts = []
        for err in errors[:MAX_REPORTED_ERRORS]:  # a short reply that never echoes the body
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where[:60]}: {str(err.get('msg', 'invalid'))[:120]}")
        if len(errors) > MAX_REPORTED_ERRORS:
            parts.append(f"and {len(errors) - MAX_REPORTED_ERRORS:,} more errors")
        detail = "; ".join(parts) or "invalid request"
        return JSONResponse({"detail": f"{detail} (see /docs for the request format)"}, 422)

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": "the conversation store is unavailable; retry in a few seconds"},
            503,
            headers={"Retry-After": "5"},
        )

    for error in database_errors():  # handled here: a 503, not a crash
        app.add_exception_handler(error, database_down)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        """Anything else is a JSON 500 (Starlette still logs the traceback), or a 503 when a
        database error arrives wrapped in another one."""
        if is_database_down(exc):
            return await database_down(request, exc)
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the server log"}, 500
        )

    @app.exception_handler(ConvirError)
    async def refused(request: Request, exc: ConvirError) -> JSONResponse:
        status = 413 if isinstance(exc, UploadTooLargeError) else 400
        status = 415 if isinstance(exc, UnsupportedUploadError) else status
        status = 409 if isinstance(exc, SessionBusyError) else status
        return JSONResponse({"detail": str(exc)}, status)

    def results(ids: list[str], scores: list[float], top: int) -> list[Result]:
        return [
            Result(id=i, score=float(s), image_url=image_url(i))
            for i, s in zip(ids[:top], scores[:top], strict=False)
        ]

    def turn_out(session_id: str, result: TurnResult, top: int) -> TurnOut:
        return TurnOut(
            session_id=session_id,
            turn=result.turn,
            results=results(result.ranking, result.scores, top),
            question=result.question,
            options=result.options,
            strategy=result.strategy,
            query=result.query,
            descriptions=result.descriptions,
            imagined=[f"/sessions/{session_id}/imagined/{k}" for k in range(result.imagined)],
            reference_id=result.reference_id,
            transcript=result.transcript,
        )

    def existing(session_id: str) -> dict:
        state = agent.state(session_id)
        if not state:
            raise HTTPException(404, f"no session {session_id}; create one with POST /sessions")
        return state

    def check_reference(reference_id: str | None) -> None:
        if reference_id is None:
            return
        try:
            index.position_of(reference_id)
        except KeyError:
            raise InputError(
                f"reference_id {reference_id!r} is not in the gallery; pass the id of an "
                f"image a search returned (e.g. {index.id_of(0)!r})"
            ) from None

    def begin(body: SessionIn, key: str | None, durability: str | None = None) -> tuple[str, Any]:
        """A new session id and its first turn's events (checked, not yet run). With an
        idempotency key the id is derived from it, so a retry finds the session: its turn is
        finished from the last checkpoint if it stopped midway, else replayed (events None)."""
        check_reference(body.reference_id)
        vector = None
        if body.upload_id is not None:
            if body.reference_id is not None:
                raise InputError("give reference_id or upload_id, not both")
            item = uploads.get(body.upload_id)
            if item is None:
                raise HTTPException(
                    404, f"no upload {body.upload_id}; upload it with POST /uploads"
                )
            vector = item.vector.tolist()
        session_id = keyed_session_id(key) if key else uuid.uuid4().hex
        busy.claim(session_id)
        try:
            if key and agent.state(session_id):
                return session_id, replay(session_id)
            return session_id, agent.start_stream(
                session_id,
                body.message,
                body.reference_id,
                reference_vector=vector,
                key=key,
                durability=durability,
            )
        except BaseException:
            busy.release(session_id)
            raise

    def follow(session_id: str, body: MessageIn, key: str | None) -> Any:
        """The next turn's events; a retry with the turn's key finishes or replays it."""
        busy.claim(session_id)
        try:
            state = existing(session_id)
            if key and state.get("message_key") == key:
                return replay(session_id)
            return agent.reply_stream(session_id, body.message, key=key)
        except BaseException:
            busy.release(session_id)
            raise

    def replay(session_id: str) -> Any:
        """A retried request: finish the turn it started if that stopped midway, else hand
        back the turn's result as it stands (no new turn)."""
        if agent.unfinished(session_id):
            return agent.resume_stream(session_id)
        return iter([agent.current(session_id)])

    def finish(session_id: str, events: Any, top: int) -> TurnOut:
        try:
            return turn_out(session_id, last_result(events), top)
        finally:
            busy.release(session_id)

    @app.get("/health", tags=["meta"])
    def health() -> Health:
        """Is the server up, and what does it search."""
        kind = type(agent.checkpointer).__name__.lower()
        kind = next((k for k in ("sqlite", "postgres") if k in kind), "memory")
        alive = checkpoint_alive(agent.checkpointer)
        return Health(
            status="ok" if alive else "degraded",
            gallery_size=index.count,
            strategy=agent.config.strategy,
            checkpoint=kind,
            checkpoint_ok=alive,
            turns_running=len(busy),
        )

    @app.post("/sessions", status_code=201, tags=["sessions"])
    def create_session(body: SessionIn, key: Key = None, top: Top = 12) -> TurnOut:
        """Open a conversation with its first message; answers with the first results."""
        session_id, events = begin(body, key)
        return finish(session_id, events, top)

    @app.post("/sessions/{session_id}/messages", tags=["sessions"])
    def post_message(
        session_id: SessionId, body: MessageIn, key: Key = None, top: Top = 12
    ) -> TurnOut:
        """The next message: the answer to the pending question, or a new detail."""
        return finish(session_id, follow(session_id, body, key), top)

    sse_doc = {200: {"content": {"text/event-stream": {}}, "description": "SSE: node..., result"}}

    @app.post("/sessions/stream", tags=["sessions"], responses=sse_doc)
    def create_session_stream(body: SessionIn, key: Key = None, top: Top = 12) -> StreamingResponse:
        """Like POST /sessions, as Server-Sent Events: ``session``, ``node`` per finished
        step, then ``result`` (a TurnOut) or ``error``. The ``session`` event is sent once
        the session is checkpointed (its first step saved), so the id a client holds exists
        even if the server dies mid-turn."""
        session_id, events = begin(body, key, durability="sync")
        stream = run_turn(
            events,
            lambda r: turn_out(session_id, r, top).model_dump(),
            lambda: busy.release(session_id),
            top,
            first={"session_id": session_id},
            first_after=2,
        )
        return StreamingResponse(stream, media_type="text/event-stream", headers=_NO_CACHE)

    @app.post("/sessions/{session_id}/messages/stream", tags=["sessions"], responses=sse_doc)
    def post_message_stream(
        session_id: SessionId, body: MessageIn, key: Key = None, top: Top = 12
    ) -> StreamingResponse:
        """Like POST /sessions/{id}/messages, as Server-Sent Events (``node``..., ``result``)."""
        events = follow(session_id, body, key)
        stream = run_turn(
            events,
            lambda r: turn_out(session_id, r, top).model_dump(),
            lambda: busy.release(session_id),
            top,
        )
        return StreamingResponse(stream, media_type="text/event-stream", headers=_NO_CACHE)

    @app.get("/sessions/{session_id}", tags=["sessions"])
    def get_session(session_id: SessionId, top: Top = 12) -> SessionOut:
        """The conversation so far: dialogue, every step, current results, pending question."""
        state = existing(session_id)
        return SessionOut(
            session_id=session_id,
            turn=int(state.get("turn", 0)),
            dialogue=list(state.get("dialogue", [])),
            transcript=list(state.get("transcript", [])),
            results=results(list(state.get("candidates", [])), list(state.get("scores", [])), top),
            question=(pending := agent.pending_question(session_id)),
            options=list(state.get("question_options", []) or []) if pending else [],
            strategy=state.get("strategy", "dar"),
            query=state.get("query", ""),
            reference_id=state.get("reference_id"),
        )

    png = {200: {"content": {"image/png": {}}, "description": "the image"}}

    @app.get("/images/{image_id:path}", tags=["images"], response_class=Response, responses=png)
    def get_image(image_id: str) -> Response:
        """A gallery image by its id (the ids results carry), as PNG."""
        try:
            position = index.position_of(image_id)
        except KeyError:
            raise HTTPException(
                404, f"no gallery image {image_id!r}; use an id from results"
            ) from None
        return Response(_png(resources, position), media_type="image/png", headers=_CACHE)

    @app.post("/uploads", status_code=201, tags=["images"])
    async def upload(file: UploadFile = File(...)) -> UploadOut:
        """Store a reference image (PNG, JPEG...); answers with the closest gallery images."""
        import anyio

        data = await file.read(MAX_UPLOAD_BYTES + 1)
        item = await anyio.to_thread.run_sync(uploads.add, data)
        scores, positions = index.search(item.vector[None, :], 12)
        found = [
            (index.id_of(p), s) for p, s in zip(positions[0], scores[0], strict=True) if p >= 0
        ]
        return UploadOut(
            upload_id=item.id,
            width=item.width,
            height=item.height,
            image_url=f"/uploads/{item.id}",
            nearest=results([i for i, _ in found], [float(s) for _, s in found], 12),
        )

    @app.get("/uploads/{upload_id}", tags=["images"], response_class=Response, responses=png)
    def get_upload(
        upload_id: UploadId,
    ) -> Response:
        """An uploaded image: the bytes received, with their format's media type."""
        item = uploads.get(upload_id)
        if item is None:
            raise HTTPException(404, f"no upload {upload_id}; uploads are kept in memory only")
        return Response(item.data, media_type=item.media_type, headers=_CACHE)

    @app.get(
        "/sessions/{session_id}/imagined/{k}",
        tags=["images"],
        response_class=Response,
        responses=png,
    )
    def get_imagined(session_id: SessionId, k: Annotated[int, Path(ge=0, le=7)]) -> Response:
        """Image ``k`` that DAR generated for the session's current query, redrawn from the
        query and the seed it was generated with (nothing is stored; same pixels each time
        on one machine)."""
        state = existing(session_id)
        query, seed = state.get("generated_for"), state.get("generated_seed")
        count = len(state.get("generated") or [])
        if not query or seed is None or k >= count or resources.generator is None:
            raise HTTPException(404, f"session {session_id} has no generated image {k}")
        images = resources.generator.generate([query], n_per_prompt=count, seed=int(seed))
        import io

        buffer = io.BytesIO()
        images[0][k].save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png", headers=_CACHE)

    @app.get("/sessions/{session_id}/why/{image_id:path}", tags=["sessions"])
    def get_why(session_id: SessionId, image_id: str) -> WhyOut:
        """Why a gallery image ranks where it does in the session's current turn: its
        first-stage similarity, each answer's term and the rerank's share (they add up to
        the score the result carries)."""
        existing(session_id)
        try:
            why = agent.explain(session_id, image_id)
        except KeyError:
            raise HTTPException(
                404, f"no gallery image {image_id!r}; use an id from results"
            ) from None
        return WhyOut(
            image_id=why.image_id,
            rank=why.rank,
            score=why.score,
            similarity=why.similarity,
            how=why.how,
            terms=[TermOut(label=t.label, value=t.value) for t in why.terms],
        )

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        if api_key is not None and "api_key" in request.query_params:
            response = RedirectResponse("/", 303)
            response.set_cookie(COOKIE, api_key, httponly=True, samesite="strict")
            return response
        return _static("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, f"no static file {name!r}")
        return _static(name)

    return app


def image_url(image_id: str) -> str:
    return "/images/" + quote(image_id, safe="/")


_CACHE = {"Cache-Control": "private, max-age=3600"}
_NO_CACHE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _png(resources: Resources, position: int) -> bytes:
    import io

    buffer = io.BytesIO()
    resources.load_image(position).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _static(name: str) -> Any:
    from importlib.resources import files

    body = files("convir.server").joinpath("static", name).read_bytes()
    return Response(body, media_type=MEDIA[name.rsplit(".", 1)[1]])
