"""Validated loaders for the public benchmark files: ChatIR, CIRR, CIRCO, FashionIQ. Each
format's records live in a module of its own (``chatir_format``, ``cirr_format``,
``circo_format``, ``fashioniq_format``); detection and validation, which the four share, in
``benchmark_formats``; reading and the record base in ``benchmark_files``.

Every loader reads the JSON once, validates all records with pydantic, and on the first bad
record raises :class:`~convir.errors.InputError` naming the expected format, the record's
index and field, and the start of the record. Formats (``format`` names used by
``convir data inspect``):

``chatir``
    ChatIR dialogues ``[{"img": path, "dialog": [caption, "question? answer", ...]}]``
    (``VisDial_v1.0_queries_val.json``, ``ChatGPT_BLIP2.json``, ``Human_BLIP2.json`` ...).
    Round d is ``dialog[: d + 1]``; the number of rounds is ``len(dialog)``. DAR's and
    PlugIR's refined-query files have the *same shape*, but ``dialog[d]`` is already a
    self-contained description of round d. The two are told apart by content (``variant``:
    ``"dialog"`` when most entries after the caption contain a ``?``, else ``"refined"``).
``chatir-search-space``
    A list of image paths (``Search_Space_val_50k.json``): list entries that look like paths
    (contain ``/`` or end in an image extension).
``cirr``
    CIRR captions ``cap.rc2.<split>.json``: ``{pairid, reference, caption, img_set{id, members,
    reference_rank[, target_rank]}[, target_hard, target_soft]}``; test1 has no targets.
``cirr-ext``
    CIRR's extended captions ``cap.ext.rc2.<split>.json``: ``{pairid, reference,
    caption_extend{"0".."3"}[, target_hard]}``.
``cirr-split``
    CIRR image splits ``split.rc2.<split>.json``: an object mapping image name to path.
``circo``
    CIRCO ``val.json`` / ``test.json``: ``{id, reference_img_id, relative_caption,
    shared_concept[, target_img_id, gt_img_ids, semantic_aspects]}``; test has no targets.
``fashioniq``
    FashionIQ ``cap.<dress|shirt|toptee>.<split>.json``: ``{candidate, captions[, target]}``;
    the test split has no ``target``.
``fashioniq-split``
    FashionIQ ``split.<category>.<split>.json``: a list of image ids (ASINs, no ``/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from convir.errors import InputError
from convir.evaluation.benchmark_files import read_json
from convir.evaluation.benchmark_formats import (
    ALL_FORMATS,
    LIST_FORMATS,
    MAP_FORMATS,
    SPECS,
    check_cirr_split,
    check_string_list,
    detect_format,
    load_records,
    records_of,
)
from convir.evaluation.chatir_format import ChatIRDialogue, ChatIRDialogues, chatir_variant
from convir.evaluation.circo_format import CIRCOQuery
from convir.evaluation.cirr_format import (
    CIRRExtTriplet,
    CIRRImageSet,
    CIRRTriplet,
    cirr_split_name,
)
from convir.evaluation.fashioniq_format import FashionIQTriplet


def load_chatir_dialogues(
    path: str | Path, variant: Literal["auto", "dialog", "refined"] = "auto"
) -> ChatIRDialogues:
    """Load a ChatIR-shaped dialogue file (ChatIR dialogues, DAR/PlugIR refined queries)."""
    if variant not in ("auto", "dialog", "refined"):
        raise InputError(f"variant must be auto, dialog or refined, got {variant!r}")
    dialogues = load_records(path, "chatir")
    return ChatIRDialogues(dialogues, chatir_variant(dialogues) if variant == "auto" else variant)


def load_cirr_captions(path: str | Path) -> list[CIRRTriplet]:
    """Load ``cap.rc2.<split>.json``; test1 triplets have ``target_hard = None``."""
    return load_records(path, "cirr")


def load_cirr_ext_captions(path: str | Path) -> list[CIRRExtTriplet]:
    """Load CIRR's extended captions ``cap.ext.rc2.<split>.json``."""
    return load_records(path, "cirr-ext")


def load_circo(path: str | Path) -> list[CIRCOQuery]:
    """Load CIRCO ``val.json`` / ``test.json`` (test queries carry no targets)."""
    return load_records(path, "circo")


def load_fashioniq_captions(path: str | Path) -> list[FashionIQTriplet]:
    """Load FashionIQ ``cap.<category>.<split>.json`` (test triplets carry no target)."""
    return load_records(path, "fashioniq")


def load_cirr_split(path: str | Path) -> dict[str, str]:
    """Load ``split.rc2.<split>.json``: image name -> relative path (the gallery)."""
    return check_cirr_split(Path(path), read_json(path))


def load_fashioniq_split(path: str | Path) -> list[str]:
    """Load ``split.<category>.<split>.json``: the category's gallery of image ids."""
    return check_string_list(Path(path), read_json(path), "fashioniq-split")


def load_chatir_search_space(path: str | Path) -> list[str]:
    """Load a ChatIR search space (``Search_Space_val_50k.json``): a list of image paths."""
    return check_string_list(Path(path), read_json(path), "chatir-search-space")


def load_search_space(path: str | Path) -> list[str]:
    """The gallery ids of any search-space/split file: a ChatIR search space, a FashionIQ
    split (both lists) or a CIRR split (its keys). Used to reject unknown ids in run files."""
    p = Path(path)
    data = read_json(p)
    if isinstance(data, dict):
        return list(check_cirr_split(p, data))
    try:
        fmt = detect_format(data)
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None
    if fmt not in LIST_FORMATS:
        raise InputError(
            f"{p}: a {fmt!r} file, not a search space; pass a list of image ids/paths "
            "(Search_Space_val_50k.json, split.<category>.<split>.json) or split.rc2.<split>.json"
        )
    return check_string_list(p, data, fmt)


def _summary(fmt: str, records: list) -> dict[str, Any]:
    has_targets = getattr(records[0], SPECS[fmt].target_field) is not None
    out: dict[str, Any] = {"format": fmt, "queries": len(records), "has_targets": has_targets}
    if fmt == "chatir":
        out["rounds"] = max(len(d.dialog) for d in records)
        out["min_rounds"] = min(len(d.dialog) for d in records)
        out["variant"] = chatir_variant(records)
    elif fmt == "cirr":
        out["split"] = cirr_split_name(records)
        out["images"] = len({m for t in records for m in t.img_set.members})
    elif fmt == "fashioniq":
        ids = {t.candidate for t in records} | {t.target for t in records if t.target}
        out["images"] = len(ids)
    elif fmt == "circo":
        if has_targets:
            out["ground_truths"] = sum(len(q.gt_img_ids or ()) for q in records)
    return out


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Detect a benchmark file's format from its content, validate it fully, summarise it.

    Returns ``{"format", "queries", "has_targets", ...}`` for query files (chatir adds
    ``rounds``, ``min_rounds`` and ``variant``) and ``{"format", "images"}`` for search
    spaces and splits.
    """
    p = Path(path)
    data = read_json(p)
    try:
        fmt = detect_format(data)
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None
    if fmt in LIST_FORMATS:
        return {"format": fmt, "images": len(check_string_list(p, data, fmt))}
    if fmt in MAP_FORMATS:
        return {"format": fmt, "images": len(check_cirr_split(p, data))}
    return _summary(fmt, records_of(p, data, fmt))


__all__ = [
    "ALL_FORMATS",
    "ChatIRDialogue",
    "ChatIRDialogues",
    "CIRRImageSet",
    "CIRRTriplet",
    "CIRRExtTriplet",
    "CIRCOQuery",
    "FashionIQTriplet",
    "read_json",
    "detect_format",
    "chatir_variant",
    "load_chatir_dialogues",
    "load_chatir_search_space",
    "load_cirr_captions",
    "load_cirr_ext_captions",
    "load_cirr_split",
    "load_circo",
    "load_fashioniq_captions",
    "load_fashioniq_split",
    "load_search_space",
    "inspect_file",
]
