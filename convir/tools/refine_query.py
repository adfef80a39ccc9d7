"""``refine_query``: the dialogue becomes one text query (DAR), or a reference caption plus an
edit becomes the target's caption (STiTch, step a).

DAR: the refiner (template rules, or an LLM with template fallback) rewrites the dialogue.
STiTch: the LLM writes the target caption from the ``stitch_target_caption`` prompt. Without
an LLM (or when it fails) the fallback is the edit followed by the reference caption: a
dual encoder then sees both the change and what stays, and the transition vector in
``retrieve`` carries the reference image's look. Answers to later questions are appended as
facts either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from convir.errors import LLMError
from convir.models.refiner import Refiner, TemplateRefiner
from convir.state import AgentConfig, ConvState, Strategy

if TYPE_CHECKING:
    from convir.agents.resources import Resources
    from convir.models.llm import LLM

log = logging.getLogger(__name__)
MAX_QUERY_CHARS = 1000


class RefineQueryArgs(BaseModel):
    """Arguments of ``refine_query`` as a standalone tool."""

    model_config = ConfigDict(extra="forbid")

    dialogue: list[str] = Field(
        min_length=1, max_length=64, description="opening description, then 'question? answer'"
    )
    strategy: Strategy = "dar"
    reference_caption: str | None = Field(None, max_length=2000)


def target_caption(reference_caption: str, edit: str, llm: LLM | None = None) -> tuple[str, str]:
    """STiTch step (a): (caption of the edited reference, how it was written)."""
    fallback = f"{edit.strip()}, {reference_caption.strip()}".strip(", ")
    if llm is None:
        return fallback, "rules"
    from convir.prompts import load_prompt

    prompt = load_prompt("stitch_target_caption")
    try:
        reply = llm.complete(
            [
                {
                    "role": "user",
                    "content": prompt.render(reference_caption=reference_caption, edit=edit),
                }
            ]
        )
    except LLMError as exc:
        log.warning("LLM target caption failed (%s); using edit + reference caption", exc)
        return fallback, f"rules (LLM failed: {type(exc).__name__})"
    text = str(reply).strip().strip('"')[:MAX_QUERY_CHARS]
    return (text, "llm") if text else (fallback, "rules (empty LLM reply)")


def refine_query(
    dialogue: Sequence[str],
    strategy: Strategy,
    refiner: Refiner,
    *,
    reference_caption: str | None = None,
    llm: LLM | None = None,
) -> tuple[str, str]:
    """The turn's text query and a note on how it was made.

    For ``stitch`` the dialogue's first entry is the edit text; later entries are answers.
    """
    if not dialogue:
        return "", "empty dialogue"
    if strategy == "stitch":
        caption, how = target_caption(reference_caption or "", dialogue[0], llm)
        facts = TemplateRefiner().refine([caption, *dialogue[1:]])
        return facts[:MAX_QUERY_CHARS], f"target caption by {how}"
    return refiner.refine(list(dialogue))[:MAX_QUERY_CHARS], type(refiner).__name__


def node(
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
        query, how = refine_query(
            state.get("dialogue", []), state.get("strategy", "dar"), refiner, llm=resources.llm
        )
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
        if ref and resources.llm is not None and config.llm_sees_reference:
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
