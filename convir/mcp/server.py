"""The MCP server: convir's conversations as tools a chatbot host can call.

Built on the official MCP Python SDK (``mcp`` 2.x, ``MCPServer``); importing this module
imports it, so only ``convir mcp`` and the tests do. The tools are thin: the work is in
:class:`~convir.mcp.conversations.Conversations`. A mistake the caller can fix (an unknown
session, an image id not in the gallery, an empty message) comes back as a tool error
whose text says what to do; anything else is logged with its traceback on stderr and
reported as a tool error too, so no call brings the server down.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from convir.agents.checkpointers import is_database_down
from convir.errors import ConvirError
from convir.mcp.conversations import MAX_K, Conversations

if TYPE_CHECKING:
    from convir.agents.conversation import ConvirAgent

INSTRUCTIONS = """\
convir finds an image in a gallery through a conversation. Start with search_images, \
giving the person's description in their words. A result may carry a clarifying question \
with options: ask the person that question (offer the options, but any answer is fine) and \
pass their reply to answer with the same session_id; each answer reranks the gallery. When \
the person wants one of the results changed ("like this one but blue"), call edit_image with \
its id. why tells how a result's score was made. Results carry image ids and small \
thumbnails; read a result's image_uri (image://ID) for the full image."""

SEARCH = """\
Start a new image search from a description of the image the person is looking for \
(their words: objects, colours, places, anything they remember). Returns a session_id, \
the top k results (id, score, caption where the gallery has one, and a thumbnail each) \
and, often, a clarifying question with options. Relay that question to the person \
verbatim and send their reply with answer; do not answer it yourself. Use this tool \
again only for a different image; to refine the current search, use answer."""

ANSWER = """\
Continue a search: send the person's reply to the question the last result asked, or \
any new detail they give about the image, in their words. Returns the reranked results \
and maybe the next question, in the same shape as search_images. Call it once per reply; \
the session_id comes from search_images or edit_image."""

EDIT = """\
Search for a changed version of one gallery image (a composed query): image_id is the \
image to start from (an id from the results), instruction says what to change ("make \
the circle blue", "add a small square on the left", "without the tree"). Pass the \
session_id the image came from to keep the edits together: in the session that already \
edits this image it is one more edit, otherwise a new session opens (its session_id is \
in the result). Returns results and maybe a question, as search_images does."""

WHY = """\
Explain why an image ranks where it does in a session's current results: its rank, its \
score and the terms that add up to it (the description's similarity, one term per \
answered question, the rerank's share). Use it when the person asks why a result came up \
or was missed."""

IMAGE = "A gallery image in full (PNG), by the id a search result carries."

K = Annotated[int, Field(ge=1, le=MAX_K, description="how many results to return")]


def build_server(agent: ConvirAgent) -> MCPServer:
    """An MCP server around one agent: four tools and the ``image://{id}`` resource."""
    talks = Conversations(agent)
    server = MCPServer(
        "convir",
        title="convir image search",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level="WARNING",  # the SDK logs every failed call at INFO otherwise
        warn_on_duplicate_tools=False,
    )
    opens = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

    @server.tool(name="search_images", description=SEARCH, annotations=opens)
    def search_images(
        description: Annotated[str, Field(description="the image the person looks for")],
        k: K = 8,
    ) -> CallToolResult:
        return _turn(talks, lambda: talks.search(description, k))

    @server.tool(name="answer", description=ANSWER, annotations=opens)
    def answer(
        session_id: Annotated[str, Field(description="from search_images or edit_image")],
        text: Annotated[str, Field(description="the person's reply, in their words")],
        k: K = 8,
    ) -> CallToolResult:
        return _turn(talks, lambda: talks.answer(session_id, text, k))

    @server.tool(name="edit_image", description=EDIT, annotations=opens)
    def edit_image(
        image_id: Annotated[str, Field(description="a gallery id from the results")],
        instruction: Annotated[str, Field(description="what to change in that image")],
        session_id: Annotated[
            str | None, Field(description="the session the image came from, if any")
        ] = None,
        k: K = 8,
    ) -> CallToolResult:
        return _turn(talks, lambda: talks.edit(image_id, instruction, session_id, k))

    @server.tool(
        name="why",
        description=WHY,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    def why(
        session_id: Annotated[str, Field(description="from search_images or edit_image")],
        image_id: Annotated[str, Field(description="a gallery id")],
    ) -> CallToolResult:
        out = _fixable(lambda: talks.why(session_id, image_id))
        return CallToolResult(content=[_json(out)], structured_content=out)

    @server.resource("image://{+image_id}", name="image", description=IMAGE, mime_type="image/png")
    def image(image_id: str) -> bytes:
        try:
            return talks.image_png(image_id)
        except ConvirError as exc:
            raise ResourceNotFoundError(str(exc)) from None

    return server


def _turn(talks: Conversations, run: Any) -> CallToolResult:
    """A turn as the host sees it: the turn as JSON (also structured), then the results'
    thumbnails in rank order."""
    out = _fixable(run)
    content: list[Any] = [_json(out)]
    for _, png in talks.thumbnails(out):
        data = base64.b64encode(png).decode("ascii")
        content.append(ImageContent(data=data, mime_type="image/png"))
    return CallToolResult(content=content, structured_content=out)


STORE_DOWN = "the conversation store is unavailable; retry in a few seconds"


def _fixable(run: Any) -> Any:
    """Run a tool's work; a convir error becomes a tool error with its own message, and so
    does a checkpoint database that does not answer (``convir serve``'s 503)."""
    try:
        return run()
    except ConvirError as exc:
        raise ToolError(str(exc)) from None
    except Exception as exc:
        if is_database_down(exc):
            raise ToolError(STORE_DOWN) from exc
        raise


def _json(out: dict[str, Any]) -> TextContent:
    return TextContent(text=json.dumps(out, ensure_ascii=False))


def _version() -> str:
    from convir import __version__

    return __version__
