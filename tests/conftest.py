"""Fixtures shared across test folders."""

import pytest

from convir.gallery.resources import Resources
from convir.testbed.resources import testbed_resources
from convir.testbed.world import World


@pytest.fixture(scope="session")
def ray_local():
    """One small local Ray cluster for the whole session (2 CPUs: room for 2 actors).

    Skipped when Ray is not installed: it is the optional extra ``convir[ray]``, left out of
    ``[test]`` to keep CI installs short.
    """
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def testbed() -> Resources:
    """Testbed resources shared by the agent, gallery and tool tests: 300 scenes, the
    shipped CLIP, no generator."""
    return testbed_resources(300, seed=0, generator=False, progress=False)


@pytest.fixture(scope="session")
def world() -> World:
    """The world behind ``testbed`` (what only the simulated user and the tests may read)."""
    return World(seed=0, size=300)
