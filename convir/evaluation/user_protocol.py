"""What every simulated user offers (:class:`SimulatedUser`), and the seeding and lookups the
user families share: one protocol module, so a family needs no other family to exist."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from convir.errors import InputError

UNKNOWN = "i don't know"  # the testbed oracle's own wording


def dialogue_seed(seed: int, dialogue_id: str, stream: int = 0) -> int:
    """A 64-bit seed from ``(seed, dialogue id, stream)``, stable across runs and machines
    (Python's ``hash`` of a str is salted per process, so it cannot be used)."""
    digest = hashlib.sha256(f"{seed}\x00{dialogue_id}\x00{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@runtime_checkable
class SimulatedUser(Protocol):
    """The user side of a simulated dialogue."""

    def opening(self, dialogue_id: str) -> tuple[str, str | None]:
        """The first message and, for composed retrieval, a reference image id (else None)."""
        ...

    def answer(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        """The answer to the system's question (the answer only, not the question);
        ``options`` are the answers the system offered (a user may answer otherwise)."""
        ...

    def target(self, dialogue_id: str) -> str:
        """The gallery id of the image this user is looking for."""
        ...


@runtime_checkable
class VolunteeringUser(SimulatedUser, Protocol):
    """A user who still has something to say when the system asks nothing (a replayed
    dialogue goes on whatever the system does); the dialogue loop sends it as the reply."""

    def volunteer(self, dialogue_id: str) -> str | None:
        """The next message sent unasked, or None when the user has nothing more to say."""
        ...


def lookup(mapping: Mapping[str, object], dialogue_id: str, what: str) -> object:
    """``mapping[dialogue_id]``, or an error that names what is missing and why."""
    try:
        return mapping[dialogue_id]
    except KeyError:
        raise InputError(
            f"no {what} for dialogue {dialogue_id!r} ({len(mapping)} dialogues known); "
            "run only the dialogue ids the user was built with"
        ) from None
