"""MCP fixtures: a 60-image testbed folder indexed with its captions (the path a user's own
folder takes), built once per session, and an agent over it in this process.

A conftest cannot skip, so each test module skips itself without the MCP SDK
(``pytest.importorskip("mcp.server.mcpserver")``).
"""

import pytest

from convir.models.embedder import TESTBED_CHECKPOINT


@pytest.fixture(scope="session")
def gallery_index(tmp_path_factory):
    """The index file of a 60-image testbed folder, captions from its captions.jsonl."""
    from convir.index.cli import build_index
    from convir.testbed.gallery import write_gallery
    from convir.testbed.world import World

    assert TESTBED_CHECKPOINT.exists(), f"shipped asset missing: {TESTBED_CHECKPOINT}"
    root = tmp_path_factory.mktemp("mcp-gallery")
    write_gallery(World(seed=0, size=60), root, 64, progress=False)
    out = root / "gallery.index"
    build_index(root, out, captions=root / "captions.jsonl", progress=False)
    return out


@pytest.fixture(scope="session")
def loaded_agent(gallery_index):
    """``convir.load_agent`` on the gallery, conversations in memory (one per test run)."""
    from convir import load_agent

    return load_agent(gallery_index)
