"""The testbed world: scenes of simple objects, in the style of CSS (TIRG, Vo et al. 2019).

A scene is 1-4 objects, each with a shape, a colour, a size and a cell of a 3x3 grid
(no two objects share a cell), on a plain background. Scene ``i`` of a world is a pure
function of ``(seed, i)``, so a gallery of any size is generated lazily and identically
everywhere. Odd scenes are, with probability ``edit_rate``, an *edit* of the scene just
before them (recolour, reshape, resize, remove, add, move): those pairs are the
composed-retrieval triplets, and their targets exist in the gallery by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "hexagon")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "green": (40, 160, 60),
    "blue": (35, 75, 215),
    "yellow": (240, 205, 25),
    "purple": (135, 55, 185),
    "orange": (245, 130, 20),
    "cyan": (30, 195, 210),
    "brown": (125, 78, 38),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "beige": (232, 220, 192),
    "gray": (190, 190, 190),
}
SIZES: tuple[str, ...] = ("small", "large")
# Row-major names of the 3x3 grid cells.
POSITIONS: tuple[str, ...] = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
EDIT_OPS: tuple[str, ...] = ("recolour", "reshape", "resize", "remove", "add", "move")
OBJECT_COUNT_PROBS: tuple[float, ...] = (0.1, 0.3, 0.35, 0.25)  # P(1), P(2), P(3), P(4) objects


@dataclass(frozen=True)
class Obj:
    """One object of a scene. ``dx, dy`` jitter the centre inside its cell (fractions of a cell)."""

    shape: str
    colour: str
    size: str
    cell: int
    dx: float = 0.0
    dy: float = 0.0

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]

    def key(self) -> tuple[str, str, str, int]:
        """The object's meaning, without the pixel jitter."""
        return (self.shape, self.colour, self.size, self.cell)


@dataclass(frozen=True)
class Edit:
    """What turned a reference scene into this one; ``obj`` indexes the reference's objects."""

    op: str
    obj: int | None = None  # the edited object in the reference (None for "add")
    value: str | int | None = None  # new colour / shape / size / cell, or None
    added: Obj | None = None  # the new object, for "add"


@dataclass(frozen=True)
class Scene:
    """A scene: background and objects sorted by cell; ``edit_of`` links an edited scene."""

    index: int
    background: str
    objects: tuple[Obj, ...]
    edit_of: int | None = None
    edit: Edit | None = None

    @property
    def id(self) -> str:
        return scene_id(self.index)

    def key(self) -> tuple:
        """The scene's meaning (background and objects), ignoring jitter; equal keys look alike."""
        return (self.background, tuple(o.key() for o in self.objects))

    def free_cells(self) -> list[int]:
        used = {o.cell for o in self.objects}
        return [c for c in range(9) if c not in used]

    def to_record(self) -> dict:
        """The attribute record written to ``attributes.jsonl``."""
        rec: dict = {
            "id": self.id,
            "background": self.background,
            "objects": [
                {
                    "shape": o.shape,
                    "colour": o.colour,
                    "size": o.size,
                    "position": o.position,
                    "cell": o.cell,
                }
                for o in self.objects
            ],
        }
        if self.edit_of is not None and self.edit is not None:
            rec["edit_of"] = scene_id(self.edit_of)
            rec["edit"] = {"op": self.edit.op, "obj": self.edit.obj, "value": self.edit.value}
        return rec


def scene_id(index: int) -> str:
    """Gallery id of scene ``index`` (zero-padded, so ids sort like indices)."""
    return f"{index:07d}"


def _jitter(rng: np.random.Generator, size: str) -> tuple[float, float]:
    room = 0.06 if size == "large" else 0.2
    return float(rng.uniform(-room, room)), float(rng.uniform(-room, room))


def random_object(rng: np.random.Generator, cell: int) -> Obj:
    size = SIZES[rng.integers(len(SIZES))]
    dx, dy = _jitter(rng, size)
    return Obj(
        shape=SHAPES[rng.integers(len(SHAPES))],
        colour=list(COLOURS)[rng.integers(len(COLOURS))],
        size=size,
        cell=cell,
        dx=dx,
        dy=dy,
    )


def _sorted(objects: list[Obj] | tuple[Obj, ...]) -> tuple[Obj, ...]:
    return tuple(sorted(objects, key=lambda o: o.cell))


@dataclass
class World:
    """A seeded, lazily generated gallery of ``size`` scenes."""

    seed: int = 0
    size: int = 1000
    edit_rate: float = 0.5
    _cache: dict[int, Scene] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 10_000_000:
            raise ValueError(f"world size must be between 1 and 10,000,000, got {self.size}")
        if not 0.0 <= self.edit_rate <= 1.0:
            raise ValueError(f"edit_rate must be in [0, 1], got {self.edit_rate}")

    def __len__(self) -> int:
        return self.size

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.size:
            raise IndexError(f"scene {index} is outside a world of {self.size}")
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        rng = np.random.default_rng([self.seed, index])
        if index % 2 == 1 and rng.random() < self.edit_rate:
            scene = apply_random_edit(self._base_scene(index - 1), rng, index)
        else:
            scene = self._base_scene(index)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[index] = scene
        return scene

    def _base_scene(self, index: int) -> Scene:
        """The scene drawn from scratch for ``index`` (what even indices always are)."""
        rng = np.random.default_rng([self.seed, index, 1])
        n = int(rng.choice(len(OBJECT_COUNT_PROBS), p=OBJECT_COUNT_PROBS)) + 1
        cells = sorted(int(c) for c in rng.choice(9, size=n, replace=False))
        objects = [random_object(rng, c) for c in cells]
        background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
        return Scene(index=index, background=background, objects=_sorted(objects))

    def scenes(self, start: int = 0, stop: int | None = None) -> list[Scene]:
        stop = self.size if stop is None else min(stop, self.size)
        return [self.scene(i) for i in range(start, stop)]

    def edited_indices(self) -> list[int]:
        """Indices of scenes that are edits of their predecessor (the triplets' targets)."""
        return [i for i in range(1, self.size, 2) if self.scene(i).edit_of is not None]


def apply_edit(ref: Scene, edit: Edit, index: int) -> Scene:
    """The scene that ``edit`` makes of ``ref``; other objects keep their exact pixels."""
    objs = list(ref.objects)
    if edit.op == "add":
        assert edit.added is not None
        objs.append(edit.added)
    elif edit.op == "remove":
        objs.pop(edit.obj)
    else:
        o = objs[edit.obj]
        if edit.op == "recolour":
            objs[edit.obj] = replace(o, colour=edit.value)
        elif edit.op == "reshape":
            objs[edit.obj] = replace(o, shape=edit.value)
        elif edit.op == "resize":
            objs[edit.obj] = replace(o, size=edit.value, dx=0.0, dy=0.0)
        elif edit.op == "move":
            objs[edit.obj] = replace(o, cell=edit.value)
        else:
            raise ValueError(f"unknown edit op {edit.op!r}")
    return Scene(
        index=index,
        background=ref.background,
        objects=_sorted(objs),
        edit_of=ref.index,
        edit=edit,
    )


def _other(rng: np.random.Generator, options: tuple[str, ...] | list[str], current: str) -> str:
    choices = [v for v in options if v != current]
    return choices[rng.integers(len(choices))]


def apply_random_edit(ref: Scene, rng: np.random.Generator, index: int) -> Scene:
    """Apply one random edit to ``ref``, swapping in a valid op where the drawn one cannot apply."""
    op = EDIT_OPS[rng.integers(len(EDIT_OPS))]
    n = len(ref.objects)
    free = ref.free_cells()
    if op == "remove" and n < 2:
        op = "add"
    if op in ("add", "move") and not free:
        op = "recolour"
    if op == "add" and n >= 4:
        op = "move" if free else "recolour"
    k = int(rng.integers(n))
    o = ref.objects[k]
    if op == "recolour":
        edit = Edit("recolour", k, _other(rng, list(COLOURS), o.colour))
    elif op == "reshape":
        edit = Edit("reshape", k, _other(rng, SHAPES, o.shape))
    elif op == "resize":
        edit = Edit("resize", k, _other(rng, SIZES, o.size))
    elif op == "remove":
        edit = Edit("remove", k)
    elif op == "move":
        edit = Edit("move", k, int(free[rng.integers(len(free))]))
    else:  # add
        cell = int(free[rng.integers(len(free))])
        edit = Edit("add", None, None, random_object(rng, cell))
    return apply_edit(ref, edit, index)
