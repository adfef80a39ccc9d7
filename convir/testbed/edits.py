"""Composed-retrieval triplets: (reference image, edit text, target image).

The edit text is written from the structured :class:`~convir.testbed.world.Edit` that
produced the target, naming the edited object by the shortest unambiguous description
("make the red circle blue", "remove the small square", "add a green star at the top").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convir.testbed.captions import POSITION_NAMES, noun_phrase, referring_expression
from convir.testbed.world import POSITIONS, Edit, Scene, World

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "recolour": (
        "make {ref} {value}",
        "change the colour of {ref} to {value}",
        "turn {ref} {value}",
    ),
    "reshape": (
        "change {ref} into a {value}",
        "make {ref} a {value}",
        "replace {ref} with a {value}",
    ),
    "resize": ("make {ref} {value}", "change the size of {ref} to {value}"),
    "remove": ("remove {ref}", "delete {ref}", "take away {ref}"),
    "add": ("add {new}", "put {new}", "insert {new}"),
    "move": ("move {ref} to the {where}", "shift {ref} to the {where}"),
}


def edit_text(ref: Scene, edit: Edit, rng: np.random.Generator | None = None) -> str:
    """The instruction that turns ``ref`` into ``apply_edit(ref, edit)``."""
    options = _TEMPLATES[edit.op]
    template = options[0] if rng is None else options[rng.integers(len(options))]
    ref_phrase = referring_expression(ref, edit.obj) if edit.obj is not None else ""
    new = noun_phrase(edit.added, rng=rng) if edit.added is not None else ""
    where = POSITION_NAMES[POSITIONS[edit.value]] if edit.op == "move" else ""
    value = edit.value if edit.op in ("recolour", "reshape", "resize") else ""
    return template.format(ref=ref_phrase, value=value, new=new, where=where)


@dataclass(frozen=True)
class Triplet:
    reference: str  # gallery id of the reference image
    text: str  # the edit instruction
    target: str  # gallery id of the edited scene


def triplet_for(world: World, index: int, seed: int = 0) -> Triplet | None:
    """The triplet whose target is scene ``index``, or None if that scene is not an edit."""
    target = world.scene(index)
    if target.edit is None or target.edit_of is None:
        return None
    ref = world.scene(target.edit_of)
    rng = np.random.default_rng([seed, index, 11])
    return Triplet(ref.id, edit_text(ref, target.edit, rng), target.id)


def triplets(world: World, seed: int = 0, limit: int | None = None) -> list[Triplet]:
    """Every (reference, edit, target) triplet the world holds, in gallery order."""
    out: list[Triplet] = []
    for i in world.edited_indices():
        triplet = triplet_for(world, i, seed)
        assert triplet is not None
        out.append(triplet)
        if limit is not None and len(out) >= limit:
            break
    return out
