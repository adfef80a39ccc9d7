"""``convir eval run --ray``: spread the dialogues over Ray actors, merge them in order.

Each actor calls ``build()`` once, which makes its own gallery, systems and user (models
and the index are too big, and too full of locks and lambdas, to ship between processes),
then runs :func:`~convir.evaluation.loop.run_dialogues` on the contiguous chunk of
dialogue ids it is given. Every dialogue is seeded by its own id, so a dialogue gives the
same records wherever it runs, and concatenating the chunks in order gives the same run file
as one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.evaluation.loop import RunRecord
    from convir.evaluation.user_protocol import SimulatedUser

# What ``build()`` returns: the systems by label, and a factory of fresh users.
WorkerSetup = tuple[Mapping[str, Any], Callable[[], "SimulatedUser"]]


class DialogueWorker:
    """One Ray actor: builds the systems once, then runs chunks of dialogues on request."""

    def __init__(self, build: Callable[[], WorkerSetup]) -> None:
        self.systems, self.new_user = build()

    def run(
        self, label: str, dialogue_ids: list[str], rounds: int, workers: int
    ) -> list[RunRecord]:
        """Rounds 0..``rounds`` of each dialogue in the chunk, in order."""
        from convir.evaluation.loop import run_dialogues

        if label not in self.systems:
            raise InputError(f"this worker has no system {label!r}; it has {list(self.systems)}")
        user = self.new_user()
        return run_dialogues(self.systems[label], user, dialogue_ids, rounds, workers, False)


def chunks(items: Sequence[str], parts: int) -> list[list[str]]:
    """``items`` cut into at most ``parts`` contiguous, near-equal, non-empty pieces."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for n in range(parts):
        end = start + size + (n < extra)
        out.append(list(items[start:end]))
        start = end
    return out


def run_systems_ray(
    build: Callable[[], WorkerSetup],
    labels: Sequence[str],
    dialogue_ids: Sequence[str],
    rounds: int,
    *,
    actors: int,
    workers: int = 1,
    num_gpus: float = 0,
) -> Iterator[tuple[str, list[RunRecord], float]]:
    """For each label in turn: ``(label, records in dialogue order, seconds)``.

    ``actors`` Ray actors (at most one per dialogue) each call the picklable ``build`` once;
    ``workers`` threads run dialogues inside each actor. Needs a Ray connection
    (:func:`convir.ray_cluster.ray_cluster`). The actors are killed when the generator ends.
    """
    import ray

    if actors < 1:
        raise InputError(f"--ray-actors must be at least 1, got {actors}")
    if not ray.is_initialized():
        raise InputError("run_systems_ray needs a Ray connection; open one with ray_cluster()")
    pieces = chunks([str(d) for d in dialogue_ids], actors)
    remote = ray.remote(num_cpus=1, num_gpus=num_gpus)(DialogueWorker)
    pool = [remote.remote(build) for _ in pieces]
    try:
        for label in labels:
            start = time.perf_counter()
            refs = [
                a.run.remote(label, ids, rounds, workers)
                for a, ids in zip(pool, pieces, strict=True)
            ]
            records = [rec for part in ray.get(refs) for rec in part]  # refs keep chunk order
            yield label, records, time.perf_counter() - start
    finally:
        for actor in pool:
            ray.kill(actor)
