"""A stand-in for a perfect vision-language model in the composed evaluation.

Asked for target descriptions (prompt ``stitch_target_descriptions``), it finds the triplet
whose reference caption and edit the prompt quotes and returns the *target's* captions in
varied wordings (the testbed's own caption writer with a seeded generator). It is the
ceiling of STiTch's step (a) on the testbed: every description is true. Only evaluations
use it; it reads the world, as a simulated user may.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from convir.errors import LLMOutputError

if TYPE_CHECKING:
    from convir.testbed.edits import Triplet
    from convir.testbed.world import World

_QUOTED = re.compile(
    r"Caption of the reference image: (?P<caption>.*)\nRequested modification: (?P<edit>.*)\n"
)


class IdealDescriber:
    """``complete()`` answers the target-description prompt with true target captions."""

    def __init__(
        self,
        world: World,
        triplets: Sequence[Triplet],
        reference_captions: Sequence[str],
        k: int = 5,
        seed: int = 0,
    ) -> None:
        self.world, self.k, self.seed = world, k, seed
        self._targets = {
            (caption, t.text): t.target
            for t, caption in zip(triplets, reference_captions, strict=True)
        }

    def complete(self, messages: Sequence[dict], schema: type[BaseModel] | None = None) -> object:
        from convir.testbed.captions import full_caption

        content = messages[-1]["content"]
        text = content if isinstance(content, str) else content[0]["text"]
        found = _QUOTED.search(text)
        target = self._targets.get((found["caption"], found["edit"])) if found else None
        if target is None:
            raise LLMOutputError("the ideal describer knows no triplet for this prompt")
        scene = self.world.scene(int(target))
        rng = np.random.default_rng([self.seed, int(target)])
        texts = [full_caption(scene)] + [full_caption(scene, rng) for _ in range(self.k - 1)]
        if schema is None:
            return texts[0]
        return schema.model_validate({"descriptions": texts})
