"""FashionIQ's files: captions (``cap.<category>.<split>``) and image splits (plain lists)."""

from __future__ import annotations

from pydantic import Field

from convir.evaluation.benchmark_files import Record, Spec


class FashionIQTriplet(Record):
    """One FashionIQ query: candidate (reference) image, two relative captions, target."""

    candidate: str = Field(min_length=1)
    captions: list[str] = Field(min_length=1)
    target: str | None = None


FASHIONIQ = Spec(
    FashionIQTriplet,
    frozenset({"candidate", "captions"}),
    "FashionIQ captions (cap.<category>.<split>.json): a list of {candidate, captions, target}",
    "target",
)
FASHIONIQ_SPLIT = "a FashionIQ image split: a JSON list of image ids"
