"""Uploaded images: verified like indexed files, kept in memory within a byte budget.

An upload is untrusted bytes, so it passes the same checks as a file the indexer reads
(:func:`convir.index.folder.load_image`: non-empty, a known image format, pixel count read
from the header before decoding) plus a byte cap and a format allow-list read from the
header before any decoder runs (PNG, JPEG and its multi-frame MPO form, WebP, GIF's first frame, BMP: anything else is
HTTP 415, so e.g. EPS never reaches Ghostscript). What is kept is the bytes received (after
verification: a 3 MB JPEG stays 3 MB, where a re-encoded PNG of it took 46 MB) under a
server-made id; the store forgets the oldest uploads when it holds more than
``MAX_STORED`` images or ``MAX_STORED_BYTES`` bytes.
"""

from __future__ import annotations

import re
import threading
import uuid
import warnings
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
MAX_STORED_BYTES = 256 * 1024 * 1024  # and at most this many bytes of them
MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    # a JPEG with more frames (what many phone cameras write): Pillow calls it MPO; it is
    # kept as received and read as its first frame, like any JPEG
    "MPO": "image/jpeg",
}
# the plugins that may open an upload: JPEG's opens MPO too (Pillow registers no opener of
# that name, and naming it in ``Image.open(formats=...)`` is a KeyError)
DECODERS = [name for name in MEDIA_TYPES if name != "MPO"]
ALLOWED = "PNG, JPEG, WebP, GIF or BMP"


class UploadTooLargeError(InputError):
    """The upload is over the byte or pixel cap (HTTP 413)."""


class UnsupportedUploadError(InputError):
    """The upload is an image format outside the allow-list (HTTP 415)."""


@dataclass(frozen=True)
class Upload:
    id: str
    data: bytes  # as received, verified
    media_type: str
    width: int
    height: int
    vector: np.ndarray  # [D] unit embedding, for nearest-gallery lookups


class UploadStore:
    """Verified uploads by id; safe to use from many request threads."""

    def __init__(
        self, embedder: Embedder, capacity: int = MAX_STORED, max_bytes: int = MAX_STORED_BYTES
    ) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Upload] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def stored_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def add(self, data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> Upload:
        """Verify and embed ``data``; raise :class:`InputError` saying why not."""
        image, fmt = verify_image(data, max_pixels)
        vector = self.embedder.encode_images([image]).pooled[0].numpy()
        item = Upload(uuid.uuid4().hex, bytes(data), MEDIA_TYPES[fmt], *image.size, vector)
        with self._lock:
            self._items[item.id] = item
            self._bytes += len(item.data)
            while len(self._items) > 1 and (
                len(self._items) > self.capacity or self._bytes > self.max_bytes
            ):
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old.data)
        return item

    def get(self, upload_id: str) -> Upload | None:
        with self._lock:
            return self._items.get(upload_id)


def image_format(data: bytes) -> str:
    """The allow-listed format named by the header (nothing is decoded), else 415."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns on large headers: the caller decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=DECODERS) as probe:
                return str(probe.format)
    except Image.DecompressionBombError as exc:  # a tiny file claiming billions of pixels
        raise UploadTooLargeError(
            f"upload rejected: image too large, not decoded ({_pixels_said(exc)}); limit "
            f"{MAX_UPLOAD_PIXELS:,} pixels; send a smaller image"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    try:  # known to Pillow, but not allowed: say which (its decoder never runs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as probe:
                other = probe.format
    except Exception:
        other = None
    if other:
        raise UnsupportedUploadError(
            f"upload rejected: {other} images are not accepted; send {ALLOWED}"
        )
    return ""


def _pixels_said(exc: Exception) -> str:
    """The pixel count Pillow's bomb error names, without its advice to raise the limit."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)):,} pixels" if found else "too many pixels"


def verify_image(data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> tuple[Image.Image, str]:
    """(the decoded RGB image, its format) after the indexer's checks and the allow-list;
    the bytes never touch a known path."""
    import os
    import tempfile

    from PIL import Image

    from convir.index.folder import UnreadableImageError, load_image

    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadTooLargeError(
            f"upload is {len(data):,} bytes, limit {MAX_UPLOAD_BYTES:,}; send a smaller image"
        )
    fmt = image_format(data) if data else ""
    if data and not fmt:
        raise InputError(
            "upload rejected: not an image (unknown format or damaged header); send a PNG or "
            "JPEG image"
        )
    fd, path = tempfile.mkstemp(prefix="convir-upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return load_image(path, max_pixels), fmt
    except UnreadableImageError as exc:
        if "too large" in exc.reason:
            raise UploadTooLargeError(
                f"upload rejected: {exc.reason.split('; see')[0]}; send a smaller image"
            ) from None
        raise InputError(f"upload rejected: {exc.reason}; send a PNG or JPEG image") from None
    except Exception as exc:  # a decoder failing in a way load_image did not foresee: the
        # bytes are at fault, not the server
        raise InputError(
            f"upload rejected: the image could not be decoded ({type(exc).__name__}); send "
            f"{ALLOWED}"
        ) from None
    finally:
        os.unlink(path)
