"""Questions a person would ask about free-form captions, built from parsed phrases.

:class:`~convir.gallery.questions.CaptionBank` asks these when captions can be parsed
(``convir.gallery.language.parse``). Every question is about one thing a candidate's caption
mentions, worded from its parse, never from a raw run of words:

- yes/no on a thing and its attributes: "is there a dog?", "is there a sled dog?", "is the
  bus red?" (once the dialogue has named the bus), "is there a red circle at the top left?";
- yes/no on what a thing does: "is the dog running?", "is someone riding a horse?";
- choices among values of one slot only, so the options are alternatives: the colour of one
  kind of thing ("what colour is the bus: red, white or blue?"), where it is ("where is the
  dog: on a beach, in a field or on a couch?"), what it is doing ("what is the dog doing:
  lying, running or sitting?"). Options state the whole fact ("red bus"), so a reader of
  the option alone knows what it claims.

Each proposal's fact is what the answer model reads off candidates' texts
(``clauses.states``: lemmas within one clause), and who states it decides whether it
splits the candidates at all.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from convir.gallery.language import (
    BODY_PARTS,
    COLOURS,
    MASS_NOUNS,
    PEOPLE,
    PLACE_WORDS,
    PLURAL_ONLY,
    POSTURES,
    SIZES,
    Action,
    Mention,
    Parse,
    content_lemmas,
    lemma,
    parse,
)

NONE_OPTION = "none of these"
OVERLAP = 0.25  # the share of a value's holders that may also hold an offered value
# Verbs that name a state, asked in the simple present ("does it contain ...?").
STATIVE = frozenset("contain include resemble consist have own hold cover".split())
PLURAL_SUBJECTS = frozenset("people children men women cattle sheep deer fish".split())


@dataclass(frozen=True)
class Proposal:
    """A fact some candidates' texts may state, and how to ask about it."""

    fact: str  # what the answer model reads ("red bus", "dog running on a beach")
    question: str  # the yes/no wording
    slot: tuple[str, str] | None = None  # (kind, thing): the choice it may join
    value: str = ""  # its value in that slot ("red", "on a beach", "running")


def _a(noun_phrase: str, head: str) -> str:
    if head in MASS_NOUNS or noun_phrase.split()[-1] in PLURAL_ONLY:
        return noun_phrase
    return ("an " if noun_phrase[:1] in "aeiou" else "a ") + noun_phrase


def proposals(text: str, said: frozenset[str]) -> list[Proposal]:
    """Every question one caption could answer; ``said``: the dialogue's content lemmas (a
    thing already named is "the bus", not "a bus")."""
    return [p if key is None or key not in said else q for key, p, q in proposal_forms(text)]


@functools.lru_cache(maxsize=200_000)
def proposal_forms(text: str) -> tuple[tuple[str | None, Proposal, Proposal], ...]:
    """:func:`proposals` of a caption for any dialogue, worked out once per text: each as
    (the word whose presence in the dialogue's lemmas picks the third item, or None where
    the wording does not depend on the dialogue; the proposal while the dialogue has not
    named that thing; the proposal once it has)."""
    parsed: Parse | None = parse(text)
    if parsed is None:
        return ()
    out: list[tuple[str | None, Proposal, Proposal]] = []
    for m in parsed.mentions:
        if m.head == "background":  # every picture has one: always "the background"
            out += [(None, p, p) for p in _mention_proposals(m, True)]
        else:
            new, named = _mention_proposals(m, False), _mention_proposals(m, True)
            out += [(m.head, p, q) for p, q in zip(new, named, strict=True)]
    for act in parsed.actions:
        new, named = _action_proposals(act, False), _action_proposals(act, True)
        out += [(act.subject, p, q) for p, q in zip(new, named, strict=True)]
    return tuple((key if p != q else None, p, q) for key, p, q in out)


def _mention_proposals(m: Mention, known: bool) -> list[Proposal]:
    """The proposals of one mentioned thing; ``known``: the dialogue has named it."""
    out: list[Proposal] = []
    there = "are there" if m.noun in PLURAL_ONLY else "is there"
    if m.head not in BODY_PARTS:  # "is there a head?" is not a question about a picture
        out.append(Proposal(m.noun, f"{there} {_a(m.noun, m.head)}?"))
    for mod in m.modifiers:
        phrase = f"{mod} {m.noun}"
        if mod in COLOURS or mod in SIZES:
            wording = f"is the {m.noun} {mod}?" if known else f"is there {_a(phrase, m.head)}?"
            slot = ("colour", m.noun) if mod in COLOURS else ("size", m.noun)
            out.append(Proposal(phrase, wording, slot, mod))
            if mod in COLOURS and m.head not in BODY_PARTS:  # "which blue thing is there?"
                out.append(Proposal(phrase, wording, ("thing", mod), _a(m.noun, m.head)))
        else:
            out.append(Proposal(phrase, f"{there} {_a(phrase, m.head)}?"))
    if len(m.modifiers) > 1:
        phrase = m.phrase()
        out.append(Proposal(phrase, f"{there} {_a(phrase, m.head)}?"))
    out += _narrowed(m, there)
    if m.place:
        colour = next((x for x in m.modifiers if x in COLOURS), None)
        thing = f"{colour} {m.noun}" if colour else m.noun
        fact = f"{thing} {m.place}"
        wording = f"is the {thing} {m.place}?" if known else f"is there {_a(fact, m.head)}?"
        out.append(Proposal(fact, wording, ("place", thing), m.place))
        if len(m.modifiers) > 1:  # "is there a small red diamond at the bottom right?"
            full = m.phrase(place=True)
            out.append(Proposal(full, f"{there} {_a(full, m.head)}?"))
        if any(w in PLACE_WORDS - {"front", "back"} for w in m.place.split()):
            # "is there anything at the top left?" ("on the back" is a thing's, not a place)
            out.append(Proposal(m.place, f"is there anything {m.place}?"))
    return out


def _action_proposals(act: Action, named: bool) -> list[Proposal]:
    """The proposals of one action; ``named``: the dialogue has named its subject."""
    out: list[Proposal] = []
    be = "are" if act.subject in PLURAL_SUBJECTS else "is"
    who = f"the {act.subject}"
    if act.subject in PEOPLE:
        be, who = "is", "someone"
    elif not named:
        be, who = "is", f"there {_a(act.subject, act.subject)}"
    doing = f"{act.subject} {act.ing}"
    if act.verb in POSTURES:  # "is the dog sleeping?"; "is someone using?" says nothing
        slot = ("action", act.subject)
        out.append(Proposal(doing, f"{be} {who} {act.ing}?", slot, act.ing))
    if act.rest and act.verb in STATIVE:  # "does the dish contain a creamy mixture?"
        does = "does" if be == "is" else "do"
        who = "someone" if act.subject in PEOPLE else f"the {act.subject}"
        wording = f"{does} {who} {act.verb} {act.rest}?"
        out.append(Proposal(f"{act.subject} {act.verb} {act.rest}", wording))
    elif act.rest:
        out.append(Proposal(f"{doing} {act.rest}", f"{be} {who} {act.ing} {act.rest}?"))
    return out


def _narrowed(m: Mention, there: str) -> list[Proposal]:
    """Slots of a thing narrowed by its other attributes: the colour of the small dog, of the
    dog on the couch; which small red thing there is."""
    colour = next((x for x in m.modifiers if x in COLOURS), None)
    size = next((x for x in m.modifiers if x in SIZES), None)
    out = []
    if colour and size and m.head not in BODY_PARTS:
        fact = f"{size} {colour} {m.noun}"
        wording = f"{there} {_a(fact, m.head)}?"
        out.append(Proposal(fact, wording, ("colour", f"{size} {m.noun}"), colour))
        out.append(Proposal(fact, wording, ("thing", f"{size} {colour}"), _a(m.noun, m.head)))
    if colour and m.place:
        fact = f"{colour} {m.noun} {m.place}"
        out.append(
            Proposal(
                fact, f"{there} {_a(fact, m.head)}?", ("colour", f"{m.noun} {m.place}"), colour
            )
        )
    return out


# What a thing is doing, in families whose members exclude each other: a dog lying is not
# sitting, a dog running is not swimming; "lying or resting" are not alternatives, so verbs
# outside every family are asked about only as yes/no questions.
VERB_FAMILIES: dict[str, str] = {
    **dict.fromkeys("sit stand lie kneel crouch perch lean hang float".split(), "posture"),
    **dict.fromkeys("run walk swim fly jump climb dance surf ski skate".split(), "motion"),
    **dict.fromkeys("sleep eat drink play graze sing bark fish".split(), "activity"),
    **dict.fromkeys("smile laugh cry yawn".split(), "face"),
}


def _slot_key(p: Proposal) -> tuple[str, ...] | None:
    """The choice a proposal may join: its slot, and for actions the verb's family."""
    if p.slot is None or p.slot[0] != "action":
        return p.slot
    family = VERB_FAMILIES.get(lemma(p.value))
    return None if family is None else (*p.slot, family)


def choice_questions(
    found: Sequence[Proposal],
    share: dict[str, float],
    holders: dict[str, frozenset[int]],
    said: frozenset[str] = frozenset(),
    most: int = 5,
) -> list[tuple[str, tuple[str, ...], tuple[str | None, ...]]]:
    """(question, options, facts) for each slot with two or more values among the
    candidates: the colour, place or activity of one kind of thing.

    Options must be alternatives: a value is offered only if few of the clauses that state
    it (at most :data:`OVERLAP`; ``holders``: each fact's clauses) also state a value
    already offered, taking values by their share, largest first. "A black and white dog"
    keeps "black dog" and "white dog" out of one question (one thing, two colours); "a red
    square, a blue square" does not stop "what colour is the square?" (two things, each of
    one colour: either answer is true and the reader reads both). A slot
    the dialogue has filled (``said``: the facts it states) is not asked again, whatever the
    wording: "a brown star on the left" answers "where is the brown star?"."""
    groups: dict[tuple[str, ...], dict[str, Proposal]] = {}
    answered: set[tuple[str, ...]] = set()  # slots the dialogue has filled already
    for p in found:
        key = _slot_key(p)
        if key is not None and p.fact in share:
            # one option per meaning: "big" and "large" are one size
            groups.setdefault(key, {}).setdefault(" ".join(sorted(content_lemmas(p.value))), p)
        elif key is not None and p.fact in said:
            answered.add(key)
    out = []
    for key, values in groups.items():
        kind, thing = key[0], key[1]
        if len(values) < 2 or key in answered:
            continue
        kept: list[Proposal] = []
        taken: set[int] = set()
        for p in sorted(values.values(), key=lambda p: -share[p.fact]):
            who = holders.get(p.fact, frozenset())
            if len(who & taken) > OVERLAP * len(who):
                continue
            kept.append(p)
            taken |= who
            if len(kept) == most:
                break
        if len(kept) < 2:
            continue
        kept.sort(key=lambda p: p.value)  # the same choice is worded the same next turn
        listed = ", ".join(p.value for p in kept[:-1]) + " or " + kept[-1].value
        if kind == "colour":
            text = f"what colour is the {thing}: {listed}?"
        elif kind == "size":
            text = f"how big is the {thing}: {listed}?"
        elif kind == "thing":
            text = f"which {thing} thing is there: {listed}?"
        elif kind == "place":
            text = f"where is the {thing}: {listed}?"
        else:
            be = "are" if thing in PLURAL_SUBJECTS else "is"
            text = f"what {be} the {thing} doing: {listed}?"
        options = tuple(p.fact for p in kept)
        out.append((text, (*options, NONE_OPTION), (*options, None)))
    return out


def dialogue_lemmas(dialogue: Sequence[str]) -> frozenset[str]:
    return content_lemmas(" ".join(dialogue))
