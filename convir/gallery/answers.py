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

from convir.gallery.language import content_lemmas
from convir.gallery.questions import Askable
from convir.gallery.text_reader import PoolTexts
from convir.models.refiner import (
    is_no,
    is_unsure,
    is_yes,
    is_yes_no,
    split_turn,
    strip_filler,
    turn_to_fact,
)

if TYPE_CHECKING:
    from convir.models.embedder import Embedder

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
    return any(f in text for f in _phrase_facts(askable))


@functools.lru_cache(maxsize=65536)
def _phrase_facts(askable: Askable) -> tuple[str, ...]:
    """The question's facts of more than one word, lower-cased (a dialogue stating one has
    answered it)."""
    return tuple(f.lower() for f in facts_of(askable) if f and len(f.split()) > 1)


@functools.lru_cache(maxsize=65536)
def facts_of(askable: Askable) -> tuple[str | None, ...]:
    """The fact each option states: the bank's own, else read off the wording."""
    if askable.facts is not None:
        return askable.facts
    return tuple(fact(askable.text, o) for o in askable.options)


class AnswerModel:
    """Zero-shot ``p(answer | image)`` from the embedder; fact embeddings are cached."""

    def __init__(self, embedder: Embedder, temperature: float = 0.1) -> None:
        self.embedder = embedder
        self.temperature = temperature
        self._facts: dict[str, int] = {}  # fact -> its row of ``_matrix``
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._lock = threading.Lock()

    def _vectors(self, facts: list[str]) -> np.ndarray:
        """Unit fact embeddings [len(facts), D]; each distinct fact is embedded once and
        kept as a row of one matrix, so a menu's facts are one gather, not a stack."""
        with self._lock:
            missing = [f for f in dict.fromkeys(facts) if f not in self._facts]
        if missing:
            pooled = self.embedder.encode_text(missing).pooled.numpy().astype(np.float32)
            with self._lock:
                for f, v in zip(missing, pooled, strict=True):
                    if f in self._facts:
                        continue
                    if len(self._facts) == len(self._matrix):
                        grown = np.zeros((max(256, 2 * len(self._matrix)), len(v)), np.float32)
                        if len(self._matrix):
                            grown[: len(self._matrix)] = self._matrix
                        self._matrix = grown
                    self._matrix[len(self._facts)] = v
                    self._facts[f] = len(self._facts)
        with self._lock:
            return self._matrix[[self._facts[f] for f in facts]]

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
        texts = _reader(captions)
        cos = self._cosines(facts, X, _read_whole(facts, texts, len(X)))
        return option_probabilities(facts, cos, self.temperature, texts)

    def gains(
        self,
        asks: Sequence[Askable],
        X: np.ndarray,
        weights: np.ndarray,
        captions: Sequence[str | None] | PoolTexts | None = None,
    ) -> np.ndarray:
        """Each question's information gain (nats) over candidates ``X`` weighted by the
        posterior ``weights`` [N]: :func:`information_gain` of :meth:`probabilities_many`,
        computed side by side (one pass for the whole menu)."""
        facts = [facts_of(a) for a in asks]
        texts = _reader(captions)
        cos = self._cosines(facts, X, _read_whole(facts, texts, len(X)))
        sizes = _sizes(facts)
        if not _fits_side_by_side(sizes, len(X)):
            probs = option_probabilities(facts, cos, self.temperature, texts)
            return np.array([information_gain(p, weights) for p in probs])
        p, starts = _side_by_side(facts, cos, self.temperature, texts, sizes)
        return information_gains(p, starts, weights)

    def _cosines(
        self,
        facts: Sequence[Sequence[str | None]],
        X: np.ndarray,
        read: np.ndarray | None = None,
    ) -> np.ndarray:
        """The candidates' cosines [N, F] with every positive fact of the menu, in order
        (one matmul). ``read`` [Q]: questions whose every row is read off the texts
        (:func:`_read_whole`); their cosines are never looked at, so their facts are not
        embedded and their columns are left at 0."""
        wanted = [f for row in facts for f in row if f]
        if not wanted:
            return np.zeros((len(X), 0), X.dtype)
        if read is None or not read.any():
            return X @ self._vectors(wanted).T
        keep = np.array([not read[q] for q, row in enumerate(facts) for f in row if f])
        cos = np.zeros((len(X), len(wanted)), np.result_type(X.dtype, np.float32))
        if keep.any():
            cos[:, keep] = X @ self._vectors([f for f, k in zip(wanted, keep, strict=True) if k]).T
        return cos

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
        meant = _option_meant(answer, options, facts_of(ask))
        if meant is not None:
            return ask, meant
        extra = fact(question, answer)
        if not extra or not options:
            return None
        return Askable(ask.text, (*options, answer), (*facts_of(ask), extra)), len(options)
    stated = fact(question, "yes" if is_yes_no(question) and answer in ("yes", "no") else answer)
    if not stated:
        return None
    ask = Askable(question + "?", ("yes", "no"), (stated, None))
    return ask, 1 if answer == "no" or answer.startswith("no ") else 0


def _option_meant(
    answer: str, options: tuple[str, ...], facts: tuple[str | None, ...]
) -> int | None:
    """Which offered option a free answer means: "yeah, it is" -> yes, "nope" -> no, "it's
    red" -> "red bus" (the one option whose fact holds every content word of the answer),
    "neither" -> "none of these"; None when it means none of them clearly."""
    if is_unsure(answer):
        return None
    if options[:2] == ("yes", "no"):
        if is_yes(answer):
            return 0
        if is_no(answer):
            return 1
        return None
    said = content_lemmas(strip_filler(answer.replace("'s ", " is "))) - _FILLER_WORDS
    if said:
        fits = [i for i, f in enumerate(facts) if f and said <= content_lemmas(f)]
        if len(fits) == 1:
            return fits[0]
    if is_no(answer) or answer in ("neither", "none", "nothing"):
        blank = [i for i, f in enumerate(facts) if f is None]
        return blank[0] if blank else None
    return None


_FILLER_WORDS = frozenset("yes yeah yep it be look like think i seem mostly just".split())


def _reader(captions: Sequence[str | None] | PoolTexts | None) -> PoolTexts | None:
    if captions is None or isinstance(captions, PoolTexts):
        return captions
    return PoolTexts.of(captions)


def _read_whole(
    facts: Sequence[Sequence[str | None]], texts: PoolTexts | None, rows: int
) -> np.ndarray | None:
    """Bool [Q]: the questions whose answer :func:`_read_captions` reads off the texts for
    every candidate, so that the embedder's cosines never reach their probabilities: some
    text states one of their facts, and every candidate has a text that either states one or
    answers the question's negative option ("no", "none of these"). None without texts."""
    if texts is None or rows == 0 or not facts:
        return None
    flat = [f for row in facts for f in row if f]
    if not flat:
        return None
    sizes = np.array([sum(1 for f in row if f) for row in facts], dtype=np.int64)
    negative = np.array([any(not f for f in row) for row in facts])
    said = texts.said(flat)  # [N, F]
    stated = np.zeros((rows, len(facts)), dtype=bool)
    has = sizes > 0
    if has.any():
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[has]
        stated[:, has] = np.logical_or.reduceat(said, starts, axis=1)
    captioned = np.asarray(texts.captioned, dtype=bool)[:, None]
    return stated.any(axis=0) & (captioned & (stated | negative[None, :])).all(axis=0)


def option_probabilities(
    facts: Sequence[Sequence[str | None]],
    cos: np.ndarray,
    temperature: float,
    texts: PoolTexts | None = None,
) -> list[np.ndarray]:
    """``p(option | candidate)`` [N, len(row)] per question, all questions in one pass.

    ``facts``: each question's facts (None: a negative option); ``cos`` [N, F]: the
    candidates' cosines with every positive fact, in order. The questions' options are laid
    side by side in one [N, options] matrix and every per-question step (the negative
    options' median logit, the softmax, reading the texts) is a segment reduction over it,
    so a menu of 30 questions costs a few array operations, not 30 passes.
    """
    sizes = _sizes(facts)
    if not _fits_side_by_side(sizes, cos.shape[0]):
        return [
            _one_question(row, cos, temperature, texts, facts, i) for i, row in enumerate(facts)
        ]
    p, starts = _side_by_side(facts, cos, temperature, texts, sizes)
    return [p[:, a : a + k] for a, k in zip(starts.tolist(), sizes.tolist(), strict=True)]


def _sizes(facts: Sequence[Sequence[str | None]]) -> np.ndarray:
    return np.array([len(row) for row in facts], dtype=np.int64)


def _fits_side_by_side(sizes: np.ndarray, rows: int) -> bool:
    """Whether a menu can be laid side by side: some questions, each with options, and at
    least one candidate (otherwise each question is handled on its own)."""
    return bool(len(sizes)) and bool(sizes.all()) and rows > 0


def _side_by_side(
    facts: Sequence[Sequence[str | None]],
    cos: np.ndarray,
    temperature: float,
    texts: PoolTexts | None,
    sizes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(p [N, all options], each question's first column): :func:`option_probabilities`
    for menus whose questions all have options, over at least one candidate."""
    n = cos.shape[0]
    flat = [f for row in facts for f in row]
    positive = np.array([bool(f) for f in flat])
    q_of = np.repeat(np.arange(len(facts)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    best = np.full((n, len(flat)), -np.inf, dtype=cos.dtype)
    best[:, positive] = cos
    has_positive = np.bincount(q_of[positive], minlength=len(facts)) > 0
    null = np.zeros(len(facts))
    if has_positive.any():
        medians = np.median(np.maximum.reduceat(best, starts, axis=1)[:, has_positive], axis=0)
        null[has_positive] = medians.astype(np.float64) / temperature
    logits = np.empty((n, len(flat)), dtype=np.float64)
    logits[:, positive] = cos / temperature
    logits[:, ~positive] = null[q_of[~positive]]
    logits -= np.maximum.reduceat(logits, starts, axis=1)[:, q_of]
    p = np.exp(logits)
    p /= np.add.reduceat(p, starts, axis=1)[:, q_of]
    if texts is not None and positive.any():
        _read_captions(p, flat, positive, q_of, starts, sizes, texts)
    return p, starts


def information_gains(p: np.ndarray, starts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """:func:`information_gain` of every question of a side-by-side matrix at once [Q]."""
    w = weights / weights.sum()
    marginal = w @ p
    h_marginal = -np.add.reduceat(marginal * np.log(np.clip(marginal, 1e-12, 1.0)), starts)
    h_cond = -np.add.reduceat(w @ (p * np.log(np.clip(p, 1e-12, 1.0))), starts)
    return h_marginal - h_cond


def _one_question(
    row: Sequence[str | None],
    cos: np.ndarray,
    temperature: float,
    texts: PoolTexts | None,
    facts: Sequence[Sequence[str | None]],
    i: int,
) -> np.ndarray:
    """A single question of a degenerate menu (a question without options, or no rows)."""
    if not row or cos.shape[0] == 0:
        return np.zeros((cos.shape[0], len(row)))
    col = sum(1 for r in facts[:i] for f in r if f)
    k = sum(1 for f in row if f)
    return option_probabilities([row], cos[:, col : col + k], temperature, texts)[0]


def _read_captions(
    p: np.ndarray,
    flat: Sequence[str | None],
    positive: np.ndarray,
    q_of: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    texts: PoolTexts,
) -> None:
    """Replace, in place, each question's rows of captioned candidates by what their text
    states (for the questions where at least one text states one of their facts)."""
    said = np.zeros(p.shape, dtype=bool)
    said[:, positive] = texts.said([f for f in flat if f])  # type: ignore[misc]
    stated = np.logical_or.reduceat(said, starts, axis=1)  # [N, Q]: the text states one
    active = stated.any(axis=0)  # questions some text speaks to; the rest stay with the embedder
    if not active.any():
        return
    captioned = texts.captioned[:, None]
    silent = captioned & ~stated  # a text that states no positive fact says "none of these"
    negative = ~positive & active[q_of]
    said[:, negative] = silent[:, q_of[negative]]
    n_hit = np.add.reduceat(said, starts, axis=1).astype(np.float64)  # [N, Q]
    n_miss = sizes[None, :] - n_hit
    on = np.where(n_miss > 0, (1 - CAPTION_EPS) / np.maximum(n_hit, 1), 1.0 / np.maximum(n_hit, 1))
    read = np.where(said, on[:, q_of], (CAPTION_EPS / np.maximum(1, n_miss))[:, q_of])
    read /= np.add.reduceat(read, starts, axis=1)[:, q_of]
    replace = (captioned & (n_hit > 0) & active[None, :])[:, q_of]
    p[replace] = read[replace]


def information_gain(p: np.ndarray, weights: np.ndarray) -> float:
    """Mutual information (nats) between the answer and which candidate is the target.

    ``p`` [N, m]: each candidate's answer distribution; ``weights`` [N]: the posterior.
    """
    w = weights / weights.sum()
    marginal = w @ p
    h_marginal = -np.sum(marginal * np.log(np.clip(marginal, 1e-12, 1.0)))
    h_cond = -np.sum(w[:, None] * p * np.log(np.clip(p, 1e-12, 1.0)))
    return float(h_marginal - h_cond)
