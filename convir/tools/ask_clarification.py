"""``ask_clarification``: the question whose answer best splits the current candidates.

Candidates carry a posterior ``w = softmax(score)`` (scores are in logit units, see
``retrieve``). For each askable question the zero-shot answer model gives every candidate's
answer distribution, and the question with the largest expected information gain (mutual
information between the answer and the target's identity) is asked. A question already
asked, or whose answer the dialogue already states, is never asked. ``random`` mode picks
uniformly from the same menu: the fixed-questioner baseline.

In the graph this node stores the question; the next node, :func:`await_answer_node`, pauses
the conversation with LangGraph's ``interrupt()`` and resumes with the user's answer
(``Command(resume=answer)``). LangGraph re-runs the paused node on resume, so the choice
(information gains, an LLM call) is not part of it and is never repeated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convir.gallery.answers import already_answered, information_gain
from convir.gallery.questions import Askable, Candidates, CombinedBank, LLMBank, QuestionBank
from convir.state import MAX_MESSAGE_CHARS, AgentConfig, ConvState

if TYPE_CHECKING:
    from convir.gallery.answers import AnswerModel
    from convir.gallery.resources import Resources
    from convir.gallery.text_reader import PoolTexts


class AskClarificationArgs(BaseModel):
    """Arguments of ``ask_clarification`` as a standalone tool."""

    model_config = ConfigDict(extra="forbid")

    dialogue: list[str] = Field(min_length=1, max_length=64)
    candidate_ids: list[str] = Field(min_length=1, max_length=1000)
    candidate_scores: list[float] = Field(min_length=1, max_length=1000)
    mode: Literal["info_gain", "random"] = "info_gain"


def choose_question(
    menu: Sequence[Askable],
    dialogue: list[str],
    asked: Sequence[str],
    X: np.ndarray,
    scores: np.ndarray,
    answers: AnswerModel,
    *,
    mode: Literal["info_gain", "random"] = "info_gain",
    seed: int = 0,
    captions: Sequence[str | None] | PoolTexts | None = None,
) -> tuple[Askable | None, float]:
    """(the question to ask, its information gain in nats); None when nothing is left.

    ``X`` [N, D]: the candidates' vectors; ``scores`` [N]: their logit-scale scores;
    ``captions``: their texts, where the gallery has them (the answer model reads them).
    """
    open_questions = [q for q in menu if q.text not in asked and not already_answered(q, dialogue)]
    if not open_questions:
        return None, 0.0
    w = np.exp(scores - scores.max()) if len(scores) else np.ones(0)
    if mode == "random" or len(X) == 0:
        q = open_questions[np.random.default_rng(seed).integers(len(open_questions))]
        gain = (
            information_gain(answers.probabilities_many([q], X, captions)[0], w) if len(X) else 0.0
        )
        return q, gain
    gains = answers.gains(open_questions, X, w, captions)
    best = int(np.argmax(gains))  # ties: the menu's order
    return open_questions[best], float(gains[best])


def _stable_seed(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def clean_answer(text: object) -> str:
    """A user's answer as the dialogue stores it: one line, capped, never empty."""
    answer = " ".join(str(text).split())[:MAX_MESSAGE_CHARS]
    return answer or "i don't know"


def make_ask_clarification_node(
    resources: Resources, config: AgentConfig, answers: AnswerModel
) -> Callable[[ConvState], dict]:
    """Graph node: choose the question and store it; ``await_answer`` then pauses for it."""

    def ask_clarification_node(state: ConvState) -> dict:
        dialogue = state.get("dialogue", [])
        ids = state.get("candidates", [])[: config.question_pool]
        positions = resources.positions(ids)
        X = resources.vectors[positions] if positions else np.zeros((0, resources.index.dim))
        scores = np.asarray(state.get("scores", [])[: len(ids)], dtype=np.float64)
        seed = _stable_seed(config.seed, dialogue[:1], state.get("turn", 0))
        captions = resources.captions_at(positions)
        view = Candidates.of(ids, scores, captions)
        bank: QuestionBank = resources.bank()
        llm_bank = None
        if resources.llm is not None and config.questions == "info_gain":
            llm_bank = LLMBank(resources.llm)
            bank = CombinedBank(llm_bank, bank)
        menu = bank.menu(dialogue, view) if ids else []
        note = llm_bank.note if llm_bank is not None else ""
        question, gain = choose_question(
            menu,
            dialogue,
            state.get("asked", []),
            X,
            scores,
            answers,
            mode=config.questions,
            seed=seed,
            captions=resources.texts_at(positions) if config.read_captions else None,
        )
        if question is None:
            return {
                "question": None,
                "question_options": [],
                "transcript": [f"ask_clarification: nothing left to ask {note}".strip()],
            }
        how = f"{config.questions}, gain {gain:.3f} nats" + (f"; {note}" if note else "")
        return {
            "question": question.text,
            "question_options": list(question.options),
            "question_gain": float(gain),
            "asked_options": {**state.get("asked_options", {}), question.text: question.to_state()},
            "transcript": [f"ask_clarification ({how}): {question.text!r}"],
        }

    return ask_clarification_node


def await_answer_node(state: ConvState) -> dict:
    """Pause until the user answers the stored question, then fold the answer in.

    Kept apart from the choice so that the resume, which re-runs this node, re-runs only
    this: the question (maybe an LLM's proposal) is never chosen twice.
    """
    from langgraph.types import interrupt

    reply = interrupt({"question": state.get("question") or ""})
    if isinstance(reply, dict):  # ConvirAgent's resume: the answer and its idempotency key,
        # saved by this step itself, so a key in the state means the answer was folded in
        update = fold_answer(state, reply.get("answer", ""))
        return {**update, "message_key": reply.get("message_key")}
    return fold_answer(state, reply)


def fold_answer(state: ConvState, answer: object) -> dict:
    """The state update that records ``answer`` to the stored question as a new turn."""
    question = state.get("question") or ""
    answer = clean_answer(answer)
    return {
        "dialogue": [*state.get("dialogue", []), f"{question} {answer}"],
        "asked": [*state.get("asked", []), question],
        "question": None,
        "question_options": [],
        "turn": state.get("turn", 0) + 1,
        "steps": [],
        "transcript": [f"user answered {question!r} -> {answer!r}"],
        "turn_from": len(state.get("transcript", [])),
    }
