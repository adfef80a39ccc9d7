"""The ChatIR text-only baseline as a :class:`~convir.turn.ConversationalSystem`.

Each turn embeds the whole dialogue so far, joined with ``", "`` (ChatIR's query), and
searches the gallery with it. The questioner is deliberately dumb, so that what the agent's
questions and strategies add can be measured against it:

- ``"random"``: the testbed's template menu in a random order, seeded per thread id, never
  repeating (the testbed's in-memory rows);
- ``"bank"``: any gallery's own question bank (``resources.bank()``: caption-mined on a
  gallery with texts) on the turn's top :data:`BANK_POOL` ranking, one question drawn at
  random (seeded per thread id, never one asked before in the thread), sent with its
  options so the user can pick one;
- ``"menu"``: the template menu in its own order; ``"none"``: ask nothing (replayed ChatIR
  dialogues bring their own questions).

A reference image, if given, is ignored: this is text-only retrieval.

Rankings keep the top ``depth`` ids (default 1000, or the whole gallery if smaller): the
run file must hold the target's rank for Hits@K *and* BRI, and a target below the cut counts
as not found (BRI then gives it the gallery size as rank).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from convir.errors import InputError
from convir.evaluation.user_protocol import dialogue_seed
from convir.turn import TurnResult

if TYPE_CHECKING:
    from convir.gallery.resources import Resources

DEPTH = 1000
BANK_POOL = 50  # "bank": the top candidates the gallery's bank proposes questions about
QUESTION_ORDERS = ("random", "menu", "none", "bank")


@dataclass
class _Thread:
    dialogue: list[str]
    questions: list[str]  # still to ask, next first (template modes)
    asked: str | None = None  # the question of the last turn, awaiting its answer
    rng: np.random.Generator | None = None  # "bank": this thread's own draws
    seen: set[str] = field(default_factory=set)  # "bank": questions asked in this thread


class TextBaseline:
    """ChatIR's text-only retriever with a random questioner; thread-safe.

    It is a :class:`~convir.turn.BatchedSystem`: the evaluation loop runs it a round at a
    time, every dialogue's query in one encoder call and one index search.
    """

    def __init__(
        self, resources: Resources, seed: int = 0, questions: str = "random", depth: int = DEPTH
    ) -> None:
        if questions not in QUESTION_ORDERS:
            raise InputError(
                f"the text baseline's question order must be {' or '.join(QUESTION_ORDERS)} "
                f"(none: ask nothing); got {questions!r}"
            )
        if depth < 1:
            raise InputError(f"ranking depth must be >= 1, got {depth}")
        self.resources = resources
        self.seed = seed
        self.questions = questions
        self.depth = min(depth, resources.index.count)
        self._threads: dict[str, _Thread] = {}
        self._lock = threading.Lock()

    def _menu(self, thread_id: str) -> list[str]:
        from convir.testbed.oracle import candidate_questions

        if self.questions in ("none", "bank"):
            return []
        menu = [q.text for q in candidate_questions()]
        if self.questions == "menu":
            return menu
        rng = np.random.default_rng(dialogue_seed(self.seed, thread_id, 2))
        return [menu[i] for i in rng.permutation(len(menu))]

    def start(self, thread_id: str, message: str, reference_id: str | None = None) -> TurnResult:
        """Open (or restart) ``thread_id`` with the user's first description."""
        return self.start_batch([(thread_id, message, reference_id)])[0]

    def reply(self, thread_id: str, message: str) -> TurnResult:
        """Add ``"<last question> <answer>"`` (or the bare message if nothing was asked)."""
        return self.reply_batch([(thread_id, message)])[0]

    def start_batch(self, openings: Sequence[tuple[str, str, str | None]]) -> list[TurnResult]:
        """:meth:`start` for many threads: one text-encoder call and one index search."""
        notes = []
        for thread_id, message, reference_id in openings:
            state = _Thread(dialogue=[message.strip()], questions=self._menu(thread_id))
            if self.questions == "bank":
                state.rng = np.random.default_rng(dialogue_seed(self.seed, thread_id, 2))
            with self._lock:
                self._threads[thread_id] = state
            notes.append(
                [f"ignored reference image {reference_id} (text-only)"] if reference_id else []
            )
        return self._turns([t for t, _, _ in openings], notes)

    def reply_batch(self, replies: Sequence[tuple[str, str]]) -> list[TurnResult]:
        """:meth:`reply` for many threads: one text-encoder call and one index search."""
        with self._lock:
            for thread_id, _ in replies:
                if thread_id not in self._threads:
                    raise InputError(f"thread {thread_id!r} was never started; call start() first")
            for thread_id, message in replies:
                state = self._threads[thread_id]
                answer = message.strip()
                state.dialogue.append(f"{state.asked} {answer}" if state.asked else answer)
        return self._turns([t for t, _ in replies], [[] for _ in replies])

    def _turns(self, thread_ids: list[str], notes: list[list[str]]) -> list[TurnResult]:
        with self._lock:
            states = [self._threads[t] for t in thread_ids]
            queries = [", ".join(s.dialogue) for s in states]
        res = self.resources
        vectors = res.embedder.encode_text(queries).pooled.numpy().astype(np.float32)
        scores, positions = res.index.search(vectors, self.depth)
        out = []
        for state, query, note, row_scores, row in zip(
            states, queries, notes, scores, positions, strict=True
        ):
            keep = row >= 0
            ranking = [res.index.id_of(int(p)) for p in row[keep]]
            options: list[str] = []
            if self.questions == "bank":
                question, options = self._bank_question(state, row[keep], row_scores[keep])
            else:
                with self._lock:
                    question = state.questions.pop(0) if state.questions else None
            with self._lock:
                state.asked = question
            top = ranking[0] if ranking else "-"
            out.append(
                TurnResult(
                    ranking=ranking,
                    scores=[float(s) for s in row_scores[keep]],
                    question=question,
                    options=options,
                    strategy="text",
                    query=query,
                    transcript=[*note, f"text search: {query!r} -> top {top}"],
                )
            )
        return out

    def _bank_question(
        self, state: _Thread, positions: np.ndarray, scores: np.ndarray
    ) -> tuple[str | None, list[str]]:
        """A random question of the gallery's bank about the top :data:`BANK_POOL`
        candidates, never one this thread asked before; (None, []) when none is left.
        The bank sees the raw search scores as logits: a dumb questioner weighs the pool
        nearly evenly."""
        from convir.gallery.questions import Candidates

        res = self.resources
        top = [int(p) for p in positions[:BANK_POOL]]
        view = Candidates.of(
            [res.index.id_of(p) for p in top],
            np.asarray(scores[: len(top)], dtype=np.float64),
            res.captions_at(top),
        )
        with self._lock:
            dialogue = list(state.dialogue)
        asks = {a.text: a for a in res.bank().menu(dialogue, view) if a.text not in state.seen}
        menu = [asks[t] for t in sorted(asks)]  # a bank's order may follow set iteration
        if not menu:
            return None, []
        assert state.rng is not None
        with self._lock:
            ask = menu[int(state.rng.integers(len(menu)))]
            state.seen.add(ask.text)
        return ask.text, list(ask.options)


__all__ = ["TextBaseline", "DEPTH", "BANK_POOL", "QUESTION_ORDERS"]
