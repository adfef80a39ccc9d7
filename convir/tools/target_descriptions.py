"""STiTch step (a): k descriptions of the target image from the reference and the edit.

STiTch's authors let a vision-language model see the reference image with the edit and
sample five descriptions of the edited image (temperature 0.8). Here:

- with an LLM: one structured call asks for ``k`` varied descriptions (prompt
  ``stitch_target_descriptions``, schema :class:`TargetDescriptions`) instead of k sampled
  calls: one round trip, and the variety is asked for rather than left to sampling. When
  the model is a vision-language model (``AgentConfig.stitch_llm_sees_reference``), the reference
  image is sent as an image part, as STiTch does; otherwise the model reads the reference
  image's caption (gallery text or captioner).
- without one (or when the call fails): rules. The first description is the edit followed
  by the reference caption (what the agent always wrote); the others keep a random subset of
  the caption's clauses: a clause that shares a content word with the edit (it is probably
  the part being changed and would contradict the edit) is kept with probability 1/2, the
  others with 9/10. Sampling is seeded, so a turn is reproducible.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from convir.errors import LLMError

if TYPE_CHECKING:
    from PIL import Image

    from convir.models.llm import LLM

log = logging.getLogger(__name__)
MAX_DESCRIPTION_CHARS = 500
KEEP_TOUCHED, KEEP_OTHER = 0.5, 0.9
# words of an edit instruction that say how to change, not what: they do not mark a clause
EDIT_WORDS = frozenset(
    "a an the of to into with and in on at it its one is be make change turn replace remove "
    "delete take away add put insert move shift colour color size shape instead same".split()
)


class TargetDescriptions(BaseModel):
    """What the LLM returns for step (a)."""

    descriptions: list[str] = Field(min_length=1, max_length=16)


def clauses(caption: str) -> list[str]:
    """A caption's clauses: split at commas, semicolons and ' and '."""
    parts = re.split(r"\s*[,;]\s*|\s+and\s+", caption.strip().rstrip("."))
    return [p for p in (q.strip() for q in parts) if p]


def rule_descriptions(reference_caption: str, edit: str, k: int, seed: int = 0) -> list[str]:
    """``k`` descriptions by rules (module docstring); the first is edit + whole caption."""
    edit = edit.strip()
    parts = clauses(reference_caption)
    marked = {w for w in re.findall(r"[a-z]+", edit.lower()) if w not in EDIT_WORDS}
    touched = [bool(marked & set(re.findall(r"[a-z]+", p.lower()))) for p in parts]
    rng = np.random.default_rng([seed, k, len(parts)])
    out = [", ".join([edit, *parts]).strip(", ")]
    for _ in range(k - 1):
        keep = [
            p
            for p, t in zip(parts, touched, strict=True)
            if rng.random() < (KEEP_TOUCHED if t else KEEP_OTHER)
        ]
        out.append(", ".join([edit, *keep]).strip(", "))
    return out


def llm_descriptions(
    reference_caption: str,
    edit: str,
    k: int,
    llm: LLM,
    reference_image: Image.Image | None = None,
) -> list[str]:
    """``k`` descriptions written by the LLM (raises :class:`LLMError` when it fails)."""
    from convir.models.llm import image_part
    from convir.prompts import load_prompt

    text = load_prompt("stitch_target_descriptions").render(
        reference_caption=reference_caption or "(not given: see the image)", edit=edit, k=k
    )
    content: str | list = text
    if reference_image is not None:
        content = [{"type": "text", "text": text}, image_part(reference_image)]
    reply = llm.complete([{"role": "user", "content": content}], TargetDescriptions)
    assert isinstance(reply, TargetDescriptions)
    found = [d.strip().strip('"')[:MAX_DESCRIPTION_CHARS] for d in reply.descriptions]
    found = [d for d in found if len(d.split()) >= 2]  # very short replies are dropped
    if not found:
        raise LLMError("the LLM returned no usable target description")
    return [found[i % len(found)] for i in range(k)]


def target_descriptions(
    reference_caption: str | None,
    edit: str,
    k: int,
    *,
    llm: LLM | None = None,
    reference_image: Image.Image | None = None,
    seed: int = 0,
) -> tuple[list[str], str]:
    """(k target descriptions, how they were written: ``llm``, ``vlm`` or ``rules``)."""
    caption = reference_caption or ""
    if llm is not None:
        try:
            found = llm_descriptions(caption, edit, k, llm, reference_image)
            return found, "vlm" if reference_image is not None else "llm"
        except LLMError as exc:
            log.warning("LLM target descriptions failed (%s); using rules", exc)
            return rule_descriptions(caption, edit, k, seed), f"rules (LLM failed: {exc})"[:120]
    return rule_descriptions(caption, edit, k, seed), "rules"
