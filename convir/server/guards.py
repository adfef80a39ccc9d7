"""What every request passes before a route sees it, and how errors become JSON: the API key
gate (a middleware, before any parsing; the body's size is counted by ``body_limit`` just
inside it), and the exception handlers (422
without echoing the body, 400/409/413/415 for refusals, 503 + Retry-After when the
checkpoint database is down, a JSON 500 for anything else)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from convir.agent import HEALTH_WAIT_S, POOL_TIMEOUT_S
from convir.agents.checkpointers import is_database_down
from convir.errors import ConvirError
from convir.server.auth import key_matches, presented_keys
from convir.server.busy import SessionBusyError
from convir.server.models import Problem
from convir.server.uploads import UnsupportedUploadError, UploadTooLargeError
from convir.wait_budget import wait_budget

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 404, 409, 411, 413, 415, 422)
}


MAX_REPORTED_ERRORS = 3


def database_errors() -> list[type[Exception]]:
    """The connection-level errors of the Postgres checkpointer, where it is installed."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        return []
    return [psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout]


class Gate:
    """Before any parsing: the API key on every path (API, page, images, /docs,
    /openapi.json) when one is set. (The body's size is ``body_limit``'s, just inside.)
    Then the request runs within one wait budget for the database (``wait_budget``).

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` form runs the rest of
    the app in a task of its own and relays the response through a stream: 5% of the
    server's samples in a one-session load (py-spy, ``benchmarks/load_server.py``)."""

    def __init__(self, app: Any, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.api_key is not None:
            request = Request(scope)
            offered = presented_keys(
                dict(request.headers),
                dict(request.cookies),
                dict(request.query_params),
                request.url.path,
            )
            if not key_matches(self.api_key, offered):
                refusal = JSONResponse(
                    {
                        "detail": "missing or wrong API key: send the header X-API-Key "
                        "(in a browser, open /?api_key=KEY once)"
                    },
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await refusal(scope, receive, send)
                return
        wait = HEALTH_WAIT_S if scope["path"] == "/health" else POOL_TIMEOUT_S
        with wait_budget(wait):  # one deadline for all of this request's database waits
            await self.app(scope, receive, send)


def install_guards(app: FastAPI, api_key: str | None) -> None:
    """The gate middleware and the exception handlers (module docstring)."""

    app.add_middleware(Gate, api_key=api_key)

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
