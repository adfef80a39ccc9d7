"""The replayed user: recorded ChatIR dialogues, turn by turn, whatever the system asks."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from convir.errors import InputError
from convir.evaluation.user_protocol import UNKNOWN, lookup


class ReplayUser:
    """Replays recorded dialogues: ``dialogues[id] = [caption, "question? answer", ...]``.

    The opening is the caption; the n-th answer is the answer part of recorded turn n
    whatever the system asked, and ``"i don't know"`` once the record runs out. A system
    that asks nothing gets the whole recorded turn n (:meth:`volunteer`), the recorded
    question with its answer, as ChatIR's fixed-dialogue evaluation of retrievers does.
    Answers and volunteered turns share one counter: either way turn n is used once.
    """

    __module__ = "convir.evaluation.users"  # the public home config.json records

    def __init__(
        self, dialogues: Mapping[str, Sequence[str]], targets: Mapping[str, str] | None = None
    ) -> None:
        empty = [d for d, turns in dialogues.items() if not turns]
        if empty:
            raise InputError(f"dialogue {empty[0]!r} has no turns; it needs at least a caption")
        self.dialogues = {d: list(turns) for d, turns in dialogues.items()}
        self.targets = dict(targets or {})
        self._answered: dict[str, int] = {}
        self._lock = threading.Lock()

    def opening(self, dialogue_id: str) -> tuple[str, str | None]:
        turns = lookup(self.dialogues, dialogue_id, "recorded dialogue")
        with self._lock:
            self._answered[dialogue_id] = 0  # a new opening restarts the replay
        return turns[0], None  # type: ignore[index]

    def _next_turn(self, dialogue_id: str) -> str | None:
        turns: list[str] = lookup(self.dialogues, dialogue_id, "recorded dialogue")  # type: ignore[assignment]
        with self._lock:
            n = self._answered.get(dialogue_id, 0) + 1
            self._answered[dialogue_id] = n
        return turns[n] if n < len(turns) else None

    def answer(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        from convir.models.refiner import split_turn

        turn = self._next_turn(dialogue_id)
        return UNKNOWN if turn is None else split_turn(turn)[1] or UNKNOWN

    def volunteer(self, dialogue_id: str) -> str | None:
        """The next recorded turn as recorded (``"question? answer"``); None after the last."""
        return self._next_turn(dialogue_id)

    def target(self, dialogue_id: str) -> str:
        return str(lookup(self.targets, dialogue_id, "target image"))
