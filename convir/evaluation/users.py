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
* :class:`CaptionUser` opens with one caption of a caption dataset's item and answers from
  its captions by a word-matching rule of its own (not the agent's reader), optionally noisy.
* :class:`LLMUser` answers from the target's caption with a language model (prompt
  ``user_answer``), for real-image benchmarks where no attributes exist.

This module is the users' public home; each family lives in a module of its own
(``testbed_users``, ``replay_user``, ``llm_users``, ``caption_user``) beside the protocol
(``user_protocol``). The classes report this module as theirs, so a run's ``config.json``
names ``convir.evaluation.users.TestbedUser`` wherever the code sits.
"""

from __future__ import annotations

from convir.evaluation.caption_user import CaptionUser, caption_word, content_words
from convir.evaluation.llm_users import LLMUser, VLMUser
from convir.evaluation.replay_user import ReplayUser
from convir.evaluation.testbed_users import ComposedUser, TestbedUser
from convir.evaluation.user_protocol import (
    UNKNOWN,
    SimulatedUser,
    VolunteeringUser,
    dialogue_seed,
)

__all__ = [
    "SimulatedUser",
    "VolunteeringUser",
    "TestbedUser",
    "ComposedUser",
    "ReplayUser",
    "LLMUser",
    "VLMUser",
    "CaptionUser",
    "caption_word",
    "content_words",
    "dialogue_seed",
    "UNKNOWN",
]
