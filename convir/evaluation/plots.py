"""Hits@K per round, one line per system: the figure ChatIR-style papers compare with.

Drawn with matplotlib's Agg canvas on a private ``Figure`` (no pyplot): no display needed,
no global backend switch, and safe beside other threads that plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from convir.errors import InputError


def plot_hits(
    curves: Mapping[str, Sequence[float]], path: str | Path, k: int = 10, title: str | None = None
) -> Path:
    """Write a PNG of Hits@``k`` (a fraction in [0, 1]) against dialogue round per label."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise InputError("nothing to plot: pass at least one {label: [hits per round]}")
    for label, values in curves.items():
        if not values:
            raise InputError(f"curve {label!r} is empty; it needs one value per round")
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise InputError(f"curve {label!r} has values outside [0, 1]; pass fractions")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, values in curves.items():
        ax.plot(range(len(values)), list(values), marker="o", markersize=3, label=label)
    rounds = max(len(v) for v in curves.values())
    ax.set_xticks(range(rounds))
    ax.set_xlim(-0.2, rounds - 0.8)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("dialogue round (0 = opening message)")
    ax.set_ylabel(f"Hits@{k} (cumulative)")
    ax.set_title(title or f"Hits@{k} per round")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(p, format="png")
    return p


__all__ = ["plot_hits"]
