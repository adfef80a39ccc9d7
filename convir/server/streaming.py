"""Server-Sent Events for one turn: each finished graph node, then the turn's result.

The turn runs in its own thread and hands events over through a queue, so it always runs
to the end and releases its session, even when the client goes away halfway (a half-run
turn would leave the conversation's checkpoint between two nodes).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from convir.errors import ConvirError

_DONE = object()


def sse(event: str, data: dict) -> str:
    """One SSE message; ``data`` is one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def node_summary(node: str, update: dict, top: int) -> dict:
    """What a client wants from a node's update (not e.g. generated image embeddings)."""
    out: dict[str, Any] = {"node": node, "transcript": list(update.get("transcript", []))}
    if "candidates" in update:
        out["top"] = list(update["candidates"])[:top]
    if "query" in update:
        out["query"] = update["query"]
    return out


def run_turn(
    events: Iterator[Any],
    finish: Callable[[Any], dict],
    release: Callable[[], None],
    top: int,
    first: dict | None = None,
    first_after: int = 0,
) -> Iterator[str]:
    """Consume ``events`` in a worker thread; yield SSE text as they arrive.

    ``finish`` turns the final TurnResult into the ``result`` event's data; ``release``
    frees the session once the turn has ended, whatever happened; ``first`` (e.g. the new
    session's id) is sent before anything else, held back until ``first_after`` node events
    were produced (or the turn ended): with synchronous checkpoints, the second node's event
    proves the first step was saved.
    """
    handoff: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            last = None
            for event in events:
                if isinstance(event, tuple):
                    handoff.put(sse("node", node_summary(event[0], event[1], top)))
                else:
                    last = event
            handoff.put(sse("result", finish(last)))
        except ConvirError as exc:
            handoff.put(sse("error", {"detail": str(exc)}))
        except Exception as exc:  # reported to the client, not swallowed: the log has it too
            import logging

            logging.getLogger(__name__).exception("turn failed")
            handoff.put(
                sse(
                    "error",
                    {"detail": f"the turn failed ({type(exc).__name__}); see the server log"},
                )
            )
        finally:
            release()
            handoff.put(_DONE)

    threading.Thread(target=work, name="convir-turn", daemon=True).start()

    def relay() -> Iterator[str]:
        held: list[str] = []
        pending = first is not None
        while (item := handoff.get()) is not _DONE:
            if pending:
                held.append(item)
                if len(held) < first_after and item.startswith("event: node"):
                    continue
                yield sse("session", first)  # type: ignore[arg-type]
                pending = False
                yield from held
                continue
            yield item
        if pending:
            yield sse("session", first)  # type: ignore[arg-type]
            yield from held

    return relay()
