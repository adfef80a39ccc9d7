"""Testbed resources shared by the agent tests: 300 scenes, the shipped CLIP, no generator."""

import pytest

from convir.gallery.resources import Resources
from convir.testbed.resources import testbed_resources
from convir.testbed.world import World


@pytest.fixture(scope="session")
def testbed() -> Resources:
    return testbed_resources(300, seed=0, generator=False, progress=False)


@pytest.fixture(scope="session")
def world() -> World:
    """The world behind ``testbed`` (what only the simulated user and the tests may read)."""
    return World(seed=0, size=300)
