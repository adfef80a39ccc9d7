"""Simulated users: who opens a dialogue, answers the system's questions, and knows the target.

Evaluation needs a user that behaves the same however dialogues are scheduled, so every
random choice is drawn from a generator seeded by ``(seed, dialogue id)``: running dialogues
in another order, or on eight threads at once, gives the same openings and answers.

* :class:`TestbedUser` opens with a partial caption of a testbed scene and answers from the
  scene's attributes (the testbed oracle), exactly or with a given error rate: template
  questions in the oracle's words, any other question among the options it came with.
* :class:`ReplayUser` replays recorded ChatIR dialogues: it ignores the question it is asked
  and gives the answer part of the next recorded ``question? answer`` turn; asked nothing,
  it volunteers the whole recorded turn (ChatIR's fixed-dialogue protocol).
* :class:`LLMUser` answers from the target's caption with a language model (prompt
  ``user_answer``), for real-image benchmarks where no attributes exist.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from convir.errors import InputError, LLMError

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL import Image

    from convir.models.llm import LLM
    from convir.testbed.oracle import Oracle
    from convir.testbed.world import World

log = logging.getLogger(__name__)

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


def _lookup(mapping: Mapping[str, object], dialogue_id: str, what: str) -> object:
    try:
        return mapping[dialogue_id]
    except KeyError:
        raise InputError(
            f"no {what} for dialogue {dialogue_id!r} ({len(mapping)} dialogues known); "
            "run only the dialogue ids the user was built with"
        ) from None


class TestbedUser:
    """Looks for testbed scene ``targets[dialogue_id]``; answers via the testbed oracle.

    ``error_rate`` is the probability that an answerable question gets a plausible wrong
    answer. Each dialogue has its own oracle (noise stream), so answers in one dialogue do
    not depend on how many questions other dialogues asked before it.
    """

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
        return int(_lookup(self.targets, dialogue_id, "target scene"))  # type: ignore[call-overload]

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


class ReplayUser:
    """Replays recorded dialogues: ``dialogues[id] = [caption, "question? answer", ...]``.

    The opening is the caption; the n-th answer is the answer part of recorded turn n
    whatever the system asked, and ``"i don't know"`` once the record runs out. A system
    that asks nothing gets the whole recorded turn n (:meth:`volunteer`), the recorded
    question with its answer, as ChatIR's fixed-dialogue evaluation of retrievers does.
    Answers and volunteered turns share one counter: either way turn n is used once.
    """

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
        turns = _lookup(self.dialogues, dialogue_id, "recorded dialogue")
        with self._lock:
            self._answered[dialogue_id] = 0  # a new opening restarts the replay
        return turns[0], None  # type: ignore[index]

    def _next_turn(self, dialogue_id: str) -> str | None:
        turns: list[str] = _lookup(self.dialogues, dialogue_id, "recorded dialogue")  # type: ignore[assignment]
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
        return str(_lookup(self.targets, dialogue_id, "target image"))


class LLMUser:
    """Answers from the target's caption with a language model (prompt ``user_answer``).

    The opening is ``openings[id]`` when given (e.g. a partial caption), else the caption
    itself (ChatIR's round 0). An :class:`~convir.errors.LLMError` becomes ``"i don't
    know"`` with a warning, so one failed call costs one answer, not the whole run.
    """

    def __init__(
        self,
        llm: LLM,
        captions: Mapping[str, str],
        targets: Mapping[str, str] | None = None,
        openings: Mapping[str, str] | None = None,
    ) -> None:
        self.llm = llm
        self.captions = dict(captions)
        self.targets = dict(targets or {})
        self.openings = dict(openings or {})

    def opening(self, dialogue_id: str) -> tuple[str, str | None]:
        if dialogue_id in self.openings:
            return self.openings[dialogue_id], None
        return str(_lookup(self.captions, dialogue_id, "target caption")), None

    def answer(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        from convir.prompts import load_prompt

        caption = str(_lookup(self.captions, dialogue_id, "target caption"))
        text = load_prompt("user_answer").render(caption=caption, question=question)
        return self._reply(dialogue_id, text)

    def _reply(self, dialogue_id: str, content: str | list[dict]) -> str:
        """The first line of the model's reply to one user message; "i don't know" when the
        model fails or says nothing."""
        try:
            reply = self.llm.complete([{"role": "user", "content": content}])
        except LLMError as exc:
            log.warning(
                "simulated user (dialogue %s): LLM failed, answering %r: %s",
                dialogue_id,
                UNKNOWN,
                exc,
            )
            return UNKNOWN
        lines = str(reply).strip().splitlines()
        return lines[0].strip().strip('"') if lines else UNKNOWN

    def target(self, dialogue_id: str) -> str:
        return str(_lookup(self.targets, dialogue_id, "target image"))


class VLMUser(LLMUser):
    """Answers from the target *image* with a vision-language model (ChatIR's BLIP-2
    answerer role), through the same OpenAI-compatible client: the image goes as an
    ``image_url`` part, with the question and its options (prompt ``user_answer_image``).

    ``images[id]`` loads the target image; the opening is ``openings[id]`` (e.g. a recorded
    caption). An :class:`~convir.errors.LLMError` becomes ``"i don't know"``.
    """

    def __init__(
        self,
        llm: LLM,
        images: Mapping[str, Callable[[], Image.Image]],
        openings: Mapping[str, str],
        targets: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(llm, dict(openings), targets, openings)
        self.images = dict(images)

    def answer(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        from convir.models.llm import image_part
        from convir.prompts import load_prompt

        image = _lookup(self.images, dialogue_id, "target image")()  # type: ignore[operator]
        hint = f"Suggested answers: {', '.join(options)}." if options else ""
        text = load_prompt("user_answer_image").render(question=question, options=hint)
        content = [{"type": "text", "text": text}, image_part(image)]
        return self._reply(dialogue_id, content).lower()


__all__ = [
    "SimulatedUser",
    "VolunteeringUser",
    "TestbedUser",
    "ReplayUser",
    "LLMUser",
    "VLMUser",
    "dialogue_seed",
    "UNKNOWN",
]


class ComposedUser(TestbedUser):
    """Opens with a reference image and an edit (a testbed triplet), then answers like
    :class:`TestbedUser` about the edited target. ``targets`` maps dialogue ids to the
    scene index of an edited scene (one of ``world.edited_indices()``)."""

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
        triplet = _lookup(self._triplets, dialogue_id, "triplet")
        return triplet.text, triplet.reference  # type: ignore[attr-defined]
