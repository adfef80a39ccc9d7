"""The FastAPI app: sessions, messages (plain or streamed), transcripts, images, uploads.

Importing this module imports FastAPI; only ``convir serve`` and the tests do.

One :class:`~convir.agent.ConvirAgent` serves every session; a session id is the agent's
thread id, so whatever checkpointer the agent has (SQLite for ``convir serve``) is where
sessions live, and a restarted server picks them up where they were. Every error is JSON
``{"detail": "..."}`` saying what to do next; nothing a client sends is ever used as a
file path (images are looked up by gallery id, uploads by a server-made id).

The app is wiring only: the gate and error handlers (``guards``), the session logic
(``service``: one :class:`~convir.server.service.Service` per app, handed to routes as a
dependency) and the routes (``routes/``: sessions, images, meta).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from convir.server.body_limit import BodyLimit
from convir.server.guards import ERRORS, install_guards
from convir.server.routes import images, meta, sessions
from convir.server.service import Service

if TYPE_CHECKING:
    from convir.agent import ConvirAgent
    from convir.gallery.resources import Resources

__all__ = ["create_app"]


def create_app(agent: ConvirAgent, resources: Resources, api_key: str | None = None) -> FastAPI:
    """The app around one agent; with ``api_key`` every endpoint demands it (else 401)."""
    app = FastAPI(
        title="convir",
        version="0.1.0",
        summary="Conversational image retrieval: describe an image, answer questions, get results.",
        responses=ERRORS,
    )
    app.state.service = Service(agent, resources, api_key)
    app.add_middleware(BodyLimit)  # inside the API key gate, which install_guards adds
    install_guards(app, api_key)
    for routes in (meta, sessions, images):
        app.include_router(routes.router)
    return app
