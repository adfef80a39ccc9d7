"""Uploaded images: verified like indexed files, kept in memory, embedded once.

An upload is untrusted bytes, so it passes the same checks as a file the indexer reads
(:func:`convir.index.folder.load_image`: non-empty, a known image format, pixel count read
from the header before decoding) plus a byte cap. What is kept is a re-encoded PNG, never
the client's bytes, under a server-made id; the store forgets the oldest upload when full.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convir.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from convir.models.embedder import Embedder

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_UPLOAD_PIXELS = 16_000_000  # 4000 x 4000
MAX_STORED = 256  # uploads kept; the oldest goes first


class UploadTooLargeError(InputError):
    """The upload is over the byte or pixel cap (HTTP 413)."""


@dataclass(frozen=True)
class Upload:
    id: str
    png: bytes
    width: int
    height: int
    vector: np.ndarray  # [D] unit embedding, for nearest-gallery lookups


class UploadStore:
    """Verified uploads by id; safe to use from many request threads."""

    def __init__(self, embedder: Embedder, capacity: int = MAX_STORED) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self._items: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> Upload:
        """Verify, re-encode and embed ``data``; raise :class:`InputError` saying why not."""
        image = verify_image(data, max_pixels)
        import io

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        vector = self.embedder.encode_images([image]).pooled[0].numpy()
        item = Upload(uuid.uuid4().hex, buffer.getvalue(), image.width, image.height, vector)
        with self._lock:
            self._items[item.id] = item
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return item

    def get(self, upload_id: str) -> Upload | None:
        with self._lock:
            return self._items.get(upload_id)


def verify_image(data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> Image.Image:
    """The decoded RGB image, after the indexer's checks; the bytes never touch a known path."""
    import os
    import tempfile

    from convir.index.folder import UnreadableImageError, load_image

    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadTooLargeError(
            f"upload is {len(data):,} bytes, limit {MAX_UPLOAD_BYTES:,}; send a smaller image"
        )
    fd, path = tempfile.mkstemp(prefix="convir-upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return load_image(path, max_pixels)
    except UnreadableImageError as exc:
        if "too large" in exc.reason:
            raise UploadTooLargeError(
                f"upload rejected: {exc.reason.split('; see')[0]}; send a smaller image"
            ) from None
        raise InputError(f"upload rejected: {exc.reason}; send a PNG or JPEG image") from None
    finally:
        os.unlink(path)
