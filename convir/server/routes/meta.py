"""Meta routes: health, and the chat page with its three static files."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from convir.agent import checkpoint_alive
from convir.server.auth import COOKIE
from convir.server.models import Health
from convir.server.service import ServiceDep

router = APIRouter()
STATIC = ("index.html", "app.js", "style.css")  # the only files the server ever reads
MEDIA = {"html": "text/html; charset=utf-8", "js": "text/javascript", "css": "text/css"}


@router.get("/health", tags=["meta"])
def health(srv: ServiceDep) -> Health:
    """Is the server up, and what does it search."""
    kind = type(srv.agent.checkpointer).__name__.lower()
    kind = next((k for k in ("sqlite", "postgres") if k in kind), "memory")
    alive = checkpoint_alive(srv.agent.checkpointer)
    return Health(
        status="ok" if alive else "degraded",
        gallery_size=srv.resources.index.count,
        strategy=srv.agent.config.strategy,
        checkpoint=kind,
        checkpoint_ok=alive,
        turns_running=len(srv.busy),
        worker=os.getpid(),
    )


@router.get("/", include_in_schema=False)
def page(srv: ServiceDep, request: Request) -> Response:
    if srv.api_key is not None and "api_key" in request.query_params:
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, srv.api_key, httponly=True, samesite="strict")
        return response
    return _static("index.html")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    return _static(name)


def _static(name: str) -> Any:
    from importlib.resources import files

    body = files("convir.server").joinpath("static", name).read_bytes()
    return Response(body, media_type=MEDIA[name.rsplit(".", 1)[1]])
