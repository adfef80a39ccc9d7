"""Testbed users: they know a testbed scene through the oracle (:class:`TestbedUser`) or open
with a reference image and an edit of it (:class:`ComposedUser`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from convir.errors import InputError
from convir.evaluation.user_protocol import UNKNOWN, dialogue_seed, lookup

if TYPE_CHECKING:
    from convir.testbed.oracle import Oracle
    from convir.testbed.world import World


class TestbedUser:
    """Looks for testbed scene ``targets[dialogue_id]``; answers via the testbed oracle.

    ``error_rate`` is the probability that an answerable question gets a plausible wrong
    answer. Each dialogue has its own oracle (noise stream), so answers in one dialogue do
    not depend on how many questions other dialogues asked before it.
    """

    __module__ = "convir.evaluation.users"  # the public home config.json records

    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self,
        world: World,
        targets: Mapping[str, int],
        error_rate: float = 0.0,
        seed: int = 0,
        gallery_ids: Sequence[str] | None = None,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise InputError(f"error rate must be in [0, 1], got {error_rate}")
        bad = {d: i for d, i in targets.items() if not 0 <= i < len(world)}
        if bad:
            d, i = next(iter(bad.items()))
            raise InputError(
                f"dialogue {d!r} targets scene {i}, outside the world's {len(world)} scenes; "
                "draw targets from range(gallery size)"
            )
        self.world = world
        self.targets = dict(targets)
        self.error_rate = error_rate
        self.seed = seed
        self.gallery_ids = list(gallery_ids) if gallery_ids is not None else None
        self.unknown = 0  # questions answered "i don't know" (reported by evaluations)
        self.answered = 0
        self._oracles: dict[str, Oracle] = {}
        self._lock = threading.Lock()

    def _scene_index(self, dialogue_id: str) -> int:
        return int(lookup(self.targets, dialogue_id, "target scene"))  # type: ignore[call-overload]

    def opening(self, dialogue_id: str) -> tuple[str, str | None]:
        from convir.testbed.captions import partial_caption

        scene = self.world.scene(self._scene_index(dialogue_id))
        rng = np.random.default_rng(dialogue_seed(self.seed, dialogue_id, 0))
        return partial_caption(scene, rng), None

    def answer(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        from convir.testbed.oracle import Oracle

        scene = self.world.scene(self._scene_index(dialogue_id))
        with self._lock:
            oracle = self._oracles.get(dialogue_id)
            if oracle is None:
                oracle = Oracle(self.error_rate, dialogue_seed(self.seed, dialogue_id, 1))
                self._oracles[dialogue_id] = oracle
        said = oracle.answer(scene, question, options)
        with self._lock:
            self.answered += 1
            self.unknown += said == UNKNOWN
        return said

    def target(self, dialogue_id: str) -> str:
        """The target's gallery id: its scene id, or ``gallery_ids[scene]`` for a gallery
        indexed from files (``--via-index``: ids are relative paths)."""
        index = self._scene_index(dialogue_id)
        if self.gallery_ids is not None:
            return self.gallery_ids[index]
        return self.world.scene(index).id


class ComposedUser(TestbedUser):
    """Opens with a reference image and an edit (a testbed triplet), then answers like
    :class:`TestbedUser` about the edited target. ``targets`` maps dialogue ids to the
    scene index of an edited scene (one of ``world.edited_indices()``)."""

    __module__ = "convir.evaluation.users"  # the public home config.json records

    def __init__(
        self, world: World, targets: Mapping[str, int], error_rate: float = 0.0, seed: int = 0
    ) -> None:
        from convir.testbed.edits import triplet_for

        super().__init__(world, targets, error_rate, seed)
        self._triplets = {d: triplet_for(world, i, seed) for d, i in self.targets.items()}
        unedited = [d for d, t in self._triplets.items() if t is None]
        if unedited:
            raise InputError(
                f"dialogue {unedited[0]!r}: scene {self.targets[unedited[0]]} is not an edit of "
                "another scene; draw composed targets from world.edited_indices()"
            )

    def opening(self, dialogue_id: str) -> tuple[str, str | None]:
        triplet = lookup(self._triplets, dialogue_id, "triplet")
        return triplet.text, triplet.reference  # type: ignore[attr-defined]
