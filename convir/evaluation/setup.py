"""What one benchmark gives every system of a run (a module of its own so that each
benchmark's setup, ``experiment`` and ``captions_benchmark`` alike, can build one without
importing the other)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convir.evaluation.user_protocol import SimulatedUser
    from convir.gallery.resources import Resources


@dataclass
class Setup:
    """What one benchmark gives every system: gallery, dialogues and a fresh user each."""

    resources: Resources
    dialogue_ids: list[str]
    new_user: Callable[[], SimulatedUser]
    concat_questions: str  # the text baseline's questioner
    agent_questions: str | None  # the summary's "questions" of agents; None: the mode
    title: str
