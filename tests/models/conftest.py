"""Fixtures for the model backends: a scripted OpenAI-compatible server for the LLM client."""

import pytest
from llm_server import ScriptedServer  # tests/ is on pytest's pythonpath (pyproject.toml)


@pytest.fixture
def llm_server():
    """A running ScriptedServer with an empty script; tests push() their replies."""
    with ScriptedServer() as server:
        yield server
