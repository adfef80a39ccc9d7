"""What the models can tell about a candidate's answer to a question (never the oracle).

A question comes with its answer options. Each option becomes a fact ("what colour is the
circle? red" -> "red circle") and the embedder scores every candidate image against every
fact: ``p(option | image) = softmax(cos(image, fact) / T)`` over the options. This is the
zero-shot answer model that both question selection (information gain) and rescoring (the
likelihood of the answers given so far) use.

Negative options ("nothing is there", "there is no circle") have no fact a dual encoder can
embed. Their logit is a heuristic, documented in docs/agent.md: the median, over the
candidate pool, of each image's best positive cosine, so an image that matches no positive
option better than a typical image does leans to "nothing".

The testbed's question templates (``convir.testbed.oracle``) give the menu and its options;
with an LLM, its proposals (question + options, ``ask_question`` prompt) join the menu, so a
real gallery gets questions too.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from convir.errors import LLMError
from convir.models.refiner import split_turn, turn_to_fact

if TYPE_CHECKING:
    from convir.models.embedder import Embedder
    from convir.models.llm import LLM
    from convir.testbed.oracle import Question


@dataclass(frozen=True)
class Askable:
    """A question the agent may ask, with the answers it expects."""

    text: str
    options: tuple[str, ...]


def options_for_testbed(q: Question) -> tuple[str, ...]:
    """Every answer the testbed oracle can give to ``q`` (single-object answers)."""
    from convir.testbed.captions import NUMBER_WORDS, article
    from convir.testbed.world import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES

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
    from convir.testbed.world import COLOURS, SHAPES

    pattern = rf"\b({'|'.join(COLOURS)})\s+(?:\w+\s+)?({'|'.join(SHAPES)})s?\b"
    return list(dict.fromkeys(re.findall(pattern, text.lower().replace("grey", "gray"))))


def menu_for_testbed(dialogue: list[str]) -> list[Askable]:
    """The template questions worth asking about this dialogue, with their options.

    Adds ``where`` / ``size_of`` questions about the objects the dialogue names to the
    general ones (count, background, per-cell shape and colour, colour per shape).
    """
    from convir.testbed.oracle import Question
    from convir.testbed.world import POSITIONS, SHAPES

    qs: list[Question] = [Question(kind="count"), Question(kind="background")]
    for colour, shape in mentioned_objects(" ".join(dialogue)):
        qs += [
            Question(kind="where", colour=colour, shape=shape),
            Question(kind="size_of", colour=colour, shape=shape),
        ]
    qs += [Question(kind="colour_of", shape=s) for s in SHAPES]
    qs += [Question(kind=k, position=p) for k in ("shape_at", "colour_at") for p in POSITIONS]
    return [Askable(q.text, options_for_testbed(q)) for q in qs]


def options_for(question: str) -> tuple[str, ...] | None:
    """The options of a question in the testbed's wording, else None (unknown question)."""
    from convir.testbed.oracle import parse_question

    q = parse_question(question)
    return options_for_testbed(q) if q is not None else None


@functools.lru_cache(maxsize=65536)
def fact(question: str, option: str) -> str | None:
    """The fact an answer states ('what colour is the circle?', 'red' -> 'red circle')."""
    return turn_to_fact(question.strip().rstrip("?").strip(), option)


def already_answered(askable: Askable, dialogue: list[str]) -> bool:
    """True when the dialogue states one of the question's facts, or asked it before."""
    text = " ".join(dialogue).lower()
    if askable.text.lower() in text:
        return True
    facts = (fact(askable.text, o) for o in askable.options)
    return any(f and len(f.split()) > 1 and f.lower() in text for f in facts)


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


class AnswerModel:
    """Zero-shot ``p(answer | image)`` from the embedder; fact embeddings are cached."""

    def __init__(self, embedder: Embedder, temperature: float = 0.05) -> None:
        self.embedder = embedder
        self.temperature = temperature
        self._facts: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _vectors(self, facts: list[str]) -> np.ndarray:
        """Unit fact embeddings [len(facts), D]; each distinct fact is embedded once."""
        with self._lock:
            missing = [f for f in dict.fromkeys(facts) if f not in self._facts]
        if missing:
            pooled = self.embedder.encode_text(missing).pooled.numpy().astype(np.float32)
            with self._lock:
                self._facts.update(zip(missing, pooled, strict=True))
        with self._lock:
            return np.stack([self._facts[f] for f in facts])

    def probabilities(self, question: str, options: tuple[str, ...], X: np.ndarray) -> np.ndarray:
        """``p(option | image)`` [N, len(options)] for candidate vectors ``X`` [N, D]."""
        return self.probabilities_many([(question, options)], X)[0]

    def probabilities_many(
        self, asks: Sequence[tuple[str, tuple[str, ...]]], X: np.ndarray
    ) -> list[np.ndarray]:
        """:meth:`probabilities` for many questions at once: one cosine matrix for all facts.

        Scoring a menu of ~30 questions this way costs one matmul and one cache lookup
        instead of thirty of each.
        """
        facts = [[fact(q, o) for o in options] for q, options in asks]
        wanted = [f for row in facts for f in row if f]
        cos_all = X @ self._vectors(wanted).T if wanted else np.zeros((len(X), 0))
        out, col = [], 0
        for row in facts:
            positive = [i for i, f in enumerate(row) if f]
            logits = np.full((len(X), len(row)), -np.inf, dtype=np.float64)
            if positive:
                cos = cos_all[:, col : col + len(positive)]
                col += len(positive)
                logits[:, positive] = cos / self.temperature
                null = float(np.median(cos.max(axis=1))) / self.temperature
            else:
                null = 0.0
            logits[:, [i for i, f in enumerate(row) if not f]] = null
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            out.append(p / p.sum(axis=1, keepdims=True))
        return out

    def answer_loglik(self, turns: list[str], X: np.ndarray) -> np.ndarray:
        """Sum over answered turns of ``log p(answer | image)`` [N]; unknown turns add 0."""
        asks, picked = [], []
        for turn in turns:
            question, answer = split_turn(turn)
            options = options_for(question) if question else None
            if options is None:
                continue
            answer = answer.lower().strip().rstrip(".")
            if answer not in options:
                if not fact(question, answer):
                    continue  # "i don't know", or a free-form denial: no evidence either way
                options = (*options, answer)
            asks.append((question, options))
            picked.append(options.index(answer))
        total = np.zeros(len(X))
        for p, i in zip(self.probabilities_many(asks, X), picked, strict=True):
            total += np.log(np.clip(p[:, i], 1e-6, 1.0))
        return total


def information_gain(p: np.ndarray, weights: np.ndarray) -> float:
    """Mutual information (nats) between the answer and which candidate is the target.

    ``p`` [N, m]: each candidate's answer distribution; ``weights`` [N]: the posterior.
    """
    w = weights / weights.sum()
    marginal = w @ p
    h_marginal = -np.sum(marginal * np.log(np.clip(marginal, 1e-12, 1.0)))
    h_cond = -np.sum(w[:, None] * p * np.log(np.clip(p, 1e-12, 1.0)))
    return float(h_marginal - h_cond)
