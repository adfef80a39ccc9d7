"""Connect to a Ray cluster for ``--ray`` commands, and let go of it afterwards.

Ray is an optional extra (``pip install 'convir[ray]'``), so it is imported here, lazily, with
an error that says how to install it. A cluster someone else started (a test fixture, a
notebook, ``ray start``) is used as it is and left running; one started here is shut down.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from convir.errors import InputError

INSTALL_HINT = "pip install 'convir[ray]' (or: pip install 'ray[data]>=2.9')"
ADDRESS_HELP = (  # the --ray-address option of every --ray command
    "--ray: cluster to join, 'auto' or HOST:PORT (default: $RAY_ADDRESS, else a new local cluster)."
)


def require_ray() -> ModuleType:
    """The ``ray`` module, or an :class:`InputError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] part of the extra)
    except ImportError as exc:
        raise InputError(
            f"--ray needs Ray, which is not installed ({exc}); install it with {INSTALL_HINT}, "
            "or leave out --ray to run in this process"
        ) from None
    return ray


@contextmanager
def ray_cluster(address: str | None = None) -> Iterator[ModuleType]:
    """``ray`` connected to ``address`` (None: ``$RAY_ADDRESS`` if set, else a new local
    cluster on this machine; ``auto``: the cluster ``ray start`` runs here).

    Only a connection opened here is closed on exit, so an outer session keeps its cluster.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address!r}" if address else "(local)"
        raise InputError(
            f"could not connect to the Ray cluster {where}: {str(exc).strip()[:200]}; start "
            "one with `ray start --head` and pass --ray-address auto (or its HOST:PORT), or "
            "leave out --ray-address for a local cluster"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_count(ray: ModuleType, resource: str) -> int:
    """How many of ``resource`` (``CPU``, ``GPU``) the connected cluster has in total."""
    return int(ray.cluster_resources().get(resource, 0))
