"""Image routes: gallery images by id, uploads, and the images DAR imagined."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, File, HTTPException, Path, UploadFile
from fastapi.responses import Response

from convir.errors import InputError, shown
from convir.server.models import ID_PATTERN, UploadOut
from convir.server.routes.sessions import SessionId
from convir.server.service import NO_IMAGES, ServiceDep
from convir.server.uploads import MAX_UPLOAD_BYTES

if TYPE_CHECKING:
    from convir.gallery.resources import Resources

router = APIRouter(tags=["images"])
UploadId = Annotated[str, Path(pattern=ID_PATTERN, description="from POST /uploads")]
CACHE = {"Cache-Control": "private, max-age=3600"}


png = {200: {"content": {"image/png": {}}, "description": "the image"}}


@router.get("/images/{image_id:path}", response_class=Response, responses=png)
def get_image(srv: ServiceDep, image_id: str) -> Response:
    """A gallery image by its id (the ids results carry), as PNG."""
    try:
        position = srv.resources.index.position_of(image_id)
    except KeyError:
        raise HTTPException(
            404, f"no gallery image {shown(image_id)}; use an id from results"
        ) from None
    if not srv.resources.has_images:
        raise HTTPException(404, f"gallery item {shown(image_id)} has no image: {NO_IMAGES}")
    return Response(_png(srv.resources, position), media_type="image/png", headers=CACHE)


@router.post("/uploads", status_code=201)
async def upload(srv: ServiceDep, file: UploadFile = File(...)) -> UploadOut:
    """Store a reference image (PNG, JPEG...); answers with the closest gallery images."""
    import anyio

    if not srv.resources.has_images:
        raise InputError(NO_IMAGES)
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    item = await anyio.to_thread.run_sync(srv.uploads.add, data)
    scores, positions = srv.resources.index.search(item.vector[None, :], 12)
    found = [
        (srv.resources.index.id_of(p), s)
        for p, s in zip(positions[0], scores[0], strict=True)
        if p >= 0
    ]
    return UploadOut(
        upload_id=item.id,
        width=item.width,
        height=item.height,
        image_url=f"/uploads/{item.id}",
        nearest=srv.results([i for i, _ in found], [float(s) for _, s in found], 12),
    )


@router.get("/uploads/{upload_id}", response_class=Response, responses=png)
def get_upload(
    srv: ServiceDep,
    upload_id: UploadId,
) -> Response:
    """An uploaded image: the bytes received, with their format's media type."""
    item = srv.uploads.get(upload_id)
    if item is None:
        raise HTTPException(404, f"no upload {upload_id}; uploads are kept in memory only")
    return Response(item.data, media_type=item.media_type, headers=CACHE)


@router.get(
    "/sessions/{session_id}/imagined/{k}",
    response_class=Response,
    responses=png,
)
def get_imagined(
    srv: ServiceDep, session_id: SessionId, k: Annotated[int, Path(ge=0, le=7)]
) -> Response:
    """Image ``k`` that DAR generated for the session's current query, redrawn from the
    query and the seed it was generated with (nothing is stored; same pixels each time
    on one machine)."""
    state = srv.existing(session_id)
    query, seed = state.get("generated_for"), state.get("generated_seed")
    count = len(state.get("generated") or [])
    if not query or seed is None or k >= count or srv.resources.generator is None:
        raise HTTPException(404, f"session {session_id} has no generated image {k}")
    images = srv.resources.generator.generate([query], n_per_prompt=count, seed=int(seed))
    import io

    buffer = io.BytesIO()
    images[0][k].save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png", headers=CACHE)


def _png(resources: Resources, position: int) -> bytes:
    buffer = io.BytesIO()
    resources.load_image(position).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
