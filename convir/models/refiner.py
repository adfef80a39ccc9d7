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


_SUBJECTS = {
    "he": "a man",
    "she": "a woman",
    "they": "people",
    "anyone": "someone",
    "anybody": "someone",
    "this": "",
    "that": "",
    "you": "",
    "it": "",
    "i": "",
}
_VAGUE_START = re.compile(r"^(?:any|some|there|you (?:see|tell)|we see|see|a lot of|lots of)\s+")
# A person hedging: no fact either way.
_UNSURE = re.compile(
    r"\b(can'?t|cannot|can not|couldn'?t|unable to|hard to|difficult to|not sure|no idea|"
    r"don'?t know|unclear|not visible|not clear)\b"
)
# A person agreeing in other words.
_SO = re.compile(
    r"^(?:i think so|i believe so|it appears so|appears so|seems so|looks like it|i guess so|probably)\b"
)
# Openers that carry nothing ("it's red" says "red").
_FILLER = re.compile(
    r"^(?:(?:yes|yeah|yep|well|i think|i'd say|i would say|it looks like|looks like|"
    r"it seems|it appears|it looks|looks|seems|appears|i can see|you can see|there are|there is|"
    r"there's|it's|it is|they're|they are|he's|he is|she's|she is|its|mostly|just|only|maybe)"
    r"[,\s]+)+"
)
_META = re.compile(
    r"^(?:an? |the )?(?:photo|picture|image|pic|photograph|shot)\b|^(?:an? )?(?:in )?colou?r\b"
)
# A listing after a colon ("what colour is the bus: red, white or blue") offers options; the
# question proper is before it.
_LISTING = re.compile(r":[^:]*$")


_DOUBT = re.compile(r"^(i don'?t know|not sure|unknown|no idea|maybe|hard to say)\b")


def is_unsure(answer: str) -> bool:
    """A reply that gives no evidence either way ("not sure", "i can't tell", "maybe")."""
    return bool(_UNSURE.search(answer) or _DOUBT.match(answer))


def is_yes(answer: str) -> bool:
    """A reply that agrees ("yes", "yeah, it is", "i think so")."""
    return bool(_YES.match(answer) or _SO.match(answer))


def is_no(answer: str) -> bool:
    """A reply that denies ("no", "nope", "there is no ...")."""
    return bool(_NEGATIVE.match(answer))


def strip_filler(answer: str) -> str:
    """A reply without the openers that carry nothing ("it's red" -> "red")."""
    return _FILLER.sub("", answer)


def turn_to_fact(question: str, answer: str) -> str | None:
    """One positive, self-contained fact from a question and its answer, or None.

    Written as a noun phrase the text encoder reads as a description ("a red bus", "a dog
    running", "a woman wearing a skirt"), never a question's fragment. A "no" carries no
    positive fact, unless it goes on to say what is there instead ("no, a cat" -> "a cat").
    """
    q, a = question.lower().strip(), answer.lower().strip().rstrip(".!")
    if not a:
        return None
    corrected = re.match(
        r"^no\b[,;:]?\s*(?:it'?s |it is |there is |there'?s )?(?P<x>(?:an?|the|two|three) .+)$", a
    )
    if corrected and not _NEGATIVE.match(corrected["x"]):
        return _as_noun_phrase(corrected["x"])
    if _NEGATIVE.match(a) or _UNSURE.search(a):
        return None
    if _SO.match(a):
        a = "yes"
    listed = _LISTING.search(q)
    if listed:  # an offered choice: a chosen option states the whole fact ("red bus")
        if len(a.split()) > 1:
            return a
        q = q[: listed.start()].strip()  # a one-word answer ("blue") reads with the question
    rules: list[tuple[str, str]] = [
        (r"^how many (?:objects|shapes|things) are there$", "{a} objects"),
        (r"^what colou?r is the background$", "on a {a} background"),
        (r"^what colou?r is the (?:object|shape|thing) at the (?P<p>.+)$", "a {a} at the {p}"),
        (r"^what shape is at the (?P<p>.+)$", "{a} at the {p}"),
        (r"^what colou?r (?:is|are) (?:the|his|her|their|its) (?P<x>.+)$", "{a} {x}"),
        (r"^where is the (?P<x>.+)$", "a {x} {a}"),
        (r"^is the (?P<x>.+) (?:large|big) or (?:small|little)$", "a {a} {x}"),
        (r"^what is the (?P<x>.+) doing$", "a {x} {a}"),
        (
            r"^how many (?P<x>[a-z]+)(?: are there| can you see| do you see| are visible)?$",
            "{a} {x}",
        ),
    ]
    # the templates expect terse answers ("red", "a star", "at the top left"), not sentences
    if q.startswith("which "):  # a multiple-choice question: the chosen option is the fact
        return a
    if not _YES.match(a):
        a = _FILLER.sub("", a).strip(" ,") or a  # "it's red" -> "red"
    terse = len(a.split()) <= 5 and a.split()[0] not in _PRONOUNS
    for pattern, template in rules if terse else []:
        m = re.match(pattern, q)
        if m:
            if m.groupdict().get("x") and m["x"] in a.split():  # "3 towels" says it all
                return a
            fact = template.format(a=a, **m.groupdict())
            return "one object" if fact == "one objects" else fact
    if _YES.match(a):
        fact = _statement(q)
        return None if fact is None or _META.match(fact) else fact
    if not q:
        return a
    # A free-form answer (VisDial style, "a train that is coming in"): kept when it reads on
    # its own as a description (not a pronoun's clause, not the picture itself).
    if len(a.split()) < 3 or a.split()[0] in _PRONOUNS or _META.match(a):
        return None
    return a


def _statement(q: str) -> str | None:
    """What a yes/no question claims, as a noun phrase: "is there a red circle" -> "a red
    circle"; "is the bus red" -> "a red bus"; "is she wearing a skirt" -> "a woman wearing
    a skirt"; "is it sunny" -> "sunny"."""
    rest = re.sub(r"^(is|are) there\s+", "", q)
    verb = _AUX.match(rest + " ")
    rest = _AUX.sub("", rest)
    while _VAGUE_START.match(rest):
        rest = _VAGUE_START.sub("", rest, count=1)
    parts = rest.split()
    if not parts:
        return None
    if verb and verb.group(1) in ("does", "do") and ("have" in parts or "has" in parts):
        k = parts.index("have") if "have" in parts else parts.index("has")
        parts = [*parts[:k], "with", *parts[k + 1 :]]  # "does he have a hat" -> "a man with a hat"
    if parts[0] in _SUBJECTS:
        parts = [*_SUBJECTS[parts[0]].split(), *parts[1:]]
    text = " ".join(parts)
    m = re.match(r"^(?:the|this|that) (?P<x>[a-z]+) (?P<adj>[a-z]+)$", text)
    if m and _adjective(m["adj"]):  # "the bus red" -> "a red bus"
        return _as_noun_phrase(f"{m['adj']} {m['x']}")
    return _as_noun_phrase(text) if text else None


_NO_ARTICLE = frozenset(
    "a an some someone something anything nothing anyone people two three four".split()
)


def _as_noun_phrase(text: str) -> str:
    """'the dog running' -> 'a dog running' (a description names any such thing)."""
    text = re.sub(r"^(?:the|this|that|his|her|their|its)\s+", "", text.strip())
    if not text:
        return text
    first = text.split()[0]
    if len(text.split()) == 1 and _adjective(first):  # "is it sunny? yes" -> "sunny"
        return text
    if first in _NO_ARTICLE or first.endswith("s"):
        return text
    return ("an " if first[0] in "aeiou" else "a ") + text


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


def _adjective(word: str) -> bool:
    """Whether a word reads only as an adjective (lemminflect's lexicon; without it, never)."""
    try:
        import lemminflect
    except ImportError:
        return False
    forms = lemminflect.getAllLemmas(word)
    return word in _COLOURS or ("ADJ" in forms and "NOUN" not in forms)


_COLOURS = frozenset(
    "red orange yellow green blue purple pink brown black white gray grey beige gold silver".split()
)
