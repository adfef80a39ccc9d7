"""The texts a real CLIP is trained on, for testbed scenes: short, partial, full, paraphrased.

Web alt-text is mostly short ("a red circle"), often partial (one object, an object with one
attribute, only the setting), sometimes a full description, in many word orders. Each text
drawn here comes with a :class:`Spec` of what it claims, so training can tell which images
in a batch a short text is *also* true of ("a red circle" fits every scene holding one): the
contrastive targets are then every matching image, not only the one the text was drawn
from (a multi-positive InfoNCE, as in supervised contrastive learning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convir.testbed.captions import (
    BACKGROUND_WORDS,
    NUMBER_WORDS,
    PARTIAL_TEMPLATES,
    full_caption,
    join_list,
    noun_phrase,
)
from convir.testbed.world import Obj, Scene

# Share of each kind of text in a batch (sums to 1).
MIX: dict[str, float] = {
    "full": 0.25,  # every object and the background, one of four templates
    "object": 0.35,  # one object, colour + shape mostly, sometimes size or position
    "objects": 0.15,  # a subset of objects, each with a subset of attributes
    "background": 0.05,  # the setting only
    "count": 0.05,  # how many objects, sometimes with one of them
    "shape": 0.15,  # a bare shape ("a star") or colour ("a red object")
}


@dataclass(frozen=True)
class ObjSpec:
    """What a text says of one object; None means not said."""

    shape: str | None = None
    colour: str | None = None
    size: str | None = None
    cell: int | None = None

    def fits(self, o: Obj) -> bool:
        return (
            (self.shape is None or self.shape == o.shape)
            and (self.colour is None or self.colour == o.colour)
            and (self.size is None or self.size == o.size)
            and (self.cell is None or self.cell == o.cell)
        )


@dataclass(frozen=True)
class Spec:
    """What a text claims of a scene: objects (each a different one), background, count."""

    objects: tuple[ObjSpec, ...] = ()
    background: str | None = None
    count: int | None = None

    def fits(self, scene: Scene) -> bool:
        if self.background is not None and scene.background != self.background:
            return False
        if self.count is not None and len(scene.objects) != self.count:
            return False
        return _assign(self.objects, list(scene.objects))


def _assign(specs: tuple[ObjSpec, ...], objs: list[Obj]) -> bool:
    """Whether each spec fits a distinct object (backtracking; scenes hold <= 4 objects)."""
    if not specs:
        return True
    first, rest = specs[0], specs[1:]
    for k, o in enumerate(objs):
        if first.fits(o) and _assign(rest, objs[:k] + objs[k + 1 :]):
            return True
    return False


def _obj_text(
    o: Obj, rng: np.random.Generator, size: bool, colour: bool, position: bool
) -> tuple[str, ObjSpec]:
    phrase = noun_phrase(o, size=size, colour=colour, position=position, rng=rng)
    spec = ObjSpec(
        shape=o.shape,
        colour=o.colour if colour else None,
        size=o.size if size else None,
        cell=o.cell if position else None,
    )
    return phrase, spec


def _full(scene: Scene, rng: np.random.Generator) -> tuple[str, Spec]:
    objs = tuple(ObjSpec(o.shape, o.colour, o.size, o.cell) for o in scene.objects)
    return full_caption(scene, rng), Spec(objs, scene.background, len(scene.objects))


def _object(scene: Scene, rng: np.random.Generator) -> tuple[str, Spec]:
    o = scene.objects[rng.integers(len(scene.objects))]
    extra = rng.choice(4, p=[0.55, 0.15, 0.2, 0.1])  # nothing, size, position, both
    phrase, spec = _obj_text(o, rng, extra in (1, 3), rng.random() < 0.92, extra in (2, 3))
    if rng.random() < 0.5:
        phrase = PARTIAL_TEMPLATES[rng.integers(len(PARTIAL_TEMPLATES))].format(phrase)
    return phrase, Spec((spec,))


def _objects(scene: Scene, rng: np.random.Generator) -> tuple[str, Spec]:
    n = len(scene.objects)
    k = int(rng.integers(1, n + 1))
    chosen = [scene.objects[i] for i in rng.permutation(n)[:k]]
    phrases, specs = [], []
    for o in chosen:
        keep = rng.random(3) < np.array([0.3, 0.8, 0.4])  # size, colour, position
        phrase, spec = _obj_text(o, rng, bool(keep[0]), bool(keep[1]), bool(keep[2]))
        phrases.append(phrase)
        specs.append(spec)
    text, background = join_list(phrases), None
    if rng.random() < 0.3:
        background = scene.background
        text += f" on a {BACKGROUND_WORDS[background][rng.integers(len(BACKGROUND_WORDS[background]))]} background"
    return text, Spec(tuple(specs), background)


def _background(scene: Scene, rng: np.random.Generator) -> tuple[str, Spec]:
    words = BACKGROUND_WORDS[scene.background]
    bg = words[rng.integers(len(words))]
    template = ("a {} background", "shapes on a {} background", "a picture with a {} background")
    return template[rng.integers(len(template))].format(bg), Spec(background=scene.background)


def _count(scene: Scene, rng: np.random.Generator) -> tuple[str, Spec]:
    n = len(scene.objects)
    text = f"{NUMBER_WORDS[n]} {'object' if n == 1 else 'objects'}"
    if n > 1 and rng.random() < 0.5:
        o = scene.objects[rng.integers(n)]
        phrase, spec = _obj_text(o, rng, False, True, False)
        return f"{text}, one of them {phrase}", Spec((spec,), count=n)
    return text, Spec(count=n)


def _shape(scene: Scene, rng: np.random.Generator) -> tuple[str, Spec]:
    o = scene.objects[rng.integers(len(scene.objects))]
    if rng.random() < 0.7:  # shapes are what a tiny ViT learns last
        return noun_phrase(o, size=False, colour=False, position=False), Spec((ObjSpec(o.shape),))
    return f"a {o.colour} object", Spec((ObjSpec(colour=o.colour),))


_KINDS = {
    "full": _full,
    "object": _object,
    "objects": _objects,
    "background": _background,
    "count": _count,
    "shape": _shape,
}


def training_text(scene: Scene, rng: np.random.Generator) -> tuple[str, Spec]:
    """One text about ``scene`` drawn from :data:`MIX`, with what it claims."""
    kind = list(MIX)[rng.choice(len(MIX), p=list(MIX.values()))]
    return _KINDS[kind](scene, rng)


def positives(specs: list[Spec], scenes: list[Scene]) -> np.ndarray:
    """``[texts, images]`` bool matrix: text i is true of image j (the diagonal always is)."""
    out = np.zeros((len(specs), len(scenes)), dtype=bool)
    for i, spec in enumerate(specs):
        for j, scene in enumerate(scenes):
            out[i, j] = i == j or spec.fits(scene)
    return out
