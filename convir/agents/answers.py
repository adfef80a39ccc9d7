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

Where the gallery has a text for a candidate (a captions file, a captioner), and at least one
candidate's text states one of the question's facts, that candidate's answer is read from
its text instead: ``p = 1 - eps`` spread over the options whose fact its text states (every
content word of the fact inside one clause of the text), ``eps`` over the rest (a captioner
errs). This is what makes caption-mined questions sharp; facts no text states (counts, say)
stay with the embedder.

Questions come from a question bank (``questions.py``); the asked ones are kept in the state
with their options and facts, so every answer counts when the candidates are rescored,
whatever bank asked. Answers to questions the agent did not ask (a replayed ChatIR turn)
are read as facts by the generic rules of ``turn_to_fact`` and scored against "not that".
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from convir.agents.questions import Askable
from convir.agents.text_reader import PoolTexts
from convir.errors import LLMError
from convir.models.refiner import is_yes_no, split_turn, turn_to_fact

if TYPE_CHECKING:
    from convir.models.embedder import Embedder
    from convir.models.llm import LLM

CAPTION_EPS = 0.1  # how often a candidate's text is taken to be wrong about a fact


@functools.lru_cache(maxsize=65536)
def fact(question: str, option: str) -> str | None:
    """The fact an answer states ('what colour is the circle?', 'red' -> 'red circle')."""
    return turn_to_fact(question.strip().rstrip("?").strip(), option)


def already_answered(askable: Askable, dialogue: list[str]) -> bool:
    """True when the dialogue states one of the question's facts, or asked it before."""
    text = " ".join(dialogue).lower()
    if askable.text.lower() in text:
        return True
    return any(f and len(f.split()) > 1 and f.lower() in text for f in facts_of(askable))


def facts_of(askable: Askable) -> tuple[str | None, ...]:
    """The fact each option states: the bank's own, else read off the wording."""
    if askable.facts is not None:
        return askable.facts
    return tuple(fact(askable.text, o) for o in askable.options)


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

    def probabilities(
        self,
        question: str,
        options: tuple[str, ...],
        X: np.ndarray,
        captions: Sequence[str | None] | PoolTexts | None = None,
    ) -> np.ndarray:
        """``p(option | image)`` [N, len(options)] for candidate vectors ``X`` [N, D]."""
        return self.probabilities_many([Askable(question, options)], X, captions)[0]

    def probabilities_many(
        self,
        asks: Sequence[Askable],
        X: np.ndarray,
        captions: Sequence[str | None] | PoolTexts | None = None,
    ) -> list[np.ndarray]:
        """:meth:`probabilities` for many questions at once: one cosine matrix for all facts.

        Scoring a menu of ~30 questions this way costs one matmul and one cache lookup
        instead of thirty of each. ``captions`` (aligned with ``X``) switch on the text
        reading described in the module docstring.
        """
        facts = [facts_of(a) for a in asks]
        wanted = [f for row in facts for f in row if f]
        cos_all = X @ self._vectors(wanted).T if wanted else np.zeros((len(X), 0))
        texts = _reader(captions)
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
            p /= p.sum(axis=1, keepdims=True)
            if texts is not None:
                _read_captions(p, row, texts)
            out.append(p)
        return out

    def answer_loglik(
        self,
        turns: list[str],
        X: np.ndarray,
        asked: Mapping[str, Mapping] | None = None,
        captions: Sequence[str | None] | PoolTexts | None = None,
    ) -> np.ndarray:
        """Sum over answered turns of ``log p(answer | image)`` [N]; unknown turns add 0.

        ``asked`` maps each question the agent asked to its options and facts (state);
        other turns are read generically (see :func:`turn_question`).
        """
        asks, picked = [], []
        for turn in turns:
            got = turn_question(turn, asked or {})
            if got is not None:
                asks.append(got[0])
                picked.append(got[1])
        total = np.zeros(len(X))
        for p, i in zip(self.probabilities_many(asks, X, captions), picked, strict=True):
            total += np.log(np.clip(p[:, i], 1e-6, 1.0))
        return total


def turn_question(turn: str, asked: Mapping[str, Mapping]) -> tuple[Askable, int] | None:
    """The question a 'question? answer' turn answered, and which option the answer is.

    A question from ``asked`` keeps its options and facts (an answer outside them joins as
    an extra option when it states a fact). Any other question is generic: the answer's
    fact (``turn_to_fact``) against "not that" (a yes/no question: yes against no).
    Returns None when the turn carries no evidence ("i don't know", a bare "no" to an
    unknown question).
    """
    question, answer = split_turn(turn)
    if not question:
        return None
    answer = answer.lower().strip().rstrip(".")
    spec = asked.get(question + "?") or asked.get(question)
    if spec is not None:
        options = tuple(spec.get("options") or ())
        facts = spec.get("facts")
        ask = Askable(question + "?", options, tuple(facts) if facts is not None else None)
        if answer in options:
            return ask, options.index(answer)
        extra = fact(question, answer)
        if not extra or not options:
            return None
        return Askable(ask.text, (*options, answer), (*facts_of(ask), extra)), len(options)
    stated = fact(question, "yes" if is_yes_no(question) and answer in ("yes", "no") else answer)
    if not stated:
        return None
    ask = Askable(question + "?", ("yes", "no"), (stated, None))
    return ask, 1 if answer == "no" or answer.startswith("no ") else 0


def _reader(captions: Sequence[str | None] | PoolTexts | None) -> PoolTexts | None:
    if captions is None or isinstance(captions, PoolTexts):
        return captions
    return PoolTexts.of(captions)


def _read_captions(p: np.ndarray, facts: Sequence[str | None], texts: PoolTexts) -> None:
    """Replace, in place, the rows of captioned candidates by what their text states."""
    positive = [i for i, f in enumerate(facts) if f]
    if not positive:
        return
    said = np.zeros((len(texts), len(facts)), dtype=bool)
    for i in positive:
        said[:, i] = texts.said(facts[i])  # type: ignore[arg-type]
    if not said.any():
        return  # no text states any of these facts: the embedder knows more
    captioned = texts.captioned
    negative = [i for i, f in enumerate(facts) if not f]
    if negative:  # a text that states no positive fact says "none of these"
        silent = captioned & ~said.any(axis=1)
        said[np.ix_(silent, negative)] = True
    rows = np.flatnonzero(captioned & said.any(axis=1))
    if not len(rows):
        return
    hit = said[rows]
    n_hit = hit.sum(axis=1, keepdims=True)
    n_miss = len(facts) - n_hit
    on = np.where(n_miss > 0, (1 - CAPTION_EPS) / n_hit, 1.0 / n_hit)
    read = np.where(hit, on, CAPTION_EPS / np.maximum(1, n_miss))
    p[rows] = read / read.sum(axis=1, keepdims=True)


def information_gain(p: np.ndarray, weights: np.ndarray) -> float:
    """Mutual information (nats) between the answer and which candidate is the target.

    ``p`` [N, m]: each candidate's answer distribution; ``weights`` [N]: the posterior.
    """
    w = weights / weights.sum()
    marginal = w @ p
    h_marginal = -np.sum(marginal * np.log(np.clip(marginal, 1e-12, 1.0)))
    h_cond = -np.sum(w[:, None] * p * np.log(np.clip(p, 1e-12, 1.0)))
    return float(h_marginal - h_cond)
