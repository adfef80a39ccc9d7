"""Which FAISS index a gallery gets by default, and how hard it searches: the measured
rules behind ``convir index`` (``--factory`` overrides them; figures in
docs/performance.md)."""

from __future__ import annotations

import numpy as np

FLAT_MAX = 50_000  # exact search stays around a millisecond per query up to here
HNSW_MAX = 1_000_000  # HNSW32 keeps every float: 784 B per 128-d vector; beyond, compress
DEFAULT_NPROBE = 16  # fewest IVF lists visited per query (faiss's own default, 1, loses recall)
DEFAULT_EF_SEARCH = 64  # HNSW candidate-list size at search time (faiss default: 16)
TRAIN_SIZE = 1 << 18  # most vectors used to train IVF/PQ (k-means needs ~39-256 per centroid)


def ivf_nlist(count: int) -> int:
    """IVF list count for ``count`` vectors: the power of two nearest 4*sqrt(count), halved
    until k-means gets at least 39 training points per list."""
    nlist = 1 << max(1, round(np.log2(4 * np.sqrt(max(count, 1)))))
    while nlist > 1 and 39 * nlist > count:
        nlist //= 2
    return nlist


def default_nprobe(nlist: int) -> int:
    """IVF lists to visit by default: about 2*sqrt(nlist), at least 16, at most all of them.

    The fewest reaching recall@10 >= 0.95 on embedding-like vectors grows slower than that
    (measured: 32 of 256 lists, 48 of 1024, 64 of 4096), so the default keeps a margin.
    """
    return min(int(nlist), max(DEFAULT_NPROBE, round(2 * np.sqrt(nlist))))


def default_factory(count: int, dim: int | None = None) -> str:
    """The factory string ``convir index`` uses for a gallery of ``count`` vectors
    (``--factory`` overrides it). ``dim`` is accepted for callers that know it; the measured
    rule below does not depend on it.

    * ``count <= 50_000``: ``Flat``. Exact, no training, 512 B per 128-d vector, and still
      about a millisecond per query (1.1 ms at 50k, 2.6-4.1 ms at 100k, 31 ms at 1M).
    * ``count <= 1_000_000``: ``HNSW32``, searched with efSearch 64 by default. The fastest
      index at recall@10 >= 0.95: at 1M testbed-like vectors, 0.36 ms per query at recall
      0.99 (IVF4096,Flat needs 0.47 ms for 0.97); 784 B per 128-d vector, no training.
    * above: ``IVF<n>,SQ8`` with n ~ 4*sqrt(count) (:func:`ivf_nlist`), searched with
      :func:`default_nprobe` lists. One byte per dimension (138 B per 128-d vector, 5.7x less
      than HNSW32) at recall 0.98 (1M, 128 of 4096 lists, 0.62 ms). Product quantisation
      (``IVF<n>,PQ<dim/4>``) is smaller still but never reaches recall 0.95 (0.68 at 1M,
      every list visited), so it is left to ``--factory``.

    Measured on 2 shared CPU cores by ``benchmarks/bench_index.py`` (docs/performance.md):
    the tuned recall is on vectors drawn like the testbed CLIP's embeddings, which need
    more search effort than the real embeddings (10k: efSearch 16 reaches 1.00 on the real
    ones, 0.98 on the drawn ones). Structureless random vectors need far more (efSearch
    2048 reaches 0.77 at 1M): no default reaches 0.95 on them short of exact search.
    """
    if count <= FLAT_MAX:
        return "Flat"
    if count <= HNSW_MAX:
        return "HNSW32"
    return f"IVF{ivf_nlist(count)},SQ8"
