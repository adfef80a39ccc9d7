"""ChatIR on real images: replay recorded dialogues against a gallery built with ``convir index``.

The gallery is the index, restricted to the search space when one is given. ChatIR ranks
each target among the 50,000 search-space images only, so the index must hold *every*
search-space image (it may hold more: those are left out); the gallery is then a new exact
(Flat) index of the search space's vectors, taken from the index, whose ids are the
search-space entries themselves. Run files therefore name images as the benchmark does and
``convir eval score --search-space`` accepts them. Without a search space the gallery is
the whole index and ids are the index's (paths relative to the indexed folder).

Benchmark names meet index ids by relative path, else by file-name stem
(``unlabeled2017/000000185565.jpg`` matches ``000000185565.png``), so a folder of converted
or flattened images works too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.evaluation.replay_user import ReplayUser
    from convir.gallery.resources import Resources
    from convir.index.faiss_index import GalleryIndex


@dataclass(frozen=True)
class ChatIRTask:
    """The gallery and the recorded dialogues of one ChatIR replay evaluation."""

    resources: Resources
    dialogues: dict[str, list[str]]  # dialogue id (position in the file) -> recorded turns
    targets: dict[str, str]  # dialogue id -> gallery id of the target

    @property
    def gallery_size(self) -> int:
        return self.resources.index.count

    def user(self) -> ReplayUser:
        """A fresh replaying user (one per system, so no replay state is shared)."""
        from convir.evaluation.replay_user import ReplayUser

        return ReplayUser(self.dialogues, self.targets)


def _stem(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).stem


def _is_suffix(a: str, b: str) -> bool:
    """One path ends with the other, whole components only."""
    short, long = sorted((a, b), key=len)
    return long == short or long.endswith("/" + short)


def match_images(names: Sequence[str], ids: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """(position in ``ids`` of each name found, names not found): the same relative path,
    else the only id with the same file-name stem (several: the one whose path ends with
    the other's). A name that stays ambiguous is an :class:`InputError`."""
    exact = {item: pos for pos, item in enumerate(ids)}
    by_stem: dict[str, list[int]] = {}
    for pos, item in enumerate(ids):
        by_stem.setdefault(_stem(item), []).append(pos)
    found: dict[str, int] = {}
    missing: list[str] = []
    for name in names:
        if name in exact:
            found[name] = exact[name]
            continue
        hits = by_stem.get(_stem(name), [])
        if len(hits) > 1:
            hits = [p for p in hits if _is_suffix(name, ids[p])]
            if len(hits) != 1:
                raise InputError(
                    f"{name!r} matches several index images by file name "
                    f"({', '.join(ids[p] for p in by_stem[_stem(name)][:3])}); index one "
                    "folder whose relative paths match the benchmark's (e.g. the COCO root "
                    "holding unlabeled2017/)"
                )
        if hits:
            found[name] = hits[0]
        else:
            missing.append(name)
    return found, missing


def _missing_error(missing: list[str], total: int, what: str, index_path: Path) -> InputError:
    return InputError(
        f"{len(missing)} of {total} {what} are not in the index {index_path} (e.g. "
        f"{missing[0]!r}; images match by path relative to the indexed folder or by file "
        "name): index a folder holding them with `convir index FOLDER --out INDEX`"
    )


def _search_space_gallery(index: GalleryIndex, space: list[str], index_path: Path) -> GalleryIndex:
    """An exact index of the search space's vectors, ids = the search-space entries."""
    from convir.index.faiss_index import GalleryIndex

    found, missing = match_images(space, index.ids)
    if missing:
        raise InputError(
            f"{len(missing)} of {len(space)} search-space images are not in the index "
            f"{index_path} (e.g. {missing[0]!r}); ChatIR ranks among the whole search space: "
            "index all of its images, or leave out --search-space to rank the index"
        )
    positions = [found[name] for name in space]
    if len(set(positions)) != len(positions):
        seen: dict[int, str] = {}
        for name, pos in zip(space, positions, strict=True):
            if pos in seen:
                raise InputError(
                    f"search-space entries {seen[pos]!r} and {name!r} both match index image "
                    f"{index.id_of(pos)!r}; index the images under their benchmark paths"
                )
            seen[pos] = name
    return GalleryIndex.build(
        index.vectors()[positions],
        space,
        [index.path_of(p) for p in positions],
        factory="Flat",
        model=index.model,
        pretrained=index.pretrained,
        image_root=index.image_root,
    )


def _resources(gallery: GalleryIndex, index_path: Path, generator: bool) -> Resources:
    """The gallery with the embedder it was built with (``Resources.open``; the testbed
    generator when ``generator`` and the model is the testbed CLIP)."""
    from convir.gallery.resources import Resources

    if gallery.model is None:
        raise InputError(
            f"{index_path} records no model; rebuild it with `convir index FOLDER --out INDEX`"
        )
    return Resources.open(gallery, generator=generator)


def load_task(
    index_path: Path,
    dialogues_path: Path,
    search_space_path: Path | None = None,
    limit: int | None = None,
    generator: bool = False,
) -> ChatIRTask:
    """The first ``limit`` dialogues of a ChatIR file (all when None) and their gallery.

    Everything a user can get wrong (refined-query file, too few dialogues, targets or
    search-space images missing from the index) is checked before the model loads.
    """
    from convir.evaluation.loaders import load_chatir_dialogues, load_chatir_search_space
    from convir.index.faiss_index import GalleryIndex

    loaded = load_chatir_dialogues(dialogues_path)
    if loaded.variant != "dialog":
        raise InputError(
            f"{dialogues_path} holds one refined query per round (DAR/PlugIR), not a "
            "dialogue to replay; pass ChatIR dialogues such as VisDial_v1.0_queries_val.json"
        )
    records = loaded.dialogues
    if limit is not None:
        if not 1 <= limit <= len(records):
            raise InputError(
                f"--dialogues must be between 1 and {len(records)} (the dialogues in "
                f"{dialogues_path}), got {limit}"
            )
        records = records[:limit]
    dialogues = {str(i): list(d.dialog) for i, d in enumerate(records)}
    names = {str(i): d.img for i, d in enumerate(records)}
    index = GalleryIndex.load(index_path)
    found, missing = match_images(list(dict.fromkeys(names.values())), index.ids)
    if missing:
        raise _missing_error(missing, len(set(names.values())), "dialogue targets", index_path)
    if search_space_path is None:
        targets = {d: index.id_of(found[name]) for d, name in names.items()}
        gallery = index
    else:
        space = load_chatir_search_space(search_space_path)
        members = set(space)
        outside = [n for n in dict.fromkeys(names.values()) if n not in members]
        if outside:
            raise InputError(
                f"{len(outside)} dialogue targets are not in the search space "
                f"{search_space_path} (e.g. {outside[0]!r}); pass the search space of this "
                "dialogue file (ChatIR: Search_Space_val_50k.json)"
            )
        gallery = _search_space_gallery(index, space, index_path)
        targets = names
    return ChatIRTask(_resources(gallery, index_path, generator), dialogues, targets)


__all__ = ["ChatIRTask", "load_task", "match_images"]
