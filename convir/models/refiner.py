"""Query refiners: a dialogue becomes one self-contained description (DAR's first step).

- :class:`TemplateRefiner` needs no model: it turns each question/answer turn into a
  positive fact ("is there a red circle? yes" -> "a red circle"; "what colour is the
  background? white" -> "on a white background") and drops what a dual encoder cannot use
  (negative answers, "i don't know"). Exact for the testbed's question templates, a
  heuristic elsewhere (documented per rule below).
- :class:`LLMRefiner` asks an :class:`~convir.models.llm.LLM` with the versioned
  ``dar_refine`` prompt and falls back to the template refiner when the LLM fails.

A dialogue is ChatIR's shape: ``[caption, "question? answer", ...]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from convir.errors import LLMError

if TYPE_CHECKING:
    from convir.models.llm import LLM

log = logging.getLogger(__name__)

_NEGATIVE = re.compile(
    r"^(no|nope|not really|i don'?t know|not sure|unknown|nothing is there|there is no\b|none\b)"
)
_YES = re.compile(r"^(yes|yeah|yep|correct|right)\b")
_PRONOUNS = {"it", "it's", "its", "they", "he", "she", "i", "there", "this", "that"}
_AUX = re.compile(r"^(is|are|does|do|can|was|were|has|have)\s+")


@runtime_checkable
class Refiner(Protocol):
    def refine(self, dialogue: Sequence[str]) -> str: ...


def is_yes_no(question: str) -> bool:
    """Whether a question opens like a yes/no question ("is ...", "does ...", "can ...")."""
    return bool(_AUX.match(question.lower().strip() + " "))


def split_turn(turn: str) -> tuple[str, str]:
    """'question? answer' -> (question, answer); a turn without '?' is all answer."""
    q, sep, a = turn.rpartition("?")
    if not sep:
        return "", turn.strip()
    return q.strip(), a.strip()


def turn_to_fact(question: str, answer: str) -> str | None:
    """One positive, self-contained fact from a question and its answer, or None."""
    q, a = question.lower().strip(), answer.lower().strip().rstrip(".")
    if not a or _NEGATIVE.match(a):
        return None
    rules: list[tuple[str, str]] = [
        (r"^how many (?:objects|shapes|things) are there$", "{a} objects"),
        (r"^what colou?r is the background$", "on a {a} background"),
        (r"^what colou?r is the (?:object|shape|thing) at the (?P<p>.+)$", "a {a} at the {p}"),
        (r"^what shape is at the (?P<p>.+)$", "{a} at the {p}"),
        (r"^what colou?r is the (?P<x>.+)$", "{a} {x}"),
        (r"^where is the (?P<x>.+)$", "a {x} {a}"),
        (r"^is the (?P<x>.+) (?:large|big) or (?:small|little)$", "a {a} {x}"),
    ]
    # the templates expect terse answers ("red", "a star", "at the top left"), not sentences
    if q.startswith("which "):  # a multiple-choice question: the chosen option is the fact
        return a
    terse = len(a.split()) <= 5 and a.split()[0] not in _PRONOUNS
    for pattern, template in rules if terse else []:
        m = re.match(pattern, q)
        if m:
            fact = template.format(a=a, **m.groupdict())
            return "one object" if fact == "one objects" else fact
    if _YES.match(a):
        # "is there a red circle (at the top)?" / "is the man wearing a hat?" -> a statement
        statement = re.sub(r"^(is|are) there\s+", "", q)
        statement = _AUX.sub("", statement)
        return statement or None
    if not q:
        return a
    # Heuristic for free-form answers (VisDial style, "it is red"): keep the answer when it
    # reads on its own, else pair it with the question's subject.
    return a if len(a.split()) >= 3 else f"{_AUX.sub('', q)} {a}"


class TemplateRefiner:
    """Caption plus the positive facts of every turn, comma-joined, duplicates removed."""

    def refine(self, dialogue: Sequence[str]) -> str:
        if not dialogue:
            return ""
        parts = [dialogue[0].strip()]
        for turn in dialogue[1:]:
            fact = turn_to_fact(*split_turn(turn))
            if fact and fact not in parts:
                parts.append(fact)
        return ", ".join(p for p in parts if p)


class LLMRefiner:
    """The LLM rewrites the dialogue; on any LLM failure the template refiner answers."""

    def __init__(self, llm: LLM, fallback: Refiner | None = None) -> None:
        self.llm = llm
        self.fallback = fallback or TemplateRefiner()

    def refine(self, dialogue: Sequence[str]) -> str:
        from convir.prompts import load_prompt

        prompt = load_prompt("dar_refine")
        text = "\n".join(f"- {t}" for t in dialogue)
        try:
            reply = self.llm.complete([{"role": "user", "content": prompt.render(dialogue=text)}])
        except LLMError as exc:
            log.warning("LLM refinement failed (%s); using the template refiner", exc)
            return self.fallback.refine(dialogue)
        reply = str(reply).strip().strip('"')
        return reply or self.fallback.refine(dialogue)
