"""Language models: the ``LLM`` protocol and an OpenAI-compatible HTTP client (the scripted
stand-in lives in ``scripted_llm``). Longer than most modules because its one job, a client
that survives real servers (retries, timeouts, the json_schema fallbacks, readable errors),
takes that much.

The policy and the query refiners need one thing from a language model: given chat messages,
return text, or an instance of a pydantic model. Structured replies are requested the way
vLLM's OpenAI-compatible server documents it (``response_format={"type": "json_schema", ...}``;
the old ``guided_json`` field was removed in vLLM 0.12 and is not used), validated with
pydantic, repaired once by asking again with the validation error, and otherwise reported as
:class:`~convir.errors.LLMOutputError` so that callers can fall back to rules.

Transport failures (refused connections, timeouts, HTTP 5xx and 429) are retried with
exponential backoff inside a total time budget, then reported as
:class:`~convir.errors.LLMUnavailableError`; a call never hangs. See ``docs/llm.md``.

Environment variables (used when the constructor arguments are left out):
``CONVIR_LLM_URL`` (default ``http://127.0.0.1:8000``), ``CONVIR_LLM_MODEL`` (default: the
first model the server lists at ``/v1/models``), ``CONVIR_LLM_API_KEY`` (default: none).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypedDict, runtime_checkable

from convir.errors import InputError, LLMError, LLMOutputError, LLMUnavailableError

if TYPE_CHECKING:
    import httpx
    from PIL import Image
    from pydantic import BaseModel

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
ROLES = ("system", "user", "assistant")
_START_HINT = (
    "Start an OpenAI-compatible server, e.g. `vllm serve Qwen/Qwen2.5-7B-Instruct --api-key KEY`"
    " (pip install 'convir[gpu]') or llama.cpp's `llama-server -m MODEL.gguf`, and point"
    " CONVIR_LLM_URL / CONVIR_LLM_MODEL / CONVIR_LLM_API_KEY at it (see docs/llm.md);"
    " or run without a server: choose the rule-based policy (no LLM) or the embedded backend."
)


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


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _check_messages(messages: Sequence[Message]) -> list[Message]:
    if isinstance(messages, str | bytes) or not messages:
        raise InputError("complete() needs a non-empty list of {'role': ..., 'content': ...}.")
    out: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES:
            raise InputError(f"message {i} needs a role in {ROLES}; got {m!r}.")
        out.append({"role": m["role"], "content": _check_content(i, m.get("content"))})
    return out


class _StructuredReplies:
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

        msgs = _check_messages(messages)
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
            {"role": "assistant", "content": _short(reply, 4000)},
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
                f"request ({_errors(exc)}; reply: {_short(fixed, 200)!r}). Use a model that follows "
                "JSON schemas (docs/llm.md) or the rule-based policy."
            ) from exc


def _errors(exc: Exception) -> str:
    """Pydantic's errors in one line: short enough to send back to the model and to log."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errors()[:5]]
        return _short("; ".join(parts), 600)
    return _short(str(exc), 600)


class _SlowReply(Exception):
    """The reply kept trickling in past the attempt's time limit."""


class _Failure(NamedTuple):
    reason: str
    retry_after: float | None = None


class OpenAICompatibleLLM(_StructuredReplies):
    """Chat completions over HTTP from vLLM, llama.cpp's server, or any OpenAI-compatible server.

    ``base_url`` may end in ``/v1`` or not. Connection errors, timeouts, HTTP 5xx and 429 are
    retried ``max_retries`` times after the first attempt, with a backoff of ``backoff * 2**i``
    seconds before retry ``i + 1`` (or the server's ``Retry-After``, when longer); other 4xx
    raise :class:`LLMError` at once. Time is bounded: one request (a ``/v1/models`` lookup, a
    chat call, or the repair call) has a budget of :attr:`request_budget` =
    ``(max_retries + 1) * timeout + backoff * (2**max_retries - 1)`` seconds; an attempt or a
    backoff that would start past it is not started. Within an attempt, connecting, sending
    and each wait for data are capped at ``min(timeout, budget left)``, and a reply still
    trickling in after that long is dropped. So a hung server costs ``timeout`` per attempt,
    and the hard worst case (a connect and a send that each nearly time out before the reply
    does) is ``request_budget + 2 * timeout``.

    ``structured_output="json_object"`` (or ``CONVIR_LLM_STRUCTURED=json_object``) sends
    ``{"type": "json_object", "schema": ...}`` instead of ``json_schema``, for
    llama-cpp-python's server, which answers ``json_schema`` with an HTTP 500 that is not
    retried (it would fail the same way every time). ``extra_body`` is merged into
    every request (e.g. vLLM's ``{"chat_template_kwargs": {"enable_thinking": False}}``).
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        temperature: float = 0.0,
        max_tokens: int = 512,
        structured_output: Literal["json_schema", "json_object"] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if not timeout > 0 or max_retries < 0 or backoff < 0 or max_tokens < 1:
            raise InputError(
                "OpenAICompatibleLLM needs timeout > 0, max_retries >= 0, backoff >= 0 and "
                f"max_tokens >= 1; got {timeout=}, {max_retries=}, {backoff=}, {max_tokens=}."
            )
        if structured_output is None:
            structured_output = os.environ.get("CONVIR_LLM_STRUCTURED") or "json_schema"  # type: ignore[assignment]
        if structured_output not in ("json_schema", "json_object"):
            raise InputError(
                "structured_output (CONVIR_LLM_STRUCTURED) must be 'json_schema' or "
                f"'json_object', not {structured_output!r}."
            )
        url = (base_url or os.environ.get("CONVIR_LLM_URL") or DEFAULT_URL).strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise InputError(f"The LLM base URL must start with http:// or https://; got {url!r}.")
        self.root = url.removesuffix("/v1")
        self.model = model or os.environ.get("CONVIR_LLM_MODEL") or None
        self.api_key = api_key if api_key is not None else os.environ.get("CONVIR_LLM_API_KEY")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.structured_output = structured_output
        self.extra_body = dict(extra_body or {})
        self._client = client
        self._owns_client = client is None

    def __repr__(self) -> str:  # no api key in logs
        return f"OpenAICompatibleLLM(base_url={self.root!r}, model={self.model!r})"

    @property
    def request_budget(self) -> float:
        """Upper bound, in seconds, on one request including all its retries and backoffs."""
        return (self.max_retries + 1) * self.timeout + self.backoff * (2**self.max_retries - 1)

    def close(self) -> None:
        """Close the HTTP connection pool (only if this object created it)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> OpenAICompatibleLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def listed_models(self) -> list[str]:
        """The model ids the server lists at ``/v1/models`` (also a reachability check)."""
        data = self._request("GET", "/v1/models")
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, Mapping)]

    def model_name(self) -> str:
        """The model to ask for: the configured one, else the first the server lists."""
        if self.model is None:
            data = self._request("GET", "/v1/models")
            ids = [m.get("id") for m in data.get("data", []) if isinstance(m, Mapping)]
            if not ids or not isinstance(ids[0], str):
                raise LLMError(
                    f"The LLM server at {self.root} lists no models at /v1/models; "
                    "set CONVIR_LLM_MODEL (or pass model=...)."
                )
            self.model = ids[0]
        return self.model

    def response_format(self, schema: type[BaseModel]) -> dict[str, Any]:
        """The ``response_format`` field that asks the server for JSON fitting ``schema``."""
        if self.structured_output == "json_object":
            return {"type": "json_object", "schema": schema.model_json_schema()}
        return {
            "type": "json_schema",
            "json_schema": {
                "name": schema.__name__,
                "schema": schema.model_json_schema(),
                "strict": True,
            },
        }

    def _chat(self, messages: list[Message], schema: type[BaseModel] | None) -> str:
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model_name(),
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if schema is not None:
            body["response_format"] = self.response_format(schema)
        data = self._request("POST", "/v1/chat/completions", body)
        try:
            content = data["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(
                f"The LLM server at {self.root} answered, but not with a chat completion: "
                f"{_short(json.dumps(data), 200)}. Is CONVIR_LLM_URL an OpenAI-compatible server?"
            ) from None
        return content if isinstance(content, str) else ""

    # transport -----------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client()
        return self._client

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One API call with retries; returns the decoded JSON body of a 2xx reply."""
        url = self.root + path
        deadline = time.monotonic() + self.request_budget
        failure = _Failure("no attempt made")
        attempts = 0
        for attempt in range(self.max_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            outcome = self._attempt(method, url, body, min(self.timeout, remaining))
            if not isinstance(outcome, _Failure):
                return outcome
            failure = outcome
            if attempt == self.max_retries:
                break
            delay = self.backoff * 2**attempt
            if failure.retry_after is not None:
                delay = max(delay, failure.retry_after)
            if time.monotonic() + delay >= deadline:
                note = f"; the next retry ({delay:.3g} s away) would pass the time budget"
                failure = failure._replace(reason=failure.reason + note)
                break
            log.warning(
                "LLM %s %s failed (%s); retry %d/%d in %.2f s",
                method,
                url,
                failure.reason,
                attempt + 1,
                self.max_retries,
                delay,
            )
            time.sleep(delay)
        raise LLMUnavailableError(
            f"The LLM server at {url} is not usable: {failure.reason} "
            f"({attempts} attempt{'s' if attempts != 1 else ''}, timeout {self.timeout:g} s). "
            + _START_HINT
        )

    def _attempt(
        self, method: str, url: str, body: dict[str, Any] | None, limit: float
    ) -> dict[str, Any] | _Failure:
        """One HTTP exchange: the decoded reply, a retryable failure, or a raised LLMError."""
        import httpx

        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        start = time.monotonic()
        try:
            with self._http().stream(
                method, url, json=body, headers=headers, timeout=httpx.Timeout(limit)
            ) as reply:
                chunks = []
                for chunk in reply.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() - start > limit:
                        raise _SlowReply
                status, raw = reply.status_code, b"".join(chunks)
                retry_after = _seconds(reply.headers.get("retry-after"))
        except (httpx.TimeoutException, _SlowReply):
            return _Failure(f"no reply within {limit:.3g} s")
        except httpx.ConnectError as exc:
            return _Failure(f"cannot connect ({str(exc) or type(exc).__name__})")
        except httpx.TransportError as exc:
            return _Failure(f"{type(exc).__name__}: {exc}")
        if status >= 500 and _refuses_json_schema(raw, body):
            raise LLMError(
                f"The LLM server at {url} does not accept response_format json_schema (HTTP "
                f"{status}: {_server_message(raw)}). {_JSON_OBJECT_HINT}"
            )
        if status == 429 or status >= 500:
            return _Failure(f"HTTP {status}: {_server_message(raw)}", retry_after)
        if status >= 400:
            raise LLMError(
                f"The LLM server at {url} refused the request (HTTP {status}): "
                f"{_server_message(raw)}. {_hint_for(status, body)}".rstrip()
            )
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise LLMError(
                f"The LLM server at {url} replied HTTP {status} with something other than a JSON "
                f"object: {_short(raw.decode('utf-8', 'replace'), 200)!r}. "
                "Is CONVIR_LLM_URL an OpenAI-compatible server?"
            )
        return data


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the backoff applies
        return None


def _server_message(raw: bytes) -> str:
    """The error text from OpenAI-, vLLM-, llama.cpp- or FastAPI-style error bodies."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return _short(text.strip() or "(empty body)", 300)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, Mapping) and err.get("message"):
            return _short(str(err["message"]), 300)
        for key in ("message", "detail", "error"):
            if data.get(key):
                return _short(str(data[key]), 300)
    return _short(text, 300)


_JSON_OBJECT_HINT = (
    "For llama-cpp-python's server set CONVIR_LLM_STRUCTURED=json_object "
    "(or structured_output='json_object')."
)


def _refuses_json_schema(raw: bytes, body: dict[str, Any] | None) -> bool:
    """llama-cpp-python's server answers a json_schema response_format with an HTTP 500
    naming the types it does accept ("'text' or 'json_object'"): a refusal, not an outage."""
    fmt = (body or {}).get("response_format") or {}
    return fmt.get("type") == "json_schema" and b"json_object" in raw


def _hint_for(status: int, body: dict[str, Any] | None) -> str:
    if status in (401, 403):
        return "Check the API key: CONVIR_LLM_API_KEY must match the server's --api-key."
    if status == 404:
        return "Check CONVIR_LLM_URL and CONVIR_LLM_MODEL; GET /v1/models lists the served models."
    if body and "response_format" in body and status in (400, 422):
        return f"The server may not support response_format json_schema. {_JSON_OBJECT_HINT}"
    return ""


__all__ = [
    "LLM",
    "Message",
    "OpenAICompatibleLLM",
    "parse_reply",
    "strip_fences",
]

from convir.models.scripted_llm import ScriptedCall, ScriptedLLM  # noqa: E402  (public here too)

__all__ += ["ScriptedCall", "ScriptedLLM"]
