"""Server fixtures: an in-process app on a 200-image testbed (no generator), and a real
``convir serve`` subprocess on a free port for the tests that kill or browse it.

A conftest cannot skip, so each test module skips itself when the server extra is missing
(``pytest.importorskip("fastapi")``).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx
import pytest

from convir.models.embedder import TESTBED_CHECKPOINT


def needs_testbed():
    """The shipped CLIP must be there (tests/testbed/test_shipped_models.py says which file)."""
    assert TESTBED_CHECKPOINT.exists(), f"shipped asset missing: {TESTBED_CHECKPOINT}"


SERVE_GALLERY = ("--gallery-size", "60", "--no-generate", "--strategy", "text")


@pytest.fixture(scope="session")
def server_resources():
    from convir.testbed.resources import testbed_resources

    needs_testbed()
    return testbed_resources(200, 0, generator=False, progress=False)


@pytest.fixture
def make_client(server_resources):
    """``make_client(api_key=None, **agent_config)``: a TestClient around a fresh agent."""
    from fastapi.testclient import TestClient

    from convir.agent import build_agent
    from convir.server.app import create_app

    clients = []

    def make(api_key=None, strategy="text", checkpoint=None, **config):
        agent = build_agent(server_resources, strategy, checkpoint=checkpoint, **config)
        client = TestClient(create_app(agent, server_resources, api_key=api_key))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(*args, env=None, timeout=180):
    """Run ``convir serve ARGS`` on a free loopback port; yield its base URL and process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "convir.cli", "serve", *SERVE_GALLERY, "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"convir serve exited {proc.returncode}: {proc.stderr.read()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code in (200, 401):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("convir serve did not answer /health in time")
            time.sleep(0.3)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()


@pytest.fixture
def serve_cli():
    """The :func:`serve` context manager (tests cannot import a conftest)."""
    needs_testbed()
    return serve
