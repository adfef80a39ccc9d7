"""``convir index --ray``: embed a folder with Ray Data, then build the index from the shards.

The file list is made on the driver (the same sorted listing as the single-process path) and
becomes a Ray dataset of ``(position, path)`` rows. ``map_batches`` sends batches to a fixed
pool of :class:`EmbedActor`\\ s: each loads the model once, then decodes, validates and
embeds its batches (on a GPU of its own when the cluster has GPUs). Rows come back tagged
with their position, so the result does not depend on which actor finished first: the
driver reorders them, reports skipped files in listing order (the same warning lines as
without Ray), and cuts the vectors into shards of consecutive files.

:func:`build_from_shards` trains an IVF/PQ index once, on the same seeded sample the
single-process path draws, then adds the shards in order, so positions, ids and paths are
exactly those of ``convir index`` without ``--ray``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convir.errors import InputError
from convir.index.folder import (
    DEFAULT_MAX_PIXELS,
    FolderEmbedding,
    Skipped,
    UnreadableImageError,
    _relative_id,
    load_image,
    warn_skipped,
)

if TYPE_CHECKING:
    from convir.index.faiss_index import GalleryIndex


class EmbedActor:
    """One Ray Data worker: the model is loaded once, in ``__init__``, and reused per batch."""

    def __init__(self, model: str, pretrained: str, max_pixels: int) -> None:
        import torch

        from convir.models.embedder import load_embedder

        device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
        self.embedder = load_embedder(model, pretrained, device)
        self.max_pixels = max_pixels

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed one batch; an unreadable file gets a zero vector and the reason it failed."""
        import torch
        from PIL import Image

        tensors, reasons = [], []
        with warnings.catch_warnings():  # our max_pixels check replaces Pillow's soft warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            for path in batch["path"]:
                try:
                    tensors.append(self._prepare(str(path)))
                    reasons.append("")
                except UnreadableImageError as exc:
                    tensors.append(None)
                    reasons.append(exc.reason)
        vectors = np.zeros((len(reasons), self.embedder.dim), np.float32)
        good = [i for i, t in enumerate(tensors) if t is not None]
        if good:
            pixels = torch.stack([tensors[i] for i in good])
            pooled = self.embedder.encode_image_tensor(pixels).pooled
            vectors[good] = pooled.float().cpu().numpy()
        return {"pos": batch["pos"], "vector": vectors, "reason": np.array(reasons, dtype=object)}

    def _prepare(self, path: str) -> Any:
        image = load_image(path, self.max_pixels)
        try:
            return self.embedder.image_tensor([image])[0]
        except Exception as exc:  # same rule as the single-process path
            raise UnreadableImageError(
                f"could not preprocess ({type(exc).__name__}: {exc})"
            ) from exc


def embed_images_ray(
    files: Sequence[Path],
    root: str | os.PathLike[str],
    model: str,
    pretrained: str,
    *,
    batch_size: int = 64,
    concurrency: int = 2,
    num_gpus: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    on_skip: Callable[[Skipped], None] | None = warn_skipped,
) -> list[FolderEmbedding]:
    """Embed ``files`` (under ``root``) on the connected Ray cluster; the readable images as
    shards of consecutive files (``batch_size`` files each before skips), in listing order.

    ``concurrency`` actors each hold a model (and ``num_gpus`` GPUs, 0 or 1). Skipped files
    are reported through ``on_skip`` in listing order and recorded in the shard they fall in.
    """
    import ray
    import ray.data

    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, got {concurrency}")
    if max_pixels < 1:
        raise InputError(f"--max-pixels must be at least 1, got {max_pixels}")
    if not ray.is_initialized():
        raise InputError("embed_images_ray needs a Ray connection; open one with ray_cluster()")
    folder = Path(root).resolve()
    files = [Path(p) for p in files]
    ids = [_relative_id(p, folder) for p in files]  # fail before any work, not after
    paths = [str(p.absolute()) for p in files]
    ray.data.DataContext.get_current().enable_progress_bars = progress
    rows = [{"pos": n, "path": p} for n, p in enumerate(paths)]
    embedded = ray.data.from_items(rows).map_batches(
        EmbedActor,
        fn_constructor_kwargs={"model": model, "pretrained": pretrained, "max_pixels": max_pixels},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_gpus=num_gpus,
        batch_format="numpy",
    )
    pos, vectors, reasons = [], [], []
    for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
        pos.append(batch["pos"])
        vectors.append(batch["vector"])
        reasons.append(batch["reason"])
    order = np.argsort(np.concatenate(pos), kind="stable")
    if len(order) != len(files):
        raise RuntimeError(f"Ray returned {len(order)} rows for {len(files)} files")
    all_vectors = np.concatenate(vectors)[order]
    all_reasons = np.concatenate(reasons)[order]
    shards = []
    for start in range(0, len(files), batch_size):
        shard = FolderEmbedding(np.zeros((0, all_vectors.shape[1]), np.float32))
        keep = []
        for n in range(start, min(start + batch_size, len(files))):
            if all_reasons[n]:
                item = Skipped(paths[n], str(all_reasons[n]))
                shard.skipped.append(item)
                if on_skip is not None:
                    on_skip(item)
                continue
            keep.append(n)
            shard.ids.append(ids[n])
            shard.paths.append(paths[n])
        shard.vectors = np.ascontiguousarray(all_vectors[keep], dtype=np.float32)
        shards.append(shard)
    return shards


def build_from_shards(index: GalleryIndex, shards: Sequence[FolderEmbedding]) -> GalleryIndex:
    """Train ``index`` once (IVF/PQ; on the seeded sample :meth:`GalleryIndex.train` draws
    from all vectors, as the single-process path does), then add the shards in order."""
    filled = [s for s in shards if s.ids]
    if not filled:
        raise InputError("no shard holds a readable image; nothing to index")
    if not index.is_trained:
        index.train(np.concatenate([s.vectors for s in filled]))
    for shard in filled:
        index.add(shard.vectors, shard.ids, shard.paths)
    return index
