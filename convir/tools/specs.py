"""One spec per tool: its input schema, its graph node, and how a standalone call runs.

The graph (``agents/graph.build_nodes``) and the LangChain tools
(``tools/langchain_tools.make_tools``) are both made from :data:`TOOL_SPECS`, and a
standalone call runs the very node the graph runs: its arguments become a conversation
state (and configuration overrides), the node updates that state, and the call returns a
JSON view of the update. So a chatbot builder's ReAct agent and convir's own graph search,
ask and rerank the same way, with the defaults of :class:`~convir.state.AgentConfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, model_validator

from convir.errors import GenerationError, InputError
from convir.state import AgentConfig, ConvState
from convir.tools.ask_clarification import AskClarificationArgs
from convir.tools.generate_images import GenerateImagesArgs
from convir.tools.ot_rerank import OTRerankArgs
from convir.tools.refine_query import RefineQueryArgs
from convir.tools.retrieve import RetrieveArgs

if TYPE_CHECKING:
    from convir.gallery.answers import AnswerModel
    from convir.gallery.resources import Resources
    from convir.models.refiner import Refiner

Node = Callable[[ConvState], dict]


@dataclass(frozen=True)
class ToolDeps:
    """What every node is built over: the gallery, the configuration, the shared answer
    model (its fact cache) and the refiner."""

    resources: Resources
    config: AgentConfig
    answers: AnswerModel
    refiner: Refiner

    def with_config(self, **update: Any) -> ToolDeps:
        return ToolDeps(
            self.resources, self.config.model_copy(update=update), self.answers, self.refiner
        )


@dataclass(frozen=True)
class ToolSpec:
    """A tool: name and description (what an LLM reads), the argument schema of a standalone
    call, the node factory, and ``call``: arguments -> (config overrides, state) -> the
    node's update -> a JSON-serialisable result."""

    name: str
    description: str
    args: type[BaseModel]
    node: Callable[[ToolDeps], Node]
    prepare: Callable[[ToolDeps, Any], tuple[dict[str, Any], ConvState]]
    present: Callable[[ToolDeps, ConvState, dict], dict]

    def call(self, deps: ToolDeps, args: BaseModel) -> dict:
        """Run the tool standalone: the node the graph runs, on a state built from ``args``."""
        overrides, state = self.prepare(deps, args)
        deps = deps.with_config(**overrides) if overrides else deps
        update = self.node(deps)(state)
        return self.present(deps, state, update)


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


# -- the five tools ---------------------------------------------------------------------


def _refine_node(deps: ToolDeps) -> Node:
    from convir.tools import refine_query

    return refine_query.make_refine_query_node(deps.resources, deps.refiner, deps.config)


def _refine_prepare(deps: ToolDeps, args: RefineQueryArgs) -> tuple[dict, ConvState]:
    if args.strategy == "stitch" and args.reference_id is None:
        raise InputError("refine_query with strategy stitch needs reference_id (the image edited)")
    from convir.gallery.opening import check_reference

    check_reference(deps.resources, args.reference_id)
    state: ConvState = {
        "dialogue": list(args.dialogue),
        "strategy": args.strategy,
        "reference_id": args.reference_id,
        "turn": 0,  # descriptions are written from the opening; later entries add facts
    }
    return {}, state


def _refine_present(deps: ToolDeps, state: ConvState, update: dict) -> dict:
    return {
        "query": update.get("query", ""),
        "descriptions": list(update.get("descriptions") or []),
        "how": _note(update),
    }


def _generate_node(deps: ToolDeps) -> Node:
    from convir.tools import generate_images

    return generate_images.make_generate_images_node(deps.resources, deps.config)


def _generate_prepare(deps: ToolDeps, args: GenerateImagesArgs) -> tuple[dict, ConvState]:
    overrides = {"n_generated": args.n_per_prompt, "seed": args.seed}
    return overrides, {"query": args.prompt, "turn": 0}


def _generate_present(deps: ToolDeps, state: ConvState, update: dict) -> dict:
    generated = update.get("generated")
    if not generated:
        if deps.resources.generator is None:
            raise GenerationError(
                "no image generator is configured for this gallery; use retrieve with the "
                "text query alone"
            )
        raise GenerationError(_note(update))
    return {
        "prompt": state["query"],
        "images": len(generated),
        "dim": len(generated[0]),
        "seed": update.get("generated_seed"),
    }


def _retrieve_node(deps: ToolDeps) -> Node:
    from convir.tools import retrieve

    return retrieve.make_retrieve_node(deps.resources, deps.config, deps.answers)


def _retrieve_prepare(deps: ToolDeps, args: RetrieveArgs) -> tuple[dict, ConvState]:
    k = min(args.k, deps.resources.index.count)
    state: ConvState = {"query": args.query, "dialogue": [args.query], "strategy": "text"}
    return {"top_k": k, "pool": max(k, deps.config.pool)}, state


def _retrieve_present(deps: ToolDeps, state: ConvState, update: dict) -> dict:
    return {
        "query": state["query"],
        "results": _ranked(deps, update["candidates"], update["scores"]),
    }


def _ask_node(deps: ToolDeps) -> Node:
    from convir.tools import ask_clarification

    return ask_clarification.make_ask_clarification_node(deps.resources, deps.config, deps.answers)


def _ask_prepare(deps: ToolDeps, args: AskClarificationToolArgs) -> tuple[dict, ConvState]:
    _positions(deps.resources, args.candidate_ids)
    state: ConvState = {
        "dialogue": list(args.dialogue),
        "candidates": list(args.candidate_ids),
        "scores": list(args.candidate_scores),
        "turn": len(args.dialogue) - 1,
    }
    return {"questions": args.mode, "question_pool": max(2, len(args.candidate_ids))}, state


def _ask_present(deps: ToolDeps, state: ConvState, update: dict) -> dict:
    return {
        "question": update.get("question"),
        "options": list(update.get("question_options") or []),
        "information_gain": float(update.get("question_gain", 0.0)),
    }


def _ot_node(deps: ToolDeps) -> Node:
    from convir.tools import ot_rerank

    return ot_rerank.make_ot_rerank_node(deps.resources, deps.config, deps.answers)


def _ot_prepare(deps: ToolDeps, args: OTRerankToolArgs) -> tuple[dict, ConvState]:
    ids = list(args.candidate_ids)
    positions = _positions(deps.resources, ids)
    scores = args.candidate_scores
    if scores is None:
        text = deps.resources.text(args.query).pooled[0].numpy()
        scores = (deps.resources.vectors[positions] @ text / deps.config.score_temperature).tolist()
    overrides = {
        "ot_top_n": args.top_n,
        "ot_weight": args.weight,
        "ot_reg": args.reg,
        "ot_reg_m": args.reg_m,
        "ot_iterations": args.n_iter,
    }
    return overrides, {"query": args.query, "candidates": ids, "scores": list(scores)}


def _ot_present(deps: ToolDeps, state: ConvState, update: dict) -> dict:
    ids = update.get("candidates", state["candidates"])
    scores = update.get("scores", state["scores"])
    n = min(deps.config.ot_top_n, len(ids))
    moved = sum(a != b for a, b in zip(ids[:n], state["candidates"][:n], strict=True))
    return {
        "query": state["query"],
        "reranked": n if "candidates" in update else 0,
        "moved": moved,
        "results": _ranked(deps, ids, scores),
    }


TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "refine_query",
        "Rewrite a dialogue (opening description, then 'question? answer' turns) as one text "
        "query for image search; with strategy stitch and a reference_id, write descriptions "
        "of the edited reference image instead.",
        RefineQueryArgs,
        _refine_node,
        _refine_prepare,
        _refine_present,
    ),
    ToolSpec(
        "generate_images",
        "Generate images of a text prompt and embed them as visual queries; returns how many "
        "images were made and the embedding size.",
        GenerateImagesArgs,
        _generate_node,
        _generate_prepare,
        _generate_present,
    ),
    ToolSpec(
        "retrieve",
        "Search the image gallery with a text query; returns the top k ids, paths and scores, "
        "best first.",
        RetrieveArgs,
        _retrieve_node,
        _retrieve_prepare,
        _retrieve_present,
    ),
    ToolSpec(
        "ask_clarification",
        "Choose the question about the target image whose answer best splits the given "
        "candidates, with its answer options and its information gain in nats.",
        AskClarificationToolArgs,
        _ask_node,
        _ask_prepare,
        _ask_present,
    ),
    ToolSpec(
        "ot_rerank",
        "Rerank candidate gallery ids against a query text by optimal transport between the "
        "text's words and the images' regions.",
        OTRerankToolArgs,
        _ot_node,
        _ot_prepare,
        _ot_present,
    ),
)


def _note(update: dict) -> str:
    lines = update.get("transcript") or [""]
    return str(lines[-1])


def _positions(resources: Resources, ids: list[str]) -> list[int]:
    try:
        return resources.positions(ids)
    except KeyError as exc:
        raise InputError(
            f"{exc.args[0]}; pass ids that retrieve returned for this gallery"
        ) from None


def _ranked(deps: ToolDeps, ids: list[str], scores: list[float]) -> list[dict]:
    index = deps.resources.index
    return [
        {
            "rank": r,
            "id": i,
            "path": index.path_of(index.position_of(i)),
            "score": round(float(s), 4),
        }
        for r, (i, s) in enumerate(zip(ids, scores, strict=True), start=1)
    ]


TOOL_NAMES: tuple[str, ...] = tuple(spec.name for spec in TOOL_SPECS)  # the tools, in order
