"""The five agent tools as LangChain tools, for an LLM agent of your own.

:func:`make_tools` makes a ``StructuredTool`` of each :data:`~convir.tools.specs.TOOL_SPECS`
entry over one :class:`~convir.gallery.resources.Resources`: a call runs the same node the
convir graph runs (``ToolSpec.call``), with :class:`~convir.state.AgentConfig`'s defaults.
Arguments are validated by the tool's pydantic model before anything runs, so a model that
asks for ``k=1000000`` gets a validation error naming the bound instead of a huge search.
Results are plain JSON-serialisable dicts (ids, scores, text), never images or arrays, so
they can go straight back into a chat.

Scores are in the agent's logit units (cosine / ``AgentConfig.score_temperature``), so the output
of ``retrieve`` can be passed to ``ask_clarification`` and ``ot_rerank`` as it is. A
:class:`~convir.errors.ConvirError` (unknown id, no generator) propagates; LangGraph's
``ToolNode`` shows its message to the model, which says what to do instead.

Importing this module imports torch (through ``ot_rerank``); ``import convir`` does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convir.state import AgentConfig
from convir.tools.specs import TOOL_SPECS, AskClarificationToolArgs, OTRerankToolArgs, ToolDeps

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from convir.gallery.resources import Resources
    from convir.tools.specs import ToolSpec

__all__ = ["make_tools", "AskClarificationToolArgs", "OTRerankToolArgs"]


def make_tools(resources: Resources, config: AgentConfig | None = None) -> list[BaseTool]:
    """``refine_query``, ``generate_images``, ``retrieve``, ``ask_clarification``, ``ot_rerank``."""
    from langchain_core.tools import StructuredTool

    from convir.gallery.answers import AnswerModel
    from convir.models.refiner import LLMRefiner, TemplateRefiner

    config = config or AgentConfig()
    refiner = LLMRefiner(resources.llm) if resources.llm else TemplateRefiner()
    deps = ToolDeps(
        resources, config, AnswerModel(resources.embedder, config.answer_temperature), refiner
    )
    return [
        StructuredTool.from_function(
            func=_validated(spec, deps),
            name=spec.name,
            description=spec.description,
            args_schema=spec.args,
        )
        for spec in TOOL_SPECS
    ]


def _validated(spec: ToolSpec, deps: ToolDeps) -> Any:
    """LangChain passes only the given fields; rebuild the model so defaults apply too."""

    def call(**kwargs: Any) -> dict:
        return spec.call(deps, spec.args.model_validate(kwargs))

    return call
