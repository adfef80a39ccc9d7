"""CIRR's files: captions (``cap.rc2``), extended captions (``cap.ext.rc2``) and image splits
(``split.rc2``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from convir.evaluation.benchmark_files import Record, Spec


class CIRRImageSet(Record):
    """The 6-image group a CIRR query was written in; Recall_subset ranks within it."""

    id: int
    members: list[str] = Field(min_length=1)
    reference_rank: int | None = None
    target_rank: int | None = None


class CIRRTriplet(Record):
    """One CIRR query: reference image + modification caption (+ target when released)."""

    pairid: int
    reference: str = Field(min_length=1)
    caption: str
    img_set: CIRRImageSet
    target_hard: str | None = None
    target_soft: dict[str, float] | None = None

    @model_validator(mode="after")
    def _reference_in_set(self) -> CIRRTriplet:
        if self.reference not in self.img_set.members:
            raise ValueError("the reference image must be one of img_set.members")
        return self


class CIRRExtTriplet(Record):
    """One entry of CIRR's extended captions (the caption split into four aspects)."""

    pairid: int
    reference: str = Field(min_length=1)
    caption_extend: dict[str, str]
    target_hard: str | None = None


CIRR = Spec(
    CIRRTriplet,
    frozenset({"pairid", "reference", "caption", "img_set"}),
    "CIRR captions (cap.rc2.<split>.json): a list of {pairid, reference, caption, img_set, "
    "target_hard, target_soft}",
    "target_hard",
)
CIRR_EXT = Spec(
    CIRRExtTriplet,
    frozenset({"pairid", "reference", "caption_extend"}),
    "CIRR extended captions (cap.ext.rc2.<split>.json): a list of {pairid, reference, "
    "caption_extend, target_hard}",
    "target_hard",
)
CIRR_SPLIT = "a CIRR image split: a JSON object mapping image name to path"


def cirr_split_name(triplets: list[CIRRTriplet]) -> str | None:
    """The split a captions file holds, read off its image names (dev-, test1-, train-)."""
    prefix = triplets[0].reference.split("-", 1)[0]
    return {"dev": "val", "test1": "test1", "train": "train"}.get(prefix)
