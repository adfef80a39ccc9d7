"""Testbed resources shared by the agent tests: 300 scenes, the shipped CLIP, no generator."""

import pytest

from convir.agents.resources import Resources


@pytest.fixture(scope="session")
def testbed() -> Resources:
    return Resources.for_testbed(300, seed=0, generator=False, progress=False)
