"""Text about testbed scenes: full captions with paraphrases, and partial round-0 captions.

Full captions name every object (size, colour, shape, position) and the background; the
paraphrases vary the template, the object order and a few synonyms. Partial captions name
one object only, with some attributes left out, so the target stays ambiguous: the room an
interactive system has to win back over the dialogue.
"""

from __future__ import annotations

import numpy as np

from convir.testbed.world import POSITIONS, Obj, Scene

SIZE_WORDS: dict[str, tuple[str, ...]] = {"large": ("large", "big"), "small": ("small", "little")}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("at the top left", "in the top left corner", "in the upper left"),
    "top": ("at the top", "at the top middle", "in the top center"),
    "top right": ("at the top right", "in the top right corner", "in the upper right"),
    "left": ("on the left", "at the middle left", "in the left middle"),
    "center": ("in the center", "in the middle"),
    "right": ("on the right", "at the middle right", "in the right middle"),
    "bottom left": ("at the bottom left", "in the bottom left corner", "in the lower left"),
    "bottom": ("at the bottom", "at the bottom middle", "in the bottom center"),
    "bottom right": ("at the bottom right", "in the bottom right corner", "in the lower right"),
}
# Unambiguous names of the cells, for referring to one object ("the red circle at the middle right").
POSITION_NAMES: dict[str, str] = {
    **{p: p for p in POSITIONS},
    "top": "top middle",
    "left": "middle left",
    "right": "middle right",
    "bottom": "bottom middle",
}
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five")
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "white": ("white",),
    "beige": ("beige",),
    "gray": ("gray", "grey"),
}


def _pick(options: tuple[str, ...], rng: np.random.Generator | None) -> str:
    return options[0] if rng is None else options[rng.integers(len(options))]


def article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def noun_phrase(
    o: Obj,
    *,
    size: bool = True,
    colour: bool = True,
    position: bool = True,
    rng: np.random.Generator | None = None,
) -> str:
    """'a large red circle at the top left', with any attribute left out on request."""
    words = []
    if size:
        words.append(_pick(SIZE_WORDS[o.size], rng))
    if colour:
        words.append(o.colour)
    words.append(o.shape)
    phrase = article(" ".join(words))
    if position:
        phrase += " " + _pick(POSITION_PHRASES[o.position], rng)
    return phrase


def join_list(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def full_caption(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """Every object and the background. ``rng=None`` gives the one canonical caption."""
    objs = list(scene.objects)
    if rng is not None:
        objs = [objs[k] for k in rng.permutation(len(objs))]
    phrases = [noun_phrase(o, rng=rng) for o in objs]
    bg = _pick(BACKGROUND_WORDS[scene.background], rng)
    template = 0 if rng is None else int(rng.integers(4))
    if template == 0:
        return f"{join_list(phrases)} on a {bg} background"
    if template == 1:
        return f"a {bg} background with {join_list(phrases)}"
    if template == 2:
        n = NUMBER_WORDS[len(objs)]
        noun = "object" if len(objs) == 1 else "objects"
        return f"{n} {noun} on a {bg} background: {join_list(phrases)}"
    sentences = [f"there is {p}." for p in phrases]
    return " ".join(sentences) + f" the background is {bg}."


def paraphrases(scene: Scene, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct-as-possible full captions of ``scene`` (the canonical one first)."""
    rng = np.random.default_rng([seed, scene.index, 7])
    out = [full_caption(scene)]
    tries = 0
    while len(out) < n and tries < 20 * n:
        cap = full_caption(scene, rng)
        tries += 1
        if cap not in out:
            out.append(cap)
    return out


PARTIAL_TEMPLATES: tuple[str, ...] = ("{}", "an image with {}", "there is {}", "a picture of {}")


def partial_caption(scene: Scene, rng: np.random.Generator) -> str:
    """One object only, with colour and shape and at most one more attribute."""
    o = scene.objects[rng.integers(len(scene.objects))]
    extra = int(rng.integers(3))  # 0: nothing more, 1: size, 2: position
    phrase = noun_phrase(o, size=extra == 1, position=extra == 2, rng=rng)
    return _pick(PARTIAL_TEMPLATES, rng).format(phrase)


def referring_expression(scene: Scene, k: int) -> str:
    """The shortest description that singles out object ``k`` in ``scene``: 'the red circle'."""
    o = scene.objects[k]
    others = [p for i, p in enumerate(scene.objects) if i != k]
    if not any(p.shape == o.shape for p in others):
        return f"the {o.shape}"
    if not any(p.shape == o.shape and p.colour == o.colour for p in others):
        return f"the {o.colour} {o.shape}"
    if not any(p.key()[:3] == o.key()[:3] for p in others):
        return f"the {o.size} {o.colour} {o.shape}"
    return f"the {o.colour} {o.shape} at the {POSITION_NAMES[o.position]}"


def position_phrase(cell: int, rng: np.random.Generator | None = None) -> str:
    return _pick(POSITION_PHRASES[POSITIONS[cell]], rng)
