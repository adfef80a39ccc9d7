"""Question banks: where the clarifying questions come from, for any gallery.

A bank proposes questions for the current dialogue and candidates; every proposal carries
its answer options and the fact each option states, so the answer model can score it and
the answer can rescore the candidates whatever bank it came from. All banks compete on
expected information gain (``ask_clarification``).

- :class:`CaptionBank` (default, no LLM): phrases mined from the candidates' captions
  (metadata or a captioner's) that split the candidates: yes/no questions on one phrase,
  and multiple-choice questions on phrases that differ in one word ("which background:
  white, beige or gray?"). Candidate-aware: what is asked depends on who is still in.
- :class:`VocabularyBank`: for galleries without captions, yes/no questions on concepts
  from a word list (the embedder's own, where it ships one, else :data:`PHOTO_CONCEPTS`).
- :class:`LLMBank`: an LLM sees the dialogue and a few candidates' captions and proposes
  questions with options (PlugIR-style).
- A world's own templates are a plugin (the testbed's: ``convir.testbed.questions``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field

from convir.errors import LLMError
from convir.gallery.clauses import (
    STOPWORDS,
    ClauseIndex,
    _content,
    clauses,
    normalise,
)
from convir.gallery.language import PLACE_WORDS, has_parser
from convir.gallery.parsed_questions import (
    NONE_OPTION,
    Proposal,
    choice_questions,
    dialogue_lemmas,
    proposals,
)

if TYPE_CHECKING:
    from convir.models.llm import LLM

# Common visual concepts for photo galleries (COCO-like objects, scenes, colours).
PHOTO_CONCEPTS: tuple[str, ...] = tuple(
    """person man woman child people dog cat horse bird cow sheep car bus truck bicycle
    motorcycle train boat airplane street road building house tree grass sky water beach
    snow mountain table chair bed couch food pizza cake plate cup phone laptop book clock
    kitchen bathroom bedroom indoors outdoors night red blue green yellow white black""".split()
)


@dataclass(frozen=True)
class Askable:
    """A question the agent may ask: its answer options and the fact each option states.

    ``facts[i]`` is what answering ``options[i]`` says about the target image (None: nothing
    an encoder can embed, e.g. "no"); when ``facts`` is None they are derived from the
    wording (``answers.fact``).
    """

    text: str
    options: tuple[str, ...]
    facts: tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:  # lists in, tuples kept: an Askable is hashable
        object.__setattr__(self, "options", tuple(self.options))
        if self.facts is not None:
            object.__setattr__(self, "facts", tuple(self.facts))

    def to_state(self) -> dict:
        """Plain data for the checkpointed state."""
        return {
            "options": list(self.options),
            "facts": None if self.facts is None else list(self.facts),
        }


@dataclass(frozen=True)
class Candidates:
    """What a bank may look at: the current top candidates, best first."""

    ids: list[str]
    weights: np.ndarray  # posterior over the candidates [N]
    captions: list[str | None]  # a text per candidate (None: the gallery has none for it)

    @classmethod
    def of(
        cls, ids: Sequence[str], scores: np.ndarray, captions: Sequence[str | None] | None
    ) -> Candidates:
        """From logit-scale scores (posterior ``softmax(scores)``) and the gallery's texts."""
        weights = np.exp(scores - scores.max()) if len(scores) else np.ones(0)
        return cls(list(ids), weights, list(captions) if captions else [None] * len(ids))


@runtime_checkable
class QuestionBank(Protocol):
    """Proposes questions (with options and facts) for a dialogue and its candidates."""

    def menu(self, dialogue: list[str], candidates: Candidates) -> list[Askable]: ...


def article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _grams(caption: str, longest: int) -> Iterator[tuple[str, int, str | None]]:
    """Word n-grams (1..longest) inside one clause, not starting or ending with a stopword:
    (phrase, length, the word after it or None at the clause's end)."""
    for words in clauses(caption):
        for n in range(1, longest + 1):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                if gram[0] not in STOPWORDS and gram[-1] not in STOPWORDS:
                    yield " ".join(gram), n, words[i + n] if i + n < len(words) else None


@functools.lru_cache(maxsize=16384)
def _phrases(caption: str, longest: int) -> frozenset[str]:
    """Every mined phrase of a caption (:func:`_grams`)."""
    return frozenset(g for g, _, _ in _grams(caption, longest))


@functools.lru_cache(maxsize=16384)
def _complete(caption: str, longest: int) -> frozenset[str]:
    """The mined phrases of 2+ words that end where a constituent can end: at the end of a
    clause or before a function word ("small red circle" in "small red circle at the top",
    not "small red"). Multiple-choice questions are built from these only."""
    return frozenset(
        g
        for g, n, after in _grams(caption, longest)
        if n >= 2 and (after is None or after in STOPWORDS)
    )


def yes_no_question(phrase: str) -> str:
    """'is there a red circle?'; a place alone: 'is there anything at the top left?'."""
    if phrase.split()[0] in PLACE_WORDS:
        return f"is there anything at the {phrase}?"
    return f"is there {article(phrase)}?"


def _holders(texts: list[str], longest: int) -> dict[str, set[int]]:
    """Every mined phrase and the texts that state it (:class:`ClauseIndex`)."""
    index = ClauseIndex(texts)
    out: dict[str, set[int]] = {}
    for phrase in set().union(*(_phrases(t, longest) for t in texts)):
        who = index.holders(phrase)
        if who:
            out[phrase] = who
    return out


def _entropy(f: float) -> float:
    return 0.0 if f <= 0.0 or f >= 1.0 else -(f * np.log(f) + (1 - f) * np.log(1 - f))


class CaptionBank:
    """Yes/no and multiple-choice questions on what the candidates' captions say.

    With a parser (``convir.gallery.language``), questions are built from parsed phrases
    (``parsed_questions``): things, their attributes, places and actions, and choices only
    among values of one slot. Without one, phrases are mined as word runs (the first
    release's rules). Either way a proposal is kept only if it splits the candidates (its
    fact's holders weigh between ``min_share`` and ``1 - min_share``), one per split (the
    most specific), and the ``size`` best splitters are proposed (the answer model then
    ranks them properly). ``longest``: the longest word run the fallback mines.
    """

    def __init__(self, longest: int = 7, size: int = 24, min_share: float = 0.04) -> None:
        self.longest = longest
        self.size = size
        self.min_share = min_share

    def menu(self, dialogue: list[str], candidates: Candidates) -> list[Askable]:
        rows = [k for k, c in enumerate(candidates.captions) if c]
        if len(rows) < 2:
            return []
        w = candidates.weights[rows] / candidates.weights[rows].sum()
        texts = [candidates.captions[k] or "" for k in rows]
        if has_parser():
            return self._parsed_menu(dialogue, texts, w)
        return self._mined_menu(dialogue, texts, w)

    def _parsed_menu(self, dialogue: list[str], texts: list[str], w: np.ndarray) -> list[Askable]:
        said = dialogue_lemmas(dialogue)
        found: dict[str, Proposal] = {}  # one yes/no wording per fact
        slotted: dict[tuple, Proposal] = {}  # every (slot, value) a choice may offer
        for text in texts:
            for p in proposals(text, said):
                found.setdefault(p.fact, p)
                if p.slot is not None:
                    slotted.setdefault((p.slot, p.value), p)
        index = ClauseIndex(texts)
        share: dict[str, float] = {}
        holders: dict[str, frozenset[int]] = {}
        split: dict[frozenset[int], str] = {}
        stated = set()
        for fact in found:
            if _content(fact) <= said:
                stated.add(fact)
                continue  # the dialogue said it already
            where = index.clauses_stating(fact)
            who = index.rows_of(where)
            holders[fact] = frozenset(where)
            f = float(w[list(who)].sum()) if who else 0.0
            if not self.min_share <= f <= 1 - self.min_share:
                continue
            share[fact] = f
            key = frozenset(who)
            if key not in split or len(_content(fact)) > len(_content(split[key])):
                split[key] = fact
        kept = sorted(split.values(), key=lambda f: -_entropy(share[f]))[: self.size]
        asks = [Askable(found[f].question, ("yes", "no"), (f, None)) for f in kept]
        choices = [
            Askable(text, options, facts)
            for text, options, facts in choice_questions(
                list(slotted.values()), share, holders, frozenset(stated)
            )
            if not _slot_asked(text, dialogue)
        ]
        return choices + asks

    def _mined_menu(self, dialogue: list[str], texts: list[str], w: np.ndarray) -> list[Askable]:
        said = normalise(" ".join(dialogue))
        holders = _holders(texts, self.longest)
        split: dict[frozenset[int], str] = {}  # one phrase per split: the most specific one
        share: dict[str, float] = {}
        for phrase, who in holders.items():
            f = float(w[list(who)].sum())
            if not self.min_share <= f <= 1 - self.min_share or f" {phrase} " in f" {said} ":
                continue
            key = frozenset(who)
            if key not in split or len(phrase.split()) > len(split[key].split()):
                split[key] = phrase
            share[phrase] = f
        kept = sorted(split.values(), key=lambda p: -_entropy(share[p]))[: self.size]
        asks = [Askable(yes_no_question(p), ("yes", "no"), (p, None)) for p in kept]
        complete = set().union(*(_complete(t, self.longest) for t in texts))
        return _choices([p for p in share if p in complete], share) + asks


def _choices(phrases: list[str], share: dict[str, float], most: int = 6) -> list[Askable]:
    """Multiple-choice questions: phrases equal but for one word ("{x} background")."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for p in phrases:
        words = p.split()
        if len(words) < 2:
            continue
        for i in range(len(words)):
            if i + 1 < len(words) and words[i + 1] in STOPWORDS:
                continue  # "{} on a white background": the choice would be a dangling word
            slot = (*words[:i], "{}", *words[i + 1 :])
            groups.setdefault(slot, []).append(words[i])
    out = []
    for slot, fillers in groups.items():
        if len(fillers) < 3:
            continue
        rest = " ".join(w for w in slot if w != "{}")
        if not rest or all(w in STOPWORDS for w in rest.split()):
            continue
        if slot[-1] == "{}":  # "blue {}": which blue one, a square or a star?
            rest += " one"
        fillers = sorted(fillers, key=lambda x: -share[" ".join(slot).replace("{}", x)])[:most]
        fillers.sort()  # a stable wording: the same choice is the same question next turn
        options = tuple(" ".join(slot).replace("{}", x) for x in fillers)
        listed = ", ".join(fillers[:-1]) + " or " + fillers[-1]
        out.append(Askable(f"which {rest}: {listed}?", (*options, NONE_OPTION), (*options, None)))
    return out


def _slot_asked(question: str, dialogue: list[str]) -> bool:
    """Whether the dialogue asked this choice's slot already, with whatever options
    ("what colour is the circle: ..." is asked once)."""
    slot = question.split(":", 1)[0] + ":"
    return any(turn.startswith(slot) for turn in dialogue[1:])


class VocabularyBank:
    """Yes/no questions on concept words, for galleries without captions."""

    def __init__(self, concepts: Sequence[str] = PHOTO_CONCEPTS) -> None:
        self.concepts = tuple(dict.fromkeys(c.strip().lower() for c in concepts if c.strip()))

    def menu(self, dialogue: list[str], candidates: Candidates) -> list[Askable]:
        said = normalise(" ".join(dialogue)).split()
        return [
            Askable(yes_no_question(c), ("yes", "no"), (c, None))
            for c in self.concepts
            if c not in said
        ]


class ProposedQuestion(BaseModel):
    question: str = Field(min_length=3, max_length=200)
    options: list[str] = Field(min_length=2, max_length=8)


class ProposedQuestions(BaseModel):
    """The JSON schema of the ``ask_question`` prompt's reply."""

    questions: list[ProposedQuestion] = Field(max_length=5)


def llm_questions(
    llm: LLM, dialogue: list[str], candidate_captions: list[str]
) -> tuple[list[Askable], str]:
    """Questions (with their answer options) proposed by the LLM, and a note for the log.

    They join the menu and compete on information gain like template questions; an LLM
    failure just leaves the menu as it was.
    """
    from convir.prompts import load_prompt

    prompt = load_prompt("ask_question").render(
        dialogue="\n".join(f"- {t[:300]}" for t in dialogue[-8:]),
        candidates="\n".join(f"{i + 1}. {c[:200]}" for i, c in enumerate(candidate_captions[:10])),
    )
    try:
        reply = llm.complete([{"role": "user", "content": prompt}], schema=ProposedQuestions)
    except LLMError as exc:
        return [], f"LLM questions failed ({type(exc).__name__})"
    assert isinstance(reply, ProposedQuestions)
    asks = [
        Askable(
            q.question.strip().lower().rstrip("?") + "?",
            tuple(dict.fromkeys(o.strip().lower() for o in q.options if o.strip())),
        )
        for q in reply.questions
    ]
    return [a for a in asks if len(a.options) >= 2], f"LLM proposed {len(asks)}"


class LLMBank:
    """Questions proposed by an LLM from the dialogue and representative candidates."""

    def __init__(self, llm: LLM, shown: int = 10) -> None:
        self.llm = llm
        self.shown = shown
        self.note = ""

    def menu(self, dialogue: list[str], candidates: Candidates) -> list[Askable]:
        captions = [c for c in candidates.captions if c] or candidates.ids
        asks, self.note = llm_questions(self.llm, dialogue, captions[: self.shown])
        return asks


class NoQuestions:
    """A bank that proposes nothing: the agent never asks (e.g. replaying recorded
    dialogues, whose answers were given to other questions)."""

    def menu(self, dialogue: list[str], candidates: Candidates) -> list[Askable]:
        return []


class CombinedBank:
    """Every bank's proposals in one menu (earlier banks first, duplicates dropped)."""

    def __init__(self, *banks: QuestionBank) -> None:
        self.banks = banks

    def menu(self, dialogue: list[str], candidates: Candidates) -> list[Askable]:
        seen: dict[str, Askable] = {}
        for bank in self.banks:
            for ask in bank.menu(dialogue, candidates):
                seen.setdefault(ask.text, ask)
        return list(seen.values())


def concepts_of(embedder: object) -> tuple[str, ...]:
    """The embedder's own concept list where it ships one, else :data:`PHOTO_CONCEPTS`."""
    words = getattr(embedder, "concepts", None)
    return tuple(words) if words else PHOTO_CONCEPTS
