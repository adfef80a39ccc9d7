"""What the three testbed trainings share: AdamW with decay on matrices only, warm-up + cosine."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def adamw(
    model: torch.nn.Module, lr: float, weight_decay: float, no_decay: str
) -> torch.optim.AdamW:
    """AdamW decaying weight matrices only (not biases, norms, or parameters named
    ``no_decay``, e.g. the token embedding)."""
    import torch

    def decays(name: str, p: torch.Tensor) -> bool:
        return p.ndim >= 2 and no_decay not in name

    params = list(model.named_parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for n, p in params if decays(n, p)], "weight_decay": weight_decay},
            {"params": [p for n, p in params if not decays(n, p)], "weight_decay": 0.0},
        ],
        lr=lr,
    )


def warmup_cosine(step: int, lr: float, warmup: int, steps: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * t))
