"""Vectors as the index takes them: float32 rows of the index's width, finite, and for the
gallery side of unit length (so an inner product is a cosine)."""

from __future__ import annotations

from typing import Any

import numpy as np

from convir.errors import InputError


def as_matrix(values: Any, dim: int, what: str) -> np.ndarray:
    """``values`` as a C-contiguous float32 [N, dim] array (a single vector becomes [1, dim])."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InputError(f"{what} must have shape [N, {dim}], got {list(np.shape(values))}")
    if not np.isfinite(arr).all():
        raise InputError(f"{what} contain NaN or infinite values")
    return np.ascontiguousarray(arr)


def unit_rows(arr: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row has no direction and is refused."""
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError(f"{what} contain all-zero rows, which have no direction to compare")
    return np.ascontiguousarray(arr / norms, dtype=np.float32)
