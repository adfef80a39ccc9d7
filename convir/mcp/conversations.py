"""What the MCP tools do, apart from the protocol: open and continue conversations, explain
a rank, render images. Plain dicts and PNG bytes come out, so this layer is tested and
reused without the MCP SDK.

Sessions are the agent's threads, as in ``convir serve``: the session id is the thread id
in the agent's checkpointer, made the same way (``uuid4().hex``, which the server's id
pattern accepts), so a conversation opened here is read over HTTP with
``GET /sessions/{id}`` when both point at the same checkpoint. Messages are checked by the
server's own request model, so both faces refuse the same text; one turn per session runs
at a time (the server's :class:`~convir.server.busy.BusySessions`, with the store's leases:
across processes too).
"""

from __future__ import annotations

import io
import re
import uuid
from typing import TYPE_CHECKING, Any

from convir.errors import InputError, shown
from convir.server.busy import BusySessions
from convir.server.leases import leases_for
from convir.server.models import ID_PATTERN

if TYPE_CHECKING:
    from convir.agents.conversation import ConvirAgent
    from convir.turn import TurnResult

MAX_K = 20  # results (and thumbnails) one tool call returns
THUMBNAIL_PX = 128  # longest side of a result's thumbnail
NO_IMAGES = (
    "this gallery is captions only: it has no images to show or edit; describe what the "
    "person looks for with search_images (each result carries its text in 'caption')"
)


def image_uri(image_id: str) -> str:
    """The MCP resource that serves a gallery image in full."""
    return "image://" + image_id


class Conversations:
    """Image-search conversations over one agent (its gallery, policy and checkpointer)."""

    def __init__(self, agent: ConvirAgent) -> None:
        self.agent = agent
        self.resources = agent.resources
        # the server's lease in the store too: a turn running in `convir serve` (or another
        # MCP process) over the same SQLite file or Postgres database is seen here
        self.busy = BusySessions(leases_for(agent.checkpointer))

    # -- turns ---------------------------------------------------------------------------
    def search(self, description: str, k: int = 8) -> dict[str, Any]:
        """A new conversation opened with ``description``: its first results and question."""
        text = _message(description, "description")
        session_id = uuid.uuid4().hex
        return self._turn(session_id, k, lambda: self.agent.start(session_id, text))

    def answer(self, session_id: str, text: str, k: int = 8) -> dict[str, Any]:
        """The person's next message in ``session_id``: an answer to the pending question,
        or a new detail."""
        message = _message(text, "text")
        self._existing(session_id)
        return self._turn(session_id, k, lambda: self.agent.reply(session_id, message))

    def edit(
        self, image_id: str, instruction: str, session_id: str | None = None, k: int = 8
    ) -> dict[str, Any]:
        """A composed query: ``image_id`` changed as ``instruction`` says. In the session
        that already edits this image it is one more edit; otherwise a new session opens (a
        conversation's reference image is fixed at its start), and ``from_session`` names
        the one the image came from."""
        if not self.resources.has_images:
            raise InputError(NO_IMAGES)
        text = _message(instruction, "instruction")
        self._position(image_id)
        if session_id is not None:
            state = self._existing(session_id)
            if state.get("reference_id") == image_id:
                return self._turn(session_id, k, lambda: self.agent.reply(session_id, text))
        new_id = uuid.uuid4().hex
        out = self._turn(new_id, k, lambda: self.agent.start(new_id, text, reference_id=image_id))
        if session_id is not None:
            out["from_session"] = session_id
        return out

    def why(self, session_id: str, image_id: str) -> dict[str, Any]:
        """The terms of ``image_id``'s score in the session's current turn (they add up to
        the score its result carries)."""
        self._existing(session_id)
        self._position(image_id)
        why = self.agent.explain(session_id, image_id)
        return {
            "session_id": session_id,
            "image_id": why.image_id,
            "rank": why.rank,
            "score": why.score,
            "similarity": why.similarity,
            "how": why.how,
            "terms": [{"label": t.label, "value": t.value} for t in why.terms],
        }

    # -- images --------------------------------------------------------------------------
    def image_png(self, image_id: str, max_side: int | None = None) -> bytes:
        """A gallery image as PNG, shrunk to ``max_side`` pixels when given."""
        if not self.resources.has_images:
            raise InputError(NO_IMAGES)
        image = self.resources.load_image(self._position(image_id)).convert("RGB")
        if max_side is not None:
            image.thumbnail((max_side, max_side))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def thumbnails(self, turn: dict[str, Any]) -> list[tuple[str, bytes]]:
        """(id, PNG) for each result of a turn, in rank order; none in a captions-only gallery."""
        if not self.resources.has_images:
            return []
        return [(r["id"], self.image_png(r["id"], THUMBNAIL_PX)) for r in turn["results"]]

    # -- helpers -------------------------------------------------------------------------
    def _turn(self, session_id: str, k: int, run: Any) -> dict[str, Any]:
        if not 1 <= k <= MAX_K:
            raise InputError(f"k must be between 1 and {MAX_K}, got {k}")
        self.busy.claim(session_id)
        try:
            result = run()
        finally:
            self.busy.release(session_id)
        return self._shape(session_id, result, k)

    def _shape(self, session_id: str, result: TurnResult, k: int) -> dict[str, Any]:
        results = []
        for item_id, score in zip(result.ranking[:k], result.scores[:k], strict=False):
            row: dict[str, Any] = {"id": item_id, "score": round(float(score), 4)}
            caption = self.resources.caption_for(item_id)
            if caption:
                row["caption"] = caption
            if self.resources.has_images:
                row["image_uri"] = image_uri(item_id)
            results.append(row)
        out: dict[str, Any] = {
            "session_id": session_id,
            "turn": result.turn,
            "strategy": result.strategy,
            "query": result.query,
            "results": results,
            "question": result.question,
            "options": list(result.options),
        }
        if result.reference_id is not None:
            out["reference_id"] = result.reference_id
        if result.descriptions:
            out["descriptions"] = list(result.descriptions)
        out["next"] = _next_step(result)
        return out

    def _existing(self, session_id: str) -> dict[str, Any]:
        if not isinstance(session_id, str) or not re.fullmatch(ID_PATTERN, session_id):
            raise InputError(
                f"{shown(str(session_id))} is not a session id; use the session_id a "
                "search_images or edit_image result returned"
            )
        state = self.agent.state(session_id)
        if not state:
            raise InputError(
                f"no session {session_id}; start one with search_images (or edit_image)"
            )
        return dict(state)

    def _position(self, image_id: str) -> int:
        try:
            return self.resources.index.position_of(image_id)
        except (KeyError, TypeError):
            raise InputError(
                f"no gallery image {shown(str(image_id))}; use an id from the results of a search"
            ) from None


def _message(text: str, name: str) -> str:
    """The text as the HTTP server would accept it, or an InputError saying what is wrong."""
    from pydantic import ValidationError

    from convir.server.models import MessageIn

    try:
        return MessageIn(message=text).message
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise InputError(f"{name}: {reason}") from None


def _next_step(result: TurnResult) -> str:
    """One line for the host's model: what to do with this turn."""
    if result.question:
        options = f" (options: {', '.join(result.options)})" if result.options else ""
        return (
            f"Ask the person: {result.question}{options}. Pass their reply, in their own "
            "words, to answer with this session_id; if they already see their image, stop."
        )
    return (
        "Show the results. If the person adds a detail, pass it to answer with this "
        "session_id; to change one of these images, call edit_image with its id."
    )
