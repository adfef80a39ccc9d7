"""One deadline per request for waiting on the checkpoint database.

A request may read and write its conversation several times (check it exists, read it,
run the turn, save each step); each of those takes a connection from the Postgres pool.
With a per-wait timeout, a request made while the database is down waited once per read:
up to three times the pool's timeout. Here the waits share one budget: the server opens a
:func:`wait_budget` around each request, :class:`BudgetedPool` charges every wait for a
connection to it, and once it is spent the next wait fails at once (``PoolTimeout``, which
the server answers with 503). Work done between the waits is not charged: a slow turn
against a healthy database never runs out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_BUDGET: ContextVar[list[float] | None] = ContextVar("convir_wait_budget", default=None)


@contextmanager
def wait_budget(seconds: float) -> Iterator[None]:
    """Everything inside (threads started from it included: Starlette copies the context)
    waits at most ``seconds`` in total for database connections."""
    token = _BUDGET.set([float(seconds)])
    try:
        yield
    finally:
        _BUDGET.reset(token)


def budgeted_pool_class() -> type:
    """``psycopg_pool.ConnectionPool`` whose waits are charged to the current budget."""
    from psycopg_pool import ConnectionPool, PoolTimeout

    class BudgetedPool(ConnectionPool):  # type: ignore[misc, type-arg]
        def getconn(self, timeout: float | None = None) -> Any:
            budget = _BUDGET.get()
            if budget is None:
                return super().getconn(timeout)
            if budget[0] <= 0:
                raise PoolTimeout("this request spent its wait for the database")
            allowed = min(self.timeout if timeout is None else timeout, budget[0])
            start = time.monotonic()
            try:
                return super().getconn(allowed)
            finally:
                budget[0] -= time.monotonic() - start

    return BudgetedPool
