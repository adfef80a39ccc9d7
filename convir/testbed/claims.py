"""Judge a short claim about a testbed scene ("red circle", "white background", "top left").

The simulated testbed user answers any question bank's questions with this: a yes/no
question is the claim its "yes" would make, a multiple-choice option is a claim of its own.
Places are read as the testbed's captions use them: "at the top" is the top middle cell,
"on the left" the middle left one, "top left" that corner; a claim with no word the testbed
knows is unanswerable (None), and the user says "i don't know".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from convir.testbed.captions import NUMBER_WORDS
from convir.testbed.world import BACKGROUNDS, COLOURS, SHAPES, Scene

_SIZES = {"small": "small", "little": "small", "large": "large", "big": "large"}
_ROWS = {"top": 0, "upper": 0, "bottom": 2, "lower": 2}
_COLS = {"left": 0, "right": 2}
_CENTRE = {"center", "centre", "middle"}
# Words a claim may use besides attribute values; any other word makes it unjudgeable
# ("a pink star": the testbed cannot say what pink is, so it does not guess from "star").
_NEUTRAL = set(
    "a an the and at in on of to with is are there it its one image picture photo shows "
    "showing object objects shape shapes thing things something anything corner side "
    "background".split()
)


@dataclass(frozen=True)
class Claim:
    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    cells: frozenset[int] | None = None
    background: str | None = None
    count: int | None = None

    @property
    def about_object(self) -> bool:
        return any(v is not None for v in (self.colour, self.shape, self.size, self.cells))


def _cells(words: list[str]) -> frozenset[int] | None:
    rows = {_ROWS[w] for w in words if w in _ROWS}
    cols = {_COLS[w] for w in words if w in _COLS}
    centre = any(w in _CENTRE for w in words)
    if not rows and not cols and not centre:
        return None
    row_set = rows or {1}  # "left", "middle left": the middle row
    col_set = cols or {1}  # "top", "top middle": the middle column
    return frozenset(r * 3 + c for r in row_set for c in col_set)


def parse_claim(text: str) -> Claim | None:
    """The claim's structure, or None when it says nothing the testbed can check."""
    words = re.findall(r"[a-z]+", text.lower().replace("grey", "gray"))
    known = _NEUTRAL | set(COLOURS) | set(BACKGROUNDS) | set(_SIZES) | set(_ROWS) | set(_COLS)
    known |= _CENTRE | set(NUMBER_WORDS) | set(SHAPES) | {f"{s}s" for s in SHAPES}
    if any(w not in known for w in words):
        return None
    background = None
    for k in range(len(words) - 2):  # "... on a gray": the setting, the noun left out
        if words[k : k + 2] == ["on", "a"] and words[k + 2] in BACKGROUNDS:
            words = [*words[: k + 3], "background", *words[k + 3 :]]
            break
    if "background" in words:
        at = words.index("background")
        before, after = words[:at], words[at + 1 :]  # "a white background", "the background white"
        background = next((w for w in reversed(before) if w in BACKGROUNDS), None) or next(
            (w for w in after if w in BACKGROUNDS), None
        )
        words = [w for w in words if w not in BACKGROUNDS and w != "background"]
    count = None
    for k, w in enumerate(words[:-1]):
        if w in NUMBER_WORDS and words[k + 1] in ("objects", "object", "shapes", "things"):
            count = NUMBER_WORDS.index(w)
    claim = Claim(
        # a background colour said of an object ("a gray star") is a colour no object has
        colour=next((w for w in words if w in COLOURS or w in BACKGROUNDS), None),
        shape=next((w.rstrip("s") for w in words if w.rstrip("s") in SHAPES), None),
        size=next((_SIZES[w] for w in words if w in _SIZES), None),
        cells=_cells(words),
        background=background,
        count=count,
    )
    if not claim.about_object and claim.background is None and claim.count is None:
        return None
    return claim


def holds(claim: Claim, scene: Scene) -> bool:
    """Whether ``scene`` makes ``claim`` true (one object satisfies every object part)."""
    if claim.background is not None and scene.background != claim.background:
        return False
    if claim.count is not None and len(scene.objects) != claim.count:
        return False
    if not claim.about_object:
        return True
    return any(
        (claim.colour is None or o.colour == claim.colour)
        and (claim.shape is None or o.shape == claim.shape)
        and (claim.size is None or o.size == claim.size)
        and (claim.cells is None or o.cell in claim.cells)
        for o in scene.objects
    )


def judge(text: str, scene: Scene) -> bool | None:
    """True/False for a checkable claim, None when the testbed cannot tell."""
    claim = parse_claim(text)
    return None if claim is None else holds(claim, scene)
