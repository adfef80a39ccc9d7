"""``refine_query``: the dialogue becomes one text query (DAR), or a reference image's caption
plus an edit become the target's descriptions (STiTch, step a: ``target_descriptions``).

DAR: the refiner (template rules, or an LLM with template fallback) rewrites the dialogue.
STiTch: ``stitch_descriptions`` descriptions of the edited image, written once per
conversation by the LLM (``stitch_target_descriptions`` prompt) or by rules without one;
answers to later questions are appended to each as facts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from convir.models.refiner import Refiner, TemplateRefiner
from convir.state import AgentConfig, ConvState, Strategy

if TYPE_CHECKING:
    from convir.gallery.resources import Resources

log = logging.getLogger(__name__)
MAX_QUERY_CHARS = 1000


class RefineQueryArgs(BaseModel):
    """Arguments of ``refine_query`` as a standalone tool."""

    model_config = ConfigDict(extra="forbid")

    dialogue: list[str] = Field(
        min_length=1, max_length=64, description="opening description, then 'question? answer'"
    )
    strategy: Strategy = "dar"
    reference_id: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="stitch: gallery id of the reference image the dialogue's opening edits",
    )


def refine_query(dialogue: Sequence[str], refiner: Refiner) -> tuple[str, str]:
    """The turn's text query (DAR / text) and a note on how it was made."""
    if not dialogue:
        return "", "empty dialogue"
    return refiner.refine(list(dialogue))[:MAX_QUERY_CHARS], type(refiner).__name__


def make_refine_query_node(
    resources: Resources, refiner: Refiner, config: AgentConfig | None = None
) -> Callable[[ConvState], dict]:
    """Graph node: refine the state's dialogue with the state's strategy.

    DAR/text: one refined query, also kept per turn in ``refined`` (published DAR searches
    all of them joined). STiTch: ``stitch_descriptions`` target descriptions, written once
    per conversation from the reference and the edit (``target_descriptions``), each with
    the facts of later answers appended; the first is the turn's ``query``.
    """
    config = config or AgentConfig()

    def refine_query_node(state: ConvState) -> dict:
        if state.get("strategy", "dar") == "stitch":
            return _stitch_update(resources, config, state)
        query, how = refine_query(state.get("dialogue", []), refiner)
        turn = state.get("turn", 0)
        return {
            "query": query,
            "refined": [*state.get("refined", [])[:turn], query],
            "transcript": [f"refine_query ({how}): {query!r}"],
        }

    return refine_query_node


def _stitch_update(resources: Resources, config: AgentConfig, state: ConvState) -> dict:
    from convir.tools.target_descriptions import target_descriptions

    dialogue = state.get("dialogue", [])
    base = state.get("descriptions_base") if state.get("turn", 0) > 0 else None
    how = "kept from the first turn"
    if not base:
        ref = state.get("reference_id")
        image = None
        if ref and resources.llm is not None and config.stitch_llm_sees_reference:
            image = resources.load_image(resources.index.position_of(ref))
        base, how = target_descriptions(
            resources.caption_for(ref) if ref else None,
            dialogue[0] if dialogue else "",
            config.stitch_descriptions,
            llm=resources.llm,
            reference_image=image,
            seed=config.seed,
        )
    facts = TemplateRefiner()
    descriptions = [facts.refine([d, *dialogue[1:]])[:MAX_QUERY_CHARS] for d in base]
    shown = "; ".join(repr(d) for d in dict.fromkeys(descriptions))
    return {
        "query": descriptions[0],
        "descriptions": descriptions,
        "descriptions_base": list(base),
        "transcript": [f"refine_query ({len(descriptions)} target descriptions by {how}): {shown}"],
    }
