"""The five agent tools as LangChain tools, for an LLM agent of your own.

:func:`make_tools` wraps each tool's pure core as a ``StructuredTool`` over one
:class:`~convir.agents.resources.Resources`. Arguments are validated by the tool's pydantic
model before anything runs, so a model that asks for ``k=1000000`` gets a validation error
naming the bound instead of a huge search. Results are plain JSON-serialisable dicts (ids,
scores, text), never images or arrays, so they can go straight back into a chat.

Scores are in the agent's logit units (cosine / ``AgentConfig.temperature``), so the output
of ``retrieve`` can be passed to ``ask_clarification`` and ``ot_rerank`` as it is. A
:class:`~convir.errors.ConvirError` (unknown id, no generator) propagates; LangGraph's
``ToolNode`` shows its message to the model, which says what to do instead.

Importing this module imports torch (through ``ot_rerank``); ``import convir`` does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from convir.errors import InputError
from convir.state import AgentConfig
from convir.tools.ask_clarification import AskClarificationArgs
from convir.tools.generate_images import GenerateImagesArgs
from convir.tools.ot_rerank import OTRerankArgs
from convir.tools.refine_query import RefineQueryArgs
from convir.tools.retrieve import RetrieveArgs

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from convir.agents.answers import AnswerModel
    from convir.agents.resources import Resources


class AskClarificationToolArgs(AskClarificationArgs):
    """``ask_clarification`` standalone: one score per candidate id, checked up front."""

    @model_validator(mode="after")
    def _one_score_per_id(self) -> AskClarificationToolArgs:
        if len(self.candidate_ids) != len(self.candidate_scores):
            raise ValueError(
                f"{len(self.candidate_ids)} candidate_ids but {len(self.candidate_scores)} "
                "candidate_scores; pass one score per id (retrieve returns both)"
            )
        return self


class OTRerankToolArgs(OTRerankArgs):
    """``ot_rerank`` standalone: the query text and the candidates come with the call."""

    query: str = Field(min_length=1, max_length=2000, description="text the images must match")
    candidate_ids: list[str] = Field(
        min_length=1, max_length=1000, description="gallery ids, best first"
    )
    candidate_scores: list[float] | None = Field(
        None,
        max_length=1000,
        description="first-stage scores of the ids; default: the query's cosine / temperature",
    )

    @model_validator(mode="after")
    def _one_score_per_id(self) -> OTRerankToolArgs:
        if self.candidate_scores is not None and len(self.candidate_scores) != len(
            self.candidate_ids
        ):
            raise ValueError(
                f"{len(self.candidate_ids)} candidate_ids but {len(self.candidate_scores)} "
                "candidate_scores; pass one score per id, or none"
            )
        return self


def make_tools(resources: Resources, config: AgentConfig | None = None) -> list[BaseTool]:
    """``refine_query``, ``generate_images``, ``retrieve``, ``ask_clarification``, ``ot_rerank``."""
    from langchain_core.tools import StructuredTool

    from convir.agents.answers import AnswerModel

    config = config or AgentConfig()
    answers = AnswerModel(resources.embedder, config.temperature)
    specs: list[tuple[str, str, type, Any]] = [
        (
            "refine_query",
            "Rewrite a dialogue (opening description, then 'question? answer' turns) as one "
            "text query for image search.",
            RefineQueryArgs,
            lambda a: _refine_query(resources, a),
        ),
        (
            "generate_images",
            "Generate images of text prompts and embed them as visual queries; returns how "
            "many images were made and the embedding size.",
            GenerateImagesArgs,
            lambda a: _generate_images(resources, a),
        ),
        (
            "retrieve",
            "Search the image gallery with a text query; returns the top k ids, paths and "
            "scores, best first.",
            RetrieveArgs,
            lambda a: _retrieve(resources, config, a),
        ),
        (
            "ask_clarification",
            "Choose the question about the target image whose answer best splits the given "
            "candidates, with its information gain in nats.",
            AskClarificationToolArgs,
            lambda a: _ask_clarification(resources, config, answers, a),
        ),
        (
            "ot_rerank",
            "Rerank candidate gallery ids against a query text by optimal transport between "
            "the text's words and the images' regions.",
            OTRerankToolArgs,
            lambda a: _ot_rerank(resources, config, a),
        ),
    ]
    return [
        StructuredTool.from_function(
            func=_validated(schema, run),
            name=name,
            description=description,
            args_schema=schema,
        )
        for name, description, schema, run in specs
    ]


def _validated(schema: type, run: Any) -> Any:
    """LangChain passes only the given fields; rebuild the model so defaults apply too."""

    def call(**kwargs: Any) -> dict:
        return run(schema.model_validate(kwargs))

    return call


def _refine_query(resources: Resources, args: RefineQueryArgs) -> dict:
    from convir.models.refiner import LLMRefiner, TemplateRefiner
    from convir.tools.refine_query import refine_query

    refiner = LLMRefiner(resources.llm) if resources.llm else TemplateRefiner()
    query, how = refine_query(
        args.dialogue,
        args.strategy,
        refiner,
        reference_caption=args.reference_caption,
        llm=resources.llm,
    )
    return {"query": query, "how": how}


def _generate_images(resources: Resources, args: GenerateImagesArgs) -> dict:
    from convir.errors import GenerationError
    from convir.tools.generate_images import generated_embeddings

    generator = resources.generator
    if generator is None:
        raise GenerationError(
            "no image generator is configured for this gallery; use retrieve with the text "
            "query alone"
        )
    emb = generated_embeddings(
        generator, resources.embedder, args.prompts, args.n_per_prompt, args.seed
    )
    return {
        "prompts": len(args.prompts),
        "images": int(emb.shape[0] * emb.shape[1]),
        "per_prompt": int(emb.shape[1]),
        "dim": int(emb.shape[2]),
    }


def _retrieve(resources: Resources, config: AgentConfig, args: RetrieveArgs) -> dict:
    from convir.tools.retrieve import query_vector, retrieve

    text = resources.embedder.encode_text([args.query]).pooled.numpy()[0]
    q = query_vector(text, "text")
    k = min(args.k, resources.index.count)
    cfg = config.model_copy(update={"top_k": k, "pool": max(k, config.pool)})
    ids, scores = retrieve(resources, q, [], None, cfg)
    return {"query": args.query, "results": _ranked(resources, ids, scores)}


def _ask_clarification(
    resources: Resources,
    config: AgentConfig,
    answers: AnswerModel,
    args: AskClarificationToolArgs,
) -> dict:
    import numpy as np

    from convir.agents.questions import Candidates
    from convir.tools.ask_clarification import choose_question

    positions = _positions(resources, args.candidate_ids)
    scores = np.asarray(args.candidate_scores, dtype=np.float64)
    captions = resources.captions_at(positions)
    question, gain = choose_question(
        resources.bank().menu(args.dialogue, Candidates.of(args.candidate_ids, scores, captions)),
        args.dialogue,
        [],
        resources.vectors[positions],
        scores,
        answers,
        mode=args.mode,
        seed=config.seed,
        captions=resources.texts_at(positions) if config.read_captions else None,
    )
    if question is None:
        return {"question": None, "options": [], "information_gain": 0.0}
    return {"question": question.text, "options": list(question.options), "information_gain": gain}


def _ot_rerank(resources: Resources, config: AgentConfig, args: OTRerankToolArgs) -> dict:
    import torch

    from convir.tools.ot_rerank import ot_rerank

    ids = list(args.candidate_ids)
    positions = _positions(resources, ids)
    text = resources.embedder.encode_text([args.query], tokens=True)
    if args.candidate_scores is None:
        cos = resources.vectors[positions] @ text.pooled[0].numpy()
        scores = (cos / config.temperature).tolist()
    else:
        scores = list(args.candidate_scores)
    n = min(args.top_n, len(ids))
    new_scores, order = ot_rerank(
        torch.tensor(scores[:n], dtype=torch.float32),
        text.tokens[0],
        text.mask[0],
        resources.patches(positions[:n]),
        weight=args.weight,
        reg=args.reg,
        n_iter=args.n_iter,
        reg_m=args.reg_m,
    )
    head = [ids[i] for i in order.tolist()]
    moved = sum(a != b for a, b in zip(head, ids[:n], strict=True))
    ranked = _ranked(resources, head + ids[n:], new_scores[order].tolist() + scores[n:])
    return {"query": args.query, "reranked": n, "moved": moved, "results": ranked}


def _positions(resources: Resources, ids: list[str]) -> list[int]:
    try:
        return resources.positions(ids)
    except KeyError as exc:
        raise InputError(
            f"{exc.args[0]}; pass ids that retrieve returned for this gallery"
        ) from None


def _ranked(resources: Resources, ids: list[str], scores: list[float]) -> list[dict]:
    return [
        {
            "rank": r,
            "id": i,
            "path": resources.index.path_of(resources.index.position_of(i)),
            "score": round(float(s), 4),
        }
        for r, (i, s) in enumerate(zip(ids, scores, strict=True), start=1)
    ]
