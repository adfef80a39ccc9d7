"""The caption user: it knows its target only by the item's captions and answers by a
word-matching rule of its own (not the agent's reader), so the agent is not graded by itself."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from convir.errors import InputError
from convir.evaluation.user_protocol import UNKNOWN, dialogue_seed, lookup

# Words that carry no fact: function words, question scaffolding ("is there", "which one",
# "the image") and the words a question uses to name a slot ("what colour is ...").
_CAPTION_STOPWORDS = frozenset(
    """a an the and or but of on in at to into onto with without by for from as near next
    is are was were be been being am isn't aren't there here this that these those it its
    some any one ones anyone someone something anything anybody somebody everyone everything
    does do did doing done can could would should will has have had having which what who
    whom whose where when how many much why each every other another than then also very
    image images picture pictures photo photos photograph shown showing show shows
    seen see visible pictured depicted appear appears scene view
    colour color colours colors kind type sort number
    i you he she they we me him her them us my your his their our
    """.split()
)
# Irregular forms the suffix rules below would get wrong.
_IRREGULAR = {
    "lying": "lie",
    "laying": "lie",
    "lays": "lie",
    "lay": "lie",
    "lies": "lie",
    "laid": "lie",
    "sitting": "sit",
    "sits": "sit",
    "sat": "sit",
    "seated": "sit",
    "standing": "stand",
    "stood": "stand",
    "stands": "stand",
    "running": "run",
    "ran": "run",
    "runs": "run",
    "men": "man",
    "women": "woman",
    "people": "person",
    "persons": "person",
    "children": "child",
    "kids": "child",
    "kid": "child",
    "feet": "foot",
    "teeth": "tooth",
    "geese": "goose",
    "mice": "mouse",
    "leaves": "leaf",
    "knives": "knife",
    "wolves": "wolf",
    "shelves": "shelf",
    "rode": "ride",
    "ridden": "ride",
    "flew": "fly",
    "flies": "fly",
    "held": "hold",
    "wore": "wear",
    "worn": "wear",
    "ate": "eat",
    "eaten": "eat",
    "grey": "gray",
    "shoes": "shoe",
    "glasses": "glass",
    "bus": "bus",
    "buses": "bus",
    "grass": "grass",
}
_NEGATIONS = frozenset({"no", "not", "without", "nor", "never"})
_YES_NO_OPENERS = frozenset(
    "is are was were does do did can could has have had will would should".split()
)
_NONE_WORDS = ("none", "neither", "nothing", "no one", "other", "something else")


def _undouble(word: str) -> str:
    if len(word) >= 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]  # running -> runn -> run
    return word


def caption_word(word: str) -> str:
    """One word reduced to a comparable form by a small normaliser of its own (plural -s,
    -es, -ies; -ing and -ed forms; a final silent e; a short irregular table), so that
    "dogs", "lying" and "sitting" meet "dog", "lies" and "sits". Not a real lemmatiser: the
    simulated user only needs the same word in a question and a caption to reduce alike."""
    w = word.lower().strip("'")
    if w in _IRREGULAR:
        w = _IRREGULAR[w]  # then the final-e rule, as for the base form ("geese" -> "goose")
    elif len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif w.endswith(("ches", "shes", "xes", "zes", "sses")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    elif len(w) >= 6 and w.endswith("ing"):
        w = _undouble(w[:-3])
    elif len(w) > 4 and w.endswith("ied"):
        w = w[:-3] + "y"
    elif len(w) >= 5 and w.endswith("ed"):
        w = _undouble(w[:-2])
    if len(w) > 3 and w.endswith("e") and not w.endswith("ee"):
        w = w[:-1]  # ride / riding -> rid, horse / horses -> hors
    return w


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def content_words(text: str) -> tuple[str, ...]:
    """A text's fact words, in order: function words and question scaffolding dropped, the
    rest reduced by :func:`caption_word`."""
    return tuple(caption_word(w) for w in _words(text) if w not in _CAPTION_STOPWORDS)


def _caption_positions(caption: str) -> dict[str, list[int]]:
    """Where each reduced word occurs in a caption; a word right after a negation ("no
    people", "without a hat") is left out: the caption says it is not there."""
    where: dict[str, list[int]] = {}
    raw = _words(caption)
    for i, w in enumerate(raw):
        if w in _CAPTION_STOPWORDS or (i and raw[i - 1] in _NEGATIONS):
            continue
        where.setdefault(caption_word(w), []).append(i)
    return where


def _span(where: dict[str, list[int]], words: Sequence[str]) -> tuple[int, int] | None:
    """(width, start) of the tightest stretch of a caption holding every word, or None
    when one is missing."""
    wanted = set(words)
    if not wanted or not wanted <= where.keys():
        return None
    hits = sorted((i, w) for w in wanted for i in where[w])
    best: tuple[int, int] | None = None
    count: dict[str, int] = {}
    lo = 0
    for i, w in hits:  # sliding window over positions until every word is inside
        count[w] = count.get(w, 0) + 1
        while len(count) == len(wanted):
            start, first = hits[lo]
            width = i - start
            if best is None or (width, start) < best:
                best = (width, start)
            count[first] -= 1
            if not count[first]:
                del count[first]
            lo += 1
    return best


class CaptionUser:
    """Looks for gallery item ``targets[dialogue_id]`` and knows it only by its captions
    (``captions[item_id]``): a user for caption datasets.

    It opens with the target's first caption (a caption the gallery's text leaves out) and
    answers from the first ``answer_from`` captions (default 3: the opening and the two the
    gallery holds), by a rule of its own, independent of the agent's answer reader:

    1. Words are lower-cased; function words and question scaffolding ("is there", "which",
       "what colour", "the image", "anyone", "something", ...) are dropped and every other
       word is reduced by a small normaliser (:func:`caption_word`: plurals, -ing/-ed, an
       irregular table: lying/laying -> lie, sits -> sit, men -> man, people -> person).
       A caption word right after "no", "not" or "without" does not count as present.
    2. A yes/no question (options yes/no, or no options and it starts with is/are/does/do/
       can/has...) is answered "yes" when all its content words occur in one caption, else
       "no".
    3. A choice question: an option is true when its content words, with the question's
       (``"what colour is the bus: red or blue?"`` -> bus + red), occur in one caption;
       if none is, the option's words alone (``"which animal: dog or cat?"``). Several true:
       the one with the most content words, then the tightest stretch of caption, then the
       first option. None true: the "none of these"-style option if offered, else
       "i don't know"; so is a question with no content words or an open question.
    4. ``error_rate``: each answerable question draws from the dialogue's own generator
       (:func:`dialogue_seed`); with that probability the answer is a different offered
       option (yes <-> no), drawn uniformly.

    ``log(dialogue_id)`` gives the dialogue's (question, options, answer) turns; ``unknown``
    counts "i don't know" answers and ``flipped`` the answers changed by the error rate.
    """

    __module__ = "convir.evaluation.users"  # the public home config.json records

    def __init__(
        self,
        targets: Mapping[str, str],
        captions: Mapping[str, Sequence[str]],
        error_rate: float = 0.0,
        seed: int = 0,
        answer_from: int = 3,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise InputError(f"error rate must be in [0, 1], got {error_rate}")
        if answer_from < 1:
            raise InputError(f"answer_from must be >= 1 caption, got {answer_from}")
        missing = [t for t in targets.values() if not captions.get(t)]
        if missing:
            raise InputError(
                f"target {missing[0]!r} has no captions; every target needs at least one "
                "(its first caption opens the dialogue)"
            )
        self.targets = dict(targets)
        self.captions = {t: [str(c) for c in captions[t]] for t in set(self.targets.values())}
        self.error_rate = error_rate
        self.seed = seed
        self.answer_from = answer_from
        self.unknown = 0
        self.answered = 0
        self.flipped = 0
        self._logs: dict[str, list[tuple[str, tuple[str, ...], str]]] = {}
        self._rngs: dict[str, np.random.Generator] = {}
        self._where: dict[str, list[dict[str, list[int]]]] = {}
        self._lock = threading.Lock()

    def target(self, dialogue_id: str) -> str:
        return str(lookup(self.targets, dialogue_id, "target item"))

    def opening(self, dialogue_id: str) -> tuple[str, str | None]:
        item = self.target(dialogue_id)
        with self._lock:  # a new opening restarts the dialogue: its log and its noise
            self._logs[dialogue_id] = []
            self._rngs.pop(dialogue_id, None)
        return self.captions[item][0], None

    def log(self, dialogue_id: str) -> list[tuple[str, tuple[str, ...], str]]:
        """The dialogue's turns so far: (question, options, answer)."""
        with self._lock:
            return list(self._logs.get(dialogue_id, []))

    def _known(self, item: str) -> list[dict[str, list[int]]]:
        with self._lock:
            hit = self._where.get(item)
        if hit is None:
            hit = [_caption_positions(c) for c in self.captions[item][: self.answer_from]]
            with self._lock:
                self._where[item] = hit
        return hit

    def truth(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        """The answer the captions give, before any error (see the class's rule)."""
        known = self._known(self.target(dialogue_id))
        asked = content_words(question)
        opts = [str(o) for o in options]
        lowered = [" ".join(_words(o)) for o in opts]
        if set(lowered) >= {"yes", "no"} or (
            not opts and _words(question)[:1] and _words(question)[0] in _YES_NO_OPENERS
        ):
            if not asked:
                return UNKNOWN
            yes = any(_span(where, asked) is not None for where in known)
            pick = "yes" if yes else "no"
            return opts[lowered.index(pick)] if pick in lowered else pick
        if not opts:
            return UNKNOWN
        nones = [i for i, o in enumerate(lowered) if o.startswith(_NONE_WORDS) or o in ("neither",)]
        choices = [i for i in range(len(opts)) if i not in nones]
        listed = {w for i in choices for w in content_words(opts[i])}
        asked = tuple(w for w in asked if w not in listed)  # "which x: a, b or c?" lists them
        for with_question in (True, False):
            best: tuple[int, int, int, int] | None = None
            for i in choices:
                own = content_words(opts[i])
                if not own:
                    continue
                words = tuple(dict.fromkeys((*own, *asked))) if with_question else own
                for where in known:
                    span = _span(where, words)
                    if span is not None:
                        key = (-len(set(own)), span[0], span[1], i)
                        best = key if best is None or key < best else best
            if best is not None:
                return opts[best[3]]
        return opts[nones[0]] if nones else UNKNOWN

    def answer(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        said = self.truth(dialogue_id, question, options)
        opts = [str(o) for o in options] or (["yes", "no"] if said in ("yes", "no") else [])
        flipped = False
        if said != UNKNOWN:
            with self._lock:
                rng = self._rngs.get(dialogue_id)
                if rng is None:
                    rng = np.random.default_rng(dialogue_seed(self.seed, dialogue_id, 1))
                    self._rngs[dialogue_id] = rng
                draw, pick = rng.random(), rng.random()  # two draws per answer, always
            others = [o for o in opts if o != said]
            if others and draw < self.error_rate:
                said = others[int(pick * len(others))]
                flipped = True
        with self._lock:
            self.answered += 1
            self.unknown += said == UNKNOWN
            self.flipped += flipped
            self._logs.setdefault(dialogue_id, []).append((question, tuple(options), said))
        return said
