"""The testbed's own question templates as a question bank (a plugin, kept for comparison).

The agent never imports this module: the testbed's entry points (``convir demo``, ``convir
eval run`` without ``--via-index``) hand a :class:`TemplateBank` to the agent the way a user
would hand in their own bank. Its questions are the oracle's templates, with every answer
the oracle can give as the options.
"""

from __future__ import annotations

import re

from convir.gallery.questions import Askable, Candidates
from convir.testbed.captions import NUMBER_WORDS, article
from convir.testbed.oracle import Question
from convir.testbed.world import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES


def options_for_testbed(q: Question) -> tuple[str, ...]:
    """Every answer the testbed oracle can give to ``q`` (single-object answers)."""
    if q.kind == "count":
        return tuple(NUMBER_WORDS[1:5])
    if q.kind == "background":
        return tuple(BACKGROUNDS)
    if q.kind == "colour_of":
        return (*COLOURS, f"there is no {q.shape}")
    if q.kind == "shape_at":
        return (*(article(s) for s in SHAPES), "nothing is there")
    if q.kind == "colour_at":
        return (*(f"{c} {s}" for c in COLOURS for s in SHAPES), "nothing is there")
    if q.kind == "where":
        return (*(f"at the {p}" for p in POSITIONS), f"there is no {q.colour} {q.shape}")
    if q.kind == "size_of":
        return (*SIZES, f"there is no {q.colour} {q.shape}")
    return ("yes", "no")


def mentioned_objects(text: str) -> list[tuple[str, str]]:
    """(colour, shape) pairs named in ``text``, e.g. 'a small red circle' -> ('red', 'circle')."""
    pattern = rf"\b({'|'.join(COLOURS)})\s+(?:\w+\s+)?({'|'.join(SHAPES)})s?\b"
    return list(dict.fromkeys(re.findall(pattern, text.lower().replace("grey", "gray"))))


def menu_for_testbed(dialogue: list[str]) -> list[Askable]:
    """The template questions worth asking about this dialogue, with their options.

    Adds ``where`` / ``size_of`` questions about the objects the dialogue names to the
    general ones (count, background, per-cell shape and colour, colour per shape).
    """
    qs: list[Question] = [Question(kind="count"), Question(kind="background")]
    for colour, shape in mentioned_objects(" ".join(dialogue)):
        qs += [
            Question(kind="where", colour=colour, shape=shape),
            Question(kind="size_of", colour=colour, shape=shape),
        ]
    qs += [Question(kind="colour_of", shape=s) for s in SHAPES]
    qs += [Question(kind=k, position=p) for k in ("shape_at", "colour_at") for p in POSITIONS]
    return [Askable(q.text, options_for_testbed(q)) for q in qs]


class TemplateBank:
    """:func:`menu_for_testbed` as a :class:`~convir.gallery.questions.QuestionBank`."""

    def menu(self, dialogue: list[str], candidates: Candidates) -> list[Askable]:
        return menu_for_testbed(dialogue)
