"""``convir index --views N``: embed N augmented views of every indexed image, once.

STiTch's set score compares target descriptions with several views of each candidate.
Computing them at query time costs N forward passes per candidate; at index time it costs
N passes per gallery image once, and the views then cost ``count x N x dim`` float16 in the
index file (10 views of 128-d: 2.5 kB per image; of 512-d: 10 kB).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from convir.index.faiss_index import GalleryIndex
    from convir.models.embedder import Embedder


def attach_views(
    index: GalleryIndex,
    embedder: Embedder,
    n: int,
    preset: str,
    *,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = True,
) -> str:
    """Embed ``n`` views of every image in ``index`` and store them; a one-line summary.

    An image that can no longer be read (moved since it was embedded) gets its plain
    embedding as every view, so it keeps the score the first stage gave it.
    """
    from tqdm import tqdm

    from convir.index.folder import UnreadableImageError, load_image
    from convir.models.views import augment_of, embed_views

    augment_of(preset)  # an unknown preset fails before any work
    # float16, as the index stores them: no full-size float32 copy at a million images
    out = np.empty((index.count, n, index.dim), dtype=np.float16)
    plain = None  # read from the index only if an image cannot be read
    unread = 0
    bar = tqdm(total=index.count, desc="views", unit="img", file=sys.stderr, disable=not progress)
    for start in range(0, index.count, batch_size):
        positions, images = [], []
        for p in range(start, min(start + batch_size, index.count)):
            try:
                images.append(load_image(index.path_of(p)))
                positions.append(p)
            except UnreadableImageError:
                plain = index.vectors() if plain is None else plain
                out[p] = plain[p]  # every view = the plain embedding
                unread += 1
        if images:
            ids = [index.id_of(p) for p in positions]
            out[positions] = embed_views(embedder, images, ids, n, preset, seed)
        bar.update(min(batch_size, index.count - start))
    bar.close()
    index.set_views(out, preset)
    note = f"{n} {preset} views per image"
    return note + (f" ({unread} unreadable images kept their plain embedding)" if unread else "")
