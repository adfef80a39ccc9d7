"""The OpenAI-compatible client against a scripted local server, and the ScriptedLLM."""

import logging
import socket
import time
from typing import Literal

import pytest
from llm_server import Reply
from pydantic import BaseModel

from convir.errors import InputError, LLMError, LLMOutputError, LLMUnavailableError
from convir.models.llm import LLM, OpenAICompatibleLLM, strip_fences
from convir.models.scripted_llm import ScriptedLLM

MESSAGES = [
    {"role": "system", "content": "You pick the next tool."},
    {"role": "user", "content": "a red circle"},
]
GOOD = {"tool": "retrieve", "strategy": "dar", "reason": "enough detail"}


class Action(BaseModel):
    tool: Literal["refine_query", "generate_images", "retrieve", "ask_clarification", "ot_rerank"]
    strategy: Literal["dar", "stitch"]
    reason: str


def client(server, **kw):
    kw = {"timeout": 5.0, "max_retries": 2, "backoff": 0.01, **kw}
    return OpenAICompatibleLLM(server.url, kw.pop("model", "test-model"), **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_structured_round_trip_and_request_body(llm_server):
    llm_server.push(Reply.json(GOOD))
    with client(llm_server, api_key="sekret") as llm:
        action = llm.complete(MESSAGES, Action)
    assert action == Action(**GOOD)
    (req,) = llm_server.requests
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sekret"
    assert req.body["model"] == "test-model"
    assert req.body["messages"] == MESSAGES
    assert req.body["temperature"] == 0.0 and req.body["max_tokens"] == 512
    assert req.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Action", "schema": Action.model_json_schema(), "strict": True},
    }
    assert "guided_json" not in req.body


def test_plain_text_sends_no_response_format_and_no_auth(llm_server, monkeypatch):
    monkeypatch.delenv("CONVIR_LLM_API_KEY", raising=False)
    llm_server.push(Reply.text("a red circle on a white background"))
    reply = client(llm_server).complete(MESSAGES)
    assert reply == "a red circle on a white background"
    (req,) = llm_server.requests
    assert "response_format" not in req.body and "authorization" not in req.headers


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(llm_server, suffix):
    llm_server.push(Reply.text("ok"))
    llm = OpenAICompatibleLLM(llm_server.url + suffix, "m", timeout=5.0)
    assert llm.complete(MESSAGES) == "ok"
    assert llm_server.requests[0].path == "/v1/chat/completions"


def test_env_defaults_and_model_from_v1_models(llm_server, monkeypatch):
    monkeypatch.setenv("CONVIR_LLM_URL", llm_server.url + "/v1")
    monkeypatch.setenv("CONVIR_LLM_API_KEY", "from-env")
    monkeypatch.delenv("CONVIR_LLM_MODEL", raising=False)
    llm_server.models = ["served-model", "other"]
    llm_server.push(Reply.text("a"), Reply.text("b"))
    llm = OpenAICompatibleLLM(timeout=5.0)
    assert [llm.complete(MESSAGES), llm.complete(MESSAGES)] == ["a", "b"]
    paths = [r.path for r in llm_server.requests]
    assert paths == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]  # looked up once
    assert llm_server.chat_requests[0].body["model"] == "served-model"
    assert all(r.headers["authorization"] == "Bearer from-env" for r in llm_server.requests)


def test_fenced_json_is_accepted(llm_server):
    llm_server.push(
        Reply.text(
            'Here it is:\n```json\n{"tool": "ot_rerank", "strategy": "stitch", "reason": "r"}\n```'
        )
    )
    assert client(llm_server).complete(MESSAGES, Action).tool == "ot_rerank"


def test_malformed_json_then_repair_succeeds(llm_server, caplog):
    llm_server.push(Reply.text('{"tool": "retrieve", "strategy": '), Reply.json(GOOD))
    with caplog.at_level(logging.WARNING, logger="convir.models.llm"):
        assert client(llm_server).complete(MESSAGES, Action) == Action(**GOOD)
    first, repair = llm_server.chat_requests
    assert repair.body["messages"][:2] == MESSAGES
    assert repair.body["messages"][2] == {
        "role": "assistant",
        "content": '{"tool": "retrieve", "strategy": ',
    }
    assert repair.body["messages"][3]["role"] == "user"
    assert "Action" in repair.body["messages"][3]["content"]
    assert repair.body["response_format"] == first.body["response_format"]
    assert "repair" in caplog.text


def test_off_schema_twice_raises_output_error(llm_server):
    bad = {"tool": "dance", "strategy": "dar", "reason": "r"}  # valid JSON, not the schema
    llm_server.push(Reply.json(bad), Reply.text("still not json"))
    with pytest.raises(LLMOutputError, match="Action.*repair"):
        client(llm_server).complete(MESSAGES, Action)
    assert len(llm_server.chat_requests) == 2  # one repair, no more


def test_500_then_success_is_retried(llm_server, caplog):
    llm_server.push(Reply.error(500, "boom"), Reply.json(GOOD))
    with caplog.at_level(logging.WARNING, logger="convir.models.llm"):
        assert client(llm_server).complete(MESSAGES, Action).tool == "retrieve"
    assert len(llm_server.requests) == 2
    assert "retry 1/2" in caplog.text and "HTTP 500: boom" in caplog.text


def test_persistent_500_gives_up_after_max_retries(llm_server):
    llm_server.push(*[Reply.error(503, "overloaded")] * 3)
    with pytest.raises(LLMUnavailableError, match="HTTP 503: overloaded.*3 attempts"):
        client(llm_server, max_retries=2).complete(MESSAGES)
    assert len(llm_server.requests) == 3


def test_429_honours_retry_after_and_gives_up_if_it_does_not_fit(llm_server):
    llm_server.push(Reply.error(429, "slow down", retry_after="0"), Reply.text("ok"))
    assert client(llm_server).complete(MESSAGES) == "ok"
    llm_server.push(Reply.error(429, "slow down", retry_after="60"))
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="HTTP 429: slow down; the next retry .60 s"):
        client(llm_server).complete(MESSAGES)
    assert time.monotonic() - t0 < 2.0  # 60 s does not fit the budget: no sleep
    assert len(llm_server.requests) == 3


def test_slow_server_times_out_within_the_budget(llm_server):
    llm_server.push(*[Reply.slow(8.0, Reply.json(GOOD))] * 2)
    llm = client(llm_server, timeout=1.0, max_retries=1)
    assert llm.request_budget == pytest.approx(2.01)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError, match=r"no reply within 0\.[0-9]+ s.*2 attempts"):
        llm.complete(MESSAGES, Action)
    elapsed = time.monotonic() - t0
    assert 1.9 < elapsed < llm.request_budget + 2.0
    assert len(llm_server.requests) == 2


def test_trickling_reply_is_dropped_after_the_timeout(llm_server):
    llm_server.push(*[Reply.trickle(0.05, Reply.json(GOOD))] * 2)  # ~5 s per reply
    llm = client(llm_server, timeout=0.3, max_retries=1)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError, match="no reply within"):
        llm.complete(MESSAGES)
    assert time.monotonic() - t0 < llm.request_budget + 2.0
    assert len(llm_server.requests) == 2


def test_refused_connection_names_the_url_and_how_to_start_a_server():
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError) as info:
        OpenAICompatibleLLM(url, "m", timeout=0.3, max_retries=2, backoff=0.01).complete(MESSAGES)
    assert time.monotonic() - t0 < 3.0
    msg = str(info.value)
    assert f"{url}/v1/chat/completions" in msg and "3 attempts" in msg
    assert "vllm serve" in msg and "--api-key" in msg and "rule-based policy" in msg


def test_401_is_not_retried(llm_server):
    llm_server.push(Reply.error(401, "bad key"), Reply.text("never sent"))
    with pytest.raises(LLMError, match="HTTP 401.*bad key.*CONVIR_LLM_API_KEY") as info:
        client(llm_server, api_key="wrong").complete(MESSAGES)
    assert not isinstance(info.value, LLMUnavailableError)
    assert len(llm_server.requests) == 1


def test_400_on_response_format_hints_at_json_object(llm_server):
    llm_server.push(Reply.error(400, "unknown response_format"))
    with pytest.raises(LLMError, match="CONVIR_LLM_STRUCTURED=json_object"):
        client(llm_server).complete(MESSAGES, Action)


def test_json_object_mode_for_llama_cpp_python(llm_server):
    llm_server.push(Reply.json(GOOD))
    client(llm_server, structured_output="json_object").complete(MESSAGES, Action)
    assert llm_server.requests[0].body["response_format"] == {
        "type": "json_object",
        "schema": Action.model_json_schema(),
    }


def test_non_json_200_is_an_error_not_a_retry(llm_server):
    llm_server.push(Reply.raw(b"<html>proxy login</html>"))
    with pytest.raises(LLMError, match="proxy login"):
        client(llm_server).complete(MESSAGES)
    assert len(llm_server.requests) == 1


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match="timeout"):
        OpenAICompatibleLLM("http://127.0.0.1:1", "m", timeout=0)
    with pytest.raises(InputError, match="http"):
        OpenAICompatibleLLM("127.0.0.1:8000", "m")
    with pytest.raises(InputError, match="role"):
        OpenAICompatibleLLM("http://127.0.0.1:1", "m").complete([{"role": "bot", "content": "x"}])
    assert "sekret" not in repr(OpenAICompatibleLLM("http://h", "m", api_key="sekret"))


def test_strip_fences():
    assert strip_fences('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_fences('```{"a": 1}```') == '{"a": 1}'
    assert strip_fences(' {"a": 1} ') == '{"a": 1}'


def test_scripted_llm_queue_repair_exceptions_and_exhaustion():
    llm = ScriptedLLM(["plain", "not json", GOOD, Action(**GOOD), LLMUnavailableError("down")])
    assert isinstance(llm, LLM)
    assert llm.complete(MESSAGES) == "plain"
    assert llm.complete(MESSAGES, Action) == Action(**GOOD)  # repaired on the second reply
    assert llm.calls[2].messages[-1]["role"] == "user" and llm.calls[2].schema is Action
    assert llm.complete(MESSAGES, Action).strategy == "dar"
    with pytest.raises(LLMUnavailableError):
        llm.complete(MESSAGES)
    with pytest.raises(RuntimeError, match="ran out of replies"):
        llm.complete(MESSAGES)


def test_scripted_llm_callable_and_output_error():
    llm = ScriptedLLM(lambda messages, schema: GOOD if schema else messages[-1]["content"].upper())
    assert llm.complete(MESSAGES) == "A RED CIRCLE"
    assert llm.complete(MESSAGES, Action).reason == "enough detail"
    broken = ScriptedLLM(["{", "{"])
    with pytest.raises(LLMOutputError):
        broken.complete(MESSAGES, Action)
    assert broken.remaining == 0


def test_llama_cpp_500_refusing_json_schema_is_not_retried(llm_server):
    """llama-cpp-python's server: HTTP 500 "'text' or 'json_object'" for a json_schema request;
    retrying cannot help, so the client says what to set instead, after one request."""
    refusal = "response_format type must be either 'text' or 'json_object'"
    llm_server.push(Reply.error(500, refusal), Reply.json(GOOD))
    with pytest.raises(LLMError, match="CONVIR_LLM_STRUCTURED=json_object") as info:
        client(llm_server).complete(MESSAGES, Action)
    assert not isinstance(info.value, LLMUnavailableError)
    assert len(llm_server.requests) == 1


def test_structured_output_mode_from_the_environment(llm_server, monkeypatch):
    monkeypatch.setenv("CONVIR_LLM_STRUCTURED", "json_object")
    llm_server.push(Reply.json(GOOD))
    client(llm_server).complete(MESSAGES, Action)
    assert llm_server.requests[0].body["response_format"]["type"] == "json_object"
    monkeypatch.setenv("CONVIR_LLM_STRUCTURED", "yaml")
    with pytest.raises(InputError, match="CONVIR_LLM_STRUCTURED"):
        client(llm_server)
