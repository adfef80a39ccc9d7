"""What an opening message is checked for before either engine runs it: a reference image
the gallery holds, and one at all when the configuration fixes the strategy to STiTch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from convir.errors import InputError, shown

if TYPE_CHECKING:
    from convir.gallery.resources import Resources
    from convir.state import AgentConfig


def check_reference(resources: Resources, reference_id: str | None) -> None:
    """A composed query's reference must be a gallery id: an InputError names one that is."""
    if reference_id is None:
        return
    try:
        resources.index.position_of(reference_id)
    except KeyError:
        raise InputError(
            f"reference image {shown(reference_id)} is not in the gallery; pass the id of an image "
            f"a search returned (e.g. {resources.index.id_of(0)!r})"
        ) from None


def check_opening(
    resources: Resources, config: AgentConfig, reference_id: str | None, has_vector: bool = False
) -> None:
    """What every opening message is checked for, by either engine: a known reference, and
    one at all (an id or an embedding) when the configuration fixes the strategy to STiTch."""
    check_reference(resources, reference_id)
    if reference_id is None and not has_vector and config.strategy == "stitch":
        raise InputError("strategy stitch needs a reference image (reference_id)")
