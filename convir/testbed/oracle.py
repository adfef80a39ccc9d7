"""Questions about a testbed scene, and an oracle that answers them from the attributes.

Questions are structured (:class:`Question`) and rendered to text by one template per kind;
:func:`parse_question` inverts the rendering, so a question written by an LLM in the same
words can be answered too (anything else gets "I don't know"). The oracle is exact, or
noisy with a configurable error rate, for simulated users.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

from convir.testbed.captions import NUMBER_WORDS, article
from convir.testbed.world import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES, Scene

Kind = Literal[
    "exists", "count", "colour_of", "shape_at", "colour_at", "where", "background", "size_of"
]
UNKNOWN = "i don't know"
_NEGATIVE_OPTION = re.compile(r"^(none|nothing|no\b|neither|there is no)")


class Question(BaseModel, frozen=True):
    """A structured question; unused attribute slots stay None."""

    kind: Kind
    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    position: str | None = None

    @property
    def text(self) -> str:
        return render_question(self)


def render_question(q: Question) -> str:
    if q.kind == "exists":
        if q.position and not (q.colour or q.shape or q.size):
            return f"is there anything at the {q.position}?"
        words = " ".join(w for w in (q.size, q.colour, q.shape or "object") if w)
        where = f" at the {q.position}" if q.position else ""
        return f"is there {article(words)}{where}?"
    if q.kind == "count":
        return "how many objects are there?"
    if q.kind == "colour_of":
        return f"what colour is the {q.shape}?"
    if q.kind == "shape_at":
        return f"what shape is at the {q.position}?"
    if q.kind == "colour_at":
        return f"what colour is the object at the {q.position}?"
    if q.kind == "where":
        return f"where is the {q.colour} {q.shape}?"
    if q.kind == "background":
        return "what colour is the background?"
    if q.kind == "size_of":
        return f"is the {q.colour} {q.shape} large or small?"
    raise ValueError(f"unknown question kind {q.kind!r}")


_POS = "|".join(sorted(POSITIONS, key=len, reverse=True))
_COL = "|".join(COLOURS)
_SHP = "|".join(SHAPES)
_SIZ = "|".join(SIZES)
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("anything_at", re.compile(rf"is there anything at the (?P<position>{_POS})")),
    (
        "exists",
        re.compile(
            rf"is there an? (?:(?P<size>{_SIZ}) )?(?:(?P<colour>{_COL}) )?"
            rf"(?:(?P<shape>{_SHP})|object)(?: at the (?P<position>{_POS}))?$"
        ),
    ),
    ("count", re.compile(r"how many (?:objects|shapes|things) are there")),
    ("colour_of", re.compile(rf"what colou?r is the (?P<shape>{_SHP})$")),
    ("shape_at", re.compile(rf"what shape is at the (?P<position>{_POS})")),
    (
        "colour_at",
        re.compile(rf"what colou?r is the (?:object|shape|thing) at the (?P<position>{_POS})"),
    ),
    ("where", re.compile(rf"where is the (?P<colour>{_COL}) (?P<shape>{_SHP})")),
    ("background", re.compile(r"what colou?r is the background")),
    (
        "size_of",
        re.compile(
            rf"is the (?P<colour>{_COL}) (?P<shape>{_SHP}) (?:large|big) or (?:small|little)"
        ),
    ),
]


def parse_question(text: str) -> Question | None:
    """The structured form of a question in the oracle's own wording, else None."""
    t = re.sub(r"\s+", " ", text.strip().lower()).rstrip("?. ").replace("grey", "gray")
    for kind, pat in _PATTERNS:
        m = pat.match(t)
        if m:
            fields = {k: v for k, v in m.groupdict().items() if v}
            return Question(kind="exists" if kind == "anything_at" else kind, **fields)
    return None


def _matches(o: object, q: Question) -> bool:
    return all(
        want is None or getattr(o, attr) == want
        for attr, want in (
            ("colour", q.colour),
            ("shape", q.shape),
            ("size", q.size),
            ("position", q.position),
        )
    )


def answer(scene: Scene, q: Question) -> str:
    """The true answer, in words a CLIP text encoder can use ("yes", "red", "at the top")."""
    objs = scene.objects
    if q.kind == "exists":
        return "yes" if any(_matches(o, q) for o in objs) else "no"
    if q.kind == "count":
        return NUMBER_WORDS[len(objs)]
    if q.kind == "background":
        return scene.background
    if q.kind in ("shape_at", "colour_at"):
        hit = [o for o in objs if o.position == q.position]
        if not hit:
            return "nothing is there"
        o = hit[0]
        return f"{o.colour} {o.shape}" if q.kind == "colour_at" else article(o.shape)
    if q.kind == "colour_of":
        hit = sorted({o.colour for o in objs if o.shape == q.shape})
        if not hit:
            return f"there is no {q.shape}"
        return " and ".join(hit)
    hit = [o for o in objs if o.colour == q.colour and o.shape == q.shape]
    if not hit:
        return f"there is no {q.colour} {q.shape}"
    if q.kind == "where":
        return " and ".join(f"at the {o.position}" for o in hit)
    if q.kind == "size_of":
        return " and ".join(sorted({o.size for o in hit}))
    raise ValueError(f"unknown question kind {q.kind!r}")


def _wrong_answer(scene: Scene, q: Question, truth: str, rng: np.random.Generator) -> str:
    """A plausible but false answer of the same type, for the noisy oracle."""
    pools: dict[str, list[str]] = {
        "exists": ["yes", "no"],
        "count": list(NUMBER_WORDS[1:5]),
        "background": list(BACKGROUNDS),
        "colour_of": list(COLOURS),
        "size_of": list(SIZES),
        "shape_at": [article(s) for s in SHAPES],
        "colour_at": [f"{c} {s}" for c in COLOURS for s in SHAPES],
        "where": [f"at the {p}" for p in POSITIONS],
    }
    options = [a for a in pools[q.kind] if a != truth]
    return options[rng.integers(len(options))]


class Oracle:
    """Answers questions about a target scene; wrong with probability ``error_rate``."""

    def __init__(self, error_rate: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        self.error_rate = error_rate
        self._rng = np.random.default_rng(seed)

    def answer(self, scene: Scene, question: Question | str, options: Sequence[str] = ()) -> str:
        """The answer in the oracle's words to a template question (the true option, when
        the ``options`` state whole facts); any other question is answered among its
        ``options`` (see :meth:`choose`), else "i don't know"."""
        q = parse_question(question) if isinstance(question, str) else question
        if q is None:
            return self.choose(scene, str(question), options)
        truth = answer(scene, q)
        offered = [o.strip().lower() for o in options]
        whole = [o for o in offered if len(o.split()) > 1 and not _NEGATIVE_OPTION.match(o)]
        if whole and truth not in offered:
            # a template question offered with options that state whole facts ("what colour
            # is the background: beige or gray?" -> "gray background", as caption banks
            # offer them): a person clicks the true option. Bare values ("red", "green": the
            # template bank's own) keep the oracle's words when none fits ("green and red").
            return self.choose(scene, str(question), options)
        if self.error_rate > 0 and self._rng.random() < self.error_rate:
            return _wrong_answer(scene, q, truth, self._rng)
        return truth

    def choose(self, scene: Scene, question: str, options: Sequence[str]) -> str:
        """Pick the true option of any question (a yes/no question is judged by the claim its
        "yes" makes; a multiple-choice option by its own words); wrong with ``error_rate``.

        "i don't know" when no option can be judged; a negative option ("none of these")
        when every judged option is false.
        """
        from convir.models.refiner import turn_to_fact
        from convir.testbed.claims import judge

        opts = [o.strip().lower() for o in options if o.strip()]
        if not opts:
            return UNKNOWN
        if "yes" in opts and "no" in opts:
            claim = turn_to_fact(question.strip().rstrip("?"), "yes")
            verdict = judge(claim, scene) if claim else None
            if verdict is None:
                return UNKNOWN
            truth = "yes" if verdict else "no"
        else:
            negative = [o for o in opts if _NEGATIVE_OPTION.match(o)]
            verdicts = [judge(o, scene) for o in opts if o not in negative]
            if all(v is None for v in verdicts):
                return UNKNOWN
            judged = [o for o in opts if o not in negative]
            true = [o for o, v in zip(judged, verdicts, strict=True) if v]
            if true:
                truth = true[0]
            elif negative:
                truth = negative[0]
            else:
                return UNKNOWN
        if self.error_rate > 0 and self._rng.random() < self.error_rate and len(opts) > 1:
            wrong = [o for o in opts if o != truth]
            return wrong[self._rng.integers(len(wrong))]
        return truth


def candidate_questions() -> list[Question]:
    """Every template question the testbed can ask (the clarification tool's menu)."""
    qs: list[Question] = [Question(kind="count"), Question(kind="background")]
    qs += [Question(kind="colour_of", shape=s) for s in SHAPES]
    qs += [Question(kind=k, position=p) for k in ("shape_at", "colour_at") for p in POSITIONS]
    qs += [Question(kind="exists", position=p) for p in POSITIONS]
    qs += [Question(kind="exists", colour=c, shape=s) for c in COLOURS for s in SHAPES]
    qs += [Question(kind="exists", colour=c) for c in COLOURS]
    qs += [Question(kind="exists", shape=s) for s in SHAPES]
    return qs
