"""``convir mcp``'s options, its quiet standard output, and the HTTP transport's API key
(the streamable HTTP app, in process, behind the same gate ``convir mcp --transport http``
puts in front of it)."""

import os

import pytest
from convir_cli import run_convir
from typer.testing import CliRunner

from convir.cli import app
from convir.errors import InputError

pytest.importorskip("mcp.server.mcpserver")

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream"}


def test_a_missing_index_is_one_error_line_and_exit_code_2(tmp_path):
    proc = run_convir("mcp", "--index", tmp_path / "none.index")
    assert proc.returncode == 2
    assert proc.stdout == ""  # a host reading stdout sees nothing that is not protocol
    assert proc.stderr.strip() == (
        f"error: --index {tmp_path / 'none.index'}: no such file; build one with `convir index`"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--transport", "sse"], "--transport must be stdio or http, got 'sse'"),
        (["--transport", "http", "--port", "70000"], "--port must be between 0 and 65535"),
        (["--checkpoint", "mysql://x"], "--checkpoint 'mysql://x': use memory, sqlite:PATH"),
    ],
)
def test_bad_options_are_refused_before_serving(gallery_index, args, message):
    result = CliRunner().invoke(app, ["mcp", "--index", str(gallery_index), *args])
    assert isinstance(result.exception, InputError)
    assert message in str(result.exception)


def test_loading_writes_nothing_to_stdout(capfd):
    from convir.mcp.cli import _stdout_to_stderr

    with _stdout_to_stderr():
        print("from python")
        os.write(1, b"from a C library\n")
    print("after")
    out, err = capfd.readouterr()
    assert out == "after\n"
    assert "from python" in err and "from a C library" in err


def test_the_http_transport_demands_the_api_key_when_one_is_set(loaded_agent):
    from starlette.testclient import TestClient

    from convir.mcp.cli import MCP_PATH, RequireKey
    from convir.mcp.server import build_server

    server = build_server(loaded_agent)
    gated = RequireKey(server.streamable_http_app(streamable_http_path=MCP_PATH), "s3cret")
    with TestClient(gated, base_url="http://127.0.0.1:8001") as http:
        missing = http.post(MCP_PATH, json=INITIALIZE, headers=ACCEPT)
        wrong = http.post(MCP_PATH, json=INITIALIZE, headers={**ACCEPT, "x-api-key": "nope"})
        bearer = http.post(
            MCP_PATH, json=INITIALIZE, headers={**ACCEPT, "authorization": "Bearer s3cret"}
        )
        header = http.post(MCP_PATH, json=INITIALIZE, headers={**ACCEPT, "x-api-key": "s3cret"})
    assert missing.status_code == wrong.status_code == 401
    assert "API key" in missing.json()["detail"]
    assert bearer.status_code == header.status_code == 200, bearer.text
    assert '"serverInfo"' in bearer.text and '"convir"' in bearer.text


def test_a_checkpoint_database_that_is_down_is_a_tool_error_to_retry():
    from mcp.server.mcpserver.exceptions import ToolError

    from convir.mcp.server import STORE_DOWN, _fixable

    PoolTimeout = type("PoolTimeout", (Exception,), {"__module__": "psycopg_pool"})

    def store_down():
        raise RuntimeError("turn failed") from PoolTimeout("couldn't get a connection")

    with pytest.raises(ToolError, match=STORE_DOWN):
        _fixable(store_down)
    with pytest.raises(ZeroDivisionError):  # a bug stays a bug (the SDK logs it)
        _fixable(lambda: 1 / 0)
