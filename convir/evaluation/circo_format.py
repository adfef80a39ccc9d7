"""CIRCO's annotation files (``val.json``, ``test.json``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from convir.evaluation.benchmark_files import Record, Spec


class CIRCOQuery(Record):
    """One CIRCO query; ``target_img_id`` is always ``gt_img_ids[0]`` where released."""

    id: int
    reference_img_id: int
    relative_caption: str
    shared_concept: str
    target_img_id: int | None = None
    gt_img_ids: list[int] | None = None
    semantic_aspects: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _targets_together(self) -> CIRCOQuery:
        if (self.target_img_id is None) != (self.gt_img_ids is None):
            raise ValueError("target_img_id and gt_img_ids come together (both or neither)")
        if self.gt_img_ids is not None:
            if not self.gt_img_ids:
                raise ValueError("gt_img_ids is empty")
            if self.target_img_id not in self.gt_img_ids:
                raise ValueError("target_img_id must be one of gt_img_ids")
        return self


CIRCO = Spec(
    CIRCOQuery,
    frozenset({"id", "reference_img_id", "relative_caption", "shared_concept"}),
    "CIRCO annotations (val.json/test.json): a list of {id, reference_img_id, "
    "relative_caption, shared_concept, target_img_id, gt_img_ids}",
    "target_img_id",
)
