"""Request and response bodies of the HTTP API (they are the OpenAPI schema too).

Limits live here, next to the fields they guard, so the schema tells a client about them
before it sends anything: a message is at most :data:`MAX_MESSAGE_CHARS` characters (the
agent's own cap, so the server rejects instead of cutting silently).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from convir.state import MAX_MESSAGE_CHARS

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # session and upload ids (server-made)
_TEXT = r"[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]"  # Unicode's Cc category, minus \t \n \r
MESSAGE_PATTERN = rf"^{_TEXT}*[^\s\x00-\x1F\x7F-\x9F]{_TEXT}*$"  # not blank, no control chars


def _clean_text(text: str) -> str:
    """Reject text a person cannot have meant (lone surrogates, control bytes, blanks)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("message is not valid Unicode text; send UTF-8") from None
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text):
        raise ValueError("message holds control characters; send plain text")
    if not text.strip():
        raise ValueError("message is empty; describe the image you look for")
    return text


class MessageIn(BaseModel):
    """The user's next message: an answer to the pending question, or a new remark."""

    model_config = ConfigDict(extra="forbid")

    message: Annotated[str, AfterValidator(_clean_text)] = Field(
        max_length=MAX_MESSAGE_CHARS,
        description="plain text: not blank, no control characters",
        # what _clean_text enforces, stated in the schema for clients and fuzzers (the check
        # itself stays in _clean_text, whose errors say what to do)
        json_schema_extra={"minLength": 1, "pattern": MESSAGE_PATTERN},
    )


class SessionIn(MessageIn):
    """The opening message; with ``reference_id`` or ``upload_id`` it edits that image (a
    composed query)."""

    reference_id: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="gallery id of a reference image to edit (e.g. one a search returned)",
    )
    upload_id: str | None = Field(
        None,
        pattern=ID_PATTERN,
        description="id of an uploaded image (POST /uploads) to edit, instead of reference_id",
    )


class Result(BaseModel):
    """One ranked gallery item: an image, or a text in a captions-only gallery."""

    id: str
    score: float
    image_url: str | None = Field(
        description="GET it for the PNG; null in a captions-only gallery (no images)"
    )
    caption: str | None = Field(
        None, description="the item's text, in a captions-only gallery (else null)"
    )


class TurnOut(BaseModel):
    """What one message produced: ranked images, maybe a question, and the turn's log."""

    session_id: str
    turn: int = Field(description="0 for the opening message, +1 per reply")
    results: list[Result]
    question: str | None = Field(None, description="answer it by posting the next message")
    options: list[str] = Field(
        default_factory=list, description="the answers the question expects (any text is fine)"
    )
    strategy: str = Field(description="dar, stitch or text: how this turn retrieved")
    query: str = Field("", description="the text query the turn searched with")
    descriptions: list[str] = Field(
        default_factory=list, description="stitch: the target descriptions it searched with"
    )
    imagined: list[str] = Field(
        default_factory=list,
        description="dar: URLs of the images generated for the query this turn searched with",
    )
    reference_id: str | None = None
    transcript: list[str] = Field(description="this turn's steps, one line each")


class TermOut(BaseModel):
    """One additive part of a result's score, in logit units."""

    label: str
    value: float


class WhyOut(BaseModel):
    """Why a gallery image ranks where it does in the session's current turn: the terms of
    its score (first-stage similarity / temperature, each answer's log-likelihood term, and
    the rerank's share), which add up to ``score``."""

    image_id: str
    rank: int | None = Field(description="1-based place in the current ranking; null if not kept")
    score: float | None = Field(description="the score shown with the result")
    similarity: float = Field(description="cosine of the turn's first-stage query and the image")
    how: str = Field(description="how the first-stage query was built")
    terms: list[TermOut]


class SessionOut(BaseModel):
    """A conversation as checkpointed: everything said and done, and its current results."""

    session_id: str
    turn: int
    dialogue: list[str] = Field(description="opening message, then 'question? answer' pairs")
    transcript: list[str] = Field(description="every step of every turn so far")
    results: list[Result]
    question: str | None = Field(None, description="the question waiting for an answer")
    options: list[str] = Field(default_factory=list, description="its expected answers")
    strategy: str
    query: str = ""
    reference_id: str | None = None


class UploadOut(BaseModel):
    """A stored, verified upload and the gallery images that look most like it."""

    upload_id: str
    width: int
    height: int
    image_url: str
    nearest: list[Result] = Field(
        description="closest gallery images; pass one as reference_id to edit it"
    )


class Health(BaseModel):
    status: str = "ok"
    gallery_size: int
    strategy: str
    checkpoint: str = Field(description="memory, sqlite or postgres")
    checkpoint_ok: bool = Field(True, description="the checkpointer answered just now")
    turns_running: int = Field(description="turns running in this worker process")
    worker: int = Field(0, description="the process id of the worker that answered")


class Problem(BaseModel):
    """Every error: ``detail`` says what went wrong and what to do next."""

    detail: str
