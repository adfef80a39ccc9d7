"""Embed every image under a folder, skipping files that are not safe or not images.

Real folders hold surprises: empty files, truncated downloads, text saved as ``.jpg``, and
images so large that decoding them would exhaust memory. Each such file is skipped with one
``warning: skipped <path>: <reason>`` line on stderr, and indexing goes on. The pixel count
is read from the header *before* decoding, so an oversized image is never decoded.

Decoding and the per-image part of preprocessing (resize/crop) run in a small thread pool,
one batch ahead of the model, so reading images overlaps with embedding (Pillow and torch
both release the GIL); the float conversion and normalisation run once per batch. Threads
are only started on cores the model leaves free: a CPU model whose torch threads take every
core gets its images decoded between its batches instead, which is faster there.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from convir.errors import InputError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from convir.models.embedder import ImageFeatures, PreparedImage

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
DEFAULT_MAX_PIXELS = 50_000_000  # ~7000 x 7000; a decoded RGB image of this size takes 150 MB
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


class UnreadableImageError(InputError):
    """One file cannot be used as an image; ``reason`` says why, for the skip warning."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Skipped(NamedTuple):
    path: str
    reason: str


class TensorEmbedder(Protocol):
    """What the folder indexer needs from an embedder (``OpenClipEmbedder`` has it)."""

    dim: int
    device: torch.device

    def prepare_image(self, image: Image.Image) -> PreparedImage: ...

    def collate_images(self, prepared: Sequence[PreparedImage]) -> torch.Tensor: ...

    def encode_image_tensor(self, pixels: torch.Tensor) -> ImageFeatures: ...


@dataclass
class FolderEmbedding:
    """Unit vectors of the readable images, in listing order, and what was skipped."""

    vectors: np.ndarray  # [N, D] float32
    ids: list[str] = field(default_factory=list)  # path relative to the root, posix style
    paths: list[str] = field(default_factory=list)  # absolute path the image was read from
    skipped: list[Skipped] = field(default_factory=list)


def warn_skipped(item: Skipped) -> None:
    """Print one warning line on stderr without breaking a running progress bar."""
    from tqdm import tqdm

    tqdm.write(f"warning: skipped {item.path}: {item.reason}", file=sys.stderr)


def list_images(
    root: str | os.PathLike[str],
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
    on_skip: Callable[[Skipped], None] | None = warn_skipped,
) -> list[Path]:
    """Absolute paths of the image files under ``root`` (recursive, by extension, sorted by
    relative posix path so the order, and thus every position, is the same everywhere).

    Raises :class:`InputError` when ``root`` is not a folder or holds no image files: a
    gallery needs at least one. Sub-folders that cannot be listed are reported via ``on_skip``.
    """
    folder = Path(root)
    if not folder.exists():
        raise InputError(f"no folder at {folder}; pass a folder of images to index")
    if not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder; pass the folder that holds images")
    folder = folder.resolve()

    def unlistable(exc: OSError) -> None:
        if on_skip is not None:
            on_skip(Skipped(str(exc.filename), f"cannot list folder ({exc.strerror})"))

    found = [
        Path(dirpath) / name
        for dirpath, _, names in os.walk(folder, onerror=unlistable)
        for name in names
        if Path(name).suffix.lower() in extensions
    ]
    if not found:
        raise InputError(
            f"no image files ({', '.join(sorted(extensions))}) under {folder}; "
            "pass a folder that holds images"
        )
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def load_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode one file as an RGB image, or raise :class:`UnreadableImageError` saying why.

    Checks, cheapest first: the file is non-empty; its header is an image format Pillow
    knows; width x height from the header is at most ``max_pixels`` (before any decoding).
    Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, twice of which
    is a hard error) still applies when ``max_pixels`` is set above it. EXIF rotation is
    applied; transparent pixels are shown on white.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise UnreadableImageError(f"cannot read file ({exc.strerror})") from exc
    if size == 0:
        raise UnreadableImageError("empty file (0 bytes)")
    try:
        file = open(path, "rb")  # noqa: SIM115 - ours to close, so the image outlives it
    except OSError as exc:
        raise UnreadableImageError(f"cannot open ({exc})") from exc
    with file:
        try:
            im = Image.open(file)
        except Image.DecompressionBombError as exc:
            raise UnreadableImageError(f"image too large, not decoded ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise UnreadableImageError("not an image (unknown format or damaged header)") from exc
        except OSError as exc:
            raise UnreadableImageError(f"cannot open ({exc})") from exc
        width, height = im.size
        if width * height > max_pixels:
            raise UnreadableImageError(
                f"image too large, not decoded ({width}x{height} = {width * height:,} pixels, "
                f"limit {max_pixels:,}; see --max-pixels)"
            )
        try:
            im.load()
            ImageOps.exif_transpose(im, in_place=True)
            if "A" in im.getbands() or "transparency" in im.info:
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("RGB")
            # An RGB image comes back as decoded, without a copy: it does not need the file
            # any more (Image.open(path) would close it with the file, forcing a copy).
            return im if im.mode == "RGB" else im.convert("RGB")
        except Exception as exc:  # Pillow signals bad data with many types (OSError, ...)
            raise UnreadableImageError(f"corrupt image data ({exc})") from exc


def _prepare(path: Path, embedder: TensorEmbedder, max_pixels: int) -> PreparedImage:
    """Decode one image and do its per-image preprocessing (runs in a worker thread)."""
    image = load_image(path, max_pixels)
    try:
        return embedder.prepare_image(image)
    except Exception as exc:  # a transform failing on an odd image skips it, not the run
        raise UnreadableImageError(f"could not preprocess ({type(exc).__name__}: {exc})") from exc


def decode_threads(workers: int, device: torch.device | str) -> int:
    """How many of ``workers`` decode threads to start beside a model on ``device``.

    On the CPU, at most the cores torch's threads leave free: a decode thread on a core the
    model uses preempts one of its threads, and the others then wait for it at every sync
    point, which costs more than decoding on the calling thread between batches (2 cores,
    testbed CLIP: 94% of the bare forward pass inline against 84-87% with 1-2 threads).
    0 means decode on the calling thread.
    """
    import torch

    if workers < 1:
        return 0
    if torch.device(device).type != "cpu":
        return workers
    return min(workers, max(0, (os.cpu_count() or 1) - torch.get_num_threads()))


class _Inline:
    """The two calls of ThreadPoolExecutor that ``embed_images`` uses, run at once on the
    calling thread (errors land in the future, as with a thread)."""

    def submit(self, fn: Callable[..., PreparedImage], /, *args: object) -> Future:
        future: Future[PreparedImage] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # re-raised by result(), where the threaded path raises it
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def _relative_id(path: Path, folder: Path) -> str:
    """The path as given if under ``folder``, else resolved (symlinks): resolving costs
    several system calls per file, so it is only tried second."""
    for absolute in (path.absolute, path.resolve):
        try:
            return absolute().relative_to(folder).as_posix()
        except ValueError:
            continue
    raise InputError(f"{path} is not under the image folder {folder}")


def embed_images(
    files: Sequence[Path],
    root: str | os.PathLike[str],
    embedder: TensorEmbedder,
    *,
    batch_size: int = 64,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = DEFAULT_WORKERS,
    progress: bool = True,
    on_skip: Callable[[Skipped], None] | None = warn_skipped,
) -> FolderEmbedding:
    """Embed ``files`` (under ``root``) in batches, skipping unreadable ones.

    The next batch is decoded by up to ``workers`` threads (see :func:`decode_threads`;
    0: on this thread) while the model embeds the current one. Ids are paths relative to
    ``root`` in posix style.
    """
    from PIL import Image
    from tqdm import tqdm

    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if max_pixels < 1:
        raise InputError(f"--max-pixels must be at least 1, got {max_pixels}")
    folder = Path(root).resolve()
    files = [p if isinstance(p, Path) else Path(p) for p in files]  # Path(Path) re-parses
    ids = [_relative_id(p, folder) for p in files]  # fail before any work, not after
    chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    out = FolderEmbedding(np.zeros((0, embedder.dim), np.float32))
    parts: list[np.ndarray] = []
    bar = tqdm(total=len(files), desc="embed", unit="img", file=sys.stderr, disable=not progress)
    threads = decode_threads(workers, embedder.device)
    pool = (
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="convir-decode")
        if threads
        else _Inline()
    )

    def submit(chunk: list[Path]) -> list[Future[PreparedImage]]:
        return [pool.submit(_prepare, p, embedder, max_pixels) for p in chunk]

    # Our own max_pixels check replaces Pillow's soft bomb warning; one filter for the run
    # (set here, in the calling thread, so worker threads never touch the warning filters).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            pending = submit(chunks[0]) if chunks else []
            for n, chunk in enumerate(chunks):
                current = pending
                pending = submit(chunks[n + 1]) if n + 1 < len(chunks) else []
                prepared = []
                start = n * batch_size
                for j, (path, future) in enumerate(zip(chunk, current, strict=True)):
                    try:
                        prepared.append(future.result())
                    except UnreadableImageError as exc:
                        item = Skipped(str(path.absolute()), exc.reason)
                        out.skipped.append(item)
                        if on_skip is not None:
                            on_skip(item)
                        continue
                    out.ids.append(ids[start + j])
                    out.paths.append(str(path.absolute()))
                if prepared:  # batch-wide normalisation here: one op, not one per image
                    pixels = embedder.collate_images(prepared)
                    pooled = embedder.encode_image_tensor(pixels).pooled
                    parts.append(pooled.float().cpu().numpy())
                bar.update(len(chunk))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
    if parts:
        out.vectors = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    return out


def embed_folder(
    root: str | os.PathLike[str],
    embedder: TensorEmbedder,
    *,
    batch_size: int = 64,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = DEFAULT_WORKERS,
    progress: bool = True,
    on_skip: Callable[[Skipped], None] | None = warn_skipped,
) -> FolderEmbedding:
    """:func:`list_images` then :func:`embed_images`: the whole folder in one call."""
    files = list_images(root, on_skip=on_skip)
    return embed_images(
        files,
        root,
        embedder,
        batch_size=batch_size,
        max_pixels=max_pixels,
        workers=workers,
        progress=progress,
        on_skip=on_skip,
    )
