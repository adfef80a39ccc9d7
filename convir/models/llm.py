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
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from convir.errors import InputError, LLMError, LLMUnavailableError
from convir.models.llm_messages import (
    LLM,
    Message,
    StructuredReplies,
    image_part,
    parse_reply,
    short,
    strip_fences,
)

if TYPE_CHECKING:
    import httpx
    from pydantic import BaseModel

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
_START_HINT = (
    "Start an OpenAI-compatible server, e.g. `vllm serve Qwen/Qwen2.5-7B-Instruct --api-key KEY`"
    " (pip install 'convir[gpu]') or llama.cpp's `llama-server -m MODEL.gguf`, and point"
    " CONVIR_LLM_URL / CONVIR_LLM_MODEL / CONVIR_LLM_API_KEY at it (see docs/llm.md);"
    " or run without a server: choose the rule-based policy (no LLM) or the embedded backend."
)


class _SlowReply(Exception):
    """The reply kept trickling in past the attempt's time limit."""


class _Failure(NamedTuple):
    reason: str
    retry_after: float | None = None


class OpenAICompatibleLLM(StructuredReplies):
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
                f"{short(json.dumps(data), 200)}. Is CONVIR_LLM_URL an OpenAI-compatible server?"
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
                f"object: {short(raw.decode('utf-8', 'replace'), 200)!r}. "
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
        return short(text.strip() or "(empty body)", 300)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, Mapping) and err.get("message"):
            return short(str(err["message"]), 300)
        for key in ("message", "detail", "error"):
            if data.get(key):
                return short(str(data[key]), 300)
    return short(text, 300)


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
    "image_part",
    "OpenAICompatibleLLM",
    "parse_reply",
    "strip_fences",
]
