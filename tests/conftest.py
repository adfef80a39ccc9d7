"""Fixtures shared across test folders."""

import pytest


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
