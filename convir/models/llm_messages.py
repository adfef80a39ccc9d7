"""What every language-model backend shares: the message shape, the ``LLM`` protocol, and
the structured-reply round (validate against a pydantic schema, ask once for a repair).

Its own module so that the HTTP client (``llm``) and the scripted stand-in
(``scripted_llm``) both build on it without importing each other.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, runtime_checkable

from convir.errors import InputError, LLMOutputError

if TYPE_CHECKING:
    from PIL import Image
    from pydantic import BaseModel

log = logging.getLogger("convir.models.llm")

ROLES = ("system", "user", "assistant")


class Message(TypedDict):
    """One chat message, as the OpenAI chat API takes it.

    ``content`` is text, or a list of parts for vision-language models:
    ``{"type": "text", "text": ...}`` and ``{"type": "image_url", "image_url": {"url": ...}}``
    (see :func:`image_part`).
    """

    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]]


PART_TYPES = ("text", "image_url")


def image_part(image: Image.Image, max_side: int = 1024) -> dict[str, Any]:
    """An OpenAI ``image_url`` content part holding ``image`` as a PNG data URI.

    Larger images are shrunk to ``max_side`` first (VLM servers resize anyway; this bounds the
    request size).
    """
    import base64
    import io

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": url}}


def _check_content(i: int, content: object) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") not in PART_TYPES:
                raise InputError(
                    f"message {i}: each content part needs a type in {PART_TYPES}; got {part!r:.80}."
                )
        return [dict(part) for part in content]
    raise InputError(f"message {i} needs a str content or a list of parts; got {content!r:.80}.")


@runtime_checkable
class LLM(Protocol):
    """What the policy and the refiners need from a language model."""

    def complete(
        self, messages: Sequence[Message], schema: type[BaseModel] | None = None
    ) -> BaseModel | str:
        """Reply to ``messages``: plain text, or an instance of ``schema`` when one is given."""
        ...


def strip_fences(text: str) -> str:
    """The JSON inside a Markdown code fence, if the reply has one (models like to add them)."""
    match = re.search(r"```[A-Za-z]*[ \t]*\n?(.*?)```", text, flags=re.DOTALL)
    return (match.group(1) if match else text).strip()


def parse_reply(text: str, schema: type[BaseModel]) -> BaseModel:
    """Validate a reply against ``schema``; raises pydantic's ``ValidationError`` if it does not fit."""
    return schema.model_validate_json(strip_fences(text))


def short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def check_messages(messages: Sequence[Message]) -> list[Message]:
    if isinstance(messages, str | bytes) or not messages:
        raise InputError("complete() needs a non-empty list of {'role': ..., 'content': ...}.")
    out: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES:
            raise InputError(f"message {i} needs a role in {ROLES}; got {m!r}.")
        out.append({"role": m["role"], "content": _check_content(i, m.get("content"))})
    return out


class StructuredReplies:
    """Shared by every backend: one round trip for text; validation plus one repair for schemas."""

    def _chat(self, messages: list[Message], schema: type[BaseModel] | None) -> str:
        raise NotImplementedError

    def complete(
        self, messages: Sequence[Message], schema: type[BaseModel] | None = None
    ) -> BaseModel | str:
        """Reply as text, or as a validated ``schema`` instance (one repair round on bad JSON).

        Raises :class:`LLMOutputError` when the reply still does not fit after the repair, so
        that a policy can fall back to rules; transport failures raise
        :class:`LLMUnavailableError` or :class:`LLMError`.
        """
        from pydantic import ValidationError

        msgs = check_messages(messages)
        reply = self._chat(msgs, schema)
        if schema is None:
            return reply
        try:
            return parse_reply(reply, schema)
        except ValidationError as exc:
            error = exc
        log.warning(
            "LLM reply does not fit %s (%s); asking once for a repair",
            schema.__name__,
            _errors(error),
        )
        repair: list[Message] = [
            *msgs,
            {"role": "assistant", "content": short(reply, 4000)},
            {
                "role": "user",
                "content": (
                    f"Your reply is not valid JSON for the schema {schema.__name__}: "
                    f"{_errors(error)}. Reply again with only the corrected JSON object "
                    "(no prose, no code fences)."
                ),
            },
        ]
        fixed = self._chat(repair, schema)
        try:
            return parse_reply(fixed, schema)
        except ValidationError as exc:
            raise LLMOutputError(
                f"The LLM's reply is not valid JSON for {schema.__name__}, even after one repair "
                f"request ({_errors(exc)}; reply: {short(fixed, 200)!r}). Use a model that follows "
                "JSON schemas (docs/llm.md) or the rule-based policy."
            ) from exc


def _errors(exc: Exception) -> str:
    """Pydantic's errors in one line: short enough to send back to the model and to log."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errors()[:5]]
        return short("; ".join(parts), 600)
    return short(str(exc), 600)
